<?php

namespace App\Http\Controllers;

use App\Http\Middleware\StampInstance;
use App\Jobs\ProcessExamResult;
use App\Models\ExamResult;
use Illuminate\Http\JsonResponse;
use Illuminate\Http\Request;

/**
 * POST /api/exam-results {"answers": {"<question id>": <option index 0-3>, ...}, "grading_ms": 0..5000}: validated,
 * stored unscored, and scored by the queued ProcessExamResult job. 202 {"id", "status":"queued"};
 * 422 with Laravel's {"message", "errors"} when invalid.
 */
class ExamResultController extends Controller
{
    public function store(Request $request): JsonResponse
    {
        $data = $request->validate([
            'answers' => ['required', 'array', 'min:1', 'max:50'],
            'answers.*' => ['required', 'integer', 'between:0,3'],
            'session_id' => ['nullable', 'string', 'max:40'],
            'grading_ms' => ['nullable', 'integer', 'between:0,5000'],
        ]);
        foreach (array_keys($data['answers']) as $questionId) {
            if (! ctype_digit((string) $questionId)) {
                return response()->json([
                    'message' => 'The answers must be keyed by question id.',
                    'errors' => ['answers' => ['The answers must be keyed by question id.']],
                ], 422);
            }
        }

        $result = ExamResult::query()->create([
            'session_id' => $data['session_id'] ?? null,
            'answers' => array_map('intval', $data['answers']),
            'total' => count($data['answers']),
            'grading_ms' => $data['grading_ms'] ?? 0,
        ]);
        ProcessExamResult::dispatch($result);

        return response()->json([
            'id' => $result->id,
            'status' => 'queued',
            'instance' => StampInstance::instance(),
        ], 202);
    }
}
