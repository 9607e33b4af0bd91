<?php

namespace App\Providers;

use App\Events\ExamResultProcessed;
use App\Listeners\LogExamResultProcessed;
use Illuminate\Foundation\Support\Providers\EventServiceProvider as ServiceProvider;

class EventServiceProvider extends ServiceProvider
{
    /**
     * The event to listener mappings (`php artisan event:cache` freezes them).
     *
     * @var array<class-string, array<int, class-string>>
     */
    protected $listen = [
        ExamResultProcessed::class => [
            LogExamResultProcessed::class,
        ],
    ];

    /**
     * Register any events for your application.
     */
    public function boot()
    {
        //
    }

    /**
     * Listeners are listed above, not discovered by scanning app/Listeners on each boot.
     */
    public function shouldDiscoverEvents()
    {
        return false;
    }
}
