<?php

// SPDX-License-Identifier: MIT

/**
 * A panel's "outgoing mail" page: the overview (protection on or off, how
 * many objects do not send now, refusals in the last hour and day, the top
 * five senders of the day), what is blocked now and by what, the top
 * senders of a period, and a form that resets an object's counters (after a
 * password change). Uses the PHP binding of libobspam
 * (bindings/php/obspam.php) or none at all.
 *
 * It reads either a running daemon (obspam-policyd or obspam-milter)
 * through its control socket, or an engine of its own, and shows the same
 * either way:
 *
 *   - the control socket: --control unix:PATH, else the environment
 *     variable OBSPAM_CONTROL. Only the daemon's user and root may use it,
 *     so the page runs as that user (a php-fpm pool of its own). The page
 *     then needs no FFI: it speaks the daemons' protocol
 *     (examples/common/control.c), one request line per connection
 *     ("overview", "blocked", "top FROM TO kind=KIND limit=N", "reset KIND
 *     NAME") answered by "ok", TAB-separated records and "end", or by
 *     "error MESSAGE".
 *   - an engine in this process: --config FILE [--state FILE], else
 *     OBSPAM_CONFIG and OBSPAM_STATE (the configuration and state of a
 *     server; OBSPAM_LIBRARY names the library). The answers are computed
 *     with enumerate(), top(), stats() and reset() as the daemon computes
 *     them. A reset writes the state back: give it the state of no running
 *     daemon (ask that daemon through its control socket instead).
 *
 * Without either it says so and exits with status 1. The web page takes
 * ?hours=N (the period of the top senders, default 24), ?kind=KIND (only
 * that kind) and ?limit=N (default 10); ?format=json&view=overview|blocked|top
 * answers with JSON instead, the same JSON as examples/admin_report.py
 * --json; a POST of kind and name resets that object. On the command line:
 *
 *     php examples/admin_report.php --control unix:/run/obspam/control.sock > page.html
 *     php examples/admin_report.php --config /etc/obspam/obspam.conf --state /var/lib/obspam/state \
 *         --json top --hours 6 --kind script
 *     php examples/admin_report.php --control unix:/run/obspam/control.sock --reset mailbox info@example.com
 *     OBSPAM_CONTROL=unix:/run/obspam/control.sock php -S 127.0.0.1:8080 -t examples
 *         # then open http://127.0.0.1:8080/admin_report.php
 *
 * (An in-process engine in a web server needs FFI allowed: ffi.enable=1, or
 * the preloading that Obspam\Engine::scopeHeader() describes.)
 */

declare(strict_types=1);

require_once __DIR__ . '/../bindings/php/obspam.php';

use Obspam\Engine;

const KINDS = ['subscription' => Engine::SUBSCRIPTION, 'domain' => Engine::DOMAIN,
    'mailbox' => Engine::MAILBOX, 'script' => Engine::SCRIPT];

final class SourceError extends RuntimeException
{
}

/** A running daemon's control socket: one request line per connection. */
final class ControlSource
{
    private string $path;

    public function __construct(string $spec)
    {
        $this->path = str_starts_with($spec, 'unix:') ? substr($spec, 5) : $spec;
    }

    /**
     * Sends one request and returns the records of its answer, each split at
     * its TABs; an "error" answer throws SourceError.
     *
     * @return list<list<string>>
     */
    public function request(string $line): array
    {
        $s = @stream_socket_client('unix://' . $this->path, $errno, $errstr, 10);
        if ($s === false) {
            throw new SourceError("unix:{$this->path}: $errstr");
        }
        stream_set_timeout($s, 10);
        fwrite($s, "$line\n");
        $answer = (string) stream_get_contents($s);
        fclose($s);
        $lines = explode("\n", $answer);
        if (str_starts_with($lines[0], 'error ')) {
            throw new SourceError(substr($lines[0], 6));
        }
        // "ok", the records, "end", and the empty string after the last LF.
        if (count($lines) < 3 || $lines[0] !== 'ok' || array_slice($lines, -2) !== ['end', '']) {
            throw new SourceError("unix:{$this->path}: incomplete answer to '" . explode(' ', $line)[0] . "'");
        }
        return array_map(fn (string $r) => explode("\t", $r), array_slice($lines, 1, -2));
    }

