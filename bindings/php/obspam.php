<?php

// SPDX-License-Identifier: MIT

/**
 * PHP binding of libobspam, outbound-spam rate limiting for hosting mail
 * servers, over the library's stable C ABI through PHP's FFI extension
 * (nothing is compiled).
 *
 *     require 'bindings/php/obspam.php';
 *
 *     $engine = new Obspam\Engine();          // or new Obspam\Engine('/path/libobspam.so.1')
 *     $engine->loadConfig('/etc/obspam.conf');
 *     $verdict = $engine->decide(['sasl_username' => 'info@example.com', 'recipients' => 3]);
 *     if ($verdict->action === Obspam\Engine::REFUSE) {
 *         echo "{$verdict->object} is over its limit, retry in {$verdict->retryAfter} s\n";
 *     }
 *
 * The library is the path given to the constructor, else the one named by
 * the environment variable OBSPAM_LIBRARY, else the system's libobspam.so.1.
 * A library older than 1.3, or of another major version, is refused. Every failure throws
 * Obspam\Exception, whose code is the library's OBSPAM_E* code and whose
 * message is the engine's own ("FILE:LINE: what is wrong" for a
 * configuration error).
 *
 * FFI must be allowed: it is in the CLI; elsewhere (php-fpm, php -S) set
 * ffi.enable=true, or preload the declarations (see Engine::scopeHeader()).
 *
 * Requires PHP 8.1 or later with the FFI extension.
 *
 * This file loads every class of the binding (src/, one class per file, the
 * PSR-4 layout that composer.json declares for Composer's autoloader). It
 * loads them all at once, rather than registering an autoloader, so that it
 * can also be the opcache.preload script (see Engine::scopeHeader()).
 */

declare(strict_types=1);

require_once __DIR__ . '/src/Exception.php';
require_once __DIR__ . '/src/Verdict.php';
require_once __DIR__ . '/src/Stats.php';
require_once __DIR__ . '/src/HistoryEntry.php';
require_once __DIR__ . '/src/ReportRow.php';
require_once __DIR__ . '/src/Entry.php';
require_once __DIR__ . '/src/Notice.php';
require_once __DIR__ . '/src/NotifyDispatch.php';
require_once __DIR__ . '/src/Engine.php';
