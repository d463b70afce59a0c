<?php

// SPDX-License-Identifier: MIT

declare(strict_types=1);

namespace Obspam;

/** Live status of a subscription, domain or mailbox (obspam_stats). */
final class Stats
{
    public function __construct(
        /** False while it or an ancestor is blocked (blockedKind !== -1). */
        public readonly bool $sending,
        /** The effective hourly limit; -1: unlimited. */
        public readonly int $limit,
        /** Charged in the last 60 minutes. */
        public readonly int $count,
        /** Attempts refused in the last 60 minutes. */
        public readonly int $refused,
        /** Attempts refused within the retention period. */
        public readonly int $refusedTotal,
        /** Time of the last refusal; 0: never. */
        public readonly int $lastRefused,
        /** Attempts over its own limit in the last 60 minutes (1.3). */
        public readonly int $exceeded,
        /** The same within the retention period (1.3). */
        public readonly int $exceededTotal,
        /** The minute window's effective limit (-1: unlimited) (1.3). */
        public readonly int $limitMinute,
        /** Charged in the last 60 seconds (twelve 5-second buckets) (1.3). */
        public readonly int $countMinute,
        /** The day window's effective limit (-1: unlimited) (1.3). */
        public readonly int $limitDay,
        /** Charged in the current clock hour and the 23 before it (1.3). */
        public readonly int $countDay,
        /**
         * -1 while a one-recipient message through it would fit every window
         * of it and of its ancestors; else the kind of the highest object
         * (itself or an ancestor) it would not fit (1.3).
         */
        public readonly int $blockedKind,
        /** True while protection is off (1.3). */
        public readonly bool $disabled,
        /** That object's name; "" when none (1.3). */
        public readonly string $blockedBy,
        /** Time of the last Engine::reset(); 0: never (1.3). */
        public readonly int $lastReset = 0,
        /** Of the current clock hour's sent, the forwards (1.4). */
        public readonly int $forwarded = 0,
        /**
         * The current clock hour's mailing-list deliveries through it,
         * exempt or charged (1.4).
         */
        public readonly int $listDeliveries = 0,
    ) {
    }
}
