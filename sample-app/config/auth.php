<?php

// No user accounts in this app; the framework's defaults, kept so that anything asking the auth
// manager (the exception handler's report context) gets a working answer.
return [

    'defaults' => [
        'guard' => 'web',
        'passwords' => 'users',
    ],

    'guards' => [
        'web' => [
            'driver' => 'session',
            'provider' => 'users',
        ],
    ],

    'providers' => [
        'users' => [
            'driver' => 'database',
            'table' => 'users',
        ],
    ],

    'passwords' => [],

    'password_timeout' => 10800,

];
