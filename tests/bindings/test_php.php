<?php

// SPDX-License-Identifier: MIT

/**
 * Tests of the PHP binding (bindings/php/obspam.php): a plain script with an
 * assertion helper that counts, prints "N passed, N failed" and exits
 * non-zero on a failure.
 *
 *     OBSPAM_LIBRARY=build/libobspam.so.1 php tests/bindings/test_php.php
 *
 * tests/bindings/run.sh sets OBSPAM_TEST_ABI (what abi.c prints: the
 * header's constants, structure sizes and field offsets) and
 * OBSPAM_TEST_FAKE_V2 (a library that says it is 2.0.0); without them this
 * script builds both with $CC (default cc).
 */

declare(strict_types=1);

require __DIR__ . '/../../bindings/php/obspam.php';

use Obspam\Engine;
use Obspam\HistoryEntry;
use Obspam\Notice;
use Obspam\ReportRow;
use Obspam\Stats;
use Obspam\Verdict;

const T0 = 1767268800; // 2026-01-01 12:00:00 UTC, the start of an hour
const T = T0 + 30;     // 30 seconds into that minute
// The tree of the tests (tree.conf, which test_python.py loads too).
define('CONF', file_get_contents(__DIR__ . '/tree.conf'));
const BATCH_CONF = <<<'CONF'
    # decideBatch: a mailbox with a limit of 2 in a domain with the defaults.
    default mailbox=100 domain=1000 subscription=5000
    subscription shop
    domain shop.example subscription=shop
    mailbox orders@shop.example limit=2

    CONF;

// ---- the assertion helpers ----------------------------------------------

$passed = 0;
$failed = 0;
$group = '';

function group(string $name): void
{
    global $group;
    $group = $name;
}

function ok(bool $condition, string $what, string $detail = ''): void
{
    global $passed, $failed, $group;
    if ($condition) {
        $passed++;
        return;
    }
    $failed++;
    echo "FAIL [$group] $what" . ($detail !== '' ? "\n    $detail" : '') . "\n";
}

function show(mixed $value): string
{
    return str_replace("\n", ' ', var_export($value, true));
}

function same(mixed $expected, mixed $actual, string $what): void
{
    // == for objects (same class, equal properties), === otherwise
    $equal = is_object($expected) || (is_array($expected) && $expected !== [] && is_object(reset($expected)))
        ? $expected == $actual : $expected === $actual;
    ok($equal, $what, 'expected ' . show($expected) . "\n    got      " . show($actual));
}

/** Runs $fn, which must throw Obspam\Exception with $code (and $message, when given). */
function throws(callable $fn, int $code, ?string $message, string $what): ?Obspam\Exception
{
    try {
        $fn();
    } catch (Obspam\Exception $e) {
        same($code, $e->getCode(), "$what: code");
        if ($message !== null) {
            same($message, $e->getMessage(), "$what: message");
        }
        ok($e->getMessage() !== '', "$what: a message");
        return $e;
    } catch (Throwable $t) {
        ok(false, $what, 'threw ' . get_class($t) . ': ' . $t->getMessage());
        return null;
    }
    ok(false, $what, 'nothing was thrown');
    return null;
}

function test(string $name, callable $body): void
{
    group($name);
    try {
        $body();
    } catch (Throwable $t) {
        ok(false, 'unexpected ' . get_class($t), $t->getMessage() . ' at ' . $t->getFile() . ':' . $t->getLine());
    }
}

$tmp = sys_get_temp_dir() . '/obspam-phptest-' . getmypid();
@mkdir($tmp);
register_shutdown_function(function () use ($tmp): void {
    foreach (glob("$tmp/*") ?: [] as $f) {
        @unlink($f);
    }
    @rmdir($tmp);
});

function build(string $what): string
{
    global $tmp;
    $cc = getenv('CC') ?: 'cc';
    $here = __DIR__;
    if ($what === 'abi') {
        $exe = "$tmp/abi";
        exec("$cc -std=c99 -I $here/../../include $here/abi.c -o $exe && $exe > $tmp/abi.txt", $out, $rc);
        return "$tmp/abi.txt";
    }
    exec("$cc -shared -fPIC $here/fake_v2.c -o $tmp/libobspam_fake_v2.so", $out, $rc);
    return "$tmp/libobspam_fake_v2.so";
}

function buildFake(string $name, string $defines): string
{
    global $tmp;
    $cc = getenv('CC') ?: 'cc';
    $here = __DIR__;
    exec("$cc -shared -fPIC $defines $here/fake_v2.c -o $tmp/$name.so", $out, $rc);
    return "$tmp/$name.so";
}

/** A Verdict whose window is the hour's when it names an object, else 0, unless given. */
function verdict(int $action, int $kind, string $object, int $limit, int $count, int $retryAfter, ?int $window = null): Verdict
{
    return new Verdict($action, $kind, $object, $limit, $count, $retryAfter, $window ?? ($kind === -1 ? 0 : 3600));
}

/**
 * Stats of an object with an hourly limit only, not blocked, protection on
 * and nothing over its own limit, unless the named arguments say otherwise.
 */
function stats(
    bool $sending,
    int $limit,
    int $count,
    int $refused,
    int $refusedTotal,
    int $lastRefused,
    int $exceeded = 0,
    int $exceededTotal = 0,
    int $countDay = 0,
    int $blockedKind = -1,
    bool $disabled = false,
    string $blockedBy = '',
    int $limitMinute = -1,
    int $countMinute = 0,
    int $limitDay = -1,
): Stats {
    return new Stats($sending, $limit, $count, $refused, $refusedTotal, $lastRefused, $exceeded, $exceededTotal,
        $limitMinute, $countMinute, $limitDay, $countDay, $blockedKind, $disabled, $blockedBy);
}


function newEngine(): Engine
{
    $e = new Engine();
    $e->loadConfigString(CONF);
    return $e;
}

// ---- the ABI ------------------------------------------------------------

$abiFile = getenv('OBSPAM_TEST_ABI') ?: build('abi');
$consts = $sizes = $offsets = [];
foreach (file($abiFile, FILE_IGNORE_NEW_LINES) as $line) {
    [$kind, $name, $value] = explode(' ', $line);
    if ($kind === 'const') {
        $consts[$name] = (int) $value;
    } elseif ($kind === 'size') {
        $sizes[$name] = (int) $value;
    } else {
        [$struct, $field] = explode('.', $name);
        $offsets[$struct][$field] = (int) $value;
    }
}

test('constants', function () use ($consts): void {
    $class = new ReflectionClass(Engine::class);
    foreach ($consts as $name => $value) {
        $short = substr($name, strlen('OBSPAM_'));
        if (str_starts_with($short, 'VERSION_') && $short !== 'VERSION_MAJOR') {
            continue; // the library's own version: see 'library'
        }
        ok($class->hasConstant($short), "Engine::$short exists");
        same($value, $class->getConstant($short), "Engine::$short");
    }
    same(['sasl_username', 'sender', 'client_address', 'recipients', 'flags', 'uid', 'domain_hint', 'script', 'time'],
        array_keys(Engine::MESSAGE_DEFAULTS), 'decide() fields are those of obspam_message');
});

test('structures', function () use ($sizes, $offsets): void {
    $ffi = Engine::library();
    foreach ($sizes as $struct => $size) {
        $type = $ffi->type($struct);
        same($size, $type->getSize(), "sizeof($struct)");
        same(array_keys($offsets[$struct]), $type->getStructFieldNames(), "$struct fields");
        foreach ($offsets[$struct] as $field => $offset) {
            same($offset, $type->getStructFieldOffset($field), "offsetof($struct, $field)");
        }
    }
});

test('every function has a method', function (): void {
    $header = file_get_contents(__DIR__ . '/../../include/obspam.h');
    preg_match_all('/OBSPAM_API[^;(]*?\b(obspam_\w+)\s*\(/s', $header, $m);
    $methods = [
        'obspam_version' => 'version', 'obspam_version_string' => 'versionString',
        'obspam_strerror' => 'strerror', 'obspam_kind_name' => 'kindName', 'obspam_engine_new' => '__construct',
        'obspam_engine_free' => 'close', 'obspam_engine_errmsg' => 'lastError',
        'obspam_engine_errmsg_r' => 'lastError',
        'obspam_set_option' => 'setOption', 'obspam_get_option' => 'getOption',
        'obspam_add' => 'add', 'obspam_remove' => 'remove', 'obspam_set_limit' => 'setLimit',
        'obspam_effective_limit' => 'effectiveLimit', 'obspam_set_uid' => 'setUid',
        'obspam_set_window_limit' => 'setWindowLimit', 'obspam_effective_window_limit' => 'effectiveWindowLimit',
        'obspam_set_max_recipients' => 'setMaxRecipients',
        'obspam_effective_max_recipients' => 'effectiveMaxRecipients',
        'obspam_set_scripts_allowed' => 'setScriptsAllowed', 'obspam_set_contact' => 'setContact',
        'obspam_whitelist_add' => 'whitelistAdd', 'obspam_whitelist_remove' => 'whitelistRemove',
        'obspam_local_network_add' => 'localNetworkAdd', 'obspam_local_network_remove' => 'localNetworkRemove',
        'obspam_forward_add' => 'forwardAdd', 'obspam_forward_remove' => 'forwardRemove',
        'obspam_forward_lookup' => 'forwardLookup',
        'obspam_mailing_list_add' => 'mailingListAdd', 'obspam_mailing_list_remove' => 'mailingListRemove',
        'obspam_mailing_list_match' => 'mailingListMatch',
        'obspam_implicit_status' => 'implicitStatus',
        'obspam_load_config' => 'loadConfig', 'obspam_load_config_string' => 'loadConfigString',
        'obspam_decide' => 'decide', 'obspam_check' => 'check', 'obspam_decide_batch' => 'decideBatch',
        'obspam_decide_start' => 'decideBatch',
        'obspam_stats_get' => 'stats', 'obspam_history' => 'history',
        'obspam_report' => 'report', 'obspam_set_notify' => 'setNotify',
        'obspam_enumerate' => 'enumerate', 'obspam_top' => 'top', 'obspam_reset' => 'reset',
        'obspam_set_unknown_uid_subscription' => 'setUnknownUidSubscription',
        'obspam_notify_flush' => 'notifyFlush', 'obspam_state_save' => 'saveState',
        'obspam_state_load' => 'loadState',
        'obspam_set_store' => 'setStore', 'obspam_store_status' => 'storeStatus',
        'obspam_store_backlog' => 'storeBacklog',
        'obspam_journal_open' => 'openJournal', 'obspam_journal_flush' => 'flushJournal',
        'obspam_journal_close' => 'closeJournal',
    ];
    $functions = $m[1];
    sort($functions);
    $mapped = array_keys($methods);
    sort($mapped);
    same($functions, $mapped, 'the header functions are those mapped');
    foreach ($methods as $function => $method) {
        ok(method_exists(Engine::class, $method), "Engine::$method() for $function()");
        $doc = (new ReflectionMethod(Engine::class, $method))->getDocComment() ?: '';
        ok($method === '__construct' || str_contains($doc, $function), "Engine::$method() names $function() in its doc");
    }
});

