<?php

// SPDX-License-Identifier: MIT

/**
 * Admin report page: who went over a limit, and the top scripts, as HTML
 * tables. Uses the PHP binding of libobspam (bindings/php/obspam.php).
 *
 * It reads the server's configuration and state snapshot: the first two
 * command-line arguments, else the environment variables OBSPAM_CONFIG and
 * OBSPAM_STATE (the state is optional; without it the counters are empty).
 * OBSPAM_LIBRARY names the library, as for every use of the binding. The
 * period is --hours N on the command line or ?hours=N on the web (default
 * 24), the number of scripts --top N or ?top=N (default 10). Without a
 * configuration it says so and exits with status 1.
 *
 *     php examples/admin_report.php /etc/obspam/obspam.conf /var/lib/obspam/state > report.html
 *     OBSPAM_CONFIG=/etc/obspam/obspam.conf OBSPAM_STATE=/var/lib/obspam/state \
 *         php -d ffi.enable=1 -S 127.0.0.1:8080 -t examples
 *         # then open http://127.0.0.1:8080/admin_report.php?hours=24
 *
 * (A web server needs FFI allowed: ffi.enable=1 as above, or the preloading
 * that Obspam\Engine::scopeHeader() describes.)
 *
 * The report lists every subscription, domain and mailbox that went over
 * its own limit in the period (report()), with the window of its last such
 * attempt (per minute, per hour, per day, or its cap on recipients per
 * message), and its live status (stats()): its limits in each window and
 * its count in the last hour.
 */

declare(strict_types=1);

require_once __DIR__ . '/../bindings/php/obspam.php';

use Obspam\Engine;

