<?php

declare(strict_types=1);

namespace App\Http\Controllers;

use App\Application;

abstract class Controller
{
    public function __construct(protected readonly Application $app)
    {
    }
}
