<fieldset>
    <legend>{{ $number }}. {{ $question->subject }} <small>#{{ $question->id }}</small></legend>
    <p>{{ $question->body }}</p>
    @foreach ($question->options as $index => $option)
        <label>
            <input type="radio" name="answers[{{ $question->id }}]" value="{{ $index }}">
            {{ chr(65 + $index) }}. {{ $option }}
        </label>
    @endforeach
</fieldset>
