<?php

declare(strict_types=1);

namespace App\Http;

use App\Application;

/**
 * Exact-path routing to [Controller::class, 'method'] pairs. HEAD is served as GET; a known
 * path with another method gets 405, an unknown path 404 (both JSON).
 */
final class Router
{
    /** @var array<string, array<string, array{0: class-string, 1: string}>> path => method => action */
    private array $routes = [];

    private string $prefix = '';

    public function __construct(private readonly Application $app)
    {
    }

    /** @param array{0: class-string, 1: string} $action */
    public function get(string $path, array $action): void
    {
        $this->add('GET', $path, $action);
    }

    /** @param array{0: class-string, 1: string} $action */
    public function add(string $method, string $path, array $action): void
    {
        $path = '/' . trim($this->prefix . '/' . trim($path, '/'), '/');
        $this->routes[$path][$method] = $action;
    }

    /** Register the routes of $routes (a routes/*.php closure) under the path prefix $prefix. */
    public function group(string $prefix, callable $routes): void
    {
        $previous = $this->prefix;
        $this->prefix = rtrim($previous . '/' . trim($prefix, '/'), '/');
        try {
            $routes($this);
        } finally {
            $this->prefix = $previous;
        }
    }

    public function dispatch(Request $request): Response
    {
        $methods = $this->routes[$request->path] ?? null;
        if ($methods === null) {
            return Response::json(['error' => 'not found'], 404);
        }

        $method = $request->method === 'HEAD' ? 'GET' : $request->method;
        $action = $methods[$method] ?? null;
        if ($action === null) {
            return Response::json(['error' => 'method not allowed'], 405)
                ->header('Allow', implode(', ', array_keys($methods)));
        }

        [$class, $function] = $action;

        return (new $class($this->app))->$function($request);
    }
}
