<?php

declare(strict_types=1);

use App\Http\Controllers\PageController;
use App\Http\Router;

return static function (Router $router): void {
    $router->get('/', [PageController::class, 'home']);
    $router->get('/exam', [PageController::class, 'exam']);
};
