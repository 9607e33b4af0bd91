<?php

namespace App\Backends;

use Illuminate\Redis\Connections\PhpRedisConnection as Base;
use RedisException;

/**
 * Laravel's phpredis connection: a command that finds Redis restarting (its connection lost, or
 * the server still loading its data: "LOADING") reconnects and is sent again, every 50 ms for up
 * to `connect_wait_ms` (WaitsForBackends).
 */
class PhpRedisConnection extends Base
{
    use WaitsForBackends;

    public function command($method, array $parameters = [])
    {
        try {
            return parent::command($method, $parameters);
        } catch (RedisException $e) {
            if (! Outage::caused($e) || ! $this->connector) {
                throw $e;
            }

            return $this->waitingFor(function () use ($method, $parameters) {
                $this->client = call_user_func($this->connector);

                return parent::command($method, $parameters);
            }, (int) ($this->config['connect_wait_ms'] ?? 0));
        }
    }
}
