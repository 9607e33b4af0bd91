@extends('layouts.app')

@section('title', 'Home')

@section('content')
    <h1>{{ config('app.name') }}</h1>
    <p class="meta">Served by <strong>{{ $instance }}</strong>, release <code>{{ $release }}</code>
        (Laravel {{ app()->version() }}).</p>
    <ul>
        <li><a href="/exam">/exam</a> &mdash; an exam page (several queries, Blade)</li>
        <li><a href="/api/ujian/health">/api/ujian/health</a> &mdash; health of this instance, MariaDB and Redis</li>
        <li><a href="/api/questions/random">/api/questions/random</a> &mdash; a random question through the Redis cache</li>
        <li><a href="/api/session">/api/session</a> &mdash; a request counter in a session shared by all instances</li>
        <li><code>POST /api/exam-results</code> &mdash; submit answers; a queued job scores them</li>
    </ul>
@endsection
