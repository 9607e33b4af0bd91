<?php

use App\Models\Question;
use Illuminate\Foundation\Inspiring;
use Illuminate\Support\Facades\Artisan;
use Illuminate\Support\Facades\Cache;

/*
|--------------------------------------------------------------------------
| Console Routes
|--------------------------------------------------------------------------
*/

Artisan::command('inspire', function () {
    $this->comment(Inspiring::quote());
})->purpose('Display an inspiring quote');

Artisan::command('questions:warm', function () {
    $ttl = max(1, (int) config('cache.ttl_s', 300));
    $n = 0;
    Question::query()->select(['id', 'subject', 'body', 'options'])->chunkById(200, function ($chunk) use ($ttl, &$n) {
        foreach ($chunk as $question) {
            Cache::put('question:'.$question->id, $question->toPublicArray(), $ttl);
            $n++;
        }
    });
    Cache::put('questions:count', Question::query()->count(), $ttl);
    $this->info("{$n} questions cached for {$ttl} s");
})->purpose('Put every question into the Redis cache');
