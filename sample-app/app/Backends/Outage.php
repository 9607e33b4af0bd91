<?php

namespace App\Backends;

use Illuminate\Database\QueryException;
use PDOException;
use RedisException;
use Throwable;

/** Whether an exception of MariaDB or Redis (PDO, phpredis) says the server is down or restarting. */
final class Outage
{
    public const MESSAGES = [
        'Connection refused',
        'No such file or directory',
        'shutdown in progress',
        'server has gone away',
        'went away',
        'Lost connection',
        'Connection lost',
        'Connection reset',
        'read error on connection',
        'socket error on read socket',
        "Can't connect",
        'LOADING',
    ];

    public static function caused(Throwable $e): bool
    {
        for ($cause = $e; $cause !== null; $cause = $cause->getPrevious()) {
            if (! ($cause instanceof PDOException || $cause instanceof RedisException || $cause instanceof QueryException)) {
                continue;
            }
            foreach (self::MESSAGES as $needle) {
                if (stripos($cause->getMessage(), $needle) !== false) {
                    return true;
                }
            }
        }

        return false;
    }
}
