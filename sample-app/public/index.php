<?php

declare(strict_types=1);

/*
 * Front controller: nginx sends every request that is not a static file here
 * (try_files $uri /index.php?$query_string), with SCRIPT_FILENAME under $realpath_root so that
 * __DIR__ is the real release directory, not the `current` symlink.
 */

use App\Http\Kernel;
use App\Http\Request;

try {
    $app = require __DIR__ . '/../bootstrap/app.php';
    (new Kernel($app))->handle(Request::capture())->send();
} catch (Throwable $e) {
    // Bootstrap failed (unreadable config, missing file...): no app logger, no details to the client.
    error_log(sprintf(
        'lbstack-app: bootstrap failed: %s: %s at %s:%d',
        $e::class,
        $e->getMessage(),
        $e->getFile(),
        $e->getLine(),
    ));
    if (!headers_sent()) {
        http_response_code(500);
        header('Content-Type: application/json; charset=utf-8');
        $instance = (string) ($_SERVER['LBSTACK_INSTANCE'] ?? getenv('LBSTACK_INSTANCE') ?: '');
        $instance = preg_replace('/[^A-Za-z0-9._-]/', '', $instance);
        header('X-Lbstack-Instance: ' . ($instance === '' ? 'unknown' : $instance));
    }
    echo "{\"error\":\"server error\"}\n";
}
