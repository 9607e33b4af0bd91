<?php

declare(strict_types=1);

use App\Http\Controllers\HealthController;
use App\Http\Controllers\QuestionController;
use App\Http\Controllers\SessionController;
use App\Http\Router;

// Registered under the /api prefix.
return static function (Router $router): void {
    $router->get('/ujian/health', [HealthController::class, 'show']);
    $router->get('/questions/random', [QuestionController::class, 'random']);
    $router->get('/session', [SessionController::class, 'show']);
};
