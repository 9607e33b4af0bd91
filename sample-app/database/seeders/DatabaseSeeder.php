<?php

declare(strict_types=1);

namespace Database\Seeders;

use App\Support\Database;

/** Runs every seeder; each one only fills its table when that table is empty. */
final class DatabaseSeeder
{
    /** @return array<string, int> rows inserted per seeder (0: table already had rows) */
    public function run(Database $db): array
    {
        return [
            QuestionSeeder::class => (new QuestionSeeder())->run($db),
            ExamResultSeeder::class => (new ExamResultSeeder())->run($db),
        ];
    }
}
