<?php

// SPDX-License-Identifier: MIT

declare(strict_types=1);

namespace Obspam;

/**
 * An obspam engine: the limit tree, the counters and the statistics.
 *
 * A new engine limits nothing until a configuration is loaded or objects
 * and limits are added. Methods throw Obspam\Exception on failure and on an
 * engine that is closed. Callbacks may not call the same engine.
 */
final class Engine
{
    /** The major version of libobspam this binding accepts. */
    public const VERSION_MAJOR = 1;
    /**
     * The oldest minor version of that major with every function and field
     * this binding uses (the 1.3 additions).
     */
    public const VERSION_MINOR_MIN = 3;
    /** The longest name (domain, mailbox, plan, subscription), in bytes. */
    public const NAME_MAX = 320;
    /** Room for any engine message (obspam_engine_errmsg_r: shorter than 512). */
    private const ERRMSG_SIZE = 512;
    /** The environment variable that names the library. */
    public const LIBRARY_ENV = 'OBSPAM_LIBRARY';
    /** The library used when neither an argument nor OBSPAM_LIBRARY names one. */
    public const DEFAULT_LIBRARY = 'libobspam.so.1';
    /** The FFI scope of Engine::scopeHeader(), for ffi.preload. */
    public const FFI_SCOPE = 'obspam';

    // Error codes (enum obspam_errno).
    public const OK = 0;
    public const ENOMEM = -1;
    public const EINVAL = -2;
    public const ENOTFOUND = -3;
    public const EEXIST = -4;
    public const ESYNTAX = -5;
    public const EIO = -6;
    public const ECORRUPT = -7;
    public const EVERSION = -8;
    public const EUNAVAIL = -9;

    // Kinds of objects (enum obspam_kind); SCRIPT appears in reports only.
    public const SERVER = 0;
    public const PLAN = 1;
    public const SUBSCRIPTION = 2;
    public const DOMAIN = 3;
    public const MAILBOX = 4;
    public const SCRIPT = 5;

    // Limit values; any value >= 0 is a count per hour.
    public const UNLIMITED = -1;
    public const INHERIT = -2;

    // Verdict actions (enum obspam_action).
    public const ACCEPT = 0;
    public const REFUSE = 1;
    public const EXEMPT = 2;
    public const UNKNOWN = 3;

    // Message flags (OBSPAM_MSG_*), for decide()'s 'flags'.
    public const MSG_SCRIPT = 1;
    public const MSG_FORWARD_LOCAL = 2;
    public const MSG_FORWARD_REMOTE = 4;
    public const MSG_MAILING_LIST = 8;
    public const MSG_PROBE = 16;
    /** obspam_decide_start's per-message flag (1.4); the binding decides with decideBatch() and check() instead. */
    public const DECIDE_DRY = 1;

    // Options (enum obspam_option).
    public const OPT_ENABLED = 1;
    public const OPT_COUNT_UNIT = 2;
    public const OPT_ACTION = 3;
    public const OPT_COUNT_UNAUTHENTICATED = 4;
    public const OPT_COUNT_FORWARD_LOCAL = 5;
    public const OPT_COUNT_FORWARD_REMOTE = 6;
    public const OPT_COUNT_MAILING_LISTS = 7;
    public const OPT_RETENTION_HOURS = 8;
    public const OPT_NOTIFY_PERIOD = 9;
    public const OPT_NOTIFY_IMMEDIATE = 10;
    public const OPT_STORE_TIMEOUT_MS = 11;
    public const OPT_STORE_FALLBACK = 12;
    public const OPT_IMPLICIT_MAILBOXES = 13;

    // Windows of a limit, in seconds (OBSPAM_WINDOW_*, 1.3).
    public const WINDOW_MINUTE = 60;
    public const WINDOW_HOUR = 3600;
    public const WINDOW_DAY = 86400;

    // The most recipients one message counts for (1.3): more count as this many.
    public const RECIPIENTS_MAX = 2147483648;
    // openJournal() flag: each flush waits for the disk (1.3).
    public const JOURNAL_FSYNC = 1;
    // obspam_enumerate() flag: only objects with activity, a count in their
    // day window or a refusal in the last 60 minutes (enumerate()'s $active, 1.3).
    public const ENUM_ACTIVE = 1;

    /**
     * Where a report row's panel fields (1.3) and its forwards and list
     * deliveries (1.4) end, as include/obspam.h lays them out (the tests
     * compare them with the C compiler's): a row whose struct_size is
     * shorter does not hold them.
     */
    private const ROW_SUBSCRIPTION_END = 72;
    private const ROW_UID_END = 80;
    private const ROW_LISTS_END = 96;

    /**
     * The fields decide() accepts, and each message of decideBatch(), with
     * their defaults (OBSPAM_MESSAGE_INIT).
     */
    public const MESSAGE_DEFAULTS = [
        'sasl_username' => null,
        'sender' => null,
        'client_address' => null,
        'recipients' => 1,
        'flags' => 0,
        'uid' => -1,
        'domain_hint' => null,
        'script' => null,
        'time' => 0,
    ];

    private const STRING_FIELDS = ['sasl_username', 'sender', 'client_address', 'domain_hint', 'script'];

    /** @var array<string, \FFI> loaded libraries, by the name they were loaded by */
    private static array $libraries = [];
    /** @var array<int, array{\FFI\CData, \FFI\CData, \FFI\CData, \FFI\CData}> C callbacks, per library */
    private static array $holders = [];
    /** @var array<int, NotifyDispatch> the notify state of each open engine, by id */
    private static array $dispatches = [];
    private static int $lastId = 0;
    /** @var list<list<mixed>> where the running history()/report() puts its rows */
    private static array $sinks = [];

    private \FFI $lib;
    private ?\FFI\CData $handle = null;
    private NotifyDispatch $notify;
    /** This engine's id, in C memory: the user data of its notify callback. */
    private \FFI\CData $id;

    /**
     * Makes an engine. $library is the path of libobspam; null means the
     * environment variable OBSPAM_LIBRARY, else the system's libobspam.so.1
     * (or, when ffi.preload declared it, the FFI scope "obspam": see
     * Engine::scopeHeader()).
     *
     * @throws Exception when the library cannot be loaded (EIO) or is not
     *     1.3 or a later 1.x (EVERSION)
     */
    public function __construct(?string $library = null)
    {
        $this->notify = new NotifyDispatch();
        $this->lib = self::library($library);
        $this->id = $this->lib->new('int64_t');
        $this->id->cdata = ++self::$lastId;
        $ptr = $this->lib->new('obspam_engine *');
        $rc = $this->lib->obspam_engine_new(\FFI::addr($ptr));
        if ($rc < 0) {
            throw new Exception('engine_new: ' . $this->lib->obspam_strerror($rc), $rc);
        }
        $this->handle = $ptr;
    }

