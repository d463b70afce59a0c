<?php

// SPDX-License-Identifier: MIT

declare(strict_types=1);

namespace Obspam;

/**
 * The answer to one message (obspam_verdict).
 *
 * On REFUSE, kind and object name the refusing object, limit is its
 * effective limit, count its count in the window before this message and
 * retryAfter the seconds until the message would fit (-1: never). On ACCEPT
 * they describe the lowest charged object and retryAfter is 0. On EXEMPT and
 * UNKNOWN kind is -1, object is "" and the numbers are 0.
 *
 * $status and $error tell a message of Engine::decideBatch() that could not
 * be decided: its OBSPAM_E* code and why, while the other fields say
 * nothing (action and kind -1, object "", the numbers 0). A verdict that
 * was given has status 0 (Engine::OK) and error "".
 */
final class Verdict
{
    public function __construct(
        public readonly int $action,
        public readonly int $kind,
        public readonly string $object,
        public readonly int $limit,
        public readonly int $count,
        public readonly int $retryAfter,
        /**
         * The window named, in seconds (Engine::WINDOW_*), whose limit and
         * count are $limit and $count; the hour on accept. For the
         * recipients cap it is 0, $limit is the cap and $count the
         * message's recipients; 0 too for forbidden scripts (1.3).
         */
        public readonly int $window,
        /** 0, or the code of a message of a batch that failed (1.3). */
        public readonly int $status = 0,
        /** Why it failed, as decide() would have thrown it; "" when it did not (1.3). */
        public readonly string $error = '',
    ) {
    }

    /** Whether the message was decided ($status is 0). */
    public function ok(): bool
    {
        return $this->status === 0;
    }
}
