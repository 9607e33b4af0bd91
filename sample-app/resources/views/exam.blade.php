@extends('layouts.app')

@section('title', 'Exam')

@section('content')
    <h1>Exam paper <code>{{ $paperId }}</code></h1>
    <p class="meta">
        {{ count($questions) }} of {{ $total }} questions &middot; instance <strong>{{ $instance }}</strong>
        &middot; release <code>{{ $release }}</code>
    </p>

    @if ($questions->isEmpty())
        <p>No questions yet: run <code>php artisan db:seed --force</code>.</p>
    @endif

    <form class="paper" action="/exam" method="get">
        @foreach ($questions as $number => $question)
            @include('partials.question', ['number' => $number + 1, 'question' => $question])
        @endforeach
    </form>

    <section class="stats">
        <h2>Question bank</h2>
        <table>
            <thead><tr><th>Subject</th><th>Questions</th></tr></thead>
            <tbody>
            @foreach ($subjects as $row)
                <tr><td>{{ $row->subject }}</td><td>{{ $row->questions }}</td></tr>
            @endforeach
            </tbody>
        </table>

        <h2>Results</h2>
        <p>
            {{ $attempts }} attempts
            @if ($attempts > 0)
                &middot; average {{ number_format((float) $averagePct, 1) }} %
                &middot; best {{ number_format((float) $bestPct, 1) }} %
            @endif
        </p>
        @if ($recent->isNotEmpty())
            <ul>
                @foreach ($recent as $result)
                    <li>{{ $result->score }} / {{ $result->total }} at {{ $result->created_at }}</li>
                @endforeach
            </ul>
        @endif
    </section>

    <p class="meta">Rendered in {{ number_format($elapsedMs(), 1) }} ms.</p>
@endsection
