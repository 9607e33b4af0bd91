<?php

namespace App\Http\Controllers;

use App\Http\Middleware\StampInstance;
use Illuminate\Http\JsonResponse;
use Illuminate\Http\Request;

/**
 * GET /api/session: a request counter in Laravel's session (SESSION_DRIVER=redis), the same
 * whichever instance serves the request. The route runs the "web" middleware group
 * (EncryptCookies, StartSession...): the api group has no session.
 */
class SessionController extends Controller
{
    public function show(Request $request): JsonResponse
    {
        $session = $request->session();
        $count = (int) $session->get('count', 0) + 1;
        $session->put('count', $count);

        return response()->json(['count' => $count, 'instance' => StampInstance::instance()])
            ->header('Cache-Control', 'no-store, private');
    }
}