    public function __destruct()
    {
        if ($this->handle !== null) {
            $this->lib->obspam_engine_free($this->handle);
            $this->handle = null;
            unset(self::$dispatches[$this->id->cdata]);
        }
    }

    /**
     * Loads and checks libobspam (once per process and name) and returns
     * its FFI object. $library as for the constructor.
     *
     * @throws Exception EIO when it cannot be loaded, EVERSION when it is
     *     not 1.3 or a later 1.x
     */
    public static function library(?string $library = null): \FFI
    {
        if ($library === null || $library === '') {
            $env = getenv(self::LIBRARY_ENV);
            if (is_string($env) && $env !== '') {
                $library = $env;
                $where = self::LIBRARY_ENV . "=$env";
            } else {
                $where = null;
            }
        } else {
            $where = $library;
        }
        $key = $library ?? '';
        if (isset(self::$libraries[$key])) {
            return self::$libraries[$key];
        }
        $ffi = null;
        if ($library === null) {
            // A scope declared by ffi.preload (see scopeHeader()) needs no
            // FFI::cdef(), which ffi.enable=preload forbids outside the CLI.
            try {
                $ffi = \FFI::scope(self::FFI_SCOPE);
            } catch (\Throwable) {
                $ffi = null;
            }
            $library = self::DEFAULT_LIBRARY;
            $where ??= "the system's " . self::DEFAULT_LIBRARY;
        }
        if ($ffi === null) {
            // The version first, with a declaration of its two functions
            // only: FFI::cdef() resolves every function it is given, and a
            // library of another major version is refused for that reason.
            try {
                $probe = \FFI::cdef(
                    'unsigned int obspam_version(void); const char *obspam_version_string(void);',
                    $library,
                );
            } catch (\FFI\Exception $t) {
                $missing = str_contains($t->getMessage(), 'resolving');
                throw new Exception(
                    $missing
                        ? "$library: no obspam_version(): this is not libobspam"
                        : "cannot load libobspam from $where: " . $t->getMessage()
                        . ($key === '' ? ' (set ' . self::LIBRARY_ENV . " to the library's path,"
                            . ' or install libobspam where the dynamic loader finds it)' : ''),
                    $missing ? self::EVERSION : self::EIO,
                    $t,
                );
            }
            self::checkVersion($probe, $library);
            try {
                $ffi = \FFI::cdef(self::declarations(), $library);
            } catch (\FFI\Exception $t) {
                throw new Exception(
                    "$library: " . $t->getMessage() . '; it is not a complete libobspam '
                    . self::VERSION_MAJOR . '.x',
                    self::EVERSION,
                    $t,
                );
            }
        } else {
            self::checkVersion($ffi, $library);
        }
        return self::$libraries[$key] = $ffi;
    }

    /**
     * Refuses a library whose major version is not VERSION_MAJOR, or which
     * is older than VERSION_MAJOR.VERSION_MINOR_MIN: its structures are
     * shorter and functions are missing.
     */
    private static function checkVersion(\FFI $ffi, string $library): void
    {
        $version = $ffi->obspam_version();
        if ($version >> 16 !== self::VERSION_MAJOR) {
            throw new Exception(
                "$library: libobspam " . $ffi->obspam_version_string()
                . ' has major version ' . ($version >> 16) . '; this binding needs '
                . self::VERSION_MAJOR . '.x',
                self::EVERSION,
            );
        }
        if ((($version >> 8) & 0xff) < self::VERSION_MINOR_MIN) {
            $need = self::VERSION_MAJOR . '.' . self::VERSION_MINOR_MIN;
            throw new Exception(
                "$library: libobspam " . ($version >> 16) . '.' . (($version >> 8) & 0xff) . '.'
                . ($version & 0xff) . " is older than $need; this binding needs $need or a later "
                . self::VERSION_MAJOR . '.x',
                self::EVERSION,
            );
        }
    }

    /**
     * The declarations handed to FFI::cdef(): obspam_ffi.h, the macro-free
     * copy of include/obspam.h shipped beside this file.
     */
    public static function declarations(): string
    {
        static $text = null;
        if ($text === null) {
            $file = dirname(__DIR__) . '/obspam_ffi.h';
            $read = @file_get_contents($file);
            if ($read === false) {
                throw new Exception("cannot read $file", self::EIO);
            }
            $text = $read;
        }
        return $text;
    }

    /**
     * The declarations with the two #define lines that make them an FFI
     * scope, for php.ini's ffi.preload. $library is written into it (null:
     * OBSPAM_LIBRARY, else libobspam.so.1).
     *
     * Where ffi.enable is "preload" (the default outside the CLI, e.g.
     * php-fpm), only preloaded code may use FFI: preload this file with
     * opcache and the declarations with FFI, and the constructor then uses
     * the scope "obspam" instead of FFI::cdef():
     *
     *     php -r 'require "bindings/php/obspam.php"; echo Obspam\Engine::scopeHeader();' \
     *         > /etc/php/obspam_scope.h
     *
     *     ; php.ini
     *     ffi.preload=/etc/php/obspam_scope.h
     *     opcache.preload=/path/to/bindings/php/obspam.php
     *     opcache.preload_user=www-data
     *
     * (Or allow FFI everywhere with ffi.enable=true.) The shipped
     * obspam_ffi.h stays free of macros; this text is made from it.
     */
    public static function scopeHeader(?string $library = null): string
    {
        if ($library === null) {
            $env = getenv(self::LIBRARY_ENV);
            $library = is_string($env) && $env !== '' ? $env : self::DEFAULT_LIBRARY;
        }
        return '#define FFI_SCOPE "' . self::FFI_SCOPE . "\"\n"
            . '#define FFI_LIB "' . addcslashes($library, '"\\') . "\"\n"
            . self::declarations();
    }

    /** obspam_version(): (MAJOR << 16) | (MINOR << 8) | PATCH of the library. */
    public static function version(?string $library = null): int
    {
        return self::library($library)->obspam_version();
    }

    /** obspam_version_string(): "MAJOR.MINOR.PATCH" of the library. */
    public static function versionString(?string $library = null): string
    {
        return self::library($library)->obspam_version_string();
    }

    /** obspam_strerror(): a static description of an OBSPAM_E* code. */
    public static function strerror(int $code, ?string $library = null): string
    {
        return self::library($library)->obspam_strerror($code);
    }

    /**
     * obspam_kind_name(): "server", "plan", "subscription", "domain",
     * "mailbox" or "script" for a kind; "unknown kind" otherwise (1.3).
     */
    public static function kindName(int $kind, ?string $library = null): string
    {
        return self::library($library)->obspam_kind_name(self::int32($kind, 'kind_name'));
    }

    /** obspam_engine_free(): frees the engine; closing twice is fine. */
    public function close(): void
    {
        if ($this->notify->depth > 0) {
            throw new Exception('close: an engine cannot be closed from its own callback', self::EINVAL);
        }
        $this->__destruct();
    }

