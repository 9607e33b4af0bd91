<?php

declare(strict_types=1);

namespace App\Support;

use Redis;
use RuntimeException;

/**
 * Sessions stored in Redis, shared by every app instance: a hash at `{prefix}{id}` with a
 * request counter, its TTL renewed on every request. Ids are 40 lowercase hex characters;
 * an id that is malformed or unknown to Redis (expired, or made up by the client) is
 * replaced by a new random one.
 */
final class Session
{
    public const ID_PATTERN = '/^[0-9a-f]{40}$/';

    public function __construct(
        private readonly RedisStore $redis,
        private readonly string $prefix,
        private readonly int $ttlSeconds,
    ) {
    }

    public static function isValidId(mixed $id): bool
    {
        return is_string($id) && preg_match(self::ID_PATTERN, $id) === 1;
    }

    /**
     * Count one more request in the session $id (or a new session).
     *
     * @return array{0: string, 1: int} the session id (possibly new) and the new count
     */
    public function hit(?string $id): array
    {
        if (self::isValidId($id)) {
            $count = $this->increment($id);
            if ($count > 1) {
                return [$id, $count];
            }
            // Not an existing session: do not adopt an id chosen by the client.
            $key = $this->prefix . $id;
            $this->redis->run(static fn (Redis $r): mixed => $r->del($key));
        }

        $id = bin2hex(random_bytes(20));

        return [$id, $this->increment($id)];
    }

    private function increment(string $id): int
    {
        $key = $this->prefix . $id;
        $ttl = $this->ttlSeconds;
        $result = $this->redis->run(static function (Redis $r) use ($key, $ttl): mixed {
            $result = $r->multi()->hIncrBy($key, 'count', 1)->expire($key, $ttl)->exec();
            if (!is_array($result) || !is_int($result[0] ?? null)) {
                $error = $r->getLastError() ?? 'transaction failed';
                $r->clearLastError();
                throw new RuntimeException('Redis session write failed: ' . $error);
            }

            return $result;
        });

        return $result[0];
    }
}