// ---- the library --------------------------------------------------------

test('library', function () use ($consts): void {
    same($consts['OBSPAM_VERSION_NUMBER'], Engine::version(), 'version()');
    same(1, Engine::version() >> 16, 'major version');
    same("{$consts['OBSPAM_VERSION_MAJOR']}.{$consts['OBSPAM_VERSION_MINOR']}.{$consts['OBSPAM_VERSION_PATCH']}",
        Engine::versionString(), 'versionString()');
    $texts = [
        Engine::OK => 'success', Engine::ENOMEM => 'out of memory', Engine::EINVAL => 'invalid argument',
        Engine::ENOTFOUND => 'no such object', Engine::EEXIST => 'object already exists',
        Engine::ESYNTAX => 'syntax error in configuration', Engine::EIO => 'input/output error',
        Engine::ECORRUPT => 'corrupt or foreign state file', Engine::EVERSION => 'state file from a newer version',
    ];
    foreach ($texts as $code => $text) {
        same($text, Engine::strerror($code), "strerror($code)");
    }
    ok(Engine::strerror(-1000) !== '', 'strerror(unknown) describes it');
    same(['server', 'plan', 'subscription', 'domain', 'mailbox', 'script', 'unknown kind', 'unknown kind'],
        array_map(fn (int $k) => Engine::kindName($k), [0, 1, 2, 3, 4, 5, 6, -1]), 'kindName()');
    same(Engine::library(), Engine::library(), 'the library is loaded once');
});

test('library errors', function (): void {
    global $tmp;
    $missing = "$tmp/no-such-libobspam.so.1";
    $e = throws(fn () => new Engine($missing), Engine::EIO, null, 'a missing library');
    ok($e !== null && str_starts_with($e->getMessage(), "cannot load libobspam from $missing: "), 'names the path');
    $fake = getenv('OBSPAM_TEST_FAKE_V2') ?: build('fake');
    throws(fn () => new Engine($fake), Engine::EVERSION,
        "$fake: libobspam 2.0.0 has major version 2; this binding needs 1.x", 'another major version');
    $old = getenv('OBSPAM_TEST_FAKE_V1_2') ?: buildFake('libobspam_fake_v1_2', '-DFAKE_MAJOR=1 -DFAKE_MINOR=2');
    throws(fn () => new Engine($old), Engine::EVERSION,
        "$old: libobspam 1.2.0 is older than 1.3; this binding needs 1.3 or a later 1.x", 'an older minor version');
    throws(fn () => new Engine('libc.so.6'), Engine::EVERSION,
        'libc.so.6: no obspam_version(): this is not libobspam', 'not libobspam');
    $saved = getenv('OBSPAM_LIBRARY');
    putenv("OBSPAM_LIBRARY=$tmp/elsewhere.so");
    $e = throws(fn () => new Engine(), Engine::EIO, null, 'OBSPAM_LIBRARY names a missing file');
    ok($e !== null && str_contains($e->getMessage(), "OBSPAM_LIBRARY=$tmp/elsewhere.so"), 'names the variable');
    putenv($saved === false ? 'OBSPAM_LIBRARY' : "OBSPAM_LIBRARY=$saved");
});

// ---- the engine ---------------------------------------------------------

test('life cycle', function (): void {
    global $tmp;
    $e = new Engine();
    ok(!$e->isClosed(), 'open');
    same('', $e->lastError(), 'no error yet');
    $e->close();
    $e->close();
    ok($e->isClosed(), 'closed');
    $calls = [
        'setOption' => fn () => $e->setOption(Engine::OPT_ENABLED, 1),
        'getOption' => fn () => $e->getOption(Engine::OPT_ENABLED),
        'add' => fn () => $e->add(Engine::PLAN, 'p'),
        'remove' => fn () => $e->remove(Engine::PLAN, 'p'),
        'setLimit' => fn () => $e->setLimit(Engine::SERVER, null, Engine::MAILBOX, 1),
        'effectiveLimit' => fn () => $e->effectiveLimit(Engine::MAILBOX, 'a@b'),
        'setUid' => fn () => $e->setUid('s', 1),
        'setScriptsAllowed' => fn () => $e->setScriptsAllowed(Engine::SERVER, null, true),
        'setContact' => fn () => $e->setContact('s', null),
        'whitelistAdd' => fn () => $e->whitelistAdd('192.0.2.1'),
        'whitelistRemove' => fn () => $e->whitelistRemove('192.0.2.1'),
        'loadConfig' => fn () => $e->loadConfig('/dev/null'),
        'loadConfigString' => fn () => $e->loadConfigString(''),
        'decide' => fn () => $e->decide([]),
        'check' => fn () => $e->check([]),
        'decideBatch' => fn () => $e->decideBatch([]),
        'stats' => fn () => $e->stats(Engine::MAILBOX, 'a@b'),
        'history' => fn () => $e->history(Engine::MAILBOX, 'a@b'),
        'report' => fn () => $e->report(),
        'setNotify' => fn () => $e->setNotify(null),
        'notifyFlush' => fn () => $e->notifyFlush(),
        'saveState' => fn () => $e->saveState("$tmp/x"),
        'loadState' => fn () => $e->loadState("$tmp/x"),
        'openJournal' => fn () => $e->openJournal("$tmp/x"),
        'flushJournal' => fn () => $e->flushJournal(),
        'closeJournal' => fn () => $e->closeJournal(),
        'setStore' => fn () => $e->setStore(null),
        'storeStatus' => fn () => $e->storeStatus(),
        'storeBacklog' => fn () => $e->storeBacklog(),
        'lastError' => fn () => $e->lastError(),
    ];
    foreach ($calls as $name => $call) {
        throws($call, Engine::EINVAL, "$name: the engine is closed", "$name() after close()");
    }
    // An engine that goes out of scope is freed, its callback too.
    $x = newEngine();
    $x->setNotify(fn (Notice $n) => null);
    unset($x);
    gc_collect_cycles();
    ok(true, 'freed');
});

test('options', function (): void {
    $e = new Engine();
    $defaults = [
        Engine::OPT_ENABLED => 1, Engine::OPT_COUNT_UNIT => 0, Engine::OPT_ACTION => 0,
        Engine::OPT_COUNT_UNAUTHENTICATED => 2, Engine::OPT_COUNT_FORWARD_LOCAL => 0,
        Engine::OPT_COUNT_FORWARD_REMOTE => 1, Engine::OPT_COUNT_MAILING_LISTS => 0,
        Engine::OPT_RETENTION_HOURS => 720, Engine::OPT_NOTIFY_PERIOD => 3600, Engine::OPT_NOTIFY_IMMEDIATE => 0,
        Engine::OPT_STORE_TIMEOUT_MS => 200, Engine::OPT_STORE_FALLBACK => 0, Engine::OPT_IMPLICIT_MAILBOXES => 100000,
    ];
    foreach ($defaults as $option => $value) {
        same($value, $e->getOption($option), "default of option $option");
    }
    $e->setOption(Engine::OPT_RETENTION_HOURS, 48);
    $e->setOption(Engine::OPT_ACTION, 1);
    same(48, $e->getOption(Engine::OPT_RETENTION_HOURS), 'retention set');
    same(1, $e->getOption(Engine::OPT_ACTION), 'action set');
    foreach ([[Engine::OPT_ENABLED, 2], [Engine::OPT_RETENTION_HOURS, 0], [Engine::OPT_NOTIFY_PERIOD, 59], [99, 1]] as [$o, $v]) {
        $x = throws(fn () => $e->setOption($o, $v), Engine::EINVAL, null, "setOption($o, $v)");
        same($x?->getMessage(), $e->lastError(), "setOption($o, $v): the engine's message");
    }
    throws(fn () => $e->getOption(0), Engine::EINVAL, null, 'getOption(0)');
    same(48, $e->getOption(Engine::OPT_RETENTION_HOURS), 'unchanged by the errors');
});

test('tree', function (): void {
    $e = new Engine();
    $e->setLimit(Engine::SERVER, null, Engine::MAILBOX, 100);
    $e->setLimit(Engine::SERVER, null, Engine::DOMAIN, 1000);
    $e->setLimit(Engine::SERVER, null, Engine::SUBSCRIPTION, 5000);
    $e->add(Engine::PLAN, 'Basic');
    $e->setLimit(Engine::PLAN, 'basic', Engine::MAILBOX, 50);
    $e->add(Engine::SUBSCRIPTION, 'acme', 'basic');
    $e->add(Engine::DOMAIN, 'Example.COM', 'acme');
    $e->add(Engine::MAILBOX, 'info@example.com');
    $e->add(Engine::MAILBOX, 'sales@example.com', 'example.com');
    same(50, $e->effectiveLimit(Engine::MAILBOX, 'info@example.com'), 'from the plan');
    same(1000, $e->effectiveLimit(Engine::DOMAIN, 'example.com'), 'domain from the server');
    same(5000, $e->effectiveLimit(Engine::SUBSCRIPTION, 'acme'), 'subscription from the server');
    $e->setLimit(Engine::DOMAIN, 'example.com', Engine::MAILBOX, 30);
    $e->setLimit(Engine::MAILBOX, 'info@example.com', Engine::MAILBOX, 5);
    same(5, $e->effectiveLimit(Engine::MAILBOX, 'INFO@example.com'), 'its own');
    same(30, $e->effectiveLimit(Engine::MAILBOX, 'sales@example.com'), 'from the domain');
    $e->setLimit(Engine::MAILBOX, 'info@example.com', Engine::MAILBOX, Engine::UNLIMITED);
    same(Engine::UNLIMITED, $e->effectiveLimit(Engine::MAILBOX, 'info@example.com'), 'unlimited');
    $e->setLimit(Engine::MAILBOX, 'info@example.com', Engine::MAILBOX, Engine::INHERIT);
    same(30, $e->effectiveLimit(Engine::MAILBOX, 'info@example.com'), 'inherit');
    $e->remove(Engine::DOMAIN, 'example.com');
    throws(fn () => $e->effectiveLimit(Engine::MAILBOX, 'info@example.com'), Engine::ENOTFOUND, null, 'removed with its domain');
    $cases = [
        [fn () => $e->add(Engine::PLAN, 'basic'), Engine::EEXIST, 'duplicate'],
        [fn () => $e->add(Engine::SUBSCRIPTION, 's', 'nope'), Engine::ENOTFOUND, 'unknown parent'],
        [fn () => $e->add(Engine::DOMAIN, 'd.example'), Engine::EINVAL, 'domain without subscription'],
        [fn () => $e->add(Engine::MAILBOX, 'no-at-sign'), Engine::EINVAL, 'bad mailbox'],
        [fn () => $e->add(Engine::PLAN, str_repeat('x', 321)), Engine::EINVAL, 'too long'],
        [fn () => $e->remove(Engine::PLAN, 'nope'), Engine::ENOTFOUND, 'remove unknown'],
        [fn () => $e->setLimit(Engine::SERVER, null, Engine::MAILBOX, Engine::INHERIT), Engine::EINVAL, 'server inherit'],
        [fn () => $e->effectiveLimit(Engine::PLAN, 'basic'), Engine::EINVAL, 'plan has no effective limit'],
        [fn () => $e->setUid('nope', 5), Engine::ENOTFOUND, 'uid of unknown'],
        [fn () => $e->setContact('nope', 'a@b.example'), Engine::ENOTFOUND, 'contact of unknown'],
    ];
    foreach ($cases as [$call, $code, $what]) {
        $x = throws($call, $code, null, $what);
        same($x?->getMessage(), $e->lastError(), "$what: the engine's message");
    }
    throws(fn () => $e->add(Engine::PLAN, "ba\0sic"), Engine::EINVAL, "add: 'ba\\000sic' holds a NUL byte", 'NUL byte');
});

