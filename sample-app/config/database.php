<?php

declare(strict_types=1);

return [
    'default' => (string) env('DB_CONNECTION', 'mysql'),

    'connections' => [
        'mysql' => [
            'driver' => 'mysql',
            'host' => (string) env('DB_HOST', '127.0.0.1'),
            'port' => (int) env('DB_PORT', 3306),
            // When set, used instead of host/port.
            'unix_socket' => (string) env('DB_SOCKET', ''),
            'database' => (string) env('DB_DATABASE', 'lbstack'),
            'username' => (string) env('DB_USERNAME', 'lbstack'),
            'password' => (string) env('DB_PASSWORD', ''),
            'charset' => 'utf8mb4',
            // Keep the connection in the FPM worker across requests (lbstack turns it on).
            'persistent' => (bool) env('DB_PERSISTENT', false),
            'timeout_s' => 2,
        ],
    ],

    'redis' => [
        // A path starting with "/" is a unix socket.
        'host' => (string) env('REDIS_HOST', '127.0.0.1'),
        'port' => (int) env('REDIS_PORT', 6379),
        // Empty: no AUTH.
        'password' => (string) env('REDIS_PASSWORD', ''),
        // Connect and read timeout.
        'timeout_s' => 1.0,
        // Keep the connection in the FPM worker across requests (lbstack turns it on).
        'persistent' => (bool) env('REDIS_PERSISTENT', false),
    ],
];
