<?php

declare(strict_types=1);

namespace App\Http;

/** A response built in full before anything is sent. */
final class Response
{
    /** @var array<string, string> */
    private array $headers = [];

    /** @var list<array{0: string, 1: string, 2: array<string, mixed>}> */
    private array $cookies = [];

    public function __construct(private readonly string $body = '', public readonly int $status = 200)
    {
    }

    public static function json(mixed $data, int $status = 200): self
    {
        $body = json_encode($data, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR);

        return (new self($body . "\n", $status))->header('Content-Type', 'application/json; charset=utf-8');
    }

    public static function html(string $html, int $status = 200): self
    {
        return (new self($html, $status))->header('Content-Type', 'text/html; charset=utf-8');
    }

    public function header(string $name, string $value): self
    {
        $this->headers[$name] = str_replace(["\r", "\n"], '', $value);

        return $this;
    }

    /** @param array<string, mixed> $options setcookie() options (expires, path, httponly, samesite, secure) */
    public function cookie(string $name, string $value, array $options): self
    {
        $this->cookies[] = [$name, $value, $options];

        return $this;
    }

    public function body(): string
    {
        return $this->body;
    }

    public function headerLine(string $name): ?string
    {
        return $this->headers[$name] ?? null;
    }

    public function send(): void
    {
        if (!headers_sent()) {
            header_remove('X-Powered-By');
            http_response_code($this->status);
            foreach ($this->headers as $name => $value) {
                header($name . ': ' . $value);
            }
            foreach ($this->cookies as [$name, $value, $options]) {
                setcookie($name, $value, $options);
            }
        }
        echo $this->body;
    }
}