function h(string|int $text): string
{
    return htmlspecialchars((string) $text, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
}

function when(int $t): string
{
    return $t === 0 ? '-' : date('Y-m-d H:i', $t);
}

/** An error page (or text on the command line) and exit status 1. */
function fail(string $message): never
{
    if (PHP_SAPI !== 'cli') {
        http_response_code(500);
    }
    echo '<!DOCTYPE html><title>obspam report</title><p>Error: ' . h($message) . "</p>\n";
    if (PHP_SAPI === 'cli') {
        fwrite(STDERR, "admin_report.php: $message\n");
    }
    exit(1);
}

const WINDOW_SUFFIX = [Engine::WINDOW_MINUTE => 'm', Engine::WINDOW_HOUR => 'h', Engine::WINDOW_DAY => 'd'];
const WINDOW_NAMES = [Engine::WINDOW_MINUTE => 'per minute', Engine::WINDOW_HOUR => 'per hour',
    Engine::WINDOW_DAY => 'per day'];

/**
 * What the last attempt over the object's own limit went over: a window, or
 * (window 0) the cap on recipients, or for a subscription possibly its
 * forbidden scripts.
 */
function overWhat(Obspam\ReportRow $row): string
{
    return WINDOW_NAMES[$row->window]
        ?? ($row->kind === Engine::SUBSCRIPTION ? 'recipients or scripts' : 'recipients');
}

/** The limits of every window that has one, as "5/m 10/h". */
function limitsText(Obspam\Stats $live): string
{
    $parts = [];
    foreach ([Engine::WINDOW_MINUTE => $live->limitMinute, Engine::WINDOW_HOUR => $live->limit,
        Engine::WINDOW_DAY => $live->limitDay] as $window => $limit) {
        if ($limit >= 0) {
            $parts[] = $limit . '/' . WINDOW_SUFFIX[$window];
        }
    }
    return $parts === [] ? 'unlimited' : implode(' ', $parts);
}

const LEVELS = [Engine::SUBSCRIPTION => 'subscription', Engine::DOMAIN => 'domain', Engine::MAILBOX => 'mailbox'];

// The command line: [CONFIG [STATE]] [--hours N] [--top N]; the web:
// ?hours=N&top=N. The files come from the environment when not given.
$args = [];
$opts = ['hours' => $_GET['hours'] ?? null, 'top' => $_GET['top'] ?? null];
$argList = PHP_SAPI === 'cli' ? array_slice($argv, 1) : [];
for ($i = 0; $i < count($argList); $i++) {
    if (in_array($argList[$i], ['--hours', '--top'], true) && isset($argList[$i + 1])) {
        $opts[substr($argList[$i], 2)] = $argList[++$i];
    } elseif (str_starts_with($argList[$i], '--')) {
        fail("unknown option {$argList[$i]} (usage: admin_report.php [CONFIG [STATE]] [--hours N] [--top N])");
    } else {
        $args[] = $argList[$i];
    }
}
$env = fn (string $name): ?string => is_string(getenv($name)) && getenv($name) !== '' ? getenv($name) : null;
$config = $args[0] ?? $env('OBSPAM_CONFIG');
$state = $args[1] ?? $env('OBSPAM_STATE');
$hours = max(1, min(24 * 90, (int) ($opts['hours'] ?? 24)));
$top = max(1, min(1000, (int) ($opts['top'] ?? 10)));
if ($config === null) {
    fail('no configuration: give its path as the first argument or in OBSPAM_CONFIG');
}

try {
    $engine = new Engine();
    $engine->loadConfig($config);
    if ($state !== null) {
        $engine->loadState($state);
    }
    $now = time();
    $rows = $engine->report($now - $hours * 3600, $now + 1);
    $over = [];
    $scripts = [];
    foreach ($rows as $row) {
        if ($row->kind === Engine::SCRIPT) {
            $scripts[] = $row;
        } elseif ($row->exceeded > 0) {
            try {
                $live = $engine->stats($row->kind, $row->name);
            } catch (Obspam\Exception) {
                $live = null; // no longer in the configuration
            }
            $over[] = [$row, $live];
        }
    }
    usort($scripts, fn ($a, $b) => [$b->sent, $a->name] <=> [$a->sent, $b->name]);
    $scripts = array_slice($scripts, 0, $top);
    $engine->close();
} catch (Obspam\Exception $e) {
    fail($e->getMessage());
}
?>
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Outgoing mail: last <?= $hours ?> hours</title>
<style>
  body { font-family: sans-serif; margin: 2em; }
  table { border-collapse: collapse; margin-bottom: 2em; }
  th, td { padding: .3em .8em; border-bottom: 1px solid #ddd; text-align: left; }
  td.n { text-align: right; font-variant-numeric: tabular-nums; }
  .blocked { color: #b00; font-weight: bold; }
</style>
</head>
<body>
<h1>Outgoing mail: last <?= $hours ?> hours</h1>
<p>libobspam <?= h(Engine::versionString()) ?>, <?= h(date('Y-m-d H:i')) ?>, <?= h($config) ?><?= $state === null ? '' : ', ' . h($state) ?></p>

<h2>Over the limit</h2>
<?php if ($over === []): ?>
<p>Nobody.</p>
<?php else: ?>
<table>
<tr><th>Level</th><th>Name</th><th>Limits</th><th>Last hour</th><th>Status</th><th>Sent</th><th>Refused</th><th>Over the limit</th><th>Last over</th><th>Last refusal</th></tr>
<?php foreach ($over as [$row, $live]): ?>
<tr>
  <td><?= h(LEVELS[$row->kind] ?? (string) $row->kind) ?></td>
  <td><?= h($row->name) ?></td>
  <td class="n"><?= $live === null ? '-' : h(limitsText($live)) ?></td>
  <td class="n"><?= $live === null ? '-' : $live->count ?></td>
  <td<?= $live !== null && !$live->sending ? ' class="blocked"' : '' ?>><?= $live === null ? 'removed' : ($live->sending ? 'sending' : 'BLOCKED') ?></td>
  <td class="n"><?= $row->sent ?></td>
  <td class="n"><?= $row->refused ?></td>
  <td class="n"><?= $row->exceeded ?></td>
  <td><?= h(overWhat($row)) ?></td>
  <td><?= h(when($row->lastRefused)) ?></td>
</tr>
<?php endforeach ?>
</table>
<?php endif ?>

<h2>Top scripts</h2>
<?php if ($scripts === []): ?>
<p>No script sent mail.</p>
<?php else: ?>
<table>
<tr><th>Script</th><th>Sent</th><th>Refused</th></tr>
<?php foreach ($scripts as $s): ?>
<tr><td><code><?= h($s->name) ?></code></td><td class="n"><?= $s->sent ?></td><td class="n"><?= $s->refused ?></td></tr>
<?php endforeach ?>
</table>
<?php endif ?>
</body>
</html>