test('uid, scripts, contact', function (): void {
    $e = new Engine();
    $e->add(Engine::PLAN, 'p');
    $e->add(Engine::SUBSCRIPTION, 'a', 'p');
    $e->add(Engine::SUBSCRIPTION, 'b');
    $e->add(Engine::DOMAIN, 'a.example', 'a');
    $e->setUid('a', 1001);
    throws(fn () => $e->setUid('b', 1001), Engine::EEXIST, null, 'a uid belongs to one subscription');
    $v = $e->decide(['flags' => Engine::MSG_SCRIPT, 'uid' => 1001, 'domain_hint' => 'a.example', 'time' => T]);
    same([Engine::ACCEPT, Engine::DOMAIN, 'a.example'], [$v->action, $v->kind, $v->object], 'script charged to its domain');
    $e->setScriptsAllowed(Engine::PLAN, 'p', false);
    same(verdict(Engine::REFUSE, Engine::SUBSCRIPTION, 'a', -1, 1, -1, 0),
        $e->decide(['flags' => Engine::MSG_SCRIPT, 'uid' => 1001, 'time' => T]), 'scripts forbidden by the plan');
    $e->setScriptsAllowed(Engine::SUBSCRIPTION, 'a', 1);
    same(Engine::ACCEPT, $e->decide(['flags' => Engine::MSG_SCRIPT, 'uid' => 1001, 'time' => T])->action, 'allowed by the subscription');
    $e->setScriptsAllowed(Engine::SUBSCRIPTION, 'a', Engine::INHERIT);
    $e->setScriptsAllowed(Engine::PLAN, 'p', Engine::INHERIT);
    $e->setScriptsAllowed(Engine::SERVER, null, false);
    same(Engine::REFUSE, $e->decide(['flags' => Engine::MSG_SCRIPT, 'uid' => 1001, 'time' => T])->action, 'forbidden by the server');
    throws(fn () => $e->setScriptsAllowed(Engine::SERVER, null, Engine::INHERIT), Engine::EINVAL, null, 'the server cannot inherit');
    $e->setUid('a', -1);
    $e->setUid('b', 1001);
    same('b', $e->decide(['flags' => Engine::MSG_SCRIPT, 'uid' => 1001, 'time' => T])->object, 'the uid moved');
    $e->setContact('a', 'ops@a.example');
    $e->setContact('a', null);
    $e->setContact('a', '');
    throws(fn () => $e->setContact('a', 'not-an-address'), Engine::EINVAL, null, 'a bad contact');
});

test('whitelist', function (): void {
    $e = newEngine();
    $login = 'sales@example.com';
    same(Engine::ACCEPT, $e->decide(['sasl_username' => $login, 'client_address' => '192.0.2.7', 'time' => T])->action, 'not yet');
    $e->whitelistAdd('192.0.2.0/24');
    $e->whitelistAdd('2001:db8::/32');
    foreach (['192.0.2.7', '::ffff:192.0.2.9', '2001:db8::1'] as $client) {
        same(verdict(Engine::EXEMPT, -1, '', 0, 0, 0),
            $e->decide(['sasl_username' => $login, 'client_address' => $client, 'time' => T]), "exempt: $client");
    }
    throws(fn () => $e->whitelistAdd('192.0.2.0/24'), Engine::EEXIST, null, 'duplicate');
    throws(fn () => $e->whitelistAdd('10.0.0.1/8'), Engine::EINVAL, null, 'host bits');
    $e->whitelistRemove('192.0.2.0/24');
    same(Engine::ACCEPT, $e->decide(['sasl_username' => $login, 'client_address' => '192.0.2.7', 'time' => T])->action, 'removed');
    throws(fn () => $e->whitelistRemove('192.0.2.0/24'), Engine::ENOTFOUND, null, 'remove absent');
    same(2, $e->stats(Engine::MAILBOX, $login, T)->count, 'only the two accepted were counted');
});

test('local networks', function (): void {
    $e = newEngine();
    $sales = 'sales@example.com';
    $action = fn (?string $client): int => $e->decide(['sender' => $sales, 'client_address' => $client, 'time' => T])->action;
    same(Engine::UNKNOWN, $action('203.0.113.9'), 'a remote client is not local');
    same(verdict(Engine::ACCEPT, Engine::MAILBOX, $sales, 80, 0, 0),
        $e->decide(['sender' => $sales, 'client_address' => '127.0.0.1', 'time' => T]), 'from 127.0.0.1');
    same(Engine::ACCEPT, $action('::1'), 'from ::1');
    same(Engine::ACCEPT, $action(null), 'a local submission');
    $e->localNetworkAdd('203.0.113.0/24');
    same(Engine::ACCEPT, $action('203.0.113.9'), 'inside a local network');
    same(Engine::ACCEPT, $action('::ffff:203.0.113.10'), 'IPv4-mapped');
    same(Engine::UNKNOWN, $action('127.0.0.1'), 'configured networks replace 127.0.0.0/8');
    same(Engine::ACCEPT, $action(null), 'still a local submission');
    throws(fn () => $e->localNetworkAdd('203.0.113.0/24'), Engine::EEXIST, null, 'duplicate');
    $x = throws(fn () => $e->localNetworkAdd('10.0.0.1/8'), Engine::EINVAL, null, 'host bits');
    same($x?->getMessage(), $e->lastError(), "the engine's message");
    $e->localNetworkRemove('203.0.113.0/24');
    throws(fn () => $e->localNetworkRemove('203.0.113.0/24'), Engine::ENOTFOUND, null, 'remove absent');
    same(Engine::UNKNOWN, $action('203.0.113.9'), 'removed');
    same(Engine::ACCEPT, $action('127.0.0.1'), 'back to 127.0.0.0/8');
    same(7, $e->stats(Engine::MAILBOX, $sales, T)->count, 'the seven accepted were counted');
    $e->setOption(Engine::OPT_COUNT_UNAUTHENTICATED, 1);
    same(Engine::ACCEPT, $action('198.51.100.1'), 'count-unauthenticated yes: from anywhere');
    $e->setOption(Engine::OPT_COUNT_UNAUTHENTICATED, 0);
    same(Engine::UNKNOWN, $action(null), 'count-unauthenticated no: never');
    throws(fn () => $e->localNetworkAdd("a\0b"), Engine::EINVAL, null, 'a NUL byte');
});

test('forwards', function (): void {
    $e = newEngine();
    same(null, $e->forwardLookup('desk@example.com'), 'not a forward yet');
    $e->forwardAdd('Desk@Example.com', true);
    $e->forwardAdd('@example.com', false);
    same([Engine::MSG_FORWARD_REMOTE, 'desk@example.com'], $e->forwardLookup('DESK@example.com'), 'the forward');
    same([Engine::MSG_FORWARD_LOCAL, 'example.com'], $e->forwardLookup('ghost@example.com'), 'the catch-all');
    same(null, $e->forwardLookup('info@example.com'), 'a mailbox is no catch-all forward');
    same(null, $e->forwardLookup('not an address'), 'no valid name');
    [$flag, $mailbox] = $e->forwardLookup('desk@example.com');
    for ($i = 0; $i < 3; $i++) {
        same(verdict(Engine::ACCEPT, Engine::MAILBOX, $mailbox, 80, $i, 0),
            $e->decide(['flags' => $flag, 'sender' => $mailbox, 'client_address' => '192.0.2.1', 'time' => T]),
            "forward $i from the Internet");
    }
    same(Engine::EXEMPT, $e->decide(['flags' => Engine::MSG_FORWARD_LOCAL, 'sender' => 'example.com', 'time' => T])->action,
        'local forwards are not counted by default');
    $x = throws(fn () => $e->forwardAdd('desk@example.com', false), Engine::EEXIST, null, 'duplicate');
    same("forward_add: 'desk@example.com' is a forward already", $x?->getMessage(), 'its message');
    throws(fn () => $e->forwardAdd('x@elsewhere.example', true), Engine::ENOTFOUND, null, 'unknown domain');
    throws(fn () => $e->forwardAdd('no-at-sign', true), Engine::EINVAL, null, 'bad address');
    $e->forwardRemove('desk@example.com');
    same([Engine::MSG_FORWARD_LOCAL, 'example.com'], $e->forwardLookup('desk@example.com'), 'now the catch-all');
    throws(fn () => $e->forwardRemove('desk@example.com'), Engine::ENOTFOUND, null, 'remove absent');
});

test('mailing lists', function (): void {
    $e = newEngine();
    $e->loadConfigString(CONF . "\nlist news@example.com\n");
    same(true, $e->mailingListMatch('news-bounces+a=b@example.com'), 'bounce form, local submission');
    same(true, $e->mailingListMatch('news@example.com', '127.0.0.1'), 'from a local network');
    same(false, $e->mailingListMatch('news@example.com', '192.0.2.1'), 'from elsewhere');
    same(false, $e->mailingListMatch('info@example.com'), 'not a list');
    throws(fn () => $e->mailingListMatch('news@example.com', 'not-an-ip'), Engine::EINVAL, null, 'bad client');
    same(Engine::EXEMPT, $e->decide(['flags' => Engine::MSG_MAILING_LIST, 'sender' => 'news-bounces@example.com',
        'client_address' => '127.0.0.1', 'recipients' => 500, 'time' => T])->action, 'exempt by default');
    $st = $e->stats(Engine::DOMAIN, 'example.com', T);
    same([0, 0, 500], [$st->count, $st->forwarded, $st->listDeliveries], 'an exempt list delivery counted (1.4)');
    $e->mailingListAdd('other@example.com');
    same(true, $e->mailingListMatch('other-bounces@example.com', ''), 'added');
    throws(fn () => $e->mailingListAdd('other@example.com'), Engine::EEXIST, null, 'duplicate');
    $e->mailingListRemove('other@example.com');
    same(false, $e->mailingListMatch('other-bounces@example.com', ''), 'removed');
    throws(fn () => $e->mailingListRemove('other@example.com'), Engine::ENOTFOUND, null, 'remove absent');
});

