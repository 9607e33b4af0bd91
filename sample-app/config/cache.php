<?php

declare(strict_types=1);

return [
    // Only "redis" is implemented.
    'default' => (string) env('CACHE_STORE', 'redis'),
    // Lifetime of cached questions and of the cached question count.
    'ttl_s' => (int) env('CACHE_TTL_S', 300),
];
