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
# suite JOBS NAME: the Criterion suite built from tests/daemons/NAME.c;
# script NAME: tests/daemons/NAME.sh on this build.
suite() { "$D/$2" --jobs "$1"; }
script() { "tests/daemons/$1.sh" "$BUILD"; }
check_each common suite 1 <<'EOF'
common_refusal   refusal texts, log lines, notice mails
common_coalesce  refusal log lines coalesced per object
common_metrics   metrics counters and exposition
common_spec      socket addresses, listen, connect
common_log       log modes (syslog, journal, stderr), peer credentials
common_command   the notify command (timeout, exit status)
common_service   service start, reload, save, notices and mail
EOF
check_each common script <<'EOF'
common_ctl   control socket and obspamctl end to end
ctl_panel    obspamctl list, top, blocked, overview, reset, set-limit, --tz
ctl_admin    what notices and reports say of forbidden scripts and caps
common_http  metrics endpoint end to end
common_man   obspamctl.8
texts_agree  one SMTP code, the refusal words, the units' sockets in every text
EOF
check "units: systemd-analyze security <= 2.5, sysusers.d, tmpfiles.d" \
  tests/daemons/units.sh "$BUILD"
check "hardening: RELRO, BIND_NOW, PIE, stack protector, FORTIFY in the ELF headers" \
  tests/daemons/hardening.sh "$BUILD"
check "common: obspamctl options (getopt_long) and JSON errors" \
  script ctl_options

# ---- obspam-policyd --------------------------------------------------------
# The request parser alone, then the real daemon over TCP and Unix sockets
# (tests/daemons/policyd_test.py BUILD --list describes each scenario).
P=tests/daemons/policyd_test.py
check "policyd: request parser" "$D/policyd_proto" --jobs 2
check "policyd: rules for a request" "$D/policyd_rules" --jobs 2
check_each policyd python3 "$P" "$BUILD" <<'EOF'
tcp                accept then refuse over TCP
unix               Unix socket and its mode
peers              only root, postfix and --allow-user users on a Unix socket
uid                obspam_uid only from allowed peers of a Unix socket
user               --user drops root after binding
socket_activation  a socket from systemd (socket activation)
logs               --log journal, JOURNAL_STREAM, stderr
reject             action reject (550 5.7.1)
rcpt_cap           the recipients cap at RCPT (452 4.5.3), per message instance
forwards           forwards learnt at RCPT and charged at DATA, list posts exempt
forwards_reload    no forward or list declared: none looked up; a reload declares them
forward_repeated   a forwarding address named again in a message is one forward
envelope_forms     senders and forwards written as Postfix rewrites them are their mailboxes
unit               count messages, in the texts
rcpt               RCPT refuses early, charges nothing
rcpt_recorded      RCPT refusals recorded once per message
refusal_flood      a flood of refusals: the first logged, then one count
bad_request_flood  a flood of bad requests: the first of each client logged, then one count
dunno              whitelisted, unknown, other states
many               many requests on one connection
slow_reader        pipelining to a slow reader
pipeline_deep      10,000 requests in one write, all answered
malformed          malformed requests closed unanswered
long_helo          a helo_name line as long as Postfix sends one is decided
reload             SIGHUP reload, good and bad
reload_guard       empty or cut files refused on reload unless forced
reload_storm       reloads beside the loop
state              state kept across restarts
stale_temp         temporary files of killed saves removed
stop_save_failed   SIGTERM with a failed last save exits 1
save_interval      periodic save
dedupe             DATA and END-OF-MESSAGE charge once
dedupe_reconnect   DATA and END-OF-MESSAGE on two connections of one process charge once
idle               idle timeout
concurrent         2000 concurrent connections
limits             connection and descriptor limits
cli                command line
detach             detaching without --foreground
ipv6               IPv6 listener
control_metrics    control socket and metrics
loop_metrics       the loop's own times: one wait per request answered
notices            notices mailed on the timer (about a minute)
EOF
R=tests/daemons/durable.py
check_each policyd python3 "$R" "$BUILD" <<'EOF'
extremes         counts at their bounds kept exactly across a restart
kill9            kill -9 under load loses no count (journal)
foreign_journal  an older state file put back: its journal not replayed
shared_state     a second daemon on the same state file refused, nothing lost
stall            longest gaps, client's and server's: nothing due, saves, a 1M-mailbox reload
EOF
check "policyd: connections counted per client" "$D/policyd_peers" --jobs 2
S=tests/daemons/slow_clients.py
check_each policyd python3 "$S" "$BUILD" <<'EOF'
slow     3,000 slow and partial clients closed in time, bounded
cap      at most 300 connections per client address
uid      a Unix-socket client is its uid
metrics  metrics scraped while 200 connections are held
EOF
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
check_each milter python3 "$M" "$BUILD" <<'EOF'
smtp               SMTP login and sender, 451 4.7.1 text
refusal_flood      a flood of refusals: the first logged, then one count
sendmail_addr      Sendmail's {client_addr} forms
forwards_reload    no forward or list declared: none looked up; a reload declares them
address_forms      quoted, routed, dotted, bang-path envelopes: the forward and sender Postfix uses
local_forwards     a local submission to more than 8 forwarding mailboxes: taken, not stuck
reject             action reject (550 5.7.1)
rcpt_cap           the recipients cap at envrcpt (452 4.5.3)
local              local submission charged to its uid
local_hold         refused local submission held
local_notice       the notice of a held submission says held
local_bounce       refused local submission bounced
scripts_forbidden  scripts forbidden
forged             forged headers ignored
vhost              virtual host domain from the script path
abort              aborted messages and dropped connections
concurrent         64 concurrent connections, exact count
unix               Unix socket and its mode
peers              only root, postfix and --allow-user users on a Unix socket
user               --user drops root after binding
signals            SIGHUP reloads, SIGTERM saves, SIGINT
stop_save_failed   SIGTERM with a failed last save exits 1
cli                command line
detach             detaching without --foreground
EOF
check "milter: kill -9 before any save loses no count (journal)" \
  python3 tests/daemons/durable.py "$BUILD" milter_kill9
check "milter: obspam-milter.8" tests/daemons/milter_man.sh "$BUILD"

# ---- Packaging -------------------------------------------------------------
check "man pages: mandoc -Tlint, the project's version" \
  tests/daemons/man_lint.sh "$BUILD"
check "install into a non-system prefix: daemons, pkg-config, CMake" \
  tests/daemons/install_prefix.sh "$BUILD"
check "plain configure and build without Criterion and libmilter" \
  tests/daemons/plain_build.sh "$BUILD"

check_summary
