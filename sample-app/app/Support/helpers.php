<?php

declare(strict_types=1);

use App\Support\Env;

if (!function_exists('env')) {
    /**
     * Read an environment value (.env, overridden by the real process environment),
     * with Laravel's conversions: true/false/null/empty (optionally in parentheses).
     */
    function env(string $key, mixed $default = null): mixed
    {
        return Env::get($key, $default);
    }
}

if (!function_exists('e')) {
    /** Escape a value for HTML output. */
    function e(mixed $value): string
    {
        return htmlspecialchars((string) $value, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
    }
}
