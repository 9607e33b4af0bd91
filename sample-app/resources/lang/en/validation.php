<?php

// The messages of the rules this app uses (Laravel's skeleton ships the full list).
return [

    'array' => 'The :attribute must be an array.',
    'between' => [
        'numeric' => 'The :attribute must be between :min and :max.',
        'array' => 'The :attribute must have between :min and :max items.',
        'string' => 'The :attribute must be between :min and :max characters.',
    ],
    'integer' => 'The :attribute must be an integer.',
    'max' => [
        'numeric' => 'The :attribute must not be greater than :max.',
        'array' => 'The :attribute must not have more than :max items.',
        'string' => 'The :attribute must not be greater than :max characters.',
    ],
    'min' => [
        'numeric' => 'The :attribute must be at least :min.',
        'array' => 'The :attribute must have at least :min items.',
        'string' => 'The :attribute must be at least :min characters.',
    ],
    'required' => 'The :attribute field is required.',
    'string' => 'The :attribute must be a string.',

    'custom' => [],

    'attributes' => [],

];
