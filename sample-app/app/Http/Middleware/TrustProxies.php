<?php

namespace App\Http\Middleware;

use Illuminate\Http\Middleware\TrustProxies as Middleware;
use Illuminate\Http\Request;

class TrustProxies extends Middleware
{
    /**
     * The load balancer in front of the app (TRUSTED_PROXIES: "*", or comma-separated addresses).
     *
     * @var array<int, string>|string|null
     */
    protected $proxies;

    /**
     * @var int
     */
    protected $headers =
        Request::HEADER_X_FORWARDED_FOR |
        Request::HEADER_X_FORWARDED_HOST |
        Request::HEADER_X_FORWARDED_PORT |
        Request::HEADER_X_FORWARDED_PROTO;

    public function __construct()
    {
        $proxies = env('TRUSTED_PROXIES', '127.0.0.1');
        $this->proxies = $proxies === '*' ? '*' : array_filter(array_map('trim', explode(',', (string) $proxies)));
    }
}
