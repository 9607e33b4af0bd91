<?php

namespace App\Providers;

use Illuminate\Cache\RateLimiting\Limit;
use Illuminate\Foundation\Support\Providers\RouteServiceProvider as ServiceProvider;
use Illuminate\Http\Request;
use Illuminate\Support\Facades\RateLimiter;
use Illuminate\Support\Facades\Route;

class RouteServiceProvider extends ServiceProvider
{
    /**
     * @var string
     */
    public const HOME = '/';

    /**
     * Define your route model bindings, pattern filters, etc.
     */
    public function boot()
    {
        $this->configureRateLimiting();

        $this->routes(function () {
            Route::prefix('api')
                ->middleware('api')
                ->group(base_path('routes/api.php'));

            Route::middleware('web')
                ->group(base_path('routes/web.php'));
        });
    }

    /**
     * The "api" limiter: API_RATE_LIMIT requests a minute per client address, 0 for none (the
     * default: a load test from one address must not turn into 429s). Only the write path uses it.
     */
    protected function configureRateLimiting()
    {
        RateLimiter::for('api', function (Request $request) {
            $perMinute = (int) config('app.api_rate_limit', 0);

            return $perMinute > 0
                ? Limit::perMinute($perMinute)->by($request->ip())
                : Limit::none();
        });
    }
}
