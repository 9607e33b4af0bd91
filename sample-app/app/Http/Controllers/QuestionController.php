<?php

namespace App\Http\Controllers;

use App\Http\Middleware\StampInstance;
use App\Models\Question;
use Illuminate\Http\JsonResponse;
use Illuminate\Http\Request;
use Illuminate\Support\Facades\Cache;
use Illuminate\Support\Facades\Log;
use Throwable;

/**
 * GET /api/questions/random[?id=N]: one question (never its answer) read through the Redis cache
 * (Cache::remember, keys question:{id} and questions:count, CACHE_TTL_S seconds). When Redis
 * cannot be used (down, or full) the failure is logged and the answer served from MariaDB.
 */
class QuestionController extends Controller
{
    public function random(Request $request): JsonResponse
    {
        $id = null;
        $requested = $request->query('id');
        if ($requested !== null) {
            if (! is_string($requested) || preg_match('/^[0-9]{1,10}$/', $requested) !== 1) {
                return response()->json(['error' => 'id must be a positive integer'], 400);
            }
            $id = (int) $requested;
        }
        // Ids run 1..count (the seeder's bank): nothing above it is looked up, or cached.
        $count = (int) $this->cached('questions:count', fn () => Question::query()->count() ?: null);
        if ($count < 1) {
            return response()->json(['error' => 'no questions'], 404);
        }
        $id ??= random_int(1, $count);
        if ($id < 1 || $id > $count) {
            return response()->json(['error' => 'not found'], 404);
        }

        $source = 'cache';
        $question = $this->cached('question:'.$id, function () use ($id, &$source) {
            $source = 'database';

            return Question::query()->find($id, ['id', 'subject', 'body', 'options'])?->toPublicArray();
        });
        if ($question === null) {
            return response()->json(['error' => 'not found'], 404);
        }

        return response()->json($question + ['source' => $source, 'instance' => StampInstance::instance()]);
    }

    /** Cache::remember in Redis; when Redis fails (down, or full), logged and loaded from MariaDB. */
    private function cached(string $key, callable $load): mixed
    {
        try {
            return Cache::remember($key, max(1, (int) config('cache.ttl_s', 300)), $load);
        } catch (Throwable $e) {
            Log::warning('Cache unavailable, served from the database: '.$e->getMessage(), ['key' => $key]);

            return $load();
        }
    }
}
