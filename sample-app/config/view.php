<?php

return [

    'paths' => [
        resource_path('views'),
    ],

    // Compiled Blade templates (`php artisan view:cache` fills it).
    'compiled' => env('VIEW_COMPILED_PATH', realpath(storage_path('framework/views'))),

];
