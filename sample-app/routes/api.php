<?php

use App\Http\Controllers\ExamResultController;
use App\Http\Controllers\HealthController;
use App\Http\Controllers\QuestionController;
use Illuminate\Support\Facades\Route;

/*
|--------------------------------------------------------------------------
| API Routes
|--------------------------------------------------------------------------
|
| Loaded by RouteServiceProvider under the /api prefix with the "api" middleware group
| (no throttle: see App\Http\Kernel). No closures: `php artisan route:cache` must work.
|
*/

Route::get('/ujian/health', [HealthController::class, 'show']);
Route::get('/questions/random', [QuestionController::class, 'random']);

// The write path; the "api" limiter is off unless API_RATE_LIMIT is set.
Route::post('/exam-results', [ExamResultController::class, 'store'])->middleware('throttle:api');
