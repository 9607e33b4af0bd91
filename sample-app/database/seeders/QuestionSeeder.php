<?php

declare(strict_types=1);

namespace Database\Seeders;

use App\Support\Database;

/**
 * 1000 questions with ids 1..1000, the same on every run (no randomness), inserted in
 * multi-row batches inside one transaction. Does nothing when `questions` has rows.
 */
final class QuestionSeeder
{
    public const COUNT = 1000;
    private const BATCH = 200;
    private const SUBJECTS = [
        'Matematika', 'Fisika', 'Kimia', 'Biologi',
        'Bahasa Indonesia', 'Bahasa Inggris', 'Sejarah', 'Geografi',
    ];

    public function run(Database $db): int
    {
        if ((int) $db->scalar('SELECT COUNT(*) FROM questions') > 0) {
            return 0;
        }

        $pdo = $db->pdo();
        $pdo->beginTransaction();
        try {
            for ($first = 1; $first <= self::COUNT; $first += self::BATCH) {
                $last = min(self::COUNT, $first + self::BATCH - 1);
                $rows = [];
                $bindings = [];
                for ($id = $first; $id <= $last; $id++) {
                    $rows[] = '(?, ?, ?, ?, ?)';
                    array_push($bindings, ...$this->question($id));
                }
                $sql = 'INSERT INTO questions (id, subject, body, options, answer) VALUES ' . implode(', ', $rows);
                $pdo->prepare($sql)->execute($bindings);
            }
            $pdo->commit();
        } catch (\Throwable $e) {
            $pdo->rollBack();
            throw $e;
        }

        return self::COUNT;
    }

    /** @return array{0: int, 1: string, 2: string, 3: string, 4: int} id, subject, body, options JSON, answer */
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
        $body = sprintf('Soal %d (%s): berapakah hasil dari %d %s %d?', $id, $subject, $a, $symbol, $b);

        $answer = $id % 4;
        $options = [];
        foreach ([0, 1, 2, 3] as $slot) {
            $options[] = (string) ($correct + ($slot - $answer) * (($id % 5) + 1));
        }

        return [$id, $subject, $body, json_encode($options, JSON_THROW_ON_ERROR), $answer];
    }
}
