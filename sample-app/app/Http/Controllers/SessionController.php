<?php

declare(strict_types=1);

namespace App\Http\Controllers;

use App\Http\Request;
use App\Http\Response;
use App\Support\Session;
use Throwable;

/**
 * GET /api/session: a request counter in a Redis session (cookie lbstack_session), the same
 * whichever instance serves the request.
 */
final class SessionController extends Controller
{
    public function show(Request $request): Response
    {
        $cookie = (string) $this->app->config('session.cookie', 'lbstack_session');
        $lifetimeS = max(1, (int) $this->app->config('session.lifetime', 120)) * 60;
        $id = $request->cookie($cookie);

        try {
            $session = new Session(
                $this->app->redis(),
                (string) $this->app->config('session.prefix', 'lbstack_session:'),
                $lifetimeS,
            );
            [$id, $count] = $session->hit(is_string($id) ? $id : null);
        } catch (Throwable $e) {
            $this->app->log()->warningThrottled('session', 'Session store unavailable: ' . $e->getMessage());
            // 500, not 503: Redis is shared, another instance would fail the same way, and nginx
            // counts a 503 against this instance (fastcgi_next_upstream http_503, max_fails).
            return Response::json(['error' => 'session store unavailable', 'instance' => $this->app->instance()], 500)
                ->header('Cache-Control', 'no-store');
        }

        return Response::json(['count' => $count, 'instance' => $this->app->instance()])
            ->header('Cache-Control', 'no-store, private')
            ->cookie($cookie, $id, [
                'expires' => time() + $lifetimeS,
                'path' => '/',
                'secure' => $request->isSecure(),
                'httponly' => true,
                'samesite' => 'Lax',
            ]);
    }
}
