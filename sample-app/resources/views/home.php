<?php

declare(strict_types=1);

/**
 * @var string $appName
 * @var string $instance
 * @var string $release
 */
?>
<!doctype html>
<html lang="en">
<head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title><?= e($appName) ?></title>
    <link rel="stylesheet" href="/assets/app.css">
</head>
<body>
<main>
    <h1><?= e($appName) ?></h1>
    <p class="meta">Served by <strong><?= e($instance) ?></strong>, release <code><?= e($release) ?></code>.</p>
    <ul>
        <li><a href="/exam">/exam</a> &mdash; an exam page (several queries, server-side rendering)</li>
        <li><a href="/api/ujian/health">/api/ujian/health</a> &mdash; health of this instance, MariaDB and Redis</li>
        <li>
            <a href="/api/questions/random">/api/questions/random</a>
            &mdash; a random question through the Redis cache
        </li>
        <li><a href="/api/session">/api/session</a> &mdash; a request counter in a session shared by all instances</li>
    </ul>
</main>
</body>
</html>
