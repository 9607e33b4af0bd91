<?php

namespace Database\Seeders;

use App\Models\Question;
use Illuminate\Database\Seeder;
use Illuminate\Support\Facades\DB;

/**
 * 1000 questions with ids 1..1000, the same on every run (no randomness), inserted in batches
 * inside one transaction. Does nothing when `questions` has rows.
 */
class QuestionSeeder extends Seeder
{
    public const COUNT = 1000;

    private const BATCH = 200;

    private const SUBJECTS = [
        'Matematika', 'Fisika', 'Kimia', 'Biologi',
        'Bahasa Indonesia', 'Bahasa Inggris', 'Sejarah', 'Geografi',
    ];

    public function run()
    {
        if (Question::query()->exists()) {
            return;
        }

        DB::transaction(function () {
            foreach (array_chunk(range(1, self::COUNT), self::BATCH) as $ids) {
                DB::table('questions')->insert(array_map(fn (int $id) => $this->question($id), $ids));
            }
        });
    }

    /** @return array{id: int, subject: string, body: string, options: string, answer: int} */
    private function question(int $id): array
    {
        $subject = self::SUBJECTS[$id % count(self::SUBJECTS)];
        $a = ($id * 37) % 90 + 10;
        $b = ($id * 53) % 40 + 2;
        [$symbol, $correct] = match ($id % 3) {
            0 => ['+', $a + $b],
            1 => ['-', $a - $b],
            default => ['x', $a * $b],
        };
        $answer = $id % 4;
        $options = [];
        foreach ([0, 1, 2, 3] as $slot) {
            $options[] = (string) ($correct + ($slot - $answer) * (($id % 5) + 1));
        }

        return [
            'id' => $id,
            'subject' => $subject,
            'body' => sprintf('Soal %d (%s): berapakah hasil dari %d %s %d?', $id, $subject, $a, $symbol, $b),
            'options' => json_encode($options, JSON_THROW_ON_ERROR),
            'answer' => $answer,
        ];
    }
}
