<?php

namespace App\Exceptions;

use Illuminate\Foundation\Exceptions\Handler as ExceptionHandler;
use Illuminate\Http\Request;
use Illuminate\Validation\ValidationException;
use Symfony\Component\HttpKernel\Exception\HttpExceptionInterface;
use Throwable;

class Handler extends ExceptionHandler
{
    /**
     * @var array<class-string<Throwable>, \Psr\Log\LogLevel::*>
     */
    protected $levels = [
        //
    ];

    /**
     * @var array<int, class-string<Throwable>>
     */
    protected $dontReport = [
        //
    ];

    /**
     * Never flashed to the session on validation errors.
     *
     * @var array<int, string>
     */
    protected $dontFlash = [
        'current_password',
        'password',
        'password_confirmation',
    ];

    /**
     * The JSON error bodies of the API keep the contract of lbstack's earlier sample app:
     * {"error":"not found"} (404), {"error":"method not allowed"} (405), {"error":"server error"}
     * (500, details only in storage/logs/laravel.log); validation errors stay Laravel's 422.
     */
    public function register()
    {
        $this->renderable(function (Throwable $e, Request $request) {
            if (! $request->is('api/*') || $e instanceof ValidationException || config('app.debug')) {
                return null;
            }
            $status = $e instanceof HttpExceptionInterface ? $e->getStatusCode() : 500;
            $message = match ($status) {
                404 => 'not found',
                405 => 'method not allowed',
                429 => 'too many requests',
                503 => 'service unavailable',
                default => $status >= 500 ? 'server error' : 'request refused',
            };
            $headers = $e instanceof HttpExceptionInterface ? $e->getHeaders() : [];

            return response()->json(['error' => $message], $status, $headers);
        });
    }

    /**
     * Everything under /api answers JSON (a validation failure a 422, not a redirect), whatever
     * the client's Accept header.
     */
    protected function shouldReturnJson($request, Throwable $e)
    {
        return $request->is('api/*') || parent::shouldReturnJson($request, $e);
    }
}