test('store backlog', function (): void {
    $e = newEngine();
    same(
        ['ledger_pending' => 0, 'ledger_added' => 0, 'ledger_dropped' => 0, 'keys_pending' => 0, 'keys_deleted' => 0],
        $e->storeBacklog(),
        'nothing owed without a shared store'
    );
});

test('implicit mailboxes', function (): void {
    $e = newEngine();
    same(['count' => 0, 'overflow' => 0, 'episodes' => 0], $e->implicitStatus(), 'none at first');
    same(verdict(Engine::ACCEPT, Engine::MAILBOX, 'someone@example.com', 80, 0, 0),
        $e->decide(['sasl_username' => 'someone@example.com', 'recipients' => 2, 'time' => T]),
        "an undeclared login: the domain's mailbox default");
    same(2, $e->stats(Engine::MAILBOX, 'someone@example.com', T)->count, 'its stats');
    same(['count' => 1, 'overflow' => 0, 'episodes' => 0], $e->implicitStatus(), 'one');
    $e->setOption(Engine::OPT_IMPLICIT_MAILBOXES, 1);
    same(verdict(Engine::ACCEPT, Engine::DOMAIN, 'example.com', 500, 2, 0),
        $e->decide(['sasl_username' => 'other@example.com', 'time' => T]), 'past the cap: the domain is charged');
    same(['count' => 1, 'overflow' => 1, 'episodes' => 1], $e->implicitStatus(), 'the overflow counted');
    throws(fn () => $e->stats(Engine::MAILBOX, 'other@example.com', T), Engine::ENOTFOUND, null, 'no mailbox past the cap');
    throws(fn () => $e->setOption(Engine::OPT_IMPLICIT_MAILBOXES, -1), Engine::EINVAL, null, 'a negative cap');
});

test('configuration', function (): void {
    global $tmp;
    file_put_contents("$tmp/obspam.conf", CONF);
    $e = new Engine();
    $e->loadConfig("$tmp/obspam.conf");
    same(5, $e->effectiveLimit(Engine::MAILBOX, 'info@example.com'), 'mailbox');
    same(80, $e->effectiveLimit(Engine::MAILBOX, 'sales@example.com'), 'domain default');
    same(500, $e->effectiveLimit(Engine::DOMAIN, 'example.com'), 'plan default');
    same(1000, $e->effectiveLimit(Engine::SUBSCRIPTION, 'acme'), 'plan subscription');
    file_put_contents("$tmp/bad.conf", "enabled yes\nplan basic\nsubscription acme plan=Basik\n");
    $cases = [
        [fn () => $e->loadConfig("$tmp/bad.conf"), Engine::ESYNTAX, "$tmp/bad.conf:3: unknown plan 'Basik'"],
        [fn () => $e->loadConfigString("enabled yes\n\nenabeld no\n"), Engine::ESYNTAX, "<string>:3: unknown keyword 'enabeld'"],
        [fn () => $e->loadConfigString('action bounce'), Engine::ESYNTAX,
            "<string>:1: bad value 'bounce' for 'action': expected defer or reject"],
        [fn () => $e->loadConfigString("plan a\nx\0y\n"), Engine::ESYNTAX, '<string>:2: line holds a NUL byte'],
        [fn () => $e->loadConfig("$tmp/missing.conf"), Engine::EIO, "$tmp/missing.conf: cannot open: No such file or directory"],
    ];
    foreach ($cases as [$call, $code, $message]) {
        throws($call, $code, $message, $message);
    }
    same(5, $e->effectiveLimit(Engine::MAILBOX, 'info@example.com'), 'nothing changed');
    $e->decide(['sasl_username' => 'info@example.com', 'recipients' => 4, 'time' => T]);
    $e->loadConfigString(str_replace('limit=5', 'limit=3', CONF));
    same(verdict(Engine::REFUSE, Engine::MAILBOX, 'info@example.com', 3, 4, 3569),
        $e->decide(['sasl_username' => 'info@example.com', 'time' => T + 1]), 'a reload keeps the counters');
    $e->loadConfigString("count messages\n");
    same(1, $e->getOption(Engine::OPT_COUNT_UNIT), 'loadConfigString sets options');
    throws(fn () => $e->effectiveLimit(Engine::MAILBOX, 'info@example.com'), Engine::ENOTFOUND, null, 'the file is the whole truth');
});

test('check', function (): void {
    $e = newEngine();
    $info = ['sasl_username' => 'info@example.com'];
    $e->decide($info + ['recipients' => 5, 'time' => T]);
    same(verdict(Engine::REFUSE, Engine::MAILBOX, 'info@example.com', 5, 5, 3570), // T is 30 s into its minute
        $e->check($info + ['time' => T]), 'check at the limit refuses');
    same(0, $e->stats(Engine::MAILBOX, 'info@example.com', T)->refused, 'check records no refusal');
    same(verdict(Engine::ACCEPT, Engine::MAILBOX, 'info@example.com', 5, 0, 0),
        $e->check($info + ['time' => T + 3600]), 'check an hour later');
    same(5, $e->stats(Engine::MAILBOX, 'info@example.com', T)->count, 'check charges nothing and keeps the clock');
    throws(fn () => $e->check(['recipients' => 0]), Engine::EINVAL, null, 'check: no recipients');
});

test('decide', function (): void {
    $e = newEngine();
    $info = ['sasl_username' => 'info@example.com'];
    same(verdict(Engine::ACCEPT, Engine::MAILBOX, 'info@example.com', 5, 0, 0),
        $e->decide($info + ['recipients' => 3, 'time' => T]), 'accept');
    same(verdict(Engine::ACCEPT, Engine::MAILBOX, 'info@example.com', 5, 3, 0),
        $e->decide(['sasl_username' => 'INFO@example.com', 'recipients' => 2, 'time' => T + 10]), 'accept up to the limit');
    same(verdict(Engine::REFUSE, Engine::MAILBOX, 'info@example.com', 5, 5, 3550),
        $e->decide($info + ['time' => T + 20]), 'refuse with retryAfter');
    same(-1, $e->decide($info + ['recipients' => 6, 'time' => T + 20])->retryAfter, 'never fits');
    same(verdict(Engine::ACCEPT, Engine::MAILBOX, 'info@example.com', 5, 0, 0),
        $e->decide($info + ['recipients' => 5, 'time' => T + 3600]), 'an hour later');
    // an undeclared login of a hosted domain is an implicit mailbox
    same(verdict(Engine::ACCEPT, Engine::MAILBOX, 'someone@example.com', 80, 0, 0),
        $e->decide(['sasl_username' => 'someone@example.com', 'time' => T + 3600]), 'a login of a hosted domain');
    same(verdict(Engine::UNKNOWN, -1, '', 0, 0, 0),
        $e->decide(['sasl_username' => 'who@elsewhere.example', 'time' => T + 3600]), 'unknown');
    same(verdict(Engine::UNKNOWN, -1, '', 0, 0, 0),
        $e->decide(['sender' => 'sales@example.com', 'client_address' => '203.0.113.9', 'time' => T + 3600]),
        'an unauthenticated sender from a remote client');
    same(Engine::UNKNOWN, $e->decide(['sender' => '', 'time' => T + 3600])->action, 'the null sender');
    same(Engine::EXEMPT, $e->decide(['sender' => 'sales@example.com', 'flags' => Engine::MSG_FORWARD_LOCAL, 'time' => T + 3600])->action, 'local forward');
    same(Engine::ACCEPT, $e->decide(['sender' => 'sales@example.com', 'flags' => Engine::MSG_FORWARD_REMOTE, 'time' => T + 3600])->action, 'remote forward');
    same(Engine::EXEMPT, $e->decide(['sender' => 'sales@example.com', 'flags' => Engine::MSG_MAILING_LIST, 'time' => T + 3600])->action, 'mailing list');
    // the messages of minute T left the window: 5 + 1 (someone@) + 1 (the remote forward)
    same(verdict(Engine::ACCEPT, Engine::SUBSCRIPTION, 'acme', 1000, 7, 0),
        $e->decide(['flags' => Engine::MSG_SCRIPT, 'uid' => 10001, 'script' => '/srv/a.php', 'time' => T + 3600]), 'a script');
    $e->setOption(Engine::OPT_ENABLED, 0);
    same(verdict(Engine::ACCEPT, -1, '', 0, 0, 0, 3600), $e->decide($info + ['recipients' => 50, 'time' => T + 3600]),
        'disabled: 3600 on accept');
    same(true, $e->stats(Engine::MAILBOX, 'info@example.com', T + 3600)->disabled, 'stats say disabled');
    $e->setOption(Engine::OPT_ENABLED, 1);
    same(Engine::ACCEPT, $e->decide(['sasl_username' => 'sales@example.com'])->action, 'time 0 is now');
    throws(fn () => $e->decide(['recipients' => 0]), Engine::EINVAL, null, 'no recipients');
    throws(fn () => $e->decide(['time' => -1]), Engine::EINVAL, null, 'a negative time');
    $x = throws(fn () => $e->decide($info + ['client_address' => 'not-an-ip']), Engine::EINVAL, null, 'a bad client');
    same($x?->getMessage(), $e->lastError(), "the engine's message");
    throws(fn () => $e->decide(['sendr' => 'x@example.com']), Engine::EINVAL, "decide: unknown field 'sendr'", 'a misspelt field');
    throws(fn () => $e->decide(['recipients' => '3']), Engine::EINVAL, 'decide: recipients: expected an integer from 0 to 4294967295', 'a string count');
    throws(fn () => $e->decide(['recipients' => 1 << 32]), Engine::EINVAL, null, 'recipients out of range');
    throws(fn () => $e->decide(['sender' => 3]), Engine::EINVAL, 'decide: sender must be a string or null, not int', 'a number as sender');
    throws(fn () => $e->decide(['sender' => "a\0b@example.com"]), Engine::EINVAL, null, 'a NUL byte');
});

// ---- windows and the recipients cap (1.3) ---------------------------------