    private static function num(string $word): ?int
    {
        return $word === '-' ? null : (int) $word;
    }

    /**
     * row KIND SENT REFUSED EXCEEDED LIMIT COUNT SENDING UID SUBSCRIPTION NAME
     *
     * @param list<string> $f
     * @return array<string, mixed>
     */
    private static function topRow(array $f): array
    {
        $sending = self::num($f[7]);
        return ['kind' => $f[1], 'name' => $f[10], 'sent' => (int) $f[2], 'refused' => (int) $f[3],
            'exceeded' => (int) $f[4], 'limit' => self::num($f[5]), 'count' => self::num($f[6]),
            'sending' => $sending === null ? null : $sending === 1, 'uid' => (int) $f[8],
            'subscription' => $f[9] === '' ? null : $f[9]];
    }

    /** @return list<array<string, mixed>> */
    public function top(int $from, int $to, ?string $kind, int $limit): array
    {
        $line = "top $from $to" . ($kind !== null ? " kind=$kind" : '') . ($limit > 0 ? " limit=$limit" : '');
        $rows = array_filter($this->request($line), fn ($f) => $f[0] === 'row');
        return array_values(array_map([self::class, 'topRow'], $rows));
    }

    /** @return list<array<string, mixed>> */
    public function blocked(): array
    {
        // row KIND NAME BLOCKED_KIND BLOCKED_BY WINDOW LIMIT
        $rows = [];
        foreach ($this->request('blocked') as $f) {
            if ($f[0] === 'row') {
                $rows[] = ['kind' => $f[1], 'name' => $f[2], 'blocked_kind' => $f[3] === '-' ? null : $f[3],
                    'blocked_by' => $f[4], 'window' => $f[5] === '-' ? null : $f[5], 'limit' => (int) $f[6]];
            }
        }
        return $rows;
    }

    /** @return array<string, mixed> */
    public function overview(): array
    {
        $v = [];
        $top = [];
        foreach ($this->request('overview') as $f) {
            if ($f[0] === 'row') {
                $top[] = self::topRow($f);
            } else {
                $v[$f[0]] = $f[1];
            }
        }
        return ['enabled' => $v['enabled'] === '1',
            'not_sending' => ['subscription' => (int) $v['not_sending_subscriptions'],
                'domain' => (int) $v['not_sending_domains'], 'mailbox' => (int) $v['not_sending_mailboxes']],
            'refused_hour' => (int) $v['refused_hour'], 'refused_day' => (int) $v['refused_day'],
            'day_from' => (int) $v['day_from'], 'top' => $top];
    }

    public function reset(string $kind, string $name): string
    {
        foreach ($this->request("reset $kind $name") as $f) {
            if ($f[0] === 'message') {
                return $f[1];
            }
        }
        throw new SourceError("unix:{$this->path}: no message in the answer to 'reset'");
    }
}

/**
 * Of the windows an object would not fit one more recipient in, the longest
 * (the one that keeps its mail out longest), with its limit; as the daemon's
 * status says it.
 *
 * @return array{window: ?string, limit: int}
 */
function fullWindow(Obspam\Stats $st): array
{
    foreach ([['day', $st->limitDay, $st->countDay], ['hour', $st->limit, $st->count],
        ['minute', $st->limitMinute, $st->countMinute]] as [$window, $limit, $count]) {
        if ($limit >= 0 && $count + 1 > $limit) {
            return ['window' => $window, 'limit' => $limit];
        }
    }
    return ['window' => null, 'limit' => -1];
}

/** An engine of this process, answering as the control socket does. */
final class EngineSource
{
    public function __construct(private Engine $engine, private ?string $state)
    {
    }