    /** Whether close() was called. */
    public function isClosed(): bool
    {
        return $this->handle === null;
    }

    /**
     * obspam_engine_errmsg_r() (the thread-safe copy of obspam_engine_errmsg()):
     * the last failure on this engine ("" if none).
     */
    public function lastError(): string
    {
        return $this->errmsg($this->handle('lastError'));
    }

    /**
     * The engine's message, copied under its lock: the buffer that
     * obspam_engine_errmsg() returns may be rewritten by another thread
     * sharing the engine while it is read.
     */
    private function errmsg(\FFI\CData $e): string
    {
        $buf = $this->lib->new('char[' . self::ERRMSG_SIZE . ']');
        $this->lib->obspam_engine_errmsg_r($e, $buf, self::ERRMSG_SIZE);
        return \FFI::string($buf);
    }

    // ---- options --------------------------------------------------------

    /** obspam_set_option(): sets an option (Engine::OPT_*). */
    public function setOption(int $option, int $value): void
    {
        $e = $this->handle('setOption');
        $this->ensure($e, $this->lib->obspam_set_option($e, $option, $value));
    }

    /** obspam_get_option(): the current value of an option. */
    public function getOption(int $option): int
    {
        $e = $this->handle('getOption');
        $value = $this->lib->new('int64_t');
        $this->ensure($e, $this->lib->obspam_get_option($e, $option, \FFI::addr($value)));
        return $value->cdata;
    }

    // ---- the limit tree -------------------------------------------------

    /**
     * obspam_add(): adds a plan, subscription, domain or mailbox. $parent:
     * null for a plan; a plan or null for a subscription; the owning
     * subscription for a domain (required); null or its own domain for a
     * mailbox.
     */
    public function add(int $kind, string $name, ?string $parent = null): void
    {
        $e = $this->handle('add');
        $this->ensure($e, $this->lib->obspam_add($e, $kind, self::str($name, 'add'), self::str($parent, 'add')));
    }

    /** obspam_remove(): removes an object, its subtree and their counters. */
    public function remove(int $kind, string $name): void
    {
        $e = $this->handle('remove');
        $this->ensure($e, $this->lib->obspam_remove($e, $kind, self::str($name, 'remove')));
    }

    /**
     * obspam_set_limit(): sets the hour window of one limit ($which: MAILBOX,
     * DOMAIN or SUBSCRIPTION) of an object; kind SERVER with a null name sets
     * a server default. $perHour: a count >= 0, UNLIMITED or INHERIT.
     * setWindowLimit() sets any window.
     */
    public function setLimit(int $kind, ?string $name, int $which, int $perHour): void
    {
        $e = $this->handle('setLimit');
        $this->ensure($e, $this->lib->obspam_set_limit($e, $kind, self::str($name, 'set_limit'), $which, $perHour));
    }

    /**
     * obspam_effective_limit(): the hourly limit that applies (-1:
     * unlimited); effectiveWindowLimit() reads any window.
     */
    public function effectiveLimit(int $kind, string $name): int
    {
        $e = $this->handle('effectiveLimit');
        $value = $this->lib->new('int64_t');
        $this->ensure($e, $this->lib->obspam_effective_limit(
            $e,
            $kind,
            self::str($name, 'effective_limit'),
            \FFI::addr($value),
        ));
        return $value->cdata;
    }

    /**
     * obspam_set_window_limit(): sets one window of one limit of an object
     * (1.3). $window: WINDOW_MINUTE, WINDOW_HOUR or WINDOW_DAY (anything
     * else throws EINVAL); $kind, $name, $which and $limit as for
     * setLimit(), which is the hour window. Each window is inherited on its
     * own.
     */
    public function setWindowLimit(int $kind, ?string $name, int $which, int $window, int $limit): void
    {
        $e = $this->handle('setWindowLimit');
        $this->ensure($e, $this->lib->obspam_set_window_limit(
            $e,
            $kind,
            self::str($name, 'set_window_limit'),
            $which,
            $window,
            $limit,
        ));
    }

    /**
     * obspam_effective_window_limit(): the limit that applies to a
     * subscription, domain or mailbox in one window (-1: unlimited) (1.3).
     */
    public function effectiveWindowLimit(int $kind, string $name, int $window): int
    {
        $e = $this->handle('effectiveWindowLimit');
        $value = $this->lib->new('int64_t');
        $this->ensure($e, $this->lib->obspam_effective_window_limit(
            $e,
            $kind,
            self::str($name, 'effective_window_limit'),
            $window,
            \FFI::addr($value),
        ));
        return $value->cdata;
    }

    /**
     * The effective limit of a subscription, domain or mailbox in each
     * window, by effectiveWindowLimit(): [WINDOW_MINUTE => ..., WINDOW_HOUR
     * => ..., WINDOW_DAY => ...] (-1: unlimited) (1.3).
     *
     * @return array<int, int>
     */
    public function effectiveLimits(int $kind, string $name): array
    {
        $limits = [];
        foreach ([self::WINDOW_MINUTE, self::WINDOW_HOUR, self::WINDOW_DAY] as $window) {
            $limits[$window] = $this->effectiveWindowLimit($kind, $name, $window);
        }
        return $limits;
    }

    /**
     * obspam_set_max_recipients(): the cap on the recipients of one message
     * (1.3), for kind SERVER (null name), PLAN, SUBSCRIPTION, DOMAIN or
     * MAILBOX: a count >= 0, UNLIMITED (the server's default) or INHERIT
     * (not for the server). It is inherited down the tree as a limit is,
     * and the cap of the lowest charged object applies: a message with more
     * recipients is refused whole, naming that object with window 0,
     * whatever the count unit.
     */
    public function setMaxRecipients(int $kind, ?string $name, int $max): void
    {
        $e = $this->handle('setMaxRecipients');
        $this->ensure($e, $this->lib->obspam_set_max_recipients(
            $e,
            $kind,
            self::str($name, 'set_max_recipients'),
            $max,
        ));
    }

    /**
     * obspam_effective_max_recipients(): the recipients cap that applies to
     * a subscription, domain or mailbox (-1: unlimited) (1.3).
     */
    public function effectiveMaxRecipients(int $kind, string $name): int
    {
        $e = $this->handle('effectiveMaxRecipients');
        $value = $this->lib->new('int64_t');
        $this->ensure($e, $this->lib->obspam_effective_max_recipients(
            $e,
            $kind,
            self::str($name, 'effective_max_recipients'),
            \FFI::addr($value),
        ));
        return $value->cdata;
    }

    /** obspam_set_uid(): the system user whose scripts are charged to a subscription; -1 removes it. */
    public function setUid(string $subscription, int $uid): void
    {
        $e = $this->handle('setUid');
        $this->ensure($e, $this->lib->obspam_set_uid($e, self::str($subscription, 'set_uid'), $uid));
    }