test('windows', function (): void {
    $e = newEngine();
    $mb = Engine::MAILBOX;
    $box = 'info@example.com';
    $all = fn (int $m, int $h, int $d): array => [Engine::WINDOW_MINUTE => $m, Engine::WINDOW_HOUR => $h,
        Engine::WINDOW_DAY => $d];
    same($all(-1, 5, -1), $e->effectiveLimits($mb, $box), 'a new engine: minute and day unlimited');
    $e->setWindowLimit(Engine::SERVER, null, Engine::MAILBOX, Engine::WINDOW_MINUTE, 10);
    $e->setWindowLimit(Engine::PLAN, 'basic', Engine::MAILBOX, Engine::WINDOW_DAY, 500);
    $e->setWindowLimit(Engine::PLAN, 'basic', Engine::SUBSCRIPTION, Engine::WINDOW_DAY, 9000);
    same($all(10, 5, 500), $e->effectiveLimits($mb, $box), 'from the server and the plan');
    same(9000, $e->effectiveWindowLimit(Engine::SUBSCRIPTION, 'acme', 86400), "the subscription's day");
    same(-1, $e->effectiveWindowLimit(Engine::DOMAIN, 'example.com', Engine::WINDOW_DAY), "the domain's day");
    $e->setWindowLimit(Engine::DOMAIN, 'example.com', Engine::MAILBOX, Engine::WINDOW_MINUTE, 3);
    same(3, $e->effectiveWindowLimit($mb, 'sales@example.com', 60), "the domain's default for its mailboxes");
    $e->setWindowLimit($mb, $box, Engine::MAILBOX, Engine::WINDOW_DAY, 50);
    same($all(3, 5, 50), $e->effectiveLimits($mb, $box), "the mailbox's own day");
    same(500, $e->effectiveWindowLimit($mb, 'sales@example.com', Engine::WINDOW_DAY), 'not its sibling');
    $e->setWindowLimit($mb, $box, Engine::MAILBOX, Engine::WINDOW_HOUR, 7);
    same(7, $e->effectiveLimit($mb, $box), 'the hour window is the 1.0 limit');
    $e->setLimit($mb, $box, Engine::MAILBOX, 8);
    same(8, $e->effectiveWindowLimit($mb, $box, Engine::WINDOW_HOUR), 'either way');
    $e->setWindowLimit($mb, $box, Engine::MAILBOX, Engine::WINDOW_MINUTE, Engine::UNLIMITED);
    $e->setWindowLimit($mb, $box, Engine::MAILBOX, Engine::WINDOW_DAY, Engine::INHERIT);
    same($all(-1, 8, 500), $e->effectiveLimits($mb, $box), 'unlimited and inherit per window');
    same(Engine::ACCEPT, $e->decide(['sasl_username' => 'new@example.com', 'time' => T])->action, 'an implicit mailbox');
    same($all(3, 80, 500), $e->effectiveLimits($mb, 'new@example.com'), 'inherits every window');

    $e->setWindowLimit($mb, $box, Engine::MAILBOX, Engine::WINDOW_MINUTE, 4);
    throws(fn () => $e->setWindowLimit($mb, $box, Engine::MAILBOX, 120, 1), Engine::EINVAL,
        'set_window_limit: 120 is not a window (60, 3600 or 86400 seconds)', 'window 120');
    throws(fn () => $e->setWindowLimit($mb, $box, Engine::MAILBOX, 60, -3), Engine::EINVAL,
        'set_window_limit: -3 is not a count, unlimited or inherit', 'limit -3');
    throws(fn () => $e->setWindowLimit(Engine::SERVER, null, Engine::MAILBOX, 60, Engine::INHERIT), Engine::EINVAL,
        'set_window_limit: -2 is not a count or unlimited', 'a server default of inherit');
    throws(fn () => $e->setWindowLimit($mb, $box, Engine::DOMAIN, 60, 1), Engine::EINVAL,
        'set_window_limit: a mailbox has no domain limit', 'a domain limit on a mailbox');
    throws(fn () => $e->setWindowLimit($mb, 'nobody@example.com', Engine::MAILBOX, 60, 1), Engine::ENOTFOUND, null,
        'an unknown mailbox');
    throws(fn () => $e->effectiveWindowLimit($mb, $box, 0), Engine::EINVAL,
        'effective_window_limit: 0 is not a window (60, 3600 or 86400 seconds)', 'window 0');
    throws(fn () => $e->effectiveWindowLimit(Engine::PLAN, 'basic', 60), Engine::EINVAL, null, 'of a plan');
    $x = throws(fn () => $e->effectiveWindowLimit(Engine::DOMAIN, 'nowhere.example', 60), Engine::ENOTFOUND, null,
        'of an unknown domain');
    same($x?->getMessage(), $e->lastError(), "the engine's message");
    same($all(4, 8, 500), $e->effectiveLimits($mb, $box), 'the errors changed nothing');
});

test('max recipients', function (): void {
    $e = newEngine();
    $mb = Engine::MAILBOX;
    $box = 'info@example.com';
    same(Engine::UNLIMITED, $e->effectiveMaxRecipients($mb, $box), 'a new engine: unlimited');
    $e->setMaxRecipients(Engine::SERVER, null, 50);
    same(50, $e->effectiveMaxRecipients(Engine::SUBSCRIPTION, 'acme'), "the server's");
    $e->setMaxRecipients(Engine::PLAN, 'basic', 40);
    same(40, $e->effectiveMaxRecipients($mb, $box), "the plan's");
    $e->setMaxRecipients(Engine::SUBSCRIPTION, 'acme', 30);
    $e->setMaxRecipients(Engine::DOMAIN, 'example.com', 20);
    same([30, 20, 20], [$e->effectiveMaxRecipients(Engine::SUBSCRIPTION, 'acme'),
        $e->effectiveMaxRecipients(Engine::DOMAIN, 'example.com'),
        $e->effectiveMaxRecipients($mb, 'sales@example.com')], 'the nearest one');
    $e->setMaxRecipients($mb, $box, 0);
    same(0, $e->effectiveMaxRecipients($mb, $box), 'its own 0');
    $e->setMaxRecipients($mb, $box, Engine::INHERIT);
    same(20, $e->effectiveMaxRecipients($mb, $box), 'inherit');
    throws(fn () => $e->setMaxRecipients(Engine::SERVER, null, Engine::INHERIT), Engine::EINVAL, null, 'server inherit');
    throws(fn () => $e->setMaxRecipients(Engine::SCRIPT, '/srv/a.php', 5), Engine::EINVAL, null, 'a script');
    throws(fn () => $e->setMaxRecipients($mb, $box, -3), Engine::EINVAL, null, '-3');
    throws(fn () => $e->setMaxRecipients($mb, 'nobody@example.com', 5), Engine::ENOTFOUND, null, 'unknown');
    throws(fn () => $e->effectiveMaxRecipients(Engine::PLAN, 'basic'), Engine::EINVAL, null, 'of a plan');
    same(20, $e->effectiveMaxRecipients($mb, $box), 'the errors changed nothing');

    // the lowest charged object's cap refuses the whole message: window 0,
    // limit the cap, count the recipients, never fits
    $e->setMaxRecipients(Engine::DOMAIN, 'example.com', 3);
    $e->setMaxRecipients(Engine::SUBSCRIPTION, 'acme', 2);
    same(verdict(Engine::REFUSE, $mb, $box, 3, 4, -1, 0),
        $e->decide(['sasl_username' => $box, 'recipients' => 4, 'time' => T]), 'over the cap');
    same(verdict(Engine::ACCEPT, $mb, $box, 5, 0, 0),
        $e->decide(['sasl_username' => $box, 'recipients' => 3, 'time' => T]), 'at the cap');
    $e->setOption(Engine::OPT_COUNT_UNIT, 1);
    same(verdict(Engine::REFUSE, $mb, 'sales@example.com', 3, 4, -1, 0),
        $e->decide(['sasl_username' => 'sales@example.com', 'recipients' => 4, 'time' => T]), 'whatever the unit');
    $e->setOption(Engine::OPT_COUNT_UNIT, 0);
    same(verdict(Engine::REFUSE, Engine::DOMAIN, 'example.com', 3, 4, -1, 0),
        $e->decide(['flags' => Engine::MSG_SCRIPT, 'uid' => 10001, 'domain_hint' => 'example.com', 'recipients' => 4,
            'time' => T]), "a script's domain");
    same(verdict(Engine::REFUSE, Engine::SUBSCRIPTION, 'acme', 2, 3, -1, 0),
        $e->decide(['flags' => Engine::MSG_SCRIPT, 'uid' => 10001, 'recipients' => 3, 'time' => T]),
        "a script's subscription");
    $s = $e->stats($mb, $box, T);
    same([3, 1, 1], [$s->count, $s->refused, $s->exceeded], 'the mailbox: over its own cap');
    $s = $e->stats(Engine::DOMAIN, 'example.com', T);
    same([3, 3, 1], [$s->count, $s->refused, $s->exceeded], 'the domain');
});

test('minute and day windows', function (): void {
    $e = newEngine();
    $box = 'info@example.com';
    $e->setWindowLimit(Engine::MAILBOX, $box, Engine::MAILBOX, Engine::WINDOW_MINUTE, 2);
    same(verdict(Engine::ACCEPT, Engine::MAILBOX, $box, 5, 0, 0),
        $e->decide(['sasl_username' => $box, 'recipients' => 2, 'time' => T]), 'accepted');
    same(verdict(Engine::REFUSE, Engine::MAILBOX, $box, 2, 2, 59, Engine::WINDOW_MINUTE),
        $e->decide(['sasl_username' => $box, 'time' => T + 1]), "over the minute's 2");
    same(stats(false, 5, 2, 1, 1, T + 1, exceeded: 1, exceededTotal: 1, countDay: 2, blockedKind: Engine::MAILBOX,
        blockedBy: $box, limitMinute: 2, countMinute: 2), $e->stats(Engine::MAILBOX, $box, T + 59), 'its stats');
    same(verdict(Engine::ACCEPT, Engine::MAILBOX, $box, 5, 2, 0),
        $e->decide(['sasl_username' => $box, 'recipients' => 2, 'time' => T + 60]), 'a minute later');

    $e->setWindowLimit(Engine::SUBSCRIPTION, 'acme', Engine::SUBSCRIPTION, Engine::WINDOW_DAY, 10);
    $e->decide(['sasl_username' => 'sales@example.com', 'recipients' => 6, 'time' => T + 3600]);
    same(verdict(Engine::REFUSE, Engine::SUBSCRIPTION, 'acme', 10, 10, 86400 - 7230, Engine::WINDOW_DAY),
        $e->decide(['sasl_username' => 'sales@example.com', 'time' => T + 7200]), "over the day's 10");
    // (refused twice in all: the refusal of info@ in the minute went through it)
    same(stats(false, 1000, 0, 1, 2, T + 7200, exceeded: 1, exceededTotal: 1, countDay: 10,
        blockedKind: Engine::SUBSCRIPTION, blockedBy: 'acme', limitDay: 10),
        $e->stats(Engine::SUBSCRIPTION, 'acme', T + 7200), 'its stats');
});

