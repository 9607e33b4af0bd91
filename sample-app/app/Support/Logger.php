<?php

declare(strict_types=1);

namespace App\Support;

use Throwable;

/**
 * One line per entry in storage/logs/laravel.log, Laravel's format:
 *   [2026-01-01 12:00:00] production.ERROR: message {"instance":"app3"}
 * Every configured secret is replaced by *** before anything is written. Failures that every
 * request would hit (database down, Redis full) are logged at most once per 10 s, so that an
 * outage under load cannot fill the disk. Logging never throws: when the file cannot be
 * written the line goes to PHP's error_log (the FPM log) instead.
 */
final class Logger
{
    /** @param list<string> $secrets */
    public function __construct(
        private readonly string $path,
        private readonly string $throttleDir,
        private readonly string $channel,
        private readonly array $secrets,
        private readonly string $instance,
    ) {
    }

    /**
     * Log a warning at most once per $seconds for $key (per host), so that a failure hit by
     * every request (e.g. Redis out of memory) cannot flood the disk.
     */
    public function warningThrottled(string $key, string $message, int $seconds = 10): void
    {
        $this->throttled('WARNING', $key, $message, $seconds);
    }

    /** Log an exception in one line (no trace); the same failure at most once per 10 s. */
    public function exception(Throwable $e, string $context = ''): void
    {
        $where = $e->getFile() . ':' . $e->getLine();
        $this->throttled('ERROR', $e::class . $e->getMessage() . $where, sprintf(
            '%s%s: %s at %s',
            $context === '' ? '' : $context . ': ',
            $e::class,
            $e->getMessage(),
            $where,
        ), 10);
    }

    /** Replace every secret in $text by ***. */
    public function redact(string $text): string
    {
        foreach ($this->secrets as $secret) {
            if ($secret !== '') {
                $text = str_replace($secret, '***', $text);
            }
        }

        return $text;
    }

    private function throttled(string $level, string $key, string $message, int $seconds): void
    {
        $marker = $this->throttleDir . '/log-throttle-' . md5($key);
        $last = @filemtime($marker);
        if ($last !== false && $last > time() - $seconds) {
            return;
        }
        @touch($marker);
        $this->write($level, $message . ' (repeats suppressed for ' . $seconds . ' s)');
    }

    private function write(string $level, string $message): void
    {
        $message = $this->redact(str_replace(["\r", "\n"], ' ', $message));
        $line = sprintf(
            "[%s] %s.%s: %s {\"instance\":%s}\n",
            date('Y-m-d H:i:s'),
            $this->channel,
            $level,
            $message,
            json_encode($this->instance),
        );
        if (@file_put_contents($this->path, $line, FILE_APPEND | LOCK_EX) === false) {
            error_log('lbstack-app: ' . rtrim($line));
        }
    }
}
