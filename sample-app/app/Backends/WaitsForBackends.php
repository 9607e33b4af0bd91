<?php

namespace App\Backends;

use Throwable;

/**
 * A MariaDB or Redis restart takes about a second (measured under load on the rehearsal host).
 * Instead of failing every request that arrives in that second, a connection attempt that finds
 * the server down (refused, its socket gone, shutting down, still loading) is retried every
 * 50 ms for up to `connect_wait_ms` (DB_CONNECT_WAIT_MS / REDIS_CONNECT_WAIT_MS, default 3000):
 * the request waits a little and is answered. A longer outage still fails, and the exception
 * handler answers it with 503 and Retry-After (App\Exceptions\Handler).
 */
trait WaitsForBackends
{
    /**
     * @template T
     * @param  callable(): T  $connect
     * @return T
     */
    protected function waitingFor(callable $connect, int $waitMs)
    {
        $deadline = microtime(true) + $waitMs / 1000;
        while (true) {
            try {
                return $connect();
            } catch (Throwable $e) {
                if (! Outage::caused($e) || microtime(true) >= $deadline) {
                    throw $e;
                }
                usleep(50_000);
            }
        }
    }
}
