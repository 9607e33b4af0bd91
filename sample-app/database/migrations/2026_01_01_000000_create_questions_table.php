<?php

declare(strict_types=1);

// A migration returns the SQL statements to run, in order.
return [
    <<<'SQL'
    CREATE TABLE IF NOT EXISTS questions (
        id INT UNSIGNED NOT NULL AUTO_INCREMENT,
        subject VARCHAR(100) NOT NULL,
        body TEXT NOT NULL,
        options JSON NOT NULL,
        answer TINYINT UNSIGNED NOT NULL COMMENT 'index into options',
        created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
        PRIMARY KEY (id),
        KEY questions_subject_index (subject)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
    SQL,
];
