<?php

// SPDX-License-Identifier: MIT

declare(strict_types=1);

namespace Obspam;

/**
 * What the notify callback of one engine shares with it: the C callback
 * (one per library) finds it by the id that the engine passes as the
 * callback's user data.
 *
 * @internal
 */
final class NotifyDispatch
{
    /** @var null|callable(Notice): mixed */
    public $callback = null;
    /** How deep the engine is inside its own callback. */
    public int $depth = 0;
    /** @var list<\Throwable> thrown by the callback, rethrown later */
    public array $errors = [];

    public function onNotice(\FFI\CData $n): void
    {
        if ($this->callback === null) {
            return;
        }
        $this->depth++;
        try {
            ($this->callback)(new Notice(
                $n->kind,
                (string) $n->name,
                $n->subscription,
                $n->contact,
                $n->limit,
                $n->sent,
                $n->refused,
                $n->first_refused,
                $n->last_refused,
                $n->period_start,
                $n->period_end,
                $n->exceeded,
                $n->window,
            ));
        } catch (\Throwable $t) {
            // Throwing through C is a fatal error in PHP: keep it.
            $this->errors[] = $t;
        } finally {
            $this->depth--;
        }
    }
}
