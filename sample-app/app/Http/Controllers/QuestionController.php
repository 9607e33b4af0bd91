<?php

declare(strict_types=1);

namespace App\Http\Controllers;

use App\Http\Request;
use App\Http\Response;

/**
 * GET /api/questions/random[?id=N]: one question, read through the Redis cache
 * (key question:{id}, TTL CACHE_TTL_S); the answer is never sent.
 */
final class QuestionController extends Controller
{
    public function random(Request $request): Response
    {
        $requested = $request->query('id');
        if ($requested !== null) {
            if (!is_string($requested) || preg_match('/^[0-9]{1,10}$/', $requested) !== 1) {
                return Response::json(['error' => 'id must be a positive integer'], 400);
            }
            $id = (int) $requested;
        } else {
            $count = $this->questionCount();
            if ($count < 1) {
                return Response::json(['error' => 'no questions'], 404);
            }
            $id = random_int(1, $count);
        }

        $source = 'cache';
        $question = $this->fromCache($id);
        if ($question === null) {
            $source = 'database';
            $question = $this->fromDatabase($id);
            if ($question === null) {
                return Response::json(['error' => 'not found'], 404);
            }
            $this->app->redis()->put('question:' . $id, json_encode($question, JSON_THROW_ON_ERROR), $this->ttl());
        }

        return Response::json($question + ['source' => $source, 'instance' => $this->app->instance()]);
    }

    /** @return array{id: int, subject: string, body: string, options: list<string>}|null */
    private function fromCache(int $id): ?array
    {
        $json = $this->app->redis()->get('question:' . $id);
        if ($json === null) {
            return null;
        }
        $question = json_decode($json, true);

        return is_array($question) && ($question['id'] ?? null) === $id ? $question : null;
    }

    /** @return array{id: int, subject: string, body: string, options: list<string>}|null */
    private function fromDatabase(int $id): ?array
    {
        $row = $this->app->db()->selectOne('SELECT id, subject, body, options FROM questions WHERE id = ?', [$id]);
        if ($row === null) {
            return null;
        }
        $options = json_decode((string) $row['options'], true);

        return [
            'id' => (int) $row['id'],
            'subject' => (string) $row['subject'],
            'body' => (string) $row['body'],
            'options' => is_array($options) ? array_values($options) : [],
        ];
    }

    private function questionCount(): int
    {
        $cached = $this->app->redis()->get('questions:count');
        if ($cached !== null && ctype_digit($cached)) {
            return (int) $cached;
        }
        $count = (int) $this->app->db()->scalar('SELECT COUNT(*) FROM questions');
        if ($count > 0) {
            $this->app->redis()->put('questions:count', (string) $count, $this->ttl());
        }

        return $count;
    }

    private function ttl(): int
    {
        return max(1, (int) $this->app->config('cache.ttl_s', 300));
    }
}
