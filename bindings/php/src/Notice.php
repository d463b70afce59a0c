<?php

// SPDX-License-Identifier: MIT

declare(strict_types=1);

namespace Obspam;

/** An object was refused during a notification period (obspam_notice). */
final class Notice
{
    public function __construct(
        /** Engine::SUBSCRIPTION, DOMAIN or MAILBOX. */
        public readonly int $kind,
        public readonly string $name,
        /** Its owning subscription; null if none. */
        public readonly ?string $subscription,
        /** That subscription's contact address; null if none. */
        public readonly ?string $contact,
        /** Its effective limit at its last refusal, in $window. */
        public readonly int $limit,
        public readonly int $sent,
        public readonly int $refused,
        public readonly int $firstRefused,
        public readonly int $lastRefused,
        /** The period is [periodStart, periodEnd). */
        public readonly int $periodStart,
        public readonly int $periodEnd,
        /** Attempts over its own limit in the period (1.3). */
        public readonly int $exceeded,
        /**
         * The window (Engine::WINDOW_*, seconds) of $limit; 0 when $limit is
         * the recipients cap or the attempt was a forbidden script's (1.3).
         */
        public readonly int $window,
    ) {
    }
}
