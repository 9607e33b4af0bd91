<?php

namespace App\Console\Commands;

use Illuminate\Console\Command;
use Illuminate\Support\Facades\Log;

/** Scheduled every minute: one line in storage/logs/scheduler.log per scheduler run. */
class Heartbeat extends Command
{
    protected $signature = 'lbstack:heartbeat';

    protected $description = 'Write a scheduler heartbeat to storage/logs/scheduler.log';

    public function handle()
    {
        Log::channel('scheduler')->info('heartbeat', ['release' => basename(base_path())]);
        $this->info('heartbeat written');

        return self::SUCCESS;
    }
}