    /** @return array<string, mixed> */
    private function live(Obspam\ReportRow $r): array
    {
        $script = $r->kind === Engine::SCRIPT;
        $out = ['kind' => array_search($r->kind, KINDS, true), 'name' => $r->name, 'sent' => $r->sent,
            'refused' => $r->refused, 'exceeded' => $r->exceeded, 'limit' => null, 'count' => null,
            'sending' => null, 'uid' => $script ? $r->uid : -1, 'subscription' => $script ? $r->subscription : null];
        if (!$script) {
            try {
                $st = $this->engine->stats($r->kind, $r->name);
                $out['limit'] = max($st->limit, -1);
                $out['count'] = $st->count;
                $out['sending'] = $st->sending;
            } catch (Obspam\Exception) {
                // no longer in the configuration
            }
        }
        return $out;
    }

    /** @return list<array<string, mixed>> */
    public function top(int $from, int $to, ?string $kind, int $limit): array
    {
        if ($kind !== null && !isset(KINDS[$kind])) {
            throw new SourceError("bad kind '$kind': expected subscription, domain, mailbox or script");
        }
        return array_map(fn ($r) => $this->live($r), $this->engine->top($from, $to, $limit, KINDS[$kind] ?? null));
    }

    /** @return list<array<string, mixed>> */
    public function blocked(): array
    {
        $rows = [];
        foreach ([Engine::SUBSCRIPTION, Engine::DOMAIN, Engine::MAILBOX] as $kind) {
            foreach ($this->engine->enumerate($kind) as $entry) {
                $st = $entry->stats;
                if ($st->sending) {
                    continue;
                }
                $row = ['kind' => array_search($kind, KINDS, true), 'name' => $entry->name, 'blocked_kind' => null,
                    'blocked_by' => '', 'window' => null, 'limit' => -1];
                if ($st->blockedKind >= 0) {
                    $row['blocked_kind'] = array_search($st->blockedKind, KINDS, true);
                    $row['blocked_by'] = $st->blockedBy;
                    try {
                        $by = $st->blockedKind === $kind && $st->blockedBy === $entry->name
                            ? $st : $this->engine->stats($st->blockedKind, $st->blockedBy);
                        $row = array_merge($row, fullWindow($by));
                    } catch (Obspam\Exception) {
                        // removed in between
                    }
                }
                $rows[] = $row;
            }
        }
        return $rows;
    }

    /** @return array<string, mixed> */
    public function overview(): array
    {
        $e = $this->engine;
        $now = time();
        $dayFrom = $now - $now % 3600 - 23 * 3600;
        $notSending = ['subscription' => 0, 'domain' => 0, 'mailbox' => 0];
        foreach ($this->blocked() as $row) {
            $notSending[$row['kind']]++;
        }
        // Every refusal is recorded on the subscription it was charged to,
        // once: the subscriptions' refusals are the server's.
        $refusedHour = 0;
        foreach ($e->enumerate(Engine::SUBSCRIPTION, active: true) as $x) {
            $refusedHour += $x->stats->refused;
        }
        $refusedDay = array_sum(array_map(fn ($r) => $r->refused, $e->top($dayFrom, $now + 1, 0, Engine::SUBSCRIPTION)));
        // The senders: mailboxes and scripts (domains and subscriptions add
        // them up), most sent, then most refused; a mailbox first on a tie.
        $senders = array_merge($e->top($dayFrom, $now + 1, 5, Engine::MAILBOX), $e->top($dayFrom, $now + 1, 5, Engine::SCRIPT));
        usort($senders, fn ($a, $b) => [$b->sent, $b->refused, $a->kind === Engine::SCRIPT]
            <=> [$a->sent, $a->refused, $b->kind === Engine::SCRIPT]);
        return ['enabled' => $e->getOption(Engine::OPT_ENABLED) === 1, 'not_sending' => $notSending,
            'refused_hour' => $refusedHour, 'refused_day' => $refusedDay, 'day_from' => $dayFrom,
            'top' => array_map(fn ($r) => $this->live($r), array_slice($senders, 0, 5))];
    }

    public function reset(string $kind, string $name): string
    {
        if (!in_array($kind, ['subscription', 'domain', 'mailbox'], true)) {
            throw new SourceError("bad kind '$kind': expected subscription, domain or mailbox");
        }
        $this->engine->reset(KINDS[$kind], $name);
        if ($this->state !== null) {
            $this->engine->saveState($this->state);
        }
        return "$kind " . strtolower($name) . ': counters reset';
    }
}