    /**
     * obspam_set_scripts_allowed(): whether local scripts may send: true/1,
     * false/0 or INHERIT; for kind SERVER (null name; not INHERIT), PLAN or
     * SUBSCRIPTION.
     */
    public function setScriptsAllowed(int $kind, ?string $name, bool|int $allowed): void
    {
        $e = $this->handle('setScriptsAllowed');
        $this->ensure($e, $this->lib->obspam_set_scripts_allowed(
            $e,
            $kind,
            self::str($name, 'set_scripts_allowed'),
            is_bool($allowed) ? (int) $allowed : self::int32($allowed, 'set_scripts_allowed: allowed'),
        ));
    }

    /** obspam_set_contact(): the address notified about a subscription; null or "" removes it. */
    public function setContact(string $subscription, ?string $email): void
    {
        $e = $this->handle('setContact');
        $this->ensure($e, $this->lib->obspam_set_contact(
            $e,
            self::str($subscription, 'set_contact'),
            self::str($email, 'set_contact'),
        ));
    }

    // ---- the whitelist --------------------------------------------------

    /** obspam_whitelist_add(): exempts a network ("192.0.2.0/24", "2001:db8::/32") or one address. */
    public function whitelistAdd(string $cidr): void
    {
        $e = $this->handle('whitelistAdd');
        $this->ensure($e, $this->lib->obspam_whitelist_add($e, self::str($cidr, 'whitelist_add')));
    }

    /** obspam_whitelist_remove(): removes a whitelist entry. */
    public function whitelistRemove(string $cidr): void
    {
        $e = $this->handle('whitelistRemove');
        $this->ensure($e, $this->lib->obspam_whitelist_remove($e, self::str($cidr, 'whitelist_remove')));
    }

    /**
     * obspam_local_network_add(): a network whose unauthenticated mail is
     * charged to its sender under OPT_COUNT_UNAUTHENTICATED 2, written as
     * for whitelistAdd(). While none is added, 127.0.0.0/8 and ::1 are the
     * local networks (1.3).
     */
    public function localNetworkAdd(string $cidr): void
    {
        $e = $this->handle('localNetworkAdd');
        $this->ensure($e, $this->lib->obspam_local_network_add($e, self::str($cidr, 'local_network_add')));
    }

    /** obspam_local_network_remove(): removes a local network (1.3). */
    public function localNetworkRemove(string $cidr): void
    {
        $e = $this->handle('localNetworkRemove');
        $this->ensure($e, $this->lib->obspam_local_network_remove($e, self::str($cidr, 'local_network_remove')));
    }

    // ---- forwards and mailing lists (1.3) --------------------------------

    /**
     * obspam_forward_add(): $address ("local@domain", or "@domain" for a
     * catch-all) redirects its mail outside ($remote) or to a hosted
     * mailbox; its domain must be hosted.
     */
    public function forwardAdd(string $address, bool $remote): void
    {
        $e = $this->handle('forwardAdd');
        $this->ensure($e, $this->lib->obspam_forward_add($e, self::str($address, 'forward_add'), $remote ? 1 : 0));
    }

    /** obspam_forward_remove(): removes a forward. */
    public function forwardRemove(string $address): void
    {
        $e = $this->handle('forwardRemove');
        $this->ensure($e, $this->lib->obspam_forward_remove($e, self::str($address, 'forward_remove')));
    }

    /**
     * obspam_forward_lookup(): for a recipient that is a forward, [flag,
     * mailbox]: MSG_FORWARD_LOCAL or MSG_FORWARD_REMOTE, and the name to
     * decide the forward as (its sender, with that flag and no login: the
     * address, or the domain of a catch-all); null for any other address.
     *
     * @return array{0: int, 1: string}|null
     */
    public function forwardLookup(string $address): ?array
    {
        $e = $this->handle('forwardLookup');
        $flag = $this->lib->new('uint32_t');
        $buf = $this->lib->new('char[' . (self::NAME_MAX + 1) . ']');
        $this->ensure($e, $this->lib->obspam_forward_lookup(
            $e,
            self::str($address, 'forward_lookup'),
            \FFI::addr($flag),
            $buf,
            self::NAME_MAX + 1,
        ));
        return $flag->cdata !== 0 ? [$flag->cdata, \FFI::string($buf)] : null;
    }

    /** obspam_mailing_list_add(): a list's posting address, whose domain must be hosted. */
    public function mailingListAdd(string $address): void
    {
        $e = $this->handle('mailingListAdd');
        $this->ensure($e, $this->lib->obspam_mailing_list_add($e, self::str($address, 'mailing_list_add')));
    }

    /** obspam_mailing_list_remove(): removes a mailing list. */
    public function mailingListRemove(string $address): void
    {
        $e = $this->handle('mailingListRemove');
        $this->ensure($e, $this->lib->obspam_mailing_list_remove($e, self::str($address, 'mailing_list_remove')));
    }

    /**
     * obspam_mailing_list_match(): whether mail with this envelope sender
     * from this client (null or '': a local submission) is a list
     * delivery, to be decided with MSG_MAILING_LIST: the sender is a
     * list's address or its -bounces form (with an optional +tag), from a
     * local network or a local submission.
     */
    public function mailingListMatch(string $sender, ?string $clientAddress = null): bool
    {
        $e = $this->handle('mailingListMatch');
        $match = $this->lib->new('int');
        $this->ensure($e, $this->lib->obspam_mailing_list_match(
            $e,
            self::str($sender, 'mailing_list_match'),
            self::str($clientAddress, 'mailing_list_match'),
            \FFI::addr($match),
        ));
        return $match->cdata !== 0;
    }

    // ---- the configuration file -----------------------------------------

    /**
     * obspam_load_config(): replaces options, tree and whitelist with a
     * configuration file's, keeping the counters of the objects that
     * remain. On error nothing changes and the exception says
     * "FILE:LINE: what is wrong".
     */
    public function loadConfig(string $path): void
    {
        $e = $this->handle('loadConfig');
        $this->ensure($e, $this->lib->obspam_load_config($e, self::str($path, 'load_config')));
    }

    /** obspam_load_config_string(): the same for a configuration in a string ("<string>:LINE: ..."). */
    public function loadConfigString(string $text): void
    {
        $e = $this->handle('loadConfigString');
        $nul = strpos($text, "\0");
        if ($nul !== false) {
            // The C text would end there: say what the parser says of a
            // file holding a NUL byte rather than load half of the text.
            $line = substr_count($text, "\n", 0, $nul) + 1;
            throw new Exception("<string>:$line: line holds a NUL byte", self::ESYNTAX);
        }
        $this->ensure($e, $this->lib->obspam_load_config_string($e, $text));
    }

    // ---- deciding -------------------------------------------------------

