<?php

declare(strict_types=1);

namespace App\Support;

use PDO;
use PDOException;
use PDOStatement;
use RuntimeException;

/**
 * A lazily opened PDO connection to MariaDB/MySQL (pdo_mysql), by host/port or by unix socket
 * (DB_SOCKET); persistent (kept by the FPM worker across requests) when DB_PERSISTENT is true,
 * as lbstack deploys it; Laravel's default, a new connection per request, otherwise. A query that
 * finds a connection dead (server restarted) is retried once on a fresh connection.
 */
final class Database
{
    private const GONE_AWAY = [2006, 2013];

    private ?PDO $pdo = null;

    /** @param array<string, mixed> $config one entry of config('database.connections') */
    public function __construct(private readonly array $config)
    {
    }

    public function pdo(): PDO
    {
        return $this->pdo ??= $this->connect();
    }

    /** @return list<array<string, mixed>> */
    public function select(string $sql, array $bindings = []): array
    {
        return $this->run($sql, $bindings)->fetchAll();
    }

    /** @return array<string, mixed>|null */
    public function selectOne(string $sql, array $bindings = []): ?array
    {
        $row = $this->run($sql, $bindings)->fetch();

        return is_array($row) ? $row : null;
    }

    public function scalar(string $sql, array $bindings = []): mixed
    {
        $value = $this->run($sql, $bindings)->fetchColumn();

        return $value === false ? null : $value;
    }

    /** Run a statement; returns the number of affected rows. */
    public function statement(string $sql, array $bindings = []): int
    {
        return $this->run($sql, $bindings)->rowCount();
    }

    private function run(string $sql, array $bindings): PDOStatement
    {
        try {
            return $this->execute($sql, $bindings);
        } catch (PDOException $e) {
            $code = (int) ($e->errorInfo[1] ?? 0);
            if (!in_array($code, self::GONE_AWAY, true) || $this->pdo?->inTransaction()) {
                throw $e;
            }
            $this->pdo = null;

            return $this->execute($sql, $bindings);
        }
    }

    private function execute(string $sql, array $bindings): PDOStatement
    {
        $statement = $this->pdo()->prepare($sql);
        $statement->execute($bindings);

        return $statement;
    }

    private function connect(): PDO
    {
        $driver = (string) ($this->config['driver'] ?? 'mysql');
        if ($driver !== 'mysql') {
            throw new RuntimeException(sprintf('DB_CONNECTION "%s" is not supported (only mysql)', $driver));
        }
        if (!extension_loaded('pdo_mysql')) {
            throw new RuntimeException('The pdo_mysql extension (php8.2-mysql) is not installed');
        }

        $socket = (string) ($this->config['unix_socket'] ?? '');
        $where = $socket !== ''
            ? 'unix_socket=' . $socket
            : sprintf('host=%s;port=%d', $this->config['host'], (int) $this->config['port']);
        $dsn = sprintf('mysql:%s;dbname=%s;charset=%s', $where, $this->config['database'], $this->config['charset']);

        $pdo = new PDO($dsn, (string) $this->config['username'], (string) ($this->config['password'] ?? ''), [
            PDO::ATTR_PERSISTENT => (bool) ($this->config['persistent'] ?? false),
            PDO::ATTR_TIMEOUT => (int) ($this->config['timeout_s'] ?? 2),
            PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION,
        ]);
        // Set again: a reused persistent handle keeps the attributes of its first request.
        $pdo->setAttribute(PDO::ATTR_ERRMODE, PDO::ERRMODE_EXCEPTION);
        $pdo->setAttribute(PDO::ATTR_DEFAULT_FETCH_MODE, PDO::FETCH_ASSOC);

        return $pdo;
    }
}
