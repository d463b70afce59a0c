<?php

// SPDX-License-Identifier: MIT

declare(strict_types=1);

namespace Obspam;

/**
 * One object of Engine::enumerate(): a subscription, domain or mailbox with
 * its live status (1.3).
 */
final class Entry
{
    public function __construct(
        /** Engine::SUBSCRIPTION, DOMAIN or MAILBOX. */
        public readonly int $kind,
        /** Lower case. */
        public readonly string $name,
        /** As Engine::stats() gives it. */
        public readonly Stats $stats,
    ) {
    }
}