test('who is named', function (): void {
    $e = newEngine();
    $box = 'info@example.com';
    $e->setWindowLimit(Engine::MAILBOX, $box, Engine::MAILBOX, Engine::WINDOW_MINUTE, 5);
    same(verdict(Engine::REFUSE, Engine::MAILBOX, $box, 5, 0, -1, 3600),
        $e->decide(['sasl_username' => $box, 'recipients' => 6, 'time' => T]), 'equal waits: the longer window');
    $e->setWindowLimit(Engine::SUBSCRIPTION, 'acme', Engine::SUBSCRIPTION, Engine::WINDOW_MINUTE, 5);
    same(verdict(Engine::REFUSE, Engine::SUBSCRIPTION, 'acme', 5, 0, -1, 60),
        $e->decide(['sasl_username' => $box, 'recipients' => 6, 'time' => T]), 'equal waits: the higher level');
    $e->setWindowLimit(Engine::SUBSCRIPTION, 'acme', Engine::SUBSCRIPTION, Engine::WINDOW_MINUTE, Engine::INHERIT);
    $e->setLimit(Engine::MAILBOX, $box, Engine::MAILBOX, 100);
    $e->setMaxRecipients(Engine::MAILBOX, $box, 5);
    same(verdict(Engine::REFUSE, Engine::MAILBOX, $box, 5, 0, -1, 60),
        $e->decide(['sasl_username' => $box, 'recipients' => 6, 'time' => T]), 'the cap is the shortest window');
    $e->setMaxRecipients(Engine::MAILBOX, $box, Engine::INHERIT);
    $e->setWindowLimit(Engine::MAILBOX, $box, Engine::MAILBOX, Engine::WINDOW_MINUTE, 3);
    $e->setWindowLimit(Engine::MAILBOX, $box, Engine::MAILBOX, Engine::WINDOW_DAY, 3);
    $e->decide(['sasl_username' => $box, 'recipients' => 3, 'time' => T]);
    same(verdict(Engine::REFUSE, Engine::MAILBOX, $box, 3, 3, 86400 - 40, 86400),
        $e->decide(['sasl_username' => $box, 'time' => T + 10]), 'the longest wait: the day');
});

test('report and notice windows', function (): void {
    $e = newEngine();
    $got = [];
    $e->setNotify(function (Notice $n) use (&$got): void {
        $got[] = $n;
    });
    $e->setWindowLimit(Engine::MAILBOX, 'info@example.com', Engine::MAILBOX, Engine::WINDOW_MINUTE, 2);
    $e->setMaxRecipients(Engine::DOMAIN, 'example.com', 3);
    $e->decide(['sasl_username' => 'info@example.com', 'recipients' => 2, 'time' => T]);
    $e->decide(['sasl_username' => 'info@example.com', 'time' => T + 1]);
    $e->decide(['sasl_username' => 'sales@example.com', 'recipients' => 4, 'time' => T + 2]);
    same([
        new ReportRow(Engine::MAILBOX, 'info@example.com', 2, 1, T + 1, T + 1, 1, 60),
        new ReportRow(Engine::MAILBOX, 'sales@example.com', 0, 1, T + 2, T + 2, 1, 0),
    ], $e->report(), 'the minute window, and the cap (0)');
    $e->notifyFlush(T0 + 3600);
    same([
        new Notice(Engine::MAILBOX, 'info@example.com', 'acme', 'ops@acme.example', 2, 2, 1, T + 1, T + 1, T0,
            T0 + 3600, 1, 60),
        new Notice(Engine::MAILBOX, 'sales@example.com', 'acme', 'ops@acme.example', 3, 0, 1, T + 2, T + 2, T0,
            T0 + 3600, 1, 0),
    ], $got, 'notices name the window of their limit');
});

function batchEngine(): Engine
{
    $e = new Engine();
    $e->loadConfigString(BATCH_CONF);
    return $e;
}

test('decideBatch', function (): void {
    $orders = 'orders@shop.example';
    $e = batchEngine();
    $got = $e->decideBatch([
        ['sasl_username' => $orders, 'time' => T],
        ['sasl_username' => $orders, 'time' => T + 10],
        ['sasl_username' => $orders, 'time' => T + 20],
        ['sasl_username' => 'someone@shop.example', 'recipients' => 3, 'time' => T + 20],
        ['sasl_username' => 'who@elsewhere.example', 'time' => T + 20],
    ]);
    same(5, count($got), 'one verdict per message');
    $fields = fn (Verdict $v): array => [$v->action, $v->kind, $v->object, $v->limit, $v->count, $v->retryAfter];
    same([Engine::ACCEPT, Engine::MAILBOX, $orders, 2, 0, 0], $fields($got[0]), 'first: accepted');
    same([Engine::ACCEPT, Engine::MAILBOX, $orders, 2, 1, 0], $fields($got[1]), 'second: accepted, at the limit');
    same([Engine::REFUSE, Engine::MAILBOX, $orders, 2, 2, 3550], $fields($got[2]), 'third: refused');
    same([Engine::ACCEPT, Engine::MAILBOX, 'someone@shop.example', 100, 0, 0], $fields($got[3]), 'a login of the domain');
    same([3600, 3600, 3600, 3600, 0], array_map(fn (Verdict $v) => $v->window, $got), 'the windows');
    same([Engine::UNKNOWN, -1, '', 0, 0, 0], $fields($got[4]), 'unknown');
    same(stats(false, 2, 2, 1, 1, T + 20, exceeded: 1, exceededTotal: 1, countDay: 2, blockedKind: Engine::MAILBOX,
        blockedBy: $orders, countMinute: 2), $e->stats(Engine::MAILBOX, $orders, T + 20), 'the mailbox after the batch');
    same(5, $e->stats(Engine::SUBSCRIPTION, 'shop', T + 20)->count, 'the subscription after the batch');

    // the same verdicts as decide() on another engine with the same configuration
    $kinds = [
        ['sasl_username' => 'info@example.com', 'recipients' => 2],
        ['sender' => 'sales@example.com', 'client_address' => '203.0.113.9'],
        ['flags' => Engine::MSG_SCRIPT, 'uid' => 10001, 'script' => '/srv/www/Send.php', 'recipients' => 2],
        ['sasl_username' => 'who@elsewhere.example'],
        ['sender' => 'sales@example.com', 'flags' => Engine::MSG_FORWARD_LOCAL],
        ['sasl_username' => 'someone@example.com', 'recipients' => 80],
    ];
    $messages = [];
    for ($i = 0; $i < 48; $i++) {
        $messages[] = $kinds[$i % count($kinds)] + ['time' => T + 7 * $i];
    }
    $a = newEngine();
    $b = newEngine();
    $got = $a->decideBatch($messages);
    $want = array_map(fn (array $m) => $b->decide($m), $messages);
    same($want, $got, 'the verdicts of decide()');
    $actions = array_unique(array_map(fn (Verdict $v) => $v->action, $got));
    sort($actions);
    same([Engine::ACCEPT, Engine::REFUSE, Engine::EXEMPT, Engine::UNKNOWN], $actions, 'every kind of verdict');
    same($b->report(), $a->report(), 'the same report');
    foreach ([[Engine::MAILBOX, 'info@example.com'], [Engine::DOMAIN, 'example.com'], [Engine::SUBSCRIPTION, 'acme']] as [$kind, $name]) {
        same($b->stats($kind, $name, T + 400), $a->stats($kind, $name, T + 400), "the same stats of $name");
    }

    // empty
    $e = batchEngine();
    same([], $e->decideBatch([]), 'an empty batch');
    same(0, $e->stats(Engine::MAILBOX, $orders, T)->count, 'an empty batch decides nothing');
    same('', $e->lastError(), 'an empty batch fails nothing');

    // failing messages: each has its own status and message, and the
    // others their verdicts (1.3)
    $o = ['sasl_username' => $orders];
    $got = $e->decideBatch([$o + ['time' => T], ['recipients' => 0], $o + ['time' => T + 1],
        ['sasl_username' => 'someone@shop.example', 'client_address' => 'not-an-address', 'time' => T + 1]]);
    same([
        new Verdict(Engine::ACCEPT, Engine::MAILBOX, $orders, 2, 0, 0, 3600),
        new Verdict(-1, -1, '', 0, 0, 0, 0, Engine::EINVAL, 'decide: no recipients'),
        new Verdict(Engine::ACCEPT, Engine::MAILBOX, $orders, 2, 1, 0, 3600),
        new Verdict(-1, -1, '', 0, 0, 0, 0, Engine::EINVAL,
            "decide: client address 'not-an-address' is not an IPv4 or IPv6 address"),
    ], $got, 'a verdict per message, failures with their status');
    same([true, false, true, false], array_map(fn (Verdict $v) => $v->ok(), $got), 'ok()');
    // the messages before and after the failing ones were decided and
    // charged; checking a failed message again charged nothing
    same(2, $e->stats(Engine::MAILBOX, $orders, T + 1)->count, 'the other messages were decided');
    same(2, $e->stats(Engine::DOMAIN, 'shop.example', T + 1)->count, 'and charged once');
    same([
        new Verdict(Engine::REFUSE, Engine::MAILBOX, $orders, 2, 2, 3568, 3600),
        new Verdict(-1, -1, '', 0, 0, 0, 0, Engine::EINVAL, 'decide: time is negative'),
    ], $e->decideBatch([$o + ['time' => T + 2], $o + ['time' => -1]]), 'a negative time');
    $s = $e->stats(Engine::MAILBOX, $orders, T + 2);
    same([2, 1], [$s->count, $s->refused], 'the first was decided (refused)');

    // bad values are refused before C: nothing is decided
    $e = batchEngine();
    $ok = $o + ['time' => T];
    throws(fn () => $e->decideBatch([$ok, ['sendr' => 'x@shop.example']]), Engine::EINVAL,
        "decide_batch: message 1: unknown field 'sendr'", 'a misspelt field');
    throws(fn () => $e->decideBatch([$ok, ['recipients' => '3']]), Engine::EINVAL,
        'decide_batch: message 1: recipients: expected an integer from 0 to 4294967295', 'a string count');
    throws(fn () => $e->decideBatch([$ok, 'x@shop.example']), Engine::EINVAL,
        'decide_batch: message 1 must be an array, not string', 'a message that is not an array');
    throws(fn () => $e->decideBatch([['sender' => "a\0b@shop.example"]]), Engine::EINVAL, null, 'a NUL byte');
    same(0, $e->stats(Engine::MAILBOX, $orders, T)->count, 'nothing decided');

    // what the notify callback throws comes out once every message was decided
    $e = batchEngine();
    $e->setOption(Engine::OPT_NOTIFY_IMMEDIATE, 1);
    $e->setNotify(function (Notice $n): void {
        throw new LogicException($n->name);
    });
    $two = $o + ['recipients' => 2];
    try {
        $e->decideBatch([$two + ['time' => T], $two + ['time' => T + 5], ['sasl_username' => 'someone@shop.example', 'time' => T + 6]]);
        ok(false, 'rethrown by decideBatch', 'nothing thrown');
    } catch (LogicException $t) {
        same($orders, $t->getMessage(), 'rethrown by decideBatch');
    }
    $s = $e->stats(Engine::MAILBOX, $orders, T + 6);
    same([2, 1], [$s->count, $s->refused], 'the refused message was decided');
    same(3, $e->stats(Engine::DOMAIN, 'shop.example', T + 6)->count, 'and the one after it');
});

