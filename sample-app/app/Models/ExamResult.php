<?php

namespace App\Models;

use Illuminate\Database\Eloquent\Model;

/**
 * One submitted exam: the answers as given; score and processed_at are filled in by the queued
 * App\Jobs\ProcessExamResult.
 *
 * @property int $id
 * @property string|null $session_id
 * @property array<string, int>|null $answers
 * @property int $score
 * @property int $total
 * @property int $runs
 * @property string|null $processed_release
 * @property int $grading_ms
 * @property \Illuminate\Support\Carbon|null $processed_at
 */
class ExamResult extends Model
{
    public const UPDATED_AT = null;

    protected $fillable = ['session_id', 'answers', 'score', 'total', 'grading_ms'];

    protected $casts = [
        'answers' => 'array',
        'score' => 'integer',
        'total' => 'integer',
        'runs' => 'integer',
        'grading_ms' => 'integer',
        'processed_at' => 'datetime',
    ];

    protected $attributes = [
        'score' => 0,
    ];
}
