<?php

// SPDX-License-Identifier: MIT

/**
 * Replays a decision stream through the PHP binding (see stream.c and
 * gen_stream.py): prints exactly what stream.c prints.
 *
 *     OBSPAM_LIBRARY=build/libobspam.so.1 php tests/bindings/stream.php CONFIG STREAM
 */

declare(strict_types=1);

require __DIR__ . '/../../bindings/php/obspam.php';

use Obspam\Engine;

/** '-' is null, '~' the empty string. */
function str_arg(string $word): ?string
{
    return $word === '-' ? null : ($word === '~' ? '' : $word);
}

function time_arg(string $word): int
{
    return $word === '-' ? PHP_INT_MAX : (int) $word;
}

function or_dash(?string $value): string
{
    return $value === null || $value === '' ? '-' : $value;
}

function run(Engine $engine, array $w): void
{
    $n = count($w);
    switch (true) {
        case $w[0] === 'd' && $n === 10:
            $v = $engine->decide([
                'time' => (int) $w[1],
                'flags' => (int) $w[2],
                'recipients' => (int) $w[3],
                'uid' => (int) $w[4],
                'sasl_username' => str_arg($w[5]),
                'sender' => str_arg($w[6]),
                'client_address' => str_arg($w[7]),
                'domain_hint' => str_arg($w[8]),
                'script' => str_arg($w[9]),
            ]);
            echo "verdict {$v->action} {$v->kind} " . or_dash($v->object)
                . " {$v->limit} {$v->count} {$v->retryAfter} {$v->window}\n";
            break;
        case $w[0] === 's' && $n === 4:
            $s = $engine->stats((int) $w[1], $w[2], (int) $w[3]);
            echo "stats {$w[1]} {$w[2]} " . (int) $s->sending
                . " {$s->limit} {$s->count} {$s->refused} {$s->refusedTotal} {$s->lastRefused}"
                . " {$s->exceeded} {$s->exceededTotal} {$s->limitMinute} {$s->countMinute} {$s->limitDay}"
                . " {$s->countDay} {$s->blockedKind} " . (int) $s->disabled . ' ' . or_dash($s->blockedBy) . "\n";
            break;
        case $w[0] === 'h' && $n === 5:
            $hours = $engine->history((int) $w[1], $w[2], time_arg($w[3]), time_arg($w[4]));
            foreach ($hours as $h) {
                echo "history {$h->hourStart} {$h->sent} {$h->refused}\n";
            }
            echo 'history end ' . count($hours) . "\n";
            break;
        case $w[0] === 'r' && $n === 3:
            $rows = $engine->report(time_arg($w[1]), time_arg($w[2]));
            foreach ($rows as $r) {
                echo "report {$r->kind} {$r->name} {$r->sent} {$r->refused} {$r->firstRefused} {$r->lastRefused}"
                    . " {$r->exceeded} {$r->window}\n";
            }
            echo 'report end ' . count($rows) . "\n";
            break;
        case $w[0] === 'n' && $n === 2:
            $engine->notifyFlush((int) $w[1]);
            echo "flush end\n";
            break;
        case $w[0] === 'w' && $n === 6:
            $engine->setWindowLimit((int) $w[1], str_arg($w[2]), (int) $w[3], (int) $w[4], (int) $w[5]);
            echo "window {$w[1]} {$w[2]} {$w[3]} {$w[4]} {$w[5]}\n";
            break;
        case $w[0] === 'x' && $n === 4:
            $engine->setMaxRecipients((int) $w[1], str_arg($w[2]), (int) $w[3]);
            echo "cap {$w[1]} {$w[2]} {$w[3]}\n";
            break;
        case $w[0] === 'e' && $n === 3:
            $limits = $engine->effectiveLimits((int) $w[1], $w[2]);
            $cap = $engine->effectiveMaxRecipients((int) $w[1], $w[2]);
            echo "effective {$w[1]} {$w[2]} {$limits[Engine::WINDOW_MINUTE]} {$limits[Engine::WINDOW_HOUR]}"
                . " {$limits[Engine::WINDOW_DAY]} $cap\n";
            break;
        case $w[0] === 'l' && $n === 7:
            $entries = iterator_to_array($engine->enumerate(
                (int) $w[1],
                str_arg($w[2]),
                ((int) $w[3] & Engine::ENUM_ACTIVE) !== 0,
                str_arg($w[4]),
                (int) $w[5],
                now: (int) $w[6],
            ), false);
            foreach ($entries as $x) {
                $st = $x->stats;
                echo "list {$x->kind} {$x->name} " . (int) $st->sending
                    . " {$st->count} {$st->limit} {$st->refused} {$st->lastReset}\n";
            }
            echo 'list end ' . count($entries) . "\n";
            break;
        case $w[0] === 't' && $n === 5:
            $rows = $engine->top(time_arg($w[2]), time_arg($w[3]), (int) $w[4], $w[1] === '-1' ? null : (int) $w[1]);
            foreach ($rows as $r) {
                echo "top {$r->kind} {$r->name} {$r->sent} {$r->refused} {$r->exceeded} {$r->window} "
                    . or_dash($r->subscription) . " {$r->uid}\n";
            }
            echo 'top end ' . count($rows) . "\n";
            break;
        case $w[0] === 'z' && $n === 4:
            $engine->reset((int) $w[1], $w[2], (int) $w[3]);
            echo "reset {$w[1]} {$w[2]}\n";
            break;
        case $w[0] === 'u' && $n === 2:
            $engine->setUnknownUidSubscription(str_arg($w[1]));
            echo "unknown-uid {$w[1]}\n";
            break;
        case $w[0] === 'o' && $n === 3:
            $engine->setOption((int) $w[1], (int) $w[2]);
            echo "option {$w[1]} {$w[2]}\n";
            break;
        default:
            fwrite(STDERR, "stream.php: cannot read the command '{$w[0]}' ($n words)\n");
            exit(2);
    }
}

if ($argc !== 3) {
    fwrite(STDERR, "usage: stream.php CONFIG STREAM\n");
    exit(2);
}
$engine = new Engine();
$engine->loadConfig($argv[1]);
$engine->setNotify(function (Obspam\Notice $n): void {
    echo "notice {$n->kind} {$n->name} " . or_dash($n->subscription) . ' ' . or_dash($n->contact)
        . " {$n->limit} {$n->sent} {$n->refused} {$n->firstRefused} {$n->lastRefused}"
        . " {$n->periodStart} {$n->periodEnd} {$n->exceeded} {$n->window}\n";
});
$in = fopen($argv[2], 'r');
if ($in === false) {
    exit(1);
}
while (($line = fgets($in)) !== false) {
    $line = rtrim($line, "\r\n");
    if ($line === '' || $line[0] === '#') {
        continue;
    }
    try {
        run($engine, explode(' ', $line));
    } catch (Obspam\Exception $e) {
        echo "error {$e->getCode()} {$e->getMessage()}\n";
    }
}
fclose($in);
$engine->close();
