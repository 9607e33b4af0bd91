<?php

namespace App\Http\Controllers;

use App\Exceptions\Handler;
use App\Http\Middleware\StampInstance;
use Illuminate\Http\JsonResponse;
use Illuminate\Support\Facades\DB;
use Illuminate\Support\Facades\Log;
use Illuminate\Support\Facades\Redis;
use Throwable;

/**
 * GET /api/ujian/health: the app itself, MariaDB (SELECT 1) and Redis (PING). 200 with
 * "status":"ok", else 503 (Retry-After) with "status":"fail" and "fail: <error>" for the failing check.
 */
class HealthController extends Controller
{
    public function show(): JsonResponse
    {
        $checks = [
            'database' => $this->check(fn () => DB::connection()->select('SELECT 1')),
            'redis' => $this->check(fn () => Redis::connection()->ping()),
        ];
        $failed = array_filter($checks, fn (string $result) => $result !== 'ok');
        if ($failed !== []) {
            Log::warning('Health check failed', $failed);
        }

        return response()->json([
            'status' => $failed === [] ? 'ok' : 'fail',
            'instance' => StampInstance::instance(),
            'release' => StampInstance::release(),
            'checks' => $checks,
        ], $failed === [] ? 200 : 503)->withHeaders(array_filter([
            'Cache-Control' => 'no-store',
            // a backend down: come back after the wait the app gives a restart
            'Retry-After' => $failed === [] ? null : (string) Handler::RETRY_AFTER_S,
        ]));
    }

    /** "ok", or "fail: <error message>" with the configured secrets replaced by ***. */
    private function check(callable $probe): string
    {
        try {
            $probe();

            return 'ok';
        } catch (Throwable $e) {
            $secrets = array_filter([
                (string) config('database.connections.'.config('database.default').'.password'),
                (string) config('database.redis.default.password'),
                (string) config('app.key'),
            ]);

            return 'fail: '.str_replace($secrets, '***', $e->getMessage());
        }
    }
}