    /**
     * obspam_decide(): decides one message and charges it if accepted.
     *
     * $fields (all optional, named as in obspam_message and in Postfix's
     * policy protocol): sasl_username, sender, client_address (strings or
     * null), recipients (default 1), flags (Engine::MSG_*), uid (default
     * -1), domain_hint, script (strings or null), time (Unix seconds, 0 =
     * now). An unknown field throws EINVAL.
     *
     * With OPT_NOTIFY_IMMEDIATE the notify callback may run inside this
     * call; what it throws is rethrown here, after the message was decided
     * (and charged when accepted).
     */
    public function decide(array $fields = []): Verdict
    {
        return $this->verdict('decide', 'obspam_decide', $fields);
    }

    /**
     * obspam_check(): the verdict decide() would give now, without
     * charging or recording anything (for an early answer, at RCPT time).
     * Takes the same $fields as decide().
     */
    public function check(array $fields = []): Verdict
    {
        return $this->verdict('check', 'obspam_check', $fields);
    }

    /**
     * obspam_decide_batch(), instead of obspam_decide_start() (1.4), whose
     * callback runs on an engine thread that PHP cannot take: decides
     * several messages in one call (one round trip on Redis), in order,
     * each exactly as decide() would (and faster than as many calls when
     * there are several). Each element of $list is an array of the $fields
     * that decide() takes, checked as decide() checks them (an unknown field
     * or a value of the wrong type throws EINVAL, and so does an element that
     * is not an array). Returns their Verdict objects, in the same order; an
     * empty $list gives []. The messages are not one transaction: other
     * threads may decide between them.
     *
     * Every message gets its own verdict, also when others fail: one that
     * cannot be decided (no recipients, a client address that is not an
     * address, a negative time, ...) has a Verdict whose $status is its
     * OBSPAM_E* code and whose $error says why, as decide() would have
     * thrown it; the others are decided, and charged when accepted. (Before
     * 1.3 the whole call threw the first failure and lost every verdict.)
     * With OPT_NOTIFY_IMMEDIATE, what the notify callback throws is
     * rethrown here once every message was decided.
     *
     * @param list<array<string, mixed>> $list
     * @return list<Verdict>
     */
    public function decideBatch(array $list): array
    {
        $e = $this->handle('decideBatch');
        $n = count($list);
        if ($n === 0) {
            // No arrays to make (FFI has no empty ones): C takes NULL for n = 0.
            $this->ensure($e, $this->lib->obspam_decide_batch($e, null, null, null, 0));
            return [];
        }
        $buffers = []; // the C strings, alive until the messages are done with
        $msgs = [];    // the messages, likewise
        $msgPtrs = $this->lib->new("obspam_message *[$n]");
        foreach (array_values($list) as $i => $fields) {
            if (!is_array($fields)) {
                throw new Exception(
                    "decide_batch: message $i must be an array, not " . get_debug_type($fields),
                    self::EINVAL,
                );
            }
            $msgs[$i] = $this->message("decide_batch: message $i", $fields, $buffers);
            $msgPtrs[$i] = \FFI::addr($msgs[$i]);
        }
        $outs = $this->lib->new("obspam_verdict[$n]");
        $outPtrs = $this->lib->new("obspam_verdict *[$n]");
        for ($i = 0; $i < $n; $i++) {
            $outs[$i]->struct_size = \FFI::sizeof($outs[$i]);
            $outPtrs[$i] = \FFI::addr($outs[$i]);
        }
        $rcs = $this->lib->new("int[$n]"); // each message's code
        $rc = $this->lib->obspam_decide_batch($e, $msgPtrs, $outPtrs, $rcs, $n);
        $this->rethrowCallbackErrors();
        $failed = false;
        for ($i = 0; $i < $n; $i++) {
            $failed = $failed || $rcs[$i] < 0;
        }
        if (!$failed) {
            // Either everything was decided, or the call itself failed.
            $this->ensure($e, $rc);
        }
        $verdicts = [];
        for ($i = 0; $i < $n; $i++) {
            $verdicts[] = $rcs[$i] < 0 ? $this->failed($e, $msgs[$i], $rcs[$i]) : self::readVerdict($outs[$i]);
        }
        unset($buffers, $msgs);
        return $verdicts;
    }

    /**
     * The verdict of a message of a batch that failed with $rc. The engine
     * keeps the message of its last failure only, so the message is checked
     * again alone: a bad message fails obspam_check() exactly as it failed
     * in the batch, without charging or recording anything. A failure that
     * does not come back (out of memory, say) is told by its code's
     * description.
     */
    private function failed(\FFI\CData $e, \FFI\CData $msg, int $rc): Verdict
    {
        $out = $this->lib->new('obspam_verdict');
        $out->struct_size = \FFI::sizeof($out);
        $error = '';
        if ($this->lib->obspam_check($e, \FFI::addr($msg), \FFI::addr($out)) === $rc) {
            $error = $this->errmsg($e);
        }
        if ($error === '') {
            $error = 'decide: ' . $this->lib->obspam_strerror($rc);
        }
        return new Verdict(-1, -1, '', 0, 0, 0, 0, $rc, $error);
    }

    /** Builds an obspam_message from $fields and calls $function with it. */
    private function verdict(string $what, string $function, array $fields): Verdict
    {
        $e = $this->handle($what);
        $buffers = []; // the C strings, alive until the call returns
        $msg = $this->message($what, $fields, $buffers);
        $out = $this->lib->new('obspam_verdict');
        $out->struct_size = \FFI::sizeof($out);
        $rc = $this->lib->{$function}($e, \FFI::addr($msg), \FFI::addr($out));
        unset($buffers);
        $this->rethrowCallbackErrors();
        $this->ensure($e, $rc);
        return self::readVerdict($out);
    }

    /**
     * The obspam_message of decide()'s $fields ($what starts the message of
     * a bad one). Its C strings are added to $buffers, which must outlive
     * the call that reads the message.
     *
     * @param list<\FFI\CData> $buffers
     */
    private function message(string $what, array $fields, array &$buffers): \FFI\CData
    {
        $unknown = array_diff_key($fields, self::MESSAGE_DEFAULTS);
        if ($unknown !== []) {
            throw new Exception("$what: unknown field '" . array_key_first($unknown) . "'", self::EINVAL);
        }
        $f = $fields + self::MESSAGE_DEFAULTS;
        $msg = $this->lib->new('obspam_message');
        $msg->struct_size = \FFI::sizeof($msg);
        $msg->flags = self::uint32($f['flags'], "$what: flags");
        $msg->recipients = self::uint32($f['recipients'], "$what: recipients");
        $msg->uid = self::int64($f['uid'], "$what: uid");
        $msg->time = self::int64($f['time'], "$what: time");
        foreach (self::STRING_FIELDS as $key) {
            $value = $f[$key];
            if ($value === null) {
                continue;
            }
            if (!is_string($value)) {
                throw new Exception(
                    "$what: $key must be a string or null, not " . get_debug_type($value),
                    self::EINVAL,
                );
            }
            self::str($value, "$what: $key");
            $len = strlen($value);
            $buf = $this->lib->new("char[" . ($len + 1) . "]");
            \FFI::memcpy($buf, $value, $len);
            $buffers[] = $buf;
            $msg->{$key} = $this->lib->cast('char *', $buf);
        }
        return $msg;
    }

