<?php

declare(strict_types=1);

namespace App\Support;

use RuntimeException;
use Throwable;

/** Renders a plain-PHP template from resources/views; templates escape with e(). */
final class View
{
    public function __construct(private readonly string $viewsPath)
    {
    }

    /** @param array<string, mixed> $data */
    public function render(string $name, array $data = []): string
    {
        $file = $this->viewsPath . '/' . $name . '.php';
        if (!is_file($file)) {
            throw new RuntimeException('View not found: ' . $name);
        }

        $level = ob_get_level();
        ob_start();
        try {
            (static function (string $__file, array $__data): void {
                extract($__data, EXTR_SKIP);
                require $__file;
            })($file, $data);

            return (string) ob_get_clean();
        } catch (Throwable $e) {
            while (ob_get_level() > $level) {
                ob_end_clean();
            }
            throw $e;
        }
    }
}
