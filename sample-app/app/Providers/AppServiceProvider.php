<?php

namespace App\Providers;

use App\Backends\MySqlConnection;
use App\Backends\MySqlConnector;
use App\Backends\PhpRedisConnector;
use Illuminate\Database\Connection;
use Illuminate\Support\ServiceProvider;

class AppServiceProvider extends ServiceProvider
{
    /**
     * Register any application services: MariaDB and Redis connections that wait out a restart
     * of their server (App\Backends\WaitsForBackends).
     */
    public function register()
    {
        $this->app->bind('db.connector.mysql', MySqlConnector::class);
        Connection::resolverFor('mysql', fn ($pdo, $database, $prefix, $config) =>
            new MySqlConnection($pdo, $database, $prefix, $config));
        $this->app->afterResolving('redis', function ($redis) {
            $redis->extend('phpredis', fn () => new PhpRedisConnector());
        });
    }

    /**
     * Bootstrap any application services.
     */
    public function boot()
    {
        //
    }
}
