<?php

use App\Http\Controllers\PageController;
use App\Http\Controllers\SessionController;
use Illuminate\Support\Facades\Route;

/*
|--------------------------------------------------------------------------
| Web Routes
|--------------------------------------------------------------------------
*/

Route::get('/', [PageController::class, 'home']);
Route::get('/exam', [PageController::class, 'exam']);

// A session needs the web group alone (EncryptCookies, StartSession...): with the api group in
// front, Laravel 8's middleware priority moves StartSession ahead of EncryptCookies and the
// session cookie goes out unencrypted. So this API path is a web route.
Route::get('/api/session', [SessionController::class, 'show']);
