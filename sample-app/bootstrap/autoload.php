<?php

/*
 * The class loader: Composer's when it generated vendor/autoload.php (`composer install`
 * / `composer dump-autoload -o`: one classmap over this app and Debian's framework, with
 * Debian's autoloader wired in through composer.json's autoload.files), else this shim: Debian's
 * autoloader for the framework and a PSR-4 loader for the app's own namespaces (the same map as
 * composer.json's autoload.psr-4, which Application::getNamespace() also reads).
 */

if (is_file(__DIR__.'/../vendor/autoload.php')) {
    return require __DIR__.'/../vendor/autoload.php';
}

require_once '/usr/share/php/Illuminate/autoload.php';

spl_autoload_register(static function (string $class): void {
    static $prefixes = [
        'App\\' => __DIR__.'/../app/',
        'Database\\Factories\\' => __DIR__.'/../database/factories/',
        'Database\\Seeders\\' => __DIR__.'/../database/seeders/',
    ];
    foreach ($prefixes as $prefix => $dir) {
        if (strncmp($class, $prefix, strlen($prefix)) === 0) {
            $file = $dir.str_replace('\\', '/', substr($class, strlen($prefix))).'.php';
            if (is_file($file)) {
                require $file;
            }

            return;
        }
    }
}, true, true);