    /** The Verdict of an obspam_verdict. */
    private static function readVerdict(\FFI\CData $out): Verdict
    {
        return new Verdict(
            $out->action,
            $out->kind,
            \FFI::string($out->object),
            $out->limit,
            $out->count,
            $out->retry_after,
            $out->window,
        );
    }

    /** obspam_stats_get(): live status of a subscription, domain or mailbox at $now (0: now). */
    public function stats(int $kind, string $name, int $now = 0): Stats
    {
        $e = $this->handle('stats');
        $out = $this->lib->new('obspam_stats');
        $out->struct_size = \FFI::sizeof($out);
        $this->ensure($e, $this->lib->obspam_stats_get($e, $kind, self::str($name, 'stats'), $now, \FFI::addr($out)));
        return self::readStats($out);
    }

    /** The Stats of an obspam_stats (or a pointer to one). */
    private static function readStats(\FFI\CData $out): Stats
    {
        return new Stats(
            $out->sending !== 0,
            $out->limit,
            $out->count,
            $out->refused,
            $out->refused_total,
            $out->last_refused,
            $out->exceeded,
            $out->exceeded_total,
            $out->limit_minute,
            $out->count_minute,
            $out->limit_day,
            $out->count_day,
            $out->blocked_kind,
            $out->disabled !== 0,
            \FFI::string($out->blocked_by),
            $out->last_reset,
            $out->forwarded,
            $out->list_deliveries,
        );
    }

    // ---- history and reports --------------------------------------------

    /**
     * obspam_history(): the hourly history of a subscription, domain,
     * mailbox or script (kind SCRIPT, name its path): one entry per clock
     * hour that overlaps [$from, $to), lies within the retention period and
     * had activity, oldest first. Times are taken as they are (0 is 1970);
     * $to null means no end.
     *
     * @return list<HistoryEntry>
     */
    public function history(int $kind, string $name, int $from = 0, ?int $to = null): array
    {
        $e = $this->handle('history');
        [$historyFn] = $this->holders();
        self::$sinks[] = [];
        try {
            $rc = $this->lib->obspam_history(
                $e,
                $kind,
                self::str($name, 'history'),
                $from,
                $to ?? PHP_INT_MAX,
                $historyFn->fn,
                null,
            );
        } finally {
            $rows = array_pop(self::$sinks);
        }
        $this->ensure($e, $rc);
        return $rows;
    }

    /**
     * obspam_report(): where spam comes from over the clock hours that
     * overlap [$from, $to): every object with refusals (scripts included),
     * most refusals first, ties by name; then the scripts without
     * refusals, most sent first. $to null means no end.
     *
     * @return list<ReportRow>
     */
    public function report(int $from = 0, ?int $to = null): array
    {
        $e = $this->handle('report');
        [, $reportFn] = $this->holders();
        self::$sinks[] = [];
        try {
            $rc = $this->lib->obspam_report($e, $from, $to ?? PHP_INT_MAX, $reportFn->fn, null);
        } finally {
            $rows = array_pop(self::$sinks);
        }
        $this->ensure($e, $rc);
        return $rows;
    }

    /**
     * obspam_top(): the top senders over the clock hours that overlap
     * [$from, $to), whether or not they hit a limit (1.3): the $n rows (0:
     * all) of $kind (SUBSCRIPTION, DOMAIN, MAILBOX or SCRIPT; null: every
     * kind) that sent most, most sent first, then most refused, ties by kind
     * and name; rows as report() gives them (a script's with its
     * subscription and uid). $to null means no end.
     *
     * @return list<ReportRow>
     */
    public function top(int $from = 0, ?int $to = null, int $n = 0, ?int $kind = null): array
    {
        $e = $this->handle('top');
        if ($n < 0) {
            throw new Exception("top: n must be 0 (all) or more, not $n", self::EINVAL);
        }
        [, $reportFn] = $this->holders();
        self::$sinks[] = [];
        try {
            $rc = $this->lib->obspam_top(
                $e,
                self::int32($kind ?? -1, 'top: kind'),
                $from,
                $to ?? PHP_INT_MAX,
                $n,
                $reportFn->fn,
                null,
            );
        } finally {
            $rows = array_pop(self::$sinks);
        }
        $this->ensure($e, $rc);
        return $rows;
    }

    // ---- panels (1.3) ---------------------------------------------------

    /**
     * obspam_enumerate(): the subscriptions, domains or mailboxes ($kind;
     * implicit mailboxes included) in name order, each an Entry with its
     * live status at $now (0: now), as a generator (1.3).
     *
     * $parent keeps those under one plan, subscription or domain; $active
     * only those with a count in their day window or a refusal in the last
     * 60 minutes; $after starts after that name (a panel's "next page"
     * link); $limit stops after that many (0: no bound). The objects are
     * fetched $page at a time, each page in one call that holds the engine,
     * never between pages: a loop over a million mailboxes does not stop
     * the decisions.
     *
     * The first page is fetched by this call, so a bad kind or an unknown
     * parent throws here (ENOTFOUND for the parent); the rest as the
     * generator is consumed.
     *
     * @return \Generator<int, Entry>
     */
    public function enumerate(
        int $kind,
        ?string $parent = null,
        bool $active = false,
        ?string $after = null,
        int $limit = 0,
        int $page = 1000,
        int $now = 0,
    ): \Generator {
        $this->handle('enumerate');
        if ($limit < 0) {
            throw new Exception("enumerate: limit must be 0 (no bound) or more, not $limit", self::EINVAL);
        }
        if ($page < 1) {
            throw new Exception("enumerate: page must be 1 or more, not $page", self::EINVAL);
        }
        $kind = self::int32($kind, 'enumerate: kind');
        $parent = self::str($parent, 'enumerate: parent');
        $flags = $active ? self::ENUM_ACTIVE : 0;
        $asked = $limit === 0 ? $page : min($page, $limit);
        $first = $this->page($kind, $parent, $flags, self::str($after, 'enumerate: after'), $asked, $now);
        return $this->pages($kind, $parent, $flags, $first, $asked, $limit, $page, $now);
    }

