<?php

namespace App\Models;

use Illuminate\Database\Eloquent\Model;

/**
 * A question of the bank. The answer is never serialized.
 *
 * @property int $id
 * @property string $subject
 * @property string $body
 * @property array<int, string> $options
 * @property int $answer
 */
class Question extends Model
{
    public const UPDATED_AT = null;

    protected $fillable = ['subject', 'body', 'options', 'answer'];

    protected $hidden = ['answer', 'created_at'];

    protected $casts = [
        'options' => 'array',
        'answer' => 'integer',
    ];

    /** The public shape of a question: id, subject, body, options. */
    public function toPublicArray(): array
    {
        return [
            'id' => (int) $this->id,
            'subject' => (string) $this->subject,
            'body' => (string) $this->body,
            'options' => array_values((array) $this->options),
        ];
    }
}
