<?php

namespace App\Http\Middleware;

use Closure;
use Illuminate\Http\Request;

/**
 * Stamps every response with X-Lbstack-Instance (the FPM pool's env[LBSTACK_MEMBER]: the instance
 * as the balancers name it, "app2" or "<host>-app2" on another host; else env[LBSTACK_INSTANCE],
 * else the process environment, else "unknown") and X-Lbstack-Release (the name of the release directory
 * the request ran from): lbstack's health gate, probes, load generator and k6 checks read them.
 */
class StampInstance
{
    public function handle(Request $request, Closure $next)
    {
        $response = $next($request);

        $response->headers->set('X-Lbstack-Instance', static::instance());
        $response->headers->set('X-Lbstack-Release', static::release());

        return $response;
    }

    public static function instance(): string
    {
        static $instance = null;
        if ($instance === null) {
            $name = $_SERVER['LBSTACK_MEMBER'] ?? $_SERVER['LBSTACK_INSTANCE'] ?? getenv('LBSTACK_INSTANCE');
            $name = is_string($name) ? (string) preg_replace('/[^A-Za-z0-9._-]/', '', $name) : '';
            $instance = $name === '' ? 'unknown' : $name;
        }

        return $instance;
    }

    public static function release(): string
    {
        return basename(base_path());
    }
}
