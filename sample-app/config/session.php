<?php

declare(strict_types=1);

return [
    // Only "redis" is implemented: sessions must be shared by every app instance.
    'driver' => (string) env('SESSION_DRIVER', 'redis'),
    // Minutes of inactivity before a session expires (Redis TTL and cookie lifetime).
    'lifetime' => (int) env('SESSION_LIFETIME', 120),
    'cookie' => 'lbstack_session',
    // Redis key prefix: lbstack_session:{id}
    'prefix' => 'lbstack_session:',
];