    /**
     * The generator of enumerate(), from its first page.
     *
     * @param list<Entry> $entries
     * @return \Generator<int, Entry>
     */
    private function pages(
        int $kind,
        ?string $parent,
        int $flags,
        array $entries,
        int $asked,
        int $limit,
        int $page,
        int $now,
    ): \Generator {
        $given = 0;
        while (true) {
            foreach ($entries as $entry) {
                yield $given++ => $entry;
            }
            // A short page is the last one; so is the page that reaches the bound.
            if (count($entries) < $asked || ($limit !== 0 && $given >= $limit)) {
                return;
            }
            $asked = $limit === 0 ? $page : min($page, $limit - $given);
            $entries = $this->page($kind, $parent, $flags, $entries[count($entries) - 1]->name, $asked, $now);
        }
    }

    /**
     * One call of obspam_enumerate(): up to $n objects after $after.
     *
     * @return list<Entry>
     */
    private function page(int $kind, ?string $parent, int $flags, ?string $after, int $n, int $now): array
    {
        $e = $this->handle('enumerate');
        [, , , $enumerateFn] = $this->holders();
        self::$sinks[] = [];
        try {
            $rc = $this->lib->obspam_enumerate($e, $kind, $parent, $flags, $after, $n, $now, $enumerateFn->fn, null);
        } finally {
            $entries = array_pop(self::$sinks);
        }
        $this->ensure($e, $rc);
        return $entries;
    }

    /**
     * obspam_reset(): empties every window of a subscription, domain or
     * mailbox at $now (0: now), after a password change say: it may send
     * its whole limit again. Its history keeps what happened, and
     * Stats::$lastReset tells when (1.3).
     */
    public function reset(int $kind, string $name, int $now = 0): void
    {
        $e = $this->handle('reset');
        $this->ensure($e, $this->lib->obspam_reset($e, $kind, self::str($name, 'reset'), $now));
    }

    /**
     * obspam_set_unknown_uid_subscription(): the subscription charged for
     * mail of a local script whose uid no subscription owns (null or "":
     * none, the default; such mail is then UNKNOWN, and reported by uid)
     * (1.3).
     */
    public function setUnknownUidSubscription(?string $subscription): void
    {
        $e = $this->handle('setUnknownUidSubscription');
        $this->ensure($e, $this->lib->obspam_set_unknown_uid_subscription(
            $e,
            self::str($subscription, 'set_unknown_uid_subscription'),
        ));
    }

    // ---- notifications --------------------------------------------------

    /**
     * obspam_set_notify(): the callable that receives Notice objects (null:
     * none; notifyFlush() then drops the notices). It runs inside
     * notifyFlush() (and decide(), with OPT_NOTIFY_IMMEDIATE) and must not
     * use this engine. What it throws is rethrown by that call once the C
     * call has returned; the notice counts as delivered.
     *
     * @param null|callable(Notice): mixed $callback
     */
    public function setNotify(?callable $callback): void
    {
        $e = $this->handle('setNotify');
        $fn = null;
        if ($callback !== null) {
            [, , $notifyFn] = $this->holders();
            $this->notify->callback = $callback;
            self::$dispatches[$this->id->cdata] = $this->notify;
            $fn = $notifyFn->fn;
        }
        $this->ensure($e, $this->lib->obspam_set_notify($e, $fn, $this->lib->cast('void *', \FFI::addr($this->id))));
        if ($callback === null) {
            $this->notify->callback = null;
            unset(self::$dispatches[$this->id->cdata]);
        }
    }

    /**
     * obspam_notify_flush(): delivers one notice per object refused in every
     * period that ended at or before $now (0: now) and was not flushed yet.
     */
    public function notifyFlush(int $now = 0): void
    {
        $e = $this->handle('notifyFlush');
        $rc = $this->lib->obspam_notify_flush($e, $now);
        $this->rethrowCallbackErrors();
        $this->ensure($e, $rc);
    }

    // ---- the shared counter store (1.1) ---------------------------------

    /**
     * obspam_set_store(): keeps the counters in Redis ("redis://HOST:PORT[/DB]"
     * or "sentinel://HOST:PORT[,...]/MASTER"), shared by every engine that
     * names it; null or "" goes back to memory. $prefix (null: "obspam:")
     * starts every key.
     */
    public function setStore(?string $uri, ?string $prefix = null): void
    {
        $e = $this->handle('setStore');
        $this->ensure($e, $this->lib->obspam_set_store(
            $e,
            self::str($uri, 'set_store'),
            self::str($prefix, 'set_store'),
        ));
    }

    /**
     * obspam_store_status(): ['shared' => 1 with a shared store, 'up' => 1
     * while it answers, 'episodes' => times it stopped answering,
     * 'fallback_decisions' => decisions made without it].
     *
     * @return array<string, int>
     */
    public function storeStatus(): array
    {
        $e = $this->handle('storeStatus');
        $v = [];
        foreach (['shared', 'up', 'episodes', 'fallback_decisions'] as $k) {
            $v[$k] = $this->lib->new('int64_t');
        }
        $this->ensure($e, $this->lib->obspam_store_status(
            $e,
            \FFI::addr($v['shared']),
            \FFI::addr($v['up']),
            \FFI::addr($v['episodes']),
            \FFI::addr($v['fallback_decisions']),
        ));
        return array_map(fn ($x) => $x->cdata, $v);
    }

    /**
     * obspam_store_backlog() (1.4): ['ledger_pending', 'ledger_added',
     * 'ledger_dropped' => the records of an outage (charges accepted
     * without Redis and, since 1.4.1, exempt list deliveries): waiting to
     * be added to it, added, dropped past the ledger's bound;
     * 'keys_pending', 'keys_deleted' => keys of objects a reload
     * dropped].
     *
     * @return array<string, int>
     */
    public function storeBacklog(): array
    {
        $e = $this->handle('storeBacklog');
        $names = ['ledger_pending', 'ledger_added', 'ledger_dropped', 'keys_pending', 'keys_deleted'];
        $v = [];
        foreach ($names as $k) {
            $v[$k] = $this->lib->new('int64_t');
        }
        $this->ensure($e, $this->lib->obspam_store_backlog(
            $e,
            \FFI::addr($v['ledger_pending']),
            \FFI::addr($v['ledger_added']),
            \FFI::addr($v['ledger_dropped']),
            \FFI::addr($v['keys_pending']),
            \FFI::addr($v['keys_deleted']),
        ));
        return array_map(fn ($x) => $x->cdata, $v);
    }

    /**
     * obspam_implicit_status(): 'count' (implicit mailboxes that exist now),
     * 'overflow' (decisions that found the cap OPT_IMPLICIT_MAILBOXES
     * reached) and 'episodes' (times the cap was reached) (1.3).
     *
     * @return array{count: int, overflow: int, episodes: int}
     */
    public function implicitStatus(): array
    {
        $e = $this->handle('implicitStatus');
        $v = [];
        foreach (['count', 'overflow', 'episodes'] as $k) {
            $v[$k] = $this->lib->new('int64_t');
        }
        $this->ensure($e, $this->lib->obspam_implicit_status(
            $e,
            \FFI::addr($v['count']),
            \FFI::addr($v['overflow']),
            \FFI::addr($v['episodes']),
        ));
        return array_map(fn ($x) => $x->cdata, $v);
    }

