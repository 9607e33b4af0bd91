<?php

namespace App\Jobs;

use App\Events\ExamResultProcessed;
use App\Models\ExamResult;
use App\Models\Question;
use Illuminate\Bus\Queueable;
use Illuminate\Contracts\Queue\ShouldQueue;
use Illuminate\Foundation\Bus\Dispatchable;
use Illuminate\Queue\InteractsWithQueue;
use Illuminate\Queue\SerializesModels;
use Illuminate\Support\Facades\Cache;
use Illuminate\Support\Facades\DB;

/**
 * Scores a submitted exam against the question bank, once: a result already processed is left
 * alone, so a job delivered twice (a worker killed after the commit) changes nothing. Every run
 * is counted (``runs``) and the release that scored it recorded, so a test can tell a job run
 * twice from one run once. ``grading_ms`` (asked for by the submission) stands in for the time
 * real grading takes.
 */
class ProcessExamResult implements ShouldQueue
{
    use Dispatchable, InteractsWithQueue, Queueable, SerializesModels;

    public $tries = 3;

    public $timeout = 30;

    public function __construct(public ExamResult $result)
    {
    }

    public function handle()
    {
        ExamResult::query()->whereKey($this->result->id)->increment('runs');
        $processed = DB::transaction(function () {
            /** @var ExamResult|null $result */
            $result = ExamResult::query()->lockForUpdate()->find($this->result->id);
            if ($result === null || $result->processed_at !== null) {
                return null;
            }
            if ($result->grading_ms > 0) {
                usleep($result->grading_ms * 1000);
            }
            $answers = (array) $result->answers;
            $correct = Question::query()
                ->whereIn('id', array_map('intval', array_keys($answers)))
                ->get(['id', 'answer'])
                ->filter(fn (Question $q) => (int) ($answers[$q->id] ?? -1) === $q->answer)
                ->count();
            $result->score = $correct;
            $result->total = count($answers);
            $result->processed_at = now();
            $result->processed_release = basename(base_path());
            $result->save();

            return $result;
        });

        if ($processed !== null) {
            Cache::forget('exam:stats');
            ExamResultProcessed::dispatch($processed);
        }
    }
}
