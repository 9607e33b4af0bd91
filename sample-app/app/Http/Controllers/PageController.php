<?php

declare(strict_types=1);

namespace App\Http\Controllers;

use App\Http\Request;
use App\Http\Response;

/** The HTML pages: / (links) and /exam (a database-heavy page, as a Laravel page would be). */
final class PageController extends Controller
{
    private const EXAM_QUESTIONS = 5;

    /** Rounds of hashing standing in for a framework's per-request CPU (a few ms). */
    private const FRAMEWORK_WORK_ROUNDS = 4000;

    public function home(Request $request): Response
    {
        return Response::html($this->app->view()->render('home', [
            'appName' => $this->app->config('app.name'),
            'instance' => $this->app->instance(),
            'release' => $this->app->release(),
        ]));
    }

    public function exam(Request $request): Response
    {
        $started = hrtime(true);
        $db = $this->app->db();

        $total = (int) $db->scalar('SELECT COUNT(*) FROM questions');
        $questions = [];
        if ($total > 0) {
            $ids = $this->randomIds($total, min(self::EXAM_QUESTIONS, $total));
            $placeholders = implode(', ', array_fill(0, count($ids), '?'));
            $rows = $db->select(
                "SELECT id, subject, body, options FROM questions WHERE id IN ($placeholders) ORDER BY id",
                $ids,
            );
            foreach ($rows as $row) {
                $options = json_decode((string) $row['options'], true);
                $questions[] = [
                    'id' => (int) $row['id'],
                    'subject' => (string) $row['subject'],
                    'body' => (string) $row['body'],
                    'options' => is_array($options) ? array_values($options) : [],
                ];
            }
        }
        $subjects = $db->select(
            'SELECT subject, COUNT(*) AS questions FROM questions GROUP BY subject ORDER BY subject'
        );
        $results = $db->selectOne(
            'SELECT COUNT(*) AS attempts, AVG(score * 100 / total) AS average_pct, MAX(score * 100 / total) AS best_pct'
            . ' FROM exam_results WHERE total > 0'
        ) ?? [];
        $recent = $db->select('SELECT score, total, created_at FROM exam_results ORDER BY id DESC LIMIT 5');

        $html = $this->app->view()->render('exam', [
            'appName' => $this->app->config('app.name'),
            'instance' => $this->app->instance(),
            'release' => $this->app->release(),
            'total' => $total,
            'questions' => $questions,
            'subjects' => $subjects,
            'attempts' => (int) ($results['attempts'] ?? 0),
            'averagePct' => $results['average_pct'] ?? null,
            'bestPct' => $results['best_pct'] ?? null,
            'recent' => $recent,
            'paperId' => $this->paperId($questions),
            'elapsedMs' => static fn (): float => (hrtime(true) - $started) / 1e6,
        ]);

        return Response::html($html)->header('Cache-Control', 'no-store');
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

    /** A fingerprint of the paper; its hashing rounds are the page's deliberate CPU cost. */
    private function paperId(array $questions): string
    {
        $hash = json_encode($questions, JSON_THROW_ON_ERROR);
        for ($i = 0; $i < self::FRAMEWORK_WORK_ROUNDS; $i++) {
            $hash = hash('sha256', $hash . $i);
        }

        return substr($hash, 0, 12);
    }
}
