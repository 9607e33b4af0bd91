<?php

use Illuminate\Support\Str;

// A Redis ACL user: Laravel 8's phpredis connector ignores a "username" key and calls
// AUTH <password>; phpredis takes AUTH <user> <password> as the array [user, password].
$redisAuth = env('REDIS_USERNAME')
    ? [env('REDIS_USERNAME'), env('REDIS_PASSWORD')]
    : env('REDIS_PASSWORD');
$redisPort = str_starts_with((string) env('REDIS_HOST', ''), '/') ? 0 : env('REDIS_PORT', '6379');

return [

    'default' => env('DB_CONNECTION', 'mysql'),

    'connections' => [

        'mysql' => [
            'driver' => 'mysql',
            'url' => env('DATABASE_URL'),
            // 127.0.0.1 connects over TCP; DB_SOCKET (a path) is used instead when set.
            'host' => env('DB_HOST', '127.0.0.1'),
            'port' => env('DB_PORT', '3306'),
            'database' => env('DB_DATABASE', 'lbstack'),
            'username' => env('DB_USERNAME', 'lbstack'),
            'password' => env('DB_PASSWORD', ''),
            'unix_socket' => env('DB_SOCKET', ''),
            'charset' => 'utf8mb4',
            'collation' => 'utf8mb4_unicode_ci',
            'prefix' => '',
            'prefix_indexes' => true,
            'strict' => true,
            'engine' => 'InnoDB',
            // a connection finding MariaDB down waits this long for it (App\Backends): a restart
            // takes about a second
            'connect_wait_ms' => (int) env('DB_CONNECT_WAIT_MS', 3000),
            'options' => extension_loaded('pdo_mysql') ? array_filter([
                PDO::MYSQL_ATTR_SSL_CA => env('MYSQL_ATTR_SSL_CA'),
                // One connection per FPM worker, kept across requests (lbstack turns it on).
                PDO::ATTR_PERSISTENT => (bool) env('DB_PERSISTENT', false),
                PDO::ATTR_TIMEOUT => 2,
            ]) : [],
        ],

        'sqlite' => [
            'driver' => 'sqlite',
            'database' => env('DB_DATABASE', database_path('database.sqlite')),
            'prefix' => '',
            'foreign_key_constraints' => true,
        ],

    ],

    'migrations' => 'migrations',

    'redis' => [

        // phpredis (php-redis); predis (php-predis) works too.
        'client' => env('REDIS_CLIENT', 'phpredis'),

        'options' => [
            'cluster' => env('REDIS_CLUSTER', 'redis'),
            'prefix' => env('REDIS_PREFIX', Str::slug(env('APP_NAME', 'lbstack'), '_').'_database_'),
            // phpredis pconnect: one connection per FPM worker (lbstack turns it on).
            'persistent' => (bool) env('REDIS_PERSISTENT', false),
        ],

        // Sessions and the queue. A REDIS_HOST starting with "/" is a unix socket (the port is then 0:
        // phpredis would resolve the path as a host name otherwise).
        'default' => [
            'url' => env('REDIS_URL'),
            'host' => env('REDIS_HOST', '127.0.0.1'),
            'password' => $redisAuth,
            'port' => $redisPort,
            'database' => env('REDIS_DB', '0'),
            'timeout' => 1.0,
            'read_timeout' => 2.0,
            // a connection finding Redis down waits this long for it (App\Backends)
            'connect_wait_ms' => (int) env('REDIS_CONNECT_WAIT_MS', 3000),
        ],

        // The cache (a separate database number: `cache:clear` flushes only this one).
        'cache' => [
            'url' => env('REDIS_URL'),
            'host' => env('REDIS_HOST', '127.0.0.1'),
            'password' => $redisAuth,
            'port' => $redisPort,
            'database' => env('REDIS_CACHE_DB', '1'),
            'timeout' => 1.0,
            'read_timeout' => 2.0,
            // a connection finding Redis down waits this long for it (App\Backends)
            'connect_wait_ms' => (int) env('REDIS_CONNECT_WAIT_MS', 3000),
        ],

    ],

];
