<?php

declare(strict_types=1);

namespace App\Support;

use Redis;
use RedisException;
use RuntimeException;
use Throwable;

/**
 * phpredis with short timeouts; a persistent connection (pconnect, kept by the FPM worker
 * across requests) when REDIS_PERSISTENT is true, as lbstack deploys it; Laravel's default, a new
 * connection per request, otherwise.
 *
 * With a persistent connection AUTH is sent only when Redis answers NOAUTH, i.e. once per new
 * connection rather than once per request: on a reused connection an AUTH round trip would double
 * the Redis CPU of a cache hit. A per-request connection authenticates right after connecting. Cache reads and writes are best-effort: a failure (Redis down, or an OOM
 * error under `maxmemory-policy noeviction`) is logged (throttled) and reported as a miss /
 * false, never as an exception.
 */
final class RedisStore
{
    private ?Redis $client = null;

    /** @param array<string, mixed> $config config('database.redis') */
    public function __construct(private readonly array $config, private readonly Logger $log)
    {
    }

    /**
     * Run $command with the client, authenticating and running it once more when the
     * connection is not authenticated yet, or reconnecting and running it once more when a
     * reused persistent connection turns out dead (Redis restarted; lbstack turns phpredis'
     * liveness ECHO off). Throws when Redis is unreachable or AUTH fails.
     *
     * @template T
     * @param callable(Redis): T $command
     * @return T
     */
    public function run(callable $command): mixed
    {
        $client = $this->client();
        try {
            return $command($client);
        } catch (RedisException $e) {
            if (str_starts_with($e->getMessage(), 'NOAUTH') && $this->password() !== '') {
                if ($client->getMode() !== Redis::ATOMIC) {
                    $client->discard();
                }
                if ($client->auth($this->password()) !== true) {
                    throw new RuntimeException('Redis AUTH failed: ' . ($client->getLastError() ?? 'refused'));
                }

                return $command($client);
            }
            if (!$this->isPersistent() || $this->isServerError($e)) {
                throw $e;
            }
            // a dead reused connection: drop it, connect again, try once more
            try {
                $client->close();
            } catch (Throwable) {
            }
            $this->client = null;

            return $command($this->client());
        }
    }

    private function isPersistent(): bool
    {
        return (bool) ($this->config['persistent'] ?? false);
    }

    /** An error answer from a live server (not a broken connection): retrying would not help. */
    private function isServerError(RedisException $e): bool
    {
        return preg_match('/^(ERR|WRONGTYPE|OOM|NOAUTH|WRONGPASS|NOPERM|READONLY|BUSY|LOADING|MISCONF|EXECABORT)\b/', $e->getMessage()) === 1;
    }

    /** Throws unless Redis answers PING. */
    public function ping(): void
    {
        if ($this->run(static fn (Redis $r): mixed => $r->ping()) === false) {
            throw new RuntimeException('Redis PING failed');
        }
    }

    /** The cached string, or null on a miss or any failure. */
    public function get(string $key): ?string
    {
        try {
            $value = $this->run(static fn (Redis $r): mixed => $r->get($key));
        } catch (Throwable $e) {
            $this->log->warningThrottled('redis-read', 'Redis cache read failed, using the DB: ' . $e->getMessage());
            return null;
        }

        return is_string($value) ? $value : null;
    }

    /** Store $value for $ttlSeconds; false (logged) when Redis refuses or is unreachable. */
    public function put(string $key, string $value, int $ttlSeconds): bool
    {
        try {
            $stored = $this->run(static fn (Redis $r): mixed => $r->setex($key, max(1, $ttlSeconds), $value));
            if ($stored === true) {
                return true;
            }
            $error = $this->client()->getLastError() ?? 'SETEX returned false';
            $this->client()->clearLastError();
        } catch (Throwable $e) {
            $error = $e->getMessage();
        }
        $this->log->warningThrottled('redis-write', 'Redis cache write failed, serving without caching: ' . $error);

        return false;
    }

    private function client(): Redis
    {
        if ($this->client !== null) {
            return $this->client;
        }
        if (!extension_loaded('redis')) {
            throw new RuntimeException('The redis extension (php-redis) is not installed');
        }

        $host = (string) $this->config['host'];
        $port = str_starts_with($host, '/') ? 0 : (int) $this->config['port'];
        $timeout = (float) ($this->config['timeout_s'] ?? 1.0);

        $redis = new Redis();
        $persistent = $this->isPersistent();
        $connected = $persistent
            ? $redis->pconnect($host, $port, $timeout, null, 0, $timeout)
            : $redis->connect($host, $port, $timeout, null, 0, $timeout);
        if (!$connected) {
            throw new RuntimeException(sprintf('Cannot connect to Redis at %s:%d', $host, $port));
        }
        if (!$persistent && $this->password() !== '' && $redis->auth($this->password()) !== true) {
            throw new RuntimeException('Redis AUTH failed: ' . ($redis->getLastError() ?? 'refused'));
        }

        return $this->client = $redis;
    }

    private function password(): string
    {
        return (string) ($this->config['password'] ?? '');
    }
}
