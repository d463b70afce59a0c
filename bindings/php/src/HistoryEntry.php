<?php

// SPDX-License-Identifier: MIT

declare(strict_types=1);

namespace Obspam;

/** One clock hour of an object's history. */
final class HistoryEntry
{
    public function __construct(
        public readonly int $hourStart,
        public readonly int $sent,
        public readonly int $refused,
    ) {
    }
}
