<?php

namespace App\Http\Controllers;

use App\Http\Middleware\StampInstance;
use App\Models\ExamResult;
use App\Models\Question;
use Illuminate\Support\Facades\DB;

/** The HTML pages: / (links) and /exam (a page of several queries rendered by Blade). */
class PageController extends Controller
{
    private const EXAM_QUESTIONS = 5;

    public function home()
    {
        return view('home', [
            'instance' => StampInstance::instance(),
            'release' => StampInstance::release(),
        ]);
    }

    public function exam()
    {
        $started = hrtime(true);
        $total = Question::query()->count();
        $questions = collect();
        if ($total > 0) {
            $questions = Question::query()
                ->whereIn('id', $this->randomIds($total, min(self::EXAM_QUESTIONS, $total)))
                ->orderBy('id')
                ->get(['id', 'subject', 'body', 'options']);
        }
        $subjects = Question::query()
            ->select('subject', DB::raw('COUNT(*) AS questions'))
            ->groupBy('subject')
            ->orderBy('subject')
            ->get();
        $stats = ExamResult::query()
            ->where('total', '>', 0)
            ->selectRaw('COUNT(*) AS attempts, AVG(score * 100 / total) AS average_pct, MAX(score * 100 / total) AS best_pct')
            ->first();
        $recent = ExamResult::query()->latest('id')->limit(5)->get(['score', 'total', 'created_at']);

        return response()->view('exam', [
            'instance' => StampInstance::instance(),
            'release' => StampInstance::release(),
            'total' => $total,
            'questions' => $questions,
            'subjects' => $subjects,
            'attempts' => (int) ($stats->attempts ?? 0),
            'averagePct' => $stats->average_pct ?? null,
            'bestPct' => $stats->best_pct ?? null,
            'recent' => $recent,
            'paperId' => substr(hash('sha256', $questions->pluck('id')->implode(',')), 0, 12),
            'elapsedMs' => fn () => (hrtime(true) - $started) / 1e6,
        ])->header('Cache-Control', 'no-store');
    }

    /** @return list<int> $n distinct ids in 1..$total */
    private function randomIds(int $total, int $n): array
    {
        $ids = [];
        while (count($ids) < $n) {
            $ids[random_int(1, $total)] = true;
        }

        return array_keys($ids);
    }
}
