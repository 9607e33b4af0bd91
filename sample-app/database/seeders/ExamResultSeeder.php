<?php

namespace Database\Seeders;

use App\Models\ExamResult;
use Illuminate\Database\Seeder;
use Illuminate\Support\Carbon;
use Illuminate\Support\Facades\DB;

/** 200 past (already scored) exam results, the same on every run. Only into an empty table. */
class ExamResultSeeder extends Seeder
{
    public const COUNT = 200;

    public function run()
    {
        if (ExamResult::query()->exists()) {
            return;
        }

        $start = Carbon::parse('2026-01-01 08:00:00');
        $rows = [];
        for ($i = 1; $i <= self::COUNT; $i++) {
            $at = $start->copy()->addMinutes($i * 17);
            $rows[] = ['score' => ($i * 7) % 6, 'total' => 5, 'created_at' => $at, 'processed_at' => $at];
        }
        DB::table('exam_results')->insert($rows);
    }
}