    // ---- persistence ----------------------------------------------------

    /**
     * obspam_journal_open() (1.3): opens the journal beside $statePath
     * (STATE.journal) and replays the decisions the state file does not
     * hold; call it after loadState(). From then on the decisions that
     * change the counters are recorded, and flushJournal() writes them.
     *
     * @return array{replayed: int, ignored: int} ignored: records of a
     *         journal that follows another snapshot
     */
    public function openJournal(string $statePath, bool $fsync = false): array
    {
        $e = $this->handle('openJournal');
        $replayed = $this->lib->new('int64_t');
        $ignored = $this->lib->new('int64_t');
        $this->ensure($e, $this->lib->obspam_journal_open(
            $e,
            self::str($statePath, 'open_journal'),
            $fsync ? self::JOURNAL_FSYNC : 0,
            \FFI::addr($replayed),
            \FFI::addr($ignored),
        ));
        return ['replayed' => $replayed->cdata, 'ignored' => $ignored->cdata];
    }

    /** obspam_journal_flush() (1.3): writes the decisions recorded since the last flush in one write; call it before the answers leave. */
    public function flushJournal(): void
    {
        $e = $this->handle('flushJournal');
        $this->ensure($e, $this->lib->obspam_journal_flush($e));
    }

    /** obspam_journal_close() (1.3): flushes and closes the journal; its file stays for the next openJournal(). */
    public function closeJournal(): void
    {
        $e = $this->handle('closeJournal');
        $this->ensure($e, $this->lib->obspam_journal_close($e));
    }

    /** obspam_state_save(): writes counters, history and notification progress to $path atomically. */
    public function saveState(string $path): void
    {
        $e = $this->handle('saveState');
        $this->ensure($e, $this->lib->obspam_state_save($e, self::str($path, 'save_state')));
    }

    /** obspam_state_load(): restores a saved state; on error (EIO, ECORRUPT, EVERSION) nothing changes. */
    public function loadState(string $path): void
    {
        $e = $this->handle('loadState');
        $this->ensure($e, $this->lib->obspam_state_load($e, self::str($path, 'load_state')));
    }

    // ---- plumbing -------------------------------------------------------

    /** The C handle, after checking that the engine may be used now. */
    private function handle(string $what): \FFI\CData
    {
        if ($this->handle === null) {
            throw new Exception("$what: the engine is closed", self::EINVAL);
        }
        if ($this->notify->depth > 0) {
            throw new Exception("$what: an engine cannot be used from its own callback", self::EINVAL);
        }
        return $this->handle;
    }

    /** Throws the exception of a failed call, with the engine's message. */
    private function ensure(\FFI\CData $e, int $rc): void
    {
        if ($rc >= 0) {
            return;
        }
        $message = $this->errmsg($e);
        if ($message === '') {
            $message = $this->lib->obspam_strerror($rc);
        }
        throw new Exception($message, $rc);
    }

    private function rethrowCallbackErrors(): void
    {
        $errors = $this->notify->errors;
        if ($errors !== []) {
            $this->notify->errors = [];
            throw $errors[0];
        }
    }

    /**
     * The C callbacks of history(), report() and the notices, made once per
     * library: PHP frees a function pointer made from a closure only when
     * the request ends, so one per call or per engine would pile up. The
     * first two put rows into the innermost sink; the third finds its
     * engine's NotifyDispatch by the id in its user data.
     *
     * @return array{\FFI\CData, \FFI\CData, \FFI\CData, \FFI\CData}
     */
    private function holders(): array
    {
        $lib = $this->lib;
        $key = spl_object_id($lib);
        if (!isset(self::$holders[$key])) {
            $history = $lib->new('struct { void (*fn)(int64_t, int64_t, int64_t, void *); }');
            $history->fn = static function (int $hour, int $sent, int $refused, $ud): void {
                self::$sinks[array_key_last(self::$sinks)][] = new HistoryEntry($hour, $sent, $refused);
            };
            $report = $lib->new('struct { void (*fn)(const obspam_report_row *row, void *ud); }');
            $report->fn = static function ($row, $ud): void {
                // Read as far as the library's struct_size says it wrote
                // the row: a 1.3 library built before the panel fields
                // passes rows without them.
                self::$sinks[array_key_last(self::$sinks)][] = new ReportRow(
                    $row->kind,
                    (string) $row->name,
                    $row->sent,
                    $row->refused,
                    $row->first_refused,
                    $row->last_refused,
                    $row->exceeded,
                    $row->window,
                    $row->struct_size >= self::ROW_SUBSCRIPTION_END ? $row->subscription : null,
                    $row->struct_size >= self::ROW_UID_END ? $row->uid : -1,
                    $row->struct_size >= self::ROW_LISTS_END ? $row->forwarded : 0,
                    $row->struct_size >= self::ROW_LISTS_END ? $row->list_deliveries : 0,
                );
            };
            $notify = $lib->new('struct { void (*fn)(const obspam_notice *n, void *ud); }');
            $notify->fn = static function ($n, $ud) use ($lib): void {
                $dispatch = self::$dispatches[$lib->cast('int64_t *', $ud)[0]] ?? null;
                $dispatch?->onNotice($n);
            };
            $enumerate = $lib->new('struct { int (*fn)(int, const char *, const obspam_stats *, void *); }');
            $enumerate->fn = static function (int $kind, $name, $st, $ud): int {
                $name = (string) $name;
                self::$sinks[array_key_last(self::$sinks)][] = new Entry($kind, $name, self::readStats($st));
                return 0;
            };
            self::$holders[$key] = [$history, $report, $notify, $enumerate];
        }
        return self::$holders[$key];
    }

    /** A string for the library: refused when it holds a NUL byte (C would cut it there). */
    private static function str(?string $value, string $what): ?string
    {
        if ($value !== null && str_contains($value, "\0")) {
            throw new Exception("$what: '" . addcslashes($value, "\0..\37") . "' holds a NUL byte", self::EINVAL);
        }
        return $value;
    }

    private static function uint32(mixed $value, string $what): int
    {
        if (!is_int($value) || $value < 0 || $value > 0xFFFFFFFF) {
            throw new Exception("$what: expected an integer from 0 to 4294967295", self::EINVAL);
        }
        return $value;
    }

    private static function int32(int $value, string $what): int
    {
        if ($value < -2147483648 || $value > 2147483647) {
            throw new Exception("$what: expected a 32-bit integer", self::EINVAL);
        }
        return $value;
    }

    private static function int64(mixed $value, string $what): int
    {
        if (!is_int($value)) {
            throw new Exception("$what: expected an integer, not " . get_debug_type($value), self::EINVAL);
        }
        return $value;
    }
}
