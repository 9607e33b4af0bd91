<?php

declare(strict_types=1);

/*
 * Builds the application: registers the autoloader (no Composer here), loads the helpers
 * and the configuration (bootstrap/cache/config.php when present, else .env + config/*.php).
 */

$basePath = realpath(dirname(__DIR__));
if ($basePath === false) {
    throw new RuntimeException('Cannot resolve the application base directory');
}

if (!defined('LBSTACK_AUTOLOADER')) {
    define('LBSTACK_AUTOLOADER', true);

    spl_autoload_register(static function (string $class) use ($basePath): void {
        $map = [
            'App\\' => '/app/',
            'Database\\Seeders\\' => '/database/seeders/',
        ];
        foreach ($map as $prefix => $dir) {
            if (str_starts_with($class, $prefix)) {
                $file = $basePath . $dir . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
                if (is_file($file)) {
                    require $file;
                }
                return;
            }
        }
    });

    require $basePath . '/app/Support/helpers.php';
}

return new App\Application($basePath);
