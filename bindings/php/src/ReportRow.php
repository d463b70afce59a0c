<?php

// SPDX-License-Identifier: MIT

declare(strict_types=1);

namespace Obspam;

/** One row of Engine::report() (obspam_report_row). */
final class ReportRow
{
    public function __construct(
        /** Engine::SUBSCRIPTION, DOMAIN, MAILBOX or SCRIPT. */
        public readonly int $kind,
        /** Lower case; a script's path as it was given. */
        public readonly string $name,
        public readonly int $sent,
        public readonly int $refused,
        /** Times; 0 when none. */
        public readonly int $firstRefused,
        public readonly int $lastRefused,
        /** Attempts over its own limit in the period (1.3). */
        public readonly int $exceeded,
        /**
         * The window (Engine::WINDOW_*, seconds) of the last attempt over its
         * own limit in the period; 0 for the recipients cap, forbidden
         * scripts, and when there was none (1.3).
         */
        public readonly int $window,
        /**
         * A script's row: the subscription of the last message from that
         * path, null when no subscription owns its uid; null in other rows
         * (1.3).
         */
        public readonly ?string $subscription = null,
        /**
         * A script's row: the uid of the last message from that path, -1
         * when unknown; -1 in other rows (1.3).
         */
        public readonly int $uid = -1,
        /** Of sent, the messages charged as forwards in the period (1.4). */
        public readonly int $forwarded = 0,
        /**
         * The mailing-list deliveries through it in the period, exempt or
         * charged (those charged are part of sent too) (1.4).
         */
        public readonly int $listDeliveries = 0,
    ) {
    }
}
