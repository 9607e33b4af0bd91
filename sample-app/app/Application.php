<?php

declare(strict_types=1);

namespace App;

use App\Support\ConfigLoader;
use App\Support\Database;
use App\Support\Logger;
use App\Support\RedisStore;
use App\Support\View;

/**
 * The application: base path, configuration, and the lazily built services (database, Redis,
 * log, views) shared by the HTTP kernel and artisan.
 */
final class Application
{
    /** @var array<string, mixed> */
    private array $config;

    private ?Database $database = null;
    private ?RedisStore $redis = null;
    private ?Logger $logger = null;
    private ?string $instance = null;

    public function __construct(private readonly string $basePath)
    {
        $this->config = $this->configLoader()->load();
    }

    public function basePath(string $path = ''): string
    {
        return $path === '' ? $this->basePath : $this->basePath . '/' . ltrim($path, '/');
    }

    public function configLoader(): ConfigLoader
    {
        return new ConfigLoader($this->basePath);
    }

    /** A configuration value by dot path, e.g. config('database.redis.host'). */
    public function config(string $key, mixed $default = null): mixed
    {
        $value = $this->config;
        foreach (explode('.', $key) as $segment) {
            if (!is_array($value) || !array_key_exists($segment, $value)) {
                return $default;
            }
            $value = $value[$segment];
        }

        return $value;
    }

    /** The FPM pool's name (env[LBSTACK_INSTANCE] in the pool), else the environment, else "unknown". */
    public function instance(): string
    {
        if ($this->instance === null) {
            $name = $_SERVER['LBSTACK_INSTANCE'] ?? getenv('LBSTACK_INSTANCE');
            $name = is_string($name) ? preg_replace('/[^A-Za-z0-9._-]/', '', $name) : '';
            $this->instance = $name === '' || $name === null ? 'unknown' : $name;
        }

        return $this->instance;
    }

    /** The release id: the name of the (resolved) release directory. */
    public function release(): string
    {
        return basename($this->basePath);
    }

    public function db(): Database
    {
        if ($this->database === null) {
            $name = (string) $this->config('database.default', 'mysql');
            $this->database = new Database((array) $this->config('database.connections.' . $name, ['driver' => $name]));
        }

        return $this->database;
    }

    public function redis(): RedisStore
    {
        return $this->redis ??= new RedisStore((array) $this->config('database.redis', []), $this->log());
    }

    public function log(): Logger
    {
        return $this->logger ??= new Logger(
            $this->basePath('storage/logs/laravel.log'),
            $this->basePath('storage/framework/cache'),
            (string) $this->config('app.env', 'production'),
            $this->secrets(),
            $this->instance(),
        );
    }

    public function view(): View
    {
        return new View($this->basePath('resources/views'));
    }

    /** Replace every configured secret in $text by *** (for anything shown or logged). */
    public function redact(string $text): string
    {
        return $this->log()->redact($text);
    }

    /** @return list<string> */
    private function secrets(): array
    {
        $name = (string) $this->config('database.default', 'mysql');
        $secrets = [
            (string) $this->config('database.connections.' . $name . '.password', ''),
            (string) $this->config('database.redis.password', ''),
            (string) $this->config('app.key', ''),
        ];

        return array_values(array_filter($secrets, static fn (string $s): bool => $s !== ''));
    }
}
