<?php

namespace App\Exceptions;

use App\Backends\Outage;
use Illuminate\Foundation\Exceptions\Handler as ExceptionHandler;
use Illuminate\Http\Request;
use Illuminate\Validation\ValidationException;
use Symfony\Component\HttpKernel\Exception\HttpExceptionInterface;
use Throwable;

class Handler extends ExceptionHandler
{
    public const RETRY_AFTER_S = 5;

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
        // MariaDB or Redis still down after the connections waited for it (App\Backends): the
        // client is told to come back (503 + Retry-After), on every page, not given a 500
        $this->renderable(function (Throwable $e, Request $request) {
            if (! Outage::caused($e) || config('app.debug')) {
                return null;
            }
            $headers = ['Retry-After' => (string) self::RETRY_AFTER_S];
            if ($request->is('api/*') || $request->expectsJson()) {
                return response()->json(['error' => 'service unavailable'], 503, $headers);
            }

            return response('Service temporarily unavailable, please retry in a few seconds.', 503, $headers)
                ->header('Content-Type', 'text/plain; charset=UTF-8');
        });
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
