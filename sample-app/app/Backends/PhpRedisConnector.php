<?php

namespace App\Backends;

use Illuminate\Redis\Connectors\PhpRedisConnector as Base;

/** Laravel's phpredis connector, waiting out a Redis restart (WaitsForBackends). */
class PhpRedisConnector extends Base
{
    use WaitsForBackends;

    public function connect(array $config, array $options)
    {
        $wait = (int) ($config['connect_wait_ms'] ?? 0);
        $connector = function () use ($config, $options, $wait) {
            return $this->waitingFor(fn () => $this->createClient(array_merge(
                $config, $options, $config['options'] ?? []
            )), $wait);
        };

        return new PhpRedisConnection($connector(), $connector, $config);
    }
}
