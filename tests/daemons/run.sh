#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Stage "daemons" of tests/run.sh: obspam-policyd, obspam-milter and
# obspamctl against real sockets, and the code they share
# (examples/common).
#
#   tests/daemons/run.sh BUILD_DIR     (from the repository's root; the
#                                       whole project built in BUILD_DIR)
#
# Each owner adds their own check lines below; longer test logic lives in
# the files next to this one. Ends with "N passed, N failed".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
BUILD=${1:?usage: tests/daemons/run.sh BUILD_DIR}
# shellcheck source=tests/lib/deps.sh
. tests/lib/deps.sh
# shellcheck source=tests/lib/check.sh
. tests/lib/check.sh

# python3: protocol and JSON/SVG checks; librsvg2-bin: renders the SVG
# chart; man-db, groff-base: the man page; util-linux: setpriv; systemd:
# systemd-analyze, systemd-sysusers and systemd-tmpfiles for the units;
# binutils: readelf; mandoc: its -Tlint checks every manual page.
obspam_need_packages python3 librsvg2-bin man-db groff-base util-linux \
  systemd binutils mandoc

D=$BUILD/tests/daemons

# ---- examples/common and obspamctl -----------------------------------------
check "common: refusal texts, log lines, notice mails" \
  "$D/common_refusal" --jobs 1
check "common: refusal log lines coalesced per object" \
  "$D/common_coalesce" --jobs 1
check "common: metrics counters and exposition" "$D/common_metrics" --jobs 1
check "common: socket addresses, listen, connect" "$D/common_spec" --jobs 1
check "common: log modes (syslog, journal, stderr), peer credentials" \
  "$D/common_log" --jobs 1
check "common: the notify command (timeout, exit status)" \
  "$D/common_command" --jobs 1
check "common: service start, reload, save, notices and mail" \
  "$D/common_service" --jobs 1
check "common: control socket and obspamctl end to end" \
  tests/daemons/common_ctl.sh "$BUILD"
check "common: obspamctl list, top, blocked, overview, reset, set-limit, --tz" \
  tests/daemons/ctl_panel.sh "$BUILD"
check "common: metrics endpoint end to end" \
  tests/daemons/common_http.sh "$BUILD"
check "common: obspamctl.8" tests/daemons/common_man.sh "$BUILD"
check "common: one SMTP code, the refusal words, the units' sockets in every text" \
  tests/daemons/texts_agree.sh "$BUILD"
check "units: systemd-analyze security <= 2.5, sysusers.d, tmpfiles.d" \
  tests/daemons/units.sh "$BUILD"
check "hardening: RELRO, BIND_NOW, PIE, stack protector, FORTIFY in the ELF headers" \
  tests/daemons/hardening.sh "$BUILD"
check "common: obspamctl options (getopt_long) and JSON errors" \
  tests/daemons/ctl_options.sh "$BUILD"

# ---- obspam-policyd --------------------------------------------------------
# The request parser alone, then the real daemon over TCP and Unix sockets
# (tests/daemons/policyd_test.py BUILD --list describes each scenario).
P=tests/daemons/policyd_test.py
check "policyd: request parser" "$D/policyd_proto" --jobs 2
check "policyd: rules for a request" "$D/policyd_rules" --jobs 2
check "policyd: accept then refuse over TCP" python3 "$P" "$BUILD" tcp
check "policyd: Unix socket and its mode" python3 "$P" "$BUILD" unix
check "policyd: only root, postfix and --allow-user users on a Unix socket" \
  python3 "$P" "$BUILD" peers
check "policyd: obspam_uid only from allowed peers of a Unix socket" \
  python3 "$P" "$BUILD" uid
check "policyd: --user drops root after binding" python3 "$P" "$BUILD" user
check "policyd: a socket from systemd (socket activation)" \
  python3 "$P" "$BUILD" socket_activation
check "policyd: --log journal, JOURNAL_STREAM, stderr" \
  python3 "$P" "$BUILD" logs
check "policyd: action reject (550 5.7.1)" python3 "$P" "$BUILD" reject
check "policyd: the recipients cap at RCPT (452 4.5.3), per message instance" \
  python3 "$P" "$BUILD" rcpt_cap
check "policyd: count messages, in the texts" python3 "$P" "$BUILD" unit
check "policyd: RCPT refuses early, charges nothing" \
  python3 "$P" "$BUILD" rcpt
check "policyd: RCPT refusals recorded once per message" \
  python3 "$P" "$BUILD" rcpt_recorded
check "policyd: a flood of refusals: the first logged, then one count" \
  python3 "$P" "$BUILD" refusal_flood
check "policyd: whitelisted, unknown, other states" \
  python3 "$P" "$BUILD" dunno
check "policyd: many requests on one connection" python3 "$P" "$BUILD" many
check "policyd: pipelining to a slow reader" \
  python3 "$P" "$BUILD" slow_reader
check "policyd: 10,000 requests in one write, all answered" \
  python3 "$P" "$BUILD" pipeline_deep
check "policyd: malformed requests closed unanswered" \
  python3 "$P" "$BUILD" malformed
check "policyd: SIGHUP reload, good and bad" python3 "$P" "$BUILD" reload
check "policyd: empty or cut files refused on reload unless forced" \
  python3 "$P" "$BUILD" reload_guard
check "policyd: reloads beside the loop" \
  python3 "$P" "$BUILD" reload_storm
check "policyd: state kept across restarts" python3 "$P" "$BUILD" state
R=tests/daemons/durable.py
check "policyd: counts at their bounds kept exactly across a restart" \
  python3 "$R" "$BUILD" extremes
