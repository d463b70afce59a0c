<?php

/**
 * Admin report page: who is over the limit, and the top scripts, as HTML
 * tables. Uses the PHP binding of libobspam (bindings/php/obspam.php).
 *
 * It reads the server's configuration and state snapshot named by the
 * environment variables OBSPAM_CONFIG and OBSPAM_STATE (or the first two
 * command-line arguments); without them it builds a small demo engine with
 * some made-up traffic.
 *
 *     OBSPAM_LIBRARY=build/libobspam.so.1 php examples/admin_report.php > report.html
 *     OBSPAM_LIBRARY=build/libobspam.so.1 php -d ffi.enable=1 -S 127.0.0.1:8080 -t examples
 *         # then open http://127.0.0.1:8080/admin_report.php?hours=24
 *
 * (A web server needs FFI allowed: ffi.enable=1 as above, or the preloading
 * that Obspam\Engine::scopeHeader() describes.)
 *
 * The library has no call that lists every object, so "over the limit"
 * means every subscription, domain and mailbox with refusals in the period
 * (from report()), shown with its live status (stats()).
 */

declare(strict_types=1);

require_once __DIR__ . '/../bindings/php/obspam.php';

use Obspam\Engine;

const DEMO_CONFIG = <<<'CONF'
    default mailbox=100 domain=1000 subscription=5000
    plan starter mailbox=20 domain=200 subscription=300
    subscription acme plan=starter uid=10001 contact=ops@acme.example
    subscription bakery plan=starter uid=10002 contact=owner@bakery.example
    domain acme.example subscription=acme
    domain bakery.example subscription=bakery
    mailbox info@acme.example limit=10
    mailbox newsletter@bakery.example

    CONF;

/** A small engine with an hour of made-up traffic, sent just now. */
function demo_engine(): Engine
{
    $engine = new Engine();
    $engine->loadConfigString(DEMO_CONFIG);
    for ($i = 0; $i < 14; $i++) { // a mailbox over its limit of 10
        $engine->decide(['sasl_username' => 'info@acme.example', 'client_address' => '203.0.113.7']);
    }
    for ($i = 0; $i < 50; $i++) { // a hijacked plugin on a 200/hour domain
        $engine->decide(['flags' => Engine::MSG_SCRIPT, 'uid' => 10002, 'domain_hint' => 'bakery.example',
            'script' => '/var/www/bakery/wp-content/plugins/forms/mail.php', 'recipients' => 5]);
    }
    for ($i = 0; $i < 3; $i++) {
        $engine->decide(['flags' => Engine::MSG_SCRIPT, 'uid' => 10001, 'script' => '/var/www/acme/contact.php']);
    }
    $engine->decide(['sasl_username' => 'newsletter@bakery.example', 'recipients' => 12]);
    return $engine;
}

function h(string|int $text): string
{
    return htmlspecialchars((string) $text, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
}

function when(int $t): string
{
    return $t === 0 ? '-' : date('Y-m-d H:i', $t);
}

const LEVELS = [Engine::SUBSCRIPTION => 'subscription', Engine::DOMAIN => 'domain', Engine::MAILBOX => 'mailbox'];

$config = PHP_SAPI === 'cli' ? ($argv[1] ?? null) : (getenv('OBSPAM_CONFIG') ?: null);
$state = PHP_SAPI === 'cli' ? ($argv[2] ?? null) : (getenv('OBSPAM_STATE') ?: null);
$hours = max(1, min(24 * 90, (int) ($_GET['hours'] ?? 24)));

try {
    if ($config !== null) {
        $engine = new Engine();
        $engine->loadConfig($config);
        if ($state !== null) {
            $engine->loadState($state);
        }
    } else {
        $engine = demo_engine();
    }
    $now = time();
    $rows = $engine->report($now - $hours * 3600, $now + 1);
    $over = [];
    $scripts = [];
    foreach ($rows as $row) {
        if ($row->kind === Engine::SCRIPT) {
            $scripts[] = $row;
        } elseif ($row->refused > 0) {
            try {
                $live = $engine->stats($row->kind, $row->name);
            } catch (Obspam\Exception) {
                $live = null; // no longer in the configuration
            }
            $over[] = [$row, $live];
        }
    }
    usort($scripts, fn ($a, $b) => [$b->sent, $a->name] <=> [$a->sent, $b->name]);
    $scripts = array_slice($scripts, 0, 10);
    $engine->close();
} catch (Obspam\Exception $e) {
    if (PHP_SAPI !== 'cli') {
        http_response_code(500);
    }
    echo '<!DOCTYPE html><title>obspam report</title><p>Error: ' . h($e->getMessage()) . "</p>\n";
    exit(1);
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
<p>libobspam <?= h(Engine::versionString()) ?>, <?= h(date('Y-m-d H:i')) ?><?= $config === null ? ' (demo data)' : '' ?></p>

<h2>Over the limit</h2>
<?php if ($over === []): ?>
<p>Nobody.</p>
<?php else: ?>
<table>
<tr><th>Level</th><th>Name</th><th>Limit/h</th><th>Last hour</th><th>Status</th><th>Sent</th><th>Refused</th><th>Last refusal</th></tr>
<?php foreach ($over as [$row, $live]): ?>
<tr>
  <td><?= h(LEVELS[$row->kind] ?? (string) $row->kind) ?></td>
  <td><?= h($row->name) ?></td>
  <td class="n"><?= $live === null ? '-' : ($live->limit < 0 ? 'unlimited' : $live->limit) ?></td>
  <td class="n"><?= $live === null ? '-' : $live->count ?></td>
  <td<?= $live !== null && !$live->sending ? ' class="blocked"' : '' ?>><?= $live === null ? 'removed' : ($live->sending ? 'sending' : 'BLOCKED') ?></td>
  <td class="n"><?= $row->sent ?></td>
  <td class="n"><?= $row->refused ?></td>
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
