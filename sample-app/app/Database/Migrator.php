<?php

declare(strict_types=1);

namespace App\Database;

use App\Support\Database;
use RuntimeException;
use Throwable;

/**
 * Applies database/migrations/*.php (each returns a list of SQL statements) in file-name order,
 * each one that is not yet in the `migrations` table, recording it with this run's batch
 * number. Holds a MariaDB named lock so that two deploys cannot migrate at once.
 */
final class Migrator
{
    private const LOCK = 'lbstack:migrate';

    public function __construct(private readonly Database $db, private readonly string $path)
    {
    }

    /**
     * @param callable(string): void $output
     * @return int the number of migrations applied
     */
    public function run(callable $output): int
    {
        $this->ensureTable();
        $this->lock();
        try {
            $pending = array_diff_key($this->files(), array_flip($this->applied()));
            if ($pending === []) {
                $output('Nothing to migrate.');
                return 0;
            }

            $batch = (int) $this->db->scalar('SELECT COALESCE(MAX(batch), 0) + 1 FROM migrations');
            foreach ($pending as $name => $file) {
                $output('Migrating: ' . $name);
                $started = hrtime(true);
                try {
                    foreach ($this->statements($file) as $sql) {
                        $this->db->statement($sql);
                    }
                    $this->db->statement('INSERT INTO migrations (migration, batch) VALUES (?, ?)', [$name, $batch]);
                } catch (Throwable $e) {
                    throw new RuntimeException(sprintf('Migration %s failed: %s', $name, $e->getMessage()), 0, $e);
                }
                $output(sprintf('Migrated:  %s (%.1f ms)', $name, (hrtime(true) - $started) / 1e6));
            }

            return count($pending);
        } finally {
            $this->unlock();
        }
    }

    /** @return array<string, int|null> every migration name => its batch (null: pending) */
    public function status(): array
    {
        $this->ensureTable();
        $batches = [];
        foreach ($this->db->select('SELECT migration, batch FROM migrations') as $row) {
            $batches[(string) $row['migration']] = (int) $row['batch'];
        }
        $status = [];
        foreach (array_keys($this->files()) as $name) {
            $status[$name] = $batches[$name] ?? null;
        }

        return $status;
    }

    private function ensureTable(): void
    {
        $this->db->statement(
            'CREATE TABLE IF NOT EXISTS migrations ('
            . ' id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,'
            . ' migration VARCHAR(255) NOT NULL,'
            . ' batch INT NOT NULL,'
            . ' UNIQUE KEY migrations_migration_unique (migration)'
            . ') ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci'
        );
    }

    /** @return array<string, string> name => file, sorted by name */
    private function files(): array
    {
        $files = [];
        foreach (glob($this->path . '/*.php') ?: [] as $file) {
            $files[basename($file, '.php')] = $file;
        }
        ksort($files, SORT_STRING);

        return $files;
    }

    /** @return list<string> */
    private function applied(): array
    {
        return array_map(
            static fn (array $row): string => (string) $row['migration'],
            $this->db->select('SELECT migration FROM migrations'),
        );
    }

    /** @return list<string> */
    private function statements(string $file): array
    {
        $statements = require $file;
        if (!is_array($statements) || $statements === []) {
            throw new RuntimeException('it must return a non-empty list of SQL statements');
        }
        foreach ($statements as $sql) {
            if (!is_string($sql) || trim($sql) === '') {
                throw new RuntimeException('it must return a non-empty list of SQL statements');
            }
        }

        return array_values($statements);
    }

    private function lock(): void
    {
        if ((int) $this->db->scalar('SELECT GET_LOCK(?, 60)', [self::LOCK]) !== 1) {
            throw new RuntimeException('Another `artisan migrate` held the migration lock for 60 s; try again later');
        }
    }

    private function unlock(): void
    {
        try {
            $this->db->scalar('SELECT RELEASE_LOCK(?)', [self::LOCK]);
        } catch (Throwable) {
            // The lock ends with the connection anyway.
        }
    }
}