check "policyd: kill -9 under load loses no count (journal)" \
  python3 "$R" "$BUILD" kill9
check "policyd: an older state file put back: its journal not replayed" \
  python3 "$R" "$BUILD" foreign_journal
check "policyd: longest answer gap during a 1M-mailbox reload, saves every second" \
  python3 "$R" "$BUILD" stall
check "policyd: temporary files of killed saves removed" \
  python3 "$P" "$BUILD" stale_temp
check "policyd: SIGTERM with a failed last save exits 1" \
  python3 "$P" "$BUILD" stop_save_failed
check "policyd: periodic save" python3 "$P" "$BUILD" save_interval
check "policyd: DATA and END-OF-MESSAGE charge once" \
  python3 "$P" "$BUILD" dedupe
check "policyd: idle timeout" python3 "$P" "$BUILD" idle
check "policyd: 2000 concurrent connections" \
  python3 "$P" "$BUILD" concurrent
check "policyd: connection and descriptor limits" \
  python3 "$P" "$BUILD" limits
check "policyd: command line" python3 "$P" "$BUILD" cli
check "policyd: detaching without --foreground" \
  python3 "$P" "$BUILD" detach
check "policyd: IPv6 listener" python3 "$P" "$BUILD" ipv6
check "policyd: control socket and metrics" \
  python3 "$P" "$BUILD" control_metrics
check "policyd: notices mailed on the timer (about a minute)" \
  python3 "$P" "$BUILD" notices
check "policyd: connections counted per client" "$D/policyd_peers" --jobs 2
S=tests/daemons/slow_clients.py
check "policyd: 3,000 slow and partial clients closed in time, bounded" \
  python3 "$S" "$BUILD" slow
check "policyd: at most 300 connections per client address" \
  python3 "$S" "$BUILD" cap
check "policyd: a Unix-socket client is its uid" python3 "$S" "$BUILD" uid
check "policyd: metrics scraped while 200 connections are held" \
  python3 "$S" "$BUILD" metrics
check "policyd: obspam-policyd.8" tests/daemons/policyd_man.sh "$BUILD"
check "policyd: cmake --install" tests/daemons/policyd_install.sh "$BUILD"
check "policyd: abuse: 2,000 hostile, slow and broken clients, bounded memory" \
  python3 tests/daemons/abuse_policyd.py "$BUILD"

# ---- obspam-milter ---------------------------------------------------------
# The header and path parsing alone, then the real milter driven over the
# milter protocol by tests/daemons/milter_client.py (no Postfix: tests/e2e
# runs it under a real one). tests/daemons/milter_test.py BUILD --list
# describes each scenario.
M=tests/daemons/milter_test.py
check "milter: pickup header, PHP header, vhost patterns" \
  "$D/milter_parse" --jobs 2
check "milter: SMTP login and sender, 451 4.7.1 text" \
  python3 "$M" "$BUILD" smtp
check "milter: kill -9 before any save loses no count (journal)" \
  python3 tests/daemons/durable.py "$BUILD" milter_kill9
check "milter: a flood of refusals: the first logged, then one count" \
  python3 "$M" "$BUILD" refusal_flood
check "milter: Sendmail's {client_addr} forms" \
  python3 "$M" "$BUILD" sendmail_addr
check "milter: action reject (550 5.7.1)" python3 "$M" "$BUILD" reject
check "milter: the recipients cap at envrcpt (452 4.5.3)" \
  python3 "$M" "$BUILD" rcpt_cap
check "milter: local submission charged to its uid" \
  python3 "$M" "$BUILD" local
check "milter: refused local submission held" \
  python3 "$M" "$BUILD" local_hold
check "milter: the notice of a held submission says held" \
  python3 "$M" "$BUILD" local_notice
check "milter: refused local submission bounced" \
  python3 "$M" "$BUILD" local_bounce
check "milter: scripts forbidden" python3 "$M" "$BUILD" scripts_forbidden
check "milter: forged headers ignored" python3 "$M" "$BUILD" forged
check "milter: virtual host domain from the script path" \
  python3 "$M" "$BUILD" vhost
check "milter: aborted messages and dropped connections" \
  python3 "$M" "$BUILD" abort
check "milter: 64 concurrent connections, exact count" \
  python3 "$M" "$BUILD" concurrent
check "milter: Unix socket and its mode" python3 "$M" "$BUILD" unix
check "milter: only root, postfix and --allow-user users on a Unix socket" \
  python3 "$M" "$BUILD" peers
check "milter: --user drops root after binding" python3 "$M" "$BUILD" user
check "milter: SIGHUP reloads, SIGTERM saves, SIGINT" \
  python3 "$M" "$BUILD" signals
check "milter: SIGTERM with a failed last save exits 1" \
  python3 "$M" "$BUILD" stop_save_failed
check "milter: command line" python3 "$M" "$BUILD" cli
check "milter: detaching without --foreground" \
  python3 "$M" "$BUILD" detach
check "milter: obspam-milter.8" tests/daemons/milter_man.sh "$BUILD"

# ---- Packaging -------------------------------------------------------------
check "man pages: mandoc -Tlint, the project's version" \
  tests/daemons/man_lint.sh "$BUILD"
check "install into a non-system prefix: daemons, pkg-config, CMake" \
  tests/daemons/install_prefix.sh "$BUILD"
check "plain configure and build without Criterion and libmilter" \
  tests/daemons/plain_build.sh "$BUILD"

check_summary
