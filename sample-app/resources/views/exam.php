<?php

declare(strict_types=1);

/**
 * @var string $appName
 * @var string $instance
 * @var string $release
 * @var int $total
 * @var list<array{id: int, subject: string, body: string, options: list<string>}> $questions
 * @var list<array{subject: string, questions: int|string}> $subjects
 * @var int $attempts
 * @var float|string|null $averagePct
 * @var float|string|null $bestPct
 * @var list<array{score: int|string, total: int|string, created_at: string}> $recent
 * @var string $paperId
 * @var callable(): float $elapsedMs
 */
?>
<!doctype html>
<html lang="en">
<head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Exam &middot; <?= e($appName) ?></title>
    <link rel="stylesheet" href="/assets/app.css">
</head>
<body>
<main>
    <h1>Exam paper <code><?= e($paperId) ?></code></h1>
    <p class="meta">
        <?= count($questions) ?> of <?= e($total) ?> questions &middot; instance <strong><?= e($instance) ?></strong>
        &middot; release <code><?= e($release) ?></code>
    </p>

    <?php if ($questions === []) : ?>
        <p>No questions yet: run <code>php artisan db:seed --force</code>.</p>
    <?php endif; ?>

    <form class="paper" action="/exam" method="get">
        <?php foreach ($questions as $number => $question) : ?>
            <fieldset>
                <legend>
                    <?= $number + 1 ?>. <?= e($question['subject']) ?> <small>#<?= e($question['id']) ?></small>
                </legend>
                <p><?= e($question['body']) ?></p>
                <?php foreach ($question['options'] as $index => $option) : ?>
                    <label>
                        <input type="radio" name="q<?= e($question['id']) ?>" value="<?= e($index) ?>">
                        <?= e(chr(65 + $index)) ?>. <?= e($option) ?>
                    </label>
                <?php endforeach; ?>
            </fieldset>
        <?php endforeach; ?>
    </form>

    <section class="stats">
        <h2>Question bank</h2>
        <table>
            <thead><tr><th>Subject</th><th>Questions</th></tr></thead>
            <tbody>
            <?php foreach ($subjects as $row) : ?>
                <tr><td><?= e($row['subject']) ?></td><td><?= e($row['questions']) ?></td></tr>
            <?php endforeach; ?>
            </tbody>
        </table>

        <h2>Results</h2>
        <p>
            <?= e($attempts) ?> attempts
            <?php if ($attempts > 0) : ?>
                &middot; average <?= e(number_format((float) $averagePct, 1)) ?> %
                &middot; best <?= e(number_format((float) $bestPct, 1)) ?> %
            <?php endif; ?>
        </p>
        <?php if ($recent !== []) : ?>
            <ul>
                <?php foreach ($recent as $result) : ?>
                    <li><?= e($result['score']) ?> / <?= e($result['total']) ?> at <?= e($result['created_at']) ?></li>
                <?php endforeach; ?>
            </ul>
        <?php endif; ?>
    </section>

    <p class="meta">Rendered in <?= e(number_format($elapsedMs(), 2)) ?> ms.</p>
</main>
</body>
</html>
