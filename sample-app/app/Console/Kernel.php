<?php

declare(strict_types=1);

namespace App\Console;

use App\Application;
use App\Database\Migrator;
use Database\Seeders\DatabaseSeeder;
use RuntimeException;
use Throwable;

/**
 * The artisan commands. Exit status: 0 success, 1 failure (the reason on stderr, secrets
 * redacted). In production, migrate and db:seed need --force, as in Laravel.
 */
final class Kernel
{
    /** command => [description, allowed options] */
    private const COMMANDS = [
        'about' => ['Show the application name, environment, release and PHP version', []],
        'migrate' => ['Apply the database migrations not applied yet', ['force', 'seed']],
        'migrate:status' => ['Show which migrations have been applied', []],
        'db:seed' => ['Seed the database (only tables that are still empty)', ['force']],
        'config:cache' => ['Write bootstrap/cache/config.php from .env and config/*.php', []],
        'config:clear' => ['Remove bootstrap/cache/config.php', []],
        'list' => ['List the commands', []],
    ];

    /** Accepted by every command and ignored (artisan habits of deploy scripts). */
    private const GLOBAL_OPTIONS = ['no-interaction', 'n', 'no-ansi', 'quiet', 'q'];

    public function __construct(private readonly Application $app)
    {
    }

    /** @param list<string> $argv */
    public function handle(array $argv): int
    {
        $command = null;
        $options = [];
        foreach (array_slice($argv, 1) as $arg) {
            if (str_starts_with($arg, '-')) {
                $options[ltrim(explode('=', $arg, 2)[0], '-')] = true;
            } elseif ($command === null) {
                $command = $arg;
            } else {
                return $this->fail(sprintf('Unexpected argument "%s".', $arg));
            }
        }
        $command ??= 'list';

        if (!array_key_exists($command, self::COMMANDS)) {
            return $this->fail(sprintf('Command "%s" is not defined. Run `php artisan list`.', $command));
        }
        foreach (array_keys($options) as $option) {
            $allowed = [...self::COMMANDS[$command][1], ...self::GLOBAL_OPTIONS];
            if (!in_array($option, $allowed, true)) {
                return $this->fail(sprintf('The "--%s" option does not exist for %s.', $option, $command));
            }
        }

        try {
            return match ($command) {
                'about' => $this->about(),
                'migrate' => $this->migrate(isset($options['force']), isset($options['seed'])),
                'migrate:status' => $this->migrateStatus(),
                'db:seed' => $this->seed(isset($options['force'])),
                'config:cache' => $this->configCache(),
                'config:clear' => $this->configClear(),
                'list' => $this->list(),
            };
        } catch (Throwable $e) {
            return $this->fail($e->getMessage());
        }
    }

    private function about(): int
    {
        $app = $this->app;
        $connection = (string) $app->config('database.default');
        $db = (array) $app->config('database.connections.' . $connection, []);
        $dbWhere = ($db['unix_socket'] ?? '') !== ''
            ? $db['unix_socket']
            : ($db['host'] ?? '?') . ':' . ($db['port'] ?? '?');
        $rows = [
            'Application Name' => $app->config('app.name'),
            'Environment' => $app->config('app.env'),
            'Debug Mode' => $app->config('app.debug') ? 'ON' : 'OFF',
            'URL' => $app->config('app.url'),
            'Application Key' => $app->config('app.key') !== '' ? 'set' : 'NOT SET',
            'Release Directory' => $app->basePath(),
            'Release' => $app->release(),
            'Instance' => $app->instance(),
            'PHP Version' => PHP_VERSION,
            'Config' => $app->configLoader()->isCached() ? 'CACHED' : 'NOT CACHED',
            'Database' => sprintf('%s (%s, database %s)', $connection, $dbWhere, $db['database'] ?? '?'),
            'Redis' => $app->config('database.redis.host') . ':' . $app->config('database.redis.port'),
            'Cache' => $app->config('cache.default') . ', TTL ' . $app->config('cache.ttl_s') . ' s',
            'Session' => $app->config('session.driver') . ', ' . $app->config('session.lifetime') . ' min',
            'Extensions' => sprintf(
                'pdo_mysql %s, redis %s',
                extension_loaded('pdo_mysql') ? 'yes' : 'MISSING',
                extension_loaded('redis') ? 'yes' : 'MISSING',
            ),
        ];
        foreach ($rows as $label => $value) {
            $this->line(str_pad($label . ' ', 20, '.') . ' ' . (string) $value);
        }

        return 0;
    }

    private function migrate(bool $force, bool $seed): int
    {
        if (!$this->confirmProduction($force)) {
            return 1;
        }
        (new Migrator($this->app->db(), $this->app->basePath('database/migrations')))
            ->run(fn (string $line) => $this->line($line));

        return $seed ? $this->seed(true) : 0;
    }

    private function migrateStatus(): int
    {
        $status = (new Migrator($this->app->db(), $this->app->basePath('database/migrations')))->status();
        foreach ($status as $name => $batch) {
            $this->line(sprintf('%-60s %s', $name, $batch === null ? 'Pending' : 'Ran (batch ' . $batch . ')'));
        }

        return 0;
    }

    private function seed(bool $force): int
    {
        if (!$this->confirmProduction($force)) {
            return 1;
        }
        foreach ((new DatabaseSeeder())->run($this->app->db()) as $seeder => $rows) {
            $name = substr($seeder, (int) strrpos($seeder, '\\') + 1);
            $this->line($rows > 0
                ? sprintf('Seeded:    %s (%d rows)', $name, $rows)
                : sprintf('Skipped:   %s (table already has rows)', $name));
        }

        return 0;
    }

    private function configCache(): int
    {
        $loader = $this->app->configLoader();
        $loader->clearCache();
        if (!is_file($this->app->basePath('.env'))) {
            $this->line('Warning: no .env file; caching the environment and the defaults.');
        }
        $path = $loader->writeCache($loader->fresh());
        $this->line('Configuration cached successfully: ' . $path);

        return 0;
    }

    private function configClear(): int
    {
        if (!$this->app->configLoader()->clearCache()) {
            throw new RuntimeException('Cannot remove ' . $this->app->configLoader()->cachePath());
        }
        $this->line('Configuration cache cleared successfully.');

        return 0;
    }

    private function list(): int
    {
        $this->line('Usage: php artisan <command> [options]');
        $this->line('');
        foreach (self::COMMANDS as $name => [$description, $options]) {
            $flags = implode(' ', array_map(static fn (string $o): string => '[--' . $o . ']', $options));
            $this->line(sprintf('  %-16s %s%s', $name, $description, $flags === '' ? '' : ' ' . $flags));
        }

        return 0;
    }

    private function confirmProduction(bool $force): bool
    {
        if ($force || $this->app->config('app.env') !== 'production') {
            return true;
        }
        $this->error('Application in production: run the command with --force. Command cancelled.');

        return false;
    }

    private function line(string $text): void
    {
        fwrite(STDOUT, $text . PHP_EOL);
    }

    private function error(string $text): void
    {
        fwrite(STDERR, $this->app->redact($text) . PHP_EOL);
    }

    private function fail(string $message): int
    {
        $this->error('ERROR: ' . $message);

        return 1;
    }
}