test('statistics', function (): void {
    $e = newEngine();
    $e->decide(['sasl_username' => 'info@example.com', 'recipients' => 3, 'time' => T]);
    $e->decide(['sasl_username' => 'info@example.com', 'recipients' => 3, 'time' => T + 60]);
    $e->decide(['sasl_username' => 'sales@example.com', 'recipients' => 2, 'time' => T + 3600]);
    $e->decide(['sasl_username' => 'info@example.com', 'recipients' => 9, 'time' => T + 3700]);
    $e->decide(['flags' => Engine::MSG_SCRIPT, 'uid' => 10001, 'script' => '/srv/www/Send.php', 'recipients' => 4, 'time' => T + 3700]);
    $e->decide(['flags' => Engine::MSG_SCRIPT, 'uid' => 10001, 'script' => '/srv/www/other.php', 'time' => T + 3701]);
    same(stats(true, 5, 0, 1, 2, T + 3700, exceeded: 1, exceededTotal: 2, countDay: 3),
        $e->stats(Engine::MAILBOX, 'info@example.com', T + 3700), 'mailbox stats');
    // (the script's 4 and 1 are within the minute, T + 3701 in the bucket of T + 3700)
    same(stats(true, 1000, 7, 1, 2, T + 3700, countDay: 10, countMinute: 5),
        $e->stats(Engine::SUBSCRIPTION, 'acme', T + 3700), 'subscription stats: refused, never over its own limit');
    $e->setLimit(Engine::SUBSCRIPTION, 'acme', Engine::SUBSCRIPTION, 7);
    $s = $e->stats(Engine::MAILBOX, 'sales@example.com', T + 3700);
    same([false, Engine::SUBSCRIPTION, 'acme'], [$s->sending, $s->blockedKind, $s->blockedBy], 'blocked by an ancestor');
    $e->setLimit(Engine::SUBSCRIPTION, 'acme', Engine::SUBSCRIPTION, Engine::INHERIT);
    throws(fn () => $e->stats(Engine::MAILBOX, 'nobody@example.com'), Engine::ENOTFOUND, null, 'stats of unknown');
    throws(fn () => $e->stats(Engine::PLAN, 'basic'), Engine::EINVAL, null, 'stats of a plan');
    same([new HistoryEntry(T0, 3, 1), new HistoryEntry(T0 + 3600, 0, 1)],
        $e->history(Engine::MAILBOX, 'info@example.com'), 'history');
    same([new HistoryEntry(T0 + 3600, 7, 1)], $e->history(Engine::SUBSCRIPTION, 'acme', T0 + 3600, T0 + 7200), 'history of one hour');
    same([], $e->history(Engine::SUBSCRIPTION, 'acme', 0, T0), 'history before');
    same([new HistoryEntry(T0 + 3600, 4, 0)], $e->history(Engine::SCRIPT, '/srv/www/Send.php'), 'history of a script');
    throws(fn () => $e->history(Engine::SCRIPT, '/never/seen.php'), Engine::ENOTFOUND, null, 'history of an unknown script');
    throws(fn () => $e->history(Engine::PLAN, 'basic'), Engine::EINVAL, null, 'history of a plan');
    // only the mailbox went over its own limit
    // (its last attempt went over its hourly limit)
    same([
        new ReportRow(Engine::MAILBOX, 'info@example.com', 3, 2, T + 60, T + 3700, 2, 3600),
        new ReportRow(Engine::SCRIPT, '/srv/www/Send.php', 4, 0, 0, 0, 0, 0, 'acme', 10001),
        new ReportRow(Engine::SCRIPT, '/srv/www/other.php', 1, 0, 0, 0, 0, 0, 'acme', 10001),
    ], $e->report(), 'report');
    same(new ReportRow(Engine::MAILBOX, 'info@example.com', 0, 1, T + 3700, T + 3700, 1, 3600),
        $e->report(T0 + 3600, T0 + 7200)[0], 'report of one hour');
    same([], $e->report(0, T0), 'empty report');
    // The C callbacks are made once: many calls do not pile them up.
    $before = memory_get_usage();
    for ($i = 0; $i < 3000; $i++) {
        $e->report();
        $e->history(Engine::MAILBOX, 'info@example.com');
    }
    ok(memory_get_usage() - $before < 100000, 'report() and history() do not leak',
        (memory_get_usage() - $before) . ' bytes more');
});

/** Decides two messages of info@ so that the second is refused. */
function refuse(Engine $e, int $t = T): void
{
    $e->decide(['sasl_username' => 'info@example.com', 'recipients' => 4, 'time' => $t]);
    same(Engine::REFUSE, $e->decide(['sasl_username' => 'info@example.com', 'recipients' => 4, 'time' => $t + 5])->action, 'refused');
}

test('notify', function (): void {
    $e = newEngine();
    $got = [];
    $e->setNotify(function (Notice $n) use (&$got): void {
        $got[] = $n;
    });
    refuse($e);
    $e->notifyFlush(T0 + 3599);
    same([], $got, 'nothing before the period ends');
    $e->notifyFlush(T0 + 3600);
    // only about the mailbox, the one over its own limit
    same([
        new Notice(Engine::MAILBOX, 'info@example.com', 'acme', 'ops@acme.example', 5, 4, 1, T + 5, T + 5, T0, T0 + 3600, 1,
            3600),
    ], $got, 'the notices');
    $e->notifyFlush(T0 + 7200);
    same(1, count($got), 'nothing twice');

    // no contact: null
    $e = newEngine();
    $e->setContact('acme', null);
    $got = [];
    $e->setNotify(function (Notice $n) use (&$got): void {
        $got[] = [$n->subscription, $n->contact];
    });
    refuse($e);
    $e->notifyFlush(T0 + 3600);
    same([['acme', null]], $got, 'contact null');

    // immediate
    $e = newEngine();
    $e->setOption(Engine::OPT_NOTIFY_IMMEDIATE, 1);
    $got = [];
    $e->setNotify(function (Notice $n) use (&$got): void {
        $got[] = [$n->kind, $n->name, $n->refused, $n->sent, $n->firstRefused, $n->exceeded];
    });
    refuse($e);
    same([[Engine::MAILBOX, 'info@example.com', 1, 4, T + 5, 1]], $got, 'notified at once');

    // null drops the notices
    $e = newEngine();
    $got = [];
    $e->setNotify(function (Notice $n) use (&$got): void {
        $got[] = $n;
    });
    $e->setNotify(null);
    refuse($e);
    $e->notifyFlush(T0 + 3600);
    $e->setNotify(function (Notice $n) use (&$got): void {
        $got[] = $n;
    });
    $e->notifyFlush(T0 + 7200);
    same([], $got, 'null drops');

    // two engines, each its own callback
    $a = newEngine();
    $b = newEngine();
    $fromA = $fromB = 0;
    $a->setNotify(function () use (&$fromA): void {
        $fromA++;
    });
    $b->setNotify(function () use (&$fromB): void {
        $fromB++;
    });
    refuse($a);
    $a->notifyFlush(T0 + 3600);
    $b->notifyFlush(T0 + 3600);
    same([1, 0], [$fromA, $fromB], 'each engine calls its own callback');
    throws(fn () => $e->notifyFlush(-1), Engine::EINVAL, null, 'a negative time');
    $e->notifyFlush();
});

test('notify errors', function (): void {
    $e = newEngine();
    $calls = [];
    $e->setNotify(function (Notice $n) use (&$calls): void {
        $calls[] = $n->name;
        throw new RuntimeException("cannot mail {$n->name}");
    });
    refuse($e);
    try {
        $e->notifyFlush(T0 + 3600);
        ok(false, 'rethrown', 'nothing thrown');
    } catch (RuntimeException $t) {
        same('cannot mail info@example.com', $t->getMessage(), 'the exception is rethrown');
    }
    same(['info@example.com'], $calls, 'after every notice');
    $e->notifyFlush(T0 + 3600);
    same(1, count($calls), 'the notices count as delivered');

    $e = newEngine();
    $e->setOption(Engine::OPT_NOTIFY_IMMEDIATE, 1);
    $e->setNotify(function (Notice $n): void {
        throw new LogicException($n->name);
    });
    $e->decide(['sasl_username' => 'info@example.com', 'recipients' => 4, 'time' => T]);
    try {
        $e->decide(['sasl_username' => 'info@example.com', 'recipients' => 4, 'time' => T + 5]);
        ok(false, 'rethrown by decide', 'nothing thrown');
    } catch (LogicException $t) {
        same('info@example.com', $t->getMessage(), 'rethrown by decide');
    }
    same(1, $e->stats(Engine::MAILBOX, 'info@example.com', T + 5)->refused, 'the message was decided');

    $e = newEngine();
    $seen = [];
    $e->setNotify(function (Notice $n) use ($e, &$seen): void {
        try {
            $e->stats($n->kind, $n->name);
        } catch (Obspam\Exception $x) {
            $seen[] = [$x->getCode(), $x->getMessage()];
        }
    });
    refuse($e);
    $e->notifyFlush(T0 + 3600);
    same([[Engine::EINVAL, 'stats: an engine cannot be used from its own callback']], $seen, 'no reentry');

    $other = newEngine();
    $limits = [];
    $e = newEngine();
    $e->setNotify(function (Notice $n) use ($other, &$limits): void {
        $limits[] = $other->effectiveLimit($n->kind, $n->name);
    });
    refuse($e);
    $e->notifyFlush(T0 + 3600);
    same([5], $limits, 'another engine may be used');
});

test('snapshot', function (): void {
    global $tmp;
    $path = "$tmp/state.bin";
    $a = newEngine();
    refuse($a);
    $a->decide(['flags' => Engine::MSG_SCRIPT, 'uid' => 10001, 'script' => '/srv/a.php', 'time' => T + 6]);
    $a->saveState($path);
    $before = [$a->stats(Engine::MAILBOX, 'info@example.com', T + 10), $a->stats(Engine::SUBSCRIPTION, 'acme', T + 10),
        $a->report(), $a->history(Engine::SCRIPT, '/srv/a.php')];
    $a->close();
    $b = newEngine();
    same(0, $b->stats(Engine::MAILBOX, 'info@example.com', T + 10)->count, 'a new engine starts from zero');
    $b->loadState($path);
    $after = [$b->stats(Engine::MAILBOX, 'info@example.com', T + 10), $b->stats(Engine::SUBSCRIPTION, 'acme', T + 10),
        $b->report(), $b->history(Engine::SCRIPT, '/srv/a.php')];
    same($before, $after, 'the round trip keeps everything');
    same(stats(true, 5, 4, 1, 1, T + 5, exceeded: 1, exceededTotal: 1, countDay: 4, countMinute: 4), $after[0],
        'exact stats after the load');
    same(verdict(Engine::REFUSE, Engine::MAILBOX, 'info@example.com', 5, 4, 3559),
        $b->decide(['sasl_username' => 'info@example.com', 'recipients' => 2, 'time' => T + 11]), 'the counters go on');
    $data = file_get_contents($path);
    $cases = [
        'empty.bin' => ['', Engine::ECORRUPT],
        'truncated.bin' => [substr($data, 0, -3), Engine::ECORRUPT],
        'flipped.bin' => [substr($data, 0, -1) . chr(ord($data[strlen($data) - 1]) ^ 1), Engine::ECORRUPT],
        'foreign.bin' => [str_repeat('NOTOBSPAM', 8), Engine::ECORRUPT],
        // the format version (bytes 8..11) one above the library's
        'newer.bin' => [substr($data, 0, 8) . pack('V', unpack('V', substr($data, 8, 4))[1] + 1) . substr($data, 12),
            Engine::EVERSION],
    ];
    foreach ($cases as $name => [$content, $code]) {
        file_put_contents("$tmp/$name", $content);
        $x = throws(fn () => $b->loadState("$tmp/$name"), $code, null, $name);
        same($x?->getMessage(), $b->lastError(), "$name: the engine's message");
    }
    throws(fn () => $b->loadState("$tmp/absent.bin"), Engine::EIO, null, 'absent');
    throws(fn () => $b->saveState("$tmp/no/such/dir/s.bin"), Engine::EIO, null, 'unwritable');
    same(4, $b->stats(Engine::MAILBOX, 'info@example.com', T + 11)->count, 'unchanged by the errors');
});

