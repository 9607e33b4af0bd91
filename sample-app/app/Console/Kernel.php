<?php

namespace App\Console;

use Illuminate\Console\Scheduling\Schedule;
use Illuminate\Foundation\Console\Kernel as ConsoleKernel;

class Kernel extends ConsoleKernel
{
    /**
     * The schedule `php artisan schedule:run` (every minute) runs.
     */
    protected function schedule(Schedule $schedule)
    {
        // A trace of each scheduler run (the queue/scheduler tests read it), and the housekeeping
        // a Laravel app usually schedules.
        $schedule->command('lbstack:heartbeat')->everyMinute()->withoutOverlapping(5);
        $schedule->command('queue:prune-failed --hours=168')->daily();
    }

    /**
     * Register the commands for the application.
     */
    protected function commands()
    {
        $this->load(__DIR__.'/Commands');

        require base_path('routes/console.php');
    }
}
