<?php

use Illuminate\Support\Str;

return [

    // redis: shared by every app instance. CACHE_STORE is accepted too (lbstack's earlier key).
    'default' => env('CACHE_DRIVER', env('CACHE_STORE', 'redis')),

    'stores' => [

        'array' => [
            'driver' => 'array',
            'serialize' => false,
        ],

        'file' => [
            'driver' => 'file',
            'path' => storage_path('framework/cache/data'),
        ],

        'database' => [
            'driver' => 'database',
            'table' => 'cache',
            'connection' => null,
            'lock_connection' => null,
        ],

        // The "cache" connection of config/database.php's redis section.
        'redis' => [
            'driver' => 'redis',
            'connection' => 'cache',
            'lock_connection' => 'default',
        ],

    ],

    'prefix' => env('CACHE_PREFIX', Str::slug(env('APP_NAME', 'lbstack'), '_').'_cache'),

    // Seconds a cached question (and the cached question count) lives.
    'ttl_s' => (int) env('CACHE_TTL_S', 300),

];