test('journal', function (): void {
    global $tmp;
    $dir = "$tmp/journal";
    mkdir($dir);
    $state = "$dir/state";
    $a = newEngine();
    same(['replayed' => 0, 'ignored' => 0], $a->openJournal($state), 'a new journal');
    $a->decide(['sasl_username' => 'info@example.com', 'recipients' => 3, 'time' => T]);
    $a->saveState($state);
    $a->decide(['sasl_username' => 'info@example.com', 'recipients' => 1, 'time' => T + 1]);
    same(Engine::REFUSE, $a->decide(['sasl_username' => 'info@example.com', 'recipients' => 4, 'time' => T + 2])->action,
        'refused');
    $a->flushJournal();
    // $a is left open: as if the process had been killed
    $b = newEngine();
    $b->loadState($state);
    same(['replayed' => 2, 'ignored' => 0], $b->openJournal($state, true), 'the decisions after the save');
    same($a->stats(Engine::MAILBOX, 'info@example.com', T + 3), $b->stats(Engine::MAILBOX, 'info@example.com', T + 3),
        'the same counters');
    same(4, $b->stats(Engine::MAILBOX, 'info@example.com', T + 3)->count, 'the count');
    throws(fn () => $b->openJournal($state), Engine::EINVAL, 'journal_open: a journal is open already', 'twice');
    $b->closeJournal();
    $b->closeJournal();
    $b->flushJournal();
    file_put_contents("$dir/x.journal", 'not a journal, whatever it is, 32+ bytes');
    throws(fn () => $b->openJournal("$dir/x"), Engine::ECORRUPT, null, 'not a journal');
    same(2147483648, Engine::RECIPIENTS_MAX, 'RECIPIENTS_MAX');
    $a->close();
    $b->close();
});

// The panel tests' tree, which test_python.py loads too.
define('PANEL_CONF', file_get_contents(__DIR__ . '/panel.conf'));

function panelEngine(): Engine
{
    $e = new Engine();
    $e->loadConfigString(PANEL_CONF);
    return $e;
}

/** @return list<string> the names of an enumeration */
function names(Engine $e, mixed ...$args): array
{
    return array_map(fn (Obspam\Entry $x) => $x->name, iterator_to_array($e->enumerate(...$args), false));
}

test('enumerate', function (): void {
    $e = panelEngine();
    $e->decide(['sasl_username' => 'a@a.test', 'recipients' => 2, 'time' => T]);
    $want = ['a@a.test', 'b@b.test', 'c@a.test', 'y@z.test'];
    same($want, names($e, Engine::MAILBOX, now: T), 'mailboxes in name order');
    same(['a.test', 'b.test', 'z.test'], names($e, Engine::DOMAIN), 'domains');
    same(['acme', 'spare', 'zeta'], names($e, Engine::SUBSCRIPTION), 'subscriptions');
    $got = iterator_to_array($e->enumerate(Engine::MAILBOX, now: T), false);
    same(new Obspam\Entry(Engine::MAILBOX, 'a@a.test', $e->stats(Engine::MAILBOX, 'a@a.test', T)), $got[0],
        'an entry is its stats');
    same([2, 0, 0, 0], array_map(fn ($x) => $x->stats->count, $got), 'the counts');
    same(5, $got[0]->stats->limit, 'the limit');
    same(['a@a.test', 'c@a.test'], names($e, Engine::MAILBOX, 'A.test'), 'under a domain');
    same(['a@a.test', 'b@b.test', 'c@a.test'], names($e, Engine::MAILBOX, 'acme'), 'under a subscription');
    same(['a.test', 'b.test'], names($e, Engine::DOMAIN, 'basic'), 'under a plan');
    same(['a@a.test'], names($e, Engine::MAILBOX, active: true, now: T), 'active only');
    foreach ([1, 2, 3, 4, 5, 1000] as $page) {
        same($want, names($e, Engine::MAILBOX, page: $page), "page $page");
        same(array_slice($want, 0, 3), names($e, Engine::MAILBOX, limit: 3, page: $page), "page $page, limit 3");
        same(array_slice($want, 2), names($e, Engine::MAILBOX, after: 'b@b.test', page: $page), "page $page, after");
        same(['c@a.test'], names($e, Engine::MAILBOX, after: 'b@b.test', limit: 1, page: $page), "page $page, both");
    }
    same([], names($e, Engine::MAILBOX, after: 'y@z.test'), 'after the last');
    for ($i = 0; $i < 120; $i++) {
        $e->add(Engine::MAILBOX, sprintf('m%03d@b.test', $i));
    }
    $pages = [];
    $last = null;
    while (($got = names($e, Engine::MAILBOX, 'b.test', after: $last, limit: 50)) !== []) {
        $pages[] = $got;
        $last = $got[count($got) - 1];
    }
    same([50, 50, 21], array_map('count', $pages), 'pages of 50');
    $it = $e->enumerate(Engine::MAILBOX, 'b.test', page: 2);
    $first = [];
    foreach ($it as $x) {
        $first[] = $x->name;
        if (count($first) === 2) {
            break;
        }
    }
    same(['b@b.test', 'm000@b.test'], $first, 'the first page');
    throws(fn () => $e->enumerate(Engine::MAILBOX, 'nowhere.test'), Engine::ENOTFOUND, null,
        'an unknown parent throws at the call');
    throws(fn () => $e->enumerate(Engine::PLAN), Engine::EINVAL, null, 'a plan');
    throws(fn () => $e->enumerate(Engine::MAILBOX, page: 0), Engine::EINVAL,
        'enumerate: page must be 1 or more, not 0', 'page 0');
    throws(fn () => $e->enumerate(Engine::MAILBOX, limit: -1), Engine::EINVAL,
        'enumerate: limit must be 0 (no bound) or more, not -1', 'limit -1');
});

test('top, reset and the unknown-uid subscription', function (): void {
    $e = panelEngine();
    $e->decide(['sasl_username' => 'a@a.test', 'recipients' => 4, 'time' => T]);
    $e->decide(['sasl_username' => 'a@a.test', 'recipients' => 4, 'time' => T + 1]);
    $e->decide(['sasl_username' => 'y@z.test', 'recipients' => 3, 'time' => T + 2]);
    $e->decide(['flags' => Engine::MSG_SCRIPT, 'uid' => 1002, 'script' => '/srv/z/send.php', 'recipients' => 6,
        'time' => T + 3]);
    same([
        new ReportRow(Engine::SUBSCRIPTION, 'zeta', 9, 0, 0, 0, 0, 0),
        new ReportRow(Engine::SCRIPT, '/srv/z/send.php', 6, 0, 0, 0, 0, 0, 'zeta', 1002),
        new ReportRow(Engine::SUBSCRIPTION, 'acme', 4, 1, 0, 0, 0, 0),
        new ReportRow(Engine::DOMAIN, 'a.test', 4, 1, 0, 0, 0, 0),
        new ReportRow(Engine::MAILBOX, 'a@a.test', 4, 1, T + 1, T + 1, 1, 3600),
        new ReportRow(Engine::DOMAIN, 'z.test', 3, 0, 0, 0, 0, 0),
        new ReportRow(Engine::MAILBOX, 'y@z.test', 3, 0, 0, 0, 0, 0),
    ], $e->top(T0, T0 + 3600), 'top');
    same(['a@a.test', 'y@z.test'], array_map(fn ($r) => $r->name, $e->top(T0, T0 + 3600, 2, Engine::MAILBOX)),
        'the top mailboxes');
    same([], $e->top(T0 + 3600, T0 + 7200), 'an hour without mail');
    throws(fn () => $e->top(n: -1), Engine::EINVAL, 'top: n must be 0 (all) or more, not -1', 'n -1');
    throws(fn () => $e->top(kind: Engine::PLAN), Engine::EINVAL, null, 'a plan');

    $e = panelEngine();
    for ($i = 0; $i < 5; $i++) {
        $e->decide(['sasl_username' => 'a@a.test', 'time' => T + $i]);
    }
    same(Engine::REFUSE, $e->decide(['sasl_username' => 'a@a.test', 'time' => T + 10])->action, 'at its limit');
    $e->reset(Engine::MAILBOX, 'A@a.test', T + 20);
    $s = $e->stats(Engine::MAILBOX, 'a@a.test', T + 20);
    same([0, 0, 0, true, T + 20], [$s->count, $s->countMinute, $s->countDay, $s->sending, $s->lastReset], 'reset');
    same(5, $e->stats(Engine::DOMAIN, 'a.test', T + 20)->count, 'only that object');
    same(Engine::ACCEPT, $e->decide(['sasl_username' => 'a@a.test', 'time' => T + 21])->action, 'it sends again');
    same([new HistoryEntry(T0, 6, 1)], $e->history(Engine::MAILBOX, 'a@a.test'), 'the history keeps what happened');
    throws(fn () => $e->reset(Engine::MAILBOX, 'nobody@a.test'), Engine::ENOTFOUND, null, 'an unknown mailbox');

    $script = ['flags' => Engine::MSG_SCRIPT, 'uid' => 4242, 'script' => '/tmp/x.pl', 'time' => T];
    same(Engine::UNKNOWN, $e->decide($script)->action, 'an unknown uid');
    $e->setUnknownUidSubscription('Spare');
    $v = $e->decide($script);
    same([Engine::ACCEPT, Engine::SUBSCRIPTION, 'spare'], [$v->action, $v->kind, $v->object], 'charged to spare');
    $rows = array_values(array_filter($e->report(T0, T0 + 3600), fn ($r) => $r->kind === Engine::SCRIPT));
    same([['/tmp/x.pl', 'spare', 4242]], array_map(fn ($r) => [$r->name, $r->subscription, $r->uid], $rows),
        'the script row names its subscription and uid');
    $e->setUnknownUidSubscription(null);
    same(Engine::UNKNOWN, $e->decide($script)->action, 'none again');
    throws(fn () => $e->setUnknownUidSubscription('nobody'), Engine::ENOTFOUND, null, 'an unknown subscription');
});

echo "$passed passed, $failed failed\n";
exit($failed === 0 ? 0 : 1);
