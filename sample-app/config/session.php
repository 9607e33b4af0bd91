<?php

use Illuminate\Support\Str;

return [

    // redis: shared by every app instance.
    'driver' => env('SESSION_DRIVER', 'redis'),

    // Minutes of inactivity before a session expires (the Redis TTL).
    'lifetime' => (int) env('SESSION_LIFETIME', 120),

    'expire_on_close' => false,

    'encrypt' => false,

    'files' => storage_path('framework/sessions'),

    // The redis connection of config/database.php (null: "default").
    'connection' => env('SESSION_CONNECTION'),

    'table' => 'sessions',

    'store' => env('SESSION_STORE'),

    'lottery' => [2, 100],

    'cookie' => env('SESSION_COOKIE', 'lbstack_session'),

    'path' => '/',

    'domain' => env('SESSION_DOMAIN'),

    // null: Secure when the request came over HTTPS (X-Forwarded-Proto from a trusted proxy).
    'secure' => env('SESSION_SECURE_COOKIE'),

    'http_only' => true,

    'same_site' => 'lax',

];
