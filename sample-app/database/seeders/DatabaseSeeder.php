<?php

namespace Database\Seeders;

use Illuminate\Database\Seeder;

class DatabaseSeeder extends Seeder
{
    /**
     * `php artisan db:seed` (or `migrate --seed`): each seeder fills its table only when empty,
     * so that every release can run it.
     */
    public function run()
    {
        $this->call([
            QuestionSeeder::class,
            ExamResultSeeder::class,
        ]);
    }
}
