<?php

declare(strict_types=1);

namespace App\Support;

use RuntimeException;

/**
 * A minimal .env reader: KEY=VALUE lines, optional double or single quotes around the value,
 * blank lines and `#` comments ignored. Values from the real process environment win over
 * the file (as in Laravel). Only used when the configuration is not cached.
 */
final class Env
{
    /** @var array<string, string> */
    private static array $values = [];

    /** Load $path (a missing file is not an error: defaults and the environment apply). */
    public static function load(string $path): void
    {
        self::$values = is_file($path) ? self::parse($path) : [];
    }

    /** @return array<string, string> */
    public static function parse(string $path): array
    {
        $lines = file($path, FILE_IGNORE_NEW_LINES);
        if ($lines === false) {
            throw new RuntimeException('Cannot read ' . $path);
        }

        $values = [];
        foreach ($lines as $number => $line) {
            $line = trim($line);
            if ($line === '' || $line[0] === '#') {
                continue;
            }
            if (str_starts_with($line, 'export ')) {
                $line = ltrim(substr($line, 7));
            }
            if (preg_match('/^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/', $line, $m) !== 1) {
                throw new RuntimeException(sprintf('%s line %d: expected KEY=VALUE', $path, $number + 1));
            }
            $values[$m[1]] = self::value($m[2]);
        }

        return $values;
    }

    private static function value(string $raw): string
    {
        if ($raw !== '' && ($raw[0] === '"' || $raw[0] === "'")) {
            $end = strpos($raw, $raw[0], 1);
            if ($end !== false) {
                return substr($raw, 1, $end - 1);
            }
        }

        // Unquoted: an inline comment starts at whitespace followed by '#'.
        return rtrim((string) preg_replace('/\s+#.*$/', '', $raw));
    }

    public static function get(string $key, mixed $default = null): mixed
    {
        $value = getenv($key);
        if ($value === false) {
            $value = self::$values[$key] ?? null;
        }
        if ($value === null) {
            return $default;
        }

        return match (strtolower($value)) {
            'true', '(true)' => true,
            'false', '(false)' => false,
            'null', '(null)' => null,
            'empty', '(empty)' => '',
            default => $value,
        };
    }
}
