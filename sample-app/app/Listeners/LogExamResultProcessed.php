<?php

namespace App\Listeners;

use App\Events\ExamResultProcessed;
use Illuminate\Support\Facades\Log;

class LogExamResultProcessed
{
    public function handle(ExamResultProcessed $event)
    {
        Log::info('exam result processed', [
            'id' => $event->result->id,
            'score' => $event->result->score,
            'total' => $event->result->total,
        ]);
    }
}
