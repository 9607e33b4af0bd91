<?php

use Illuminate\Database\Migrations\Migration;
use Illuminate\Database\Schema\Blueprint;
use Illuminate\Support\Facades\Schema;

/**
 * How often App\Jobs\ProcessExamResult ran for a result, and which release scored it: a job run
 * twice (a worker killed mid-job, a retry_after shorter than the job) shows as runs > 1.
 */
return new class extends Migration
{
    public function up()
    {
        Schema::table('exam_results', function (Blueprint $table) {
            $table->unsignedInteger('runs')->default(0);
            $table->string('processed_release', 64)->nullable();
            // the grading time the submission asked the job to take (the sample's stand-in for real work)
            $table->unsignedSmallInteger('grading_ms')->default(0);
        });
    }

    public function down()
    {
        Schema::table('exam_results', function (Blueprint $table) {
            $table->dropColumn(['runs', 'processed_release', 'grading_ms']);
        });
    }
};