function h(string|int|null $text): string
{
    return htmlspecialchars((string) ($text ?? '-'), ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
}

/** An error page (or text on the command line) and exit status 1. */
function fail(string $message): never
{
    if (PHP_SAPI !== 'cli') {
        http_response_code(500);
    }
    echo '<!DOCTYPE html><title>Outgoing mail</title><p>Error: ' . h($message) . "</p>\n";
    if (PHP_SAPI === 'cli') {
        fwrite(STDERR, "admin_report.php: $message\n");
    }
    exit(1);
}

// The command line: [--control SPEC | --config FILE [--state FILE]] [--hours N] [--kind KIND]
// [--limit N] [--json VIEW] [--reset KIND NAME]; the web: ?hours=N&kind=KIND&limit=N,
// ?format=json&view=VIEW, and a POST of kind and name.
$usage = 'usage: admin_report.php [--control unix:PATH | --config FILE [--state FILE]] [--hours N]'
    . ' [--kind KIND] [--limit N] [--json overview|blocked|top] [--reset KIND NAME]';
$env = fn (string $name): ?string => is_string(getenv($name)) && getenv($name) !== '' ? getenv($name) : null;
$o = ['control' => $env('OBSPAM_CONTROL'), 'config' => $env('OBSPAM_CONFIG'), 'state' => $env('OBSPAM_STATE'),
    'hours' => $_GET['hours'] ?? null, 'kind' => $_GET['kind'] ?? null, 'limit' => $_GET['limit'] ?? null,
    'json' => ($_GET['format'] ?? '') === 'json' ? ($_GET['view'] ?? 'overview') : null, 'reset' => null];
if (($_SERVER['REQUEST_METHOD'] ?? '') === 'POST') {
    $o['reset'] = [(string) ($_POST['kind'] ?? ''), (string) ($_POST['name'] ?? '')];
}
$argList = PHP_SAPI === 'cli' ? array_slice($argv, 1) : [];
for ($i = 0; $i < count($argList); $i++) {
    $opt = substr($argList[$i], 2);
    if ($opt === 'reset' && isset($argList[$i + 2])) {
        $o['reset'] = [$argList[$i + 1], $argList[$i + 2]];
        $i += 2;
    } elseif (str_starts_with($argList[$i], '--') && array_key_exists($opt, $o) && isset($argList[$i + 1])) {
        $o[$opt] = $argList[++$i];
    } else {
        fail("bad argument '{$argList[$i]}' ($usage)");
    }
}
$hours = (int) ($o['hours'] ?? 24);
$limit = (int) ($o['limit'] ?? 10);
$kind = $o['kind'] === '' ? null : $o['kind'];
if ($hours < 1 || $limit < 0 || ($o['json'] !== null && !in_array($o['json'], ['overview', 'blocked', 'top'], true))) {
    fail("bad value ($usage)");
}

$engine = null;
try {
    if ($o['control'] !== null) {
        $source = new ControlSource($o['control']);
        $from = "control socket {$o['control']}";
    } elseif ($o['config'] !== null) {
        $engine = new Engine();
        $engine->loadConfig($o['config']);
        if ($o['state'] !== null) {
            $engine->loadState($o['state']);
        }
        $source = new EngineSource($engine, $o['state']);
        $from = $o['config'] . ($o['state'] === null ? '' : ", {$o['state']}");
    } else {
        fail('no source: give a control socket (--control or OBSPAM_CONTROL) or a configuration'
            . ' (--config or OBSPAM_CONFIG)');
    }
    $message = $o['reset'] !== null ? $source->reset(...$o['reset']) : null;
    $to = time() + 1;
    $top = ['from' => $to - 1 - $hours * 3600, 'to' => $to];
    $top['rows'] = $source->top($top['from'], $to, $kind, $limit);
    $overview = $source->overview();
    $blocked = $source->blocked();
    $engine?->close();
} catch (SourceError | Obspam\Exception $e) {
    fail($e->getMessage());
}

if ($o['json'] !== null) {
    if (PHP_SAPI !== 'cli') {
        header('Content-Type: application/json');
    }
    $views = ['overview' => $overview, 'blocked' => ['rows' => $blocked], 'top' => $top];
    echo json_encode($views[$o['json']], JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n";
    exit(0);
}

/** @param list<array<string, mixed>> $rows */
function topTable(array $rows): string
{
    if ($rows === []) {
        return "<p>Nobody sent mail.</p>\n";
    }
    $html = "<table>\n<tr><th>Kind</th><th>Name</th><th>Sent</th><th>Refused</th><th>Over the limit</th>"
        . "<th>Limit per hour</th><th>Last hour</th><th>State</th><th>Subscription</th></tr>\n";
    foreach ($rows as $r) {
        $state = $r['sending'] === null ? '-' : ($r['sending'] ? 'sending' : 'BLOCKED');
        $html .= '<tr><td>' . h($r['kind']) . '</td><td>' . ($r['kind'] === 'script' ? '<code>' . h($r['name'])
            . '</code>' : h($r['name'])) . '</td><td class="n">' . h($r['sent']) . '</td><td class="n">'
            . h($r['refused']) . '</td><td class="n">' . h($r['exceeded']) . '</td><td class="n">'
            . ($r['limit'] === -1 ? 'unlimited' : h($r['limit'])) . '</td><td class="n">' . h($r['count'])
            . '</td><td' . ($r['sending'] === false ? ' class="blocked"' : '') . '>' . $state . '</td><td>'
            . h($r['kind'] === 'script' ? $r['subscription'] : null) . "</td></tr>\n";
    }
    return $html . "</table>\n";
}
$ns = $overview['not_sending'];
?>
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Outgoing mail</title>
<style>
  body { font-family: sans-serif; margin: 2em; }
  table { border-collapse: collapse; margin-bottom: 2em; }
  th, td { padding: .3em .8em; border-bottom: 1px solid #ddd; text-align: left; }
  td.n { text-align: right; font-variant-numeric: tabular-nums; }
  .blocked { color: #b00; font-weight: bold; }
</style>
</head>
<body>
<h1>Outgoing mail</h1>
<p>libobspam <?= h(Engine::versionString()) ?>, <?= h(date('Y-m-d H:i')) ?>, <?= h($from) ?></p>
<?php if ($message !== null): ?>
<p class="message"><?= h($message) ?></p>
<?php endif ?>

<h2>Overview</h2>
<ul>
<li>Protection: <?= $overview['enabled'] ? 'on' : '<span class="blocked">OFF</span>' ?></li>
<li>Not sending now: <?= h($ns['subscription']) ?> subscriptions, <?= h($ns['domain']) ?> domains,
  <?= h($ns['mailbox']) ?> mailboxes</li>
<li>Refused: <?= h($overview['refused_hour']) ?> in the last hour, <?= h($overview['refused_day']) ?> in the last day</li>
</ul>
<h3>Top senders of the day</h3>
<?= topTable($overview['top']) ?>

<h2>Blocked now</h2>
<?php if ($blocked === []): ?>
<p>Every object can send.</p>
<?php else: ?>
<table>
<tr><th>Kind</th><th>Name</th><th>Blocked by</th><th>Window</th><th>Limit</th><th></th></tr>
<?php foreach ($blocked as $b): ?>
<tr class="blocked-row"><td><?= h($b['kind']) ?></td><td><?= h($b['name']) ?></td>
  <td><?= $b['blocked_kind'] === null ? '-' : h($b['blocked_kind'] . ' ' . $b['blocked_by']) ?></td>
  <td><?= h($b['window']) ?></td><td class="n"><?= h($b['limit']) ?></td>
  <td><form method="post"><input type="hidden" name="kind" value="<?= h($b['kind']) ?>"><input type="hidden"
    name="name" value="<?= h($b['name']) ?>"><button>Reset counters</button></form></td></tr>
<?php endforeach ?>
</table>
<?php endif ?>

<h2>Top senders of the last <?= h($hours) ?> hours<?= $kind === null ? '' : ' (' . h($kind) . 's)' ?></h2>
<?= topTable($top['rows']) ?>
</body>
</html>
