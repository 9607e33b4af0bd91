<?php

declare(strict_types=1);

namespace App\Http;

/** The parts of an HTTP request this app uses. */
final class Request
{
    /**
     * @param array<string, mixed> $query
     * @param array<string, mixed> $cookies
     * @param array<string, mixed> $server
     */
    public function __construct(
        public readonly string $method,
        public readonly string $path,
        private readonly array $query = [],
        private readonly array $cookies = [],
        private readonly array $server = [],
    ) {
    }

    public static function capture(): self
    {
        $uri = (string) ($_SERVER['REQUEST_URI'] ?? '/');
        $path = rawurldecode((string) (parse_url($uri, PHP_URL_PATH) ?? '/'));
        $path = '/' . trim($path, '/');

        return new self(
            strtoupper((string) ($_SERVER['REQUEST_METHOD'] ?? 'GET')),
            $path,
            $_GET,
            $_COOKIE,
            $_SERVER,
        );
    }

    public function query(string $key): mixed
    {
        return $this->query[$key] ?? null;
    }

    public function cookie(string $name): mixed
    {
        return $this->cookies[$name] ?? null;
    }

    public function isSecure(): bool
    {
        $https = (string) ($this->server['HTTPS'] ?? '');

        return $https !== '' && strtolower($https) !== 'off';
    }
}
