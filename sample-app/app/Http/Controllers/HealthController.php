<?php

declare(strict_types=1);

namespace App\Http\Controllers;

use App\Http\Request;
use App\Http\Response;
use Throwable;

/** GET /api/ujian/health: the app itself, MariaDB (SELECT 1) and Redis (PING). */
final class HealthController extends Controller
{
    public function show(Request $request): Response
    {
        $checks = [
            'database' => $this->check(fn () => $this->app->db()->scalar('SELECT 1')),
            'redis' => $this->check(fn () => $this->app->redis()->ping()),
        ];
        $failed = array_filter($checks, static fn (string $result): bool => $result !== 'ok');
        if ($failed !== []) {
            $summary = json_encode($failed, JSON_UNESCAPED_SLASHES);
            $this->app->log()->warningThrottled('health' . $summary, 'Health check failed: ' . $summary);
        }

        return Response::json([
            'status' => $failed === [] ? 'ok' : 'fail',
            'instance' => $this->app->instance(),
            'release' => $this->app->release(),
            'checks' => $checks,
        ], $failed === [] ? 200 : 503)->header('Cache-Control', 'no-store');
    }

    /** "ok", or "fail: <error message>" with every secret redacted. */
    private function check(callable $probe): string
    {
        try {
            $probe();
            return 'ok';
        } catch (Throwable $e) {
            return 'fail: ' . $this->app->redact($e->getMessage());
        }
    }
}
