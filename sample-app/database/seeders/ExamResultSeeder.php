<?php

declare(strict_types=1);

namespace Database\Seeders;

use App\Support\Database;

/** 200 past exam results, the same on every run, for the /exam statistics. Only into an empty table. */
final class ExamResultSeeder
{
    public const COUNT = 200;

    public function run(Database $db): int
    {
        if ((int) $db->scalar('SELECT COUNT(*) FROM exam_results') > 0) {
            return 0;
        }

        $rows = [];
        $bindings = [];
        for ($i = 1; $i <= self::COUNT; $i++) {
            $rows[] = '(?, ?, TIMESTAMP(\'2026-01-01 08:00:00\') + INTERVAL ? MINUTE)';
            array_push($bindings, ($i * 7) % 6, 5, $i * 17);
        }
        $db->statement('INSERT INTO exam_results (score, total, created_at) VALUES ' . implode(', ', $rows), $bindings);

        return self::COUNT;
    }
}
