<?php

declare(strict_types=1);

return [
    'name' => (string) env('APP_NAME', 'lbstack sample app'),
    'env' => (string) env('APP_ENV', 'production'),
    // Not used for encryption by this app; kept so that .env matches a Laravel app's.
    'key' => (string) env('APP_KEY', ''),
    // Never shows error details to clients; only reported by `php artisan about`.
    'debug' => (bool) env('APP_DEBUG', false),
    'url' => (string) env('APP_URL', 'http://localhost'),
];
