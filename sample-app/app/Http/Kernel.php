<?php

declare(strict_types=1);

namespace App\Http;

use App\Application;
use Throwable;

/**
 * Loads the routes, dispatches a request, turns any uncaught exception into a logged
 * 500 {"error":"server error"} (no details to the client) and stamps every response with
 * X-Lbstack-Instance and X-Lbstack-Release (the release directory it ran from).
 */
final class Kernel
{
    private readonly Router $router;

    public function __construct(private readonly Application $app)
    {
        $this->router = new Router($app);
        $this->router->group('/', require $app->basePath('routes/web.php'));
        $this->router->group('/api', require $app->basePath('routes/api.php'));
    }

    public function handle(Request $request): Response
    {
        try {
            $response = $this->router->dispatch($request);
        } catch (Throwable $e) {
            $this->app->log()->exception($e, $request->method . ' ' . $request->path);
            $response = Response::json(['error' => 'server error'], 500);
        }

        return $response->header('X-Lbstack-Instance', $this->app->instance())
            ->header('X-Lbstack-Release', $this->app->release());
    }
}
