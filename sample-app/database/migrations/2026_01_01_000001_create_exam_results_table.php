<?php

use Illuminate\Database\Migrations\Migration;
use Illuminate\Database\Schema\Blueprint;
use Illuminate\Support\Facades\Schema;

return new class extends Migration
{
    public function up()
    {
        Schema::create('exam_results', function (Blueprint $table) {
            $table->id();
            $table->string('session_id', 40)->nullable();
            // The answers as submitted ({question id: option index}); null for seeded history.
            $table->json('answers')->nullable();
            $table->unsignedTinyInteger('score')->default(0);
            $table->unsignedTinyInteger('total');
            $table->timestamp('created_at')->useCurrent()->index();
            // Set by the queued App\Jobs\ProcessExamResult.
            $table->timestamp('processed_at')->nullable();
        });
    }

    public function down()
    {
        Schema::dropIfExists('exam_results');
    }
};
