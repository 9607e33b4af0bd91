<!doctype html>
<html lang="{{ str_replace('_', '-', app()->getLocale()) }}">
<head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>@yield('title') &middot; {{ config('app.name') }}</title>
    <link rel="stylesheet" href="/assets/app.css">
</head>
<body>
<main>
    @yield('content')
</main>
</body>
</html>
