<?php

namespace App\Backends;

use Illuminate\Database\MySqlConnection as Base;
use Throwable;

/**
 * Laravel's MySQL connection: a query that finds its (persistent) connection dead is run once
 * more on a new connection (Laravel does this for the errors it knows; this adds a server that
 * is shutting down), outside transactions, as Laravel always does.
 */
class MySqlConnection extends Base
{
    protected function causedByLostConnection(Throwable $e)
    {
        return parent::causedByLostConnection($e) || Outage::caused($e);
    }
}
