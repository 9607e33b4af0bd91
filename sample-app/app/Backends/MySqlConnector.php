<?php

namespace App\Backends;

use Illuminate\Database\Connectors\MySqlConnector as Base;

/** Laravel's MySQL connector, waiting out a MariaDB restart (WaitsForBackends). */
class MySqlConnector extends Base
{
    use WaitsForBackends;

    public function createConnection($dsn, array $config, array $options)
    {
        return $this->waitingFor(fn () => parent::createConnection($dsn, $config, $options),
            (int) ($config['connect_wait_ms'] ?? 0));
    }
}
