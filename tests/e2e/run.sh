#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Stage e2e: obspam-policyd and obspam-milter behind a real Postfix, and
# obspam-policyd behind a real Exim (tests/e2e/exim.sh).
#
#   tests/e2e/run.sh BUILD_DIR      (from the repository root; BUILD_DIR is
#                                    relative to it, e.g. build)
#
# Installs Debian's postfix when missing (preseeded "No configuration", so
# that no system instance is set up or started), then runs each scenario
# against a private Postfix instance of its own (tests/e2e/lib/postfix.sh:
# config, queue and data directories under a temporary directory, smtpd on
# a free port of 127.0.0.1, everything relayed to smtp-sink). The system's
# Postfix is never touched: the last checks verify that /etc/postfix and
# the system queue are as they were. Needs root.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1
BUILD=${1:-build}
# shellcheck source=tests/lib/deps.sh
. tests/lib/deps.sh
# shellcheck source=tests/lib/check.sh
. tests/lib/check.sh

# Without the preseed, installing postfix asks (or picks "Internet Site"
# and writes /etc/postfix/main.cf for a system instance).
if ! dpkg-query -W -f='${Status}' postfix 2>/dev/null |
  grep -q 'install ok installed'; then
  echo 'postfix postfix/main_mailer_type select No configuration' |
    debconf-set-selections
fi
obspam_need_packages postfix python3 util-linux passwd ||
  echo "e2e: could not install the packages; the checks below will say why"

# What the system's Postfix has before the tests; compared at the end.
system_state() {
  find /etc/postfix -xdev -type f -exec sha256sum {} + 2>/dev/null | sort
  find /var/spool/postfix/maildrop /var/spool/postfix/incoming \
    /var/spool/postfix/active /var/spool/postfix/deferred \
    /var/spool/postfix/hold -type f 2>/dev/null | sort
}
SYSTEM_BEFORE=$(mktemp)
SYSTEM_AFTER=$(mktemp)
trap 'rm -f "$SYSTEM_BEFORE" "$SYSTEM_AFTER"' EXIT
system_state >"$SYSTEM_BEFORE"

system_untouched() {
  system_state >"$SYSTEM_AFTER"
  diff -u "$SYSTEM_BEFORE" "$SYSTEM_AFTER" &&
    echo "/etc/postfix and the system queue are unchanged"
}
no_private_mounts() {
  ! grep -q ' /etc/postfix ' /proc/self/mountinfo
}

check "harness: private Postfix, XCLIENT, local sendmail, smtp-sink" \
  tests/e2e/harness.sh
check "policyd: a mailbox limit of 3 lets 3 of 6 through, 451 4.7.1 at DATA" \
  tests/e2e/policyd.sh "$BUILD" mailbox
check "policyd: a subscription limit of 4 shared by two mailboxes" \
  tests/e2e/policyd.sh "$BUILD" subscription
check "policyd: the counters survive a restart (SIGTERM, start again)" \
  tests/e2e/policyd.sh "$BUILD" restart
check "policyd: shared-host deployment: unix:private/obspam-policy, --user, peer credentials" \
  tests/e2e/policyd.sh "$BUILD" unix
check "policyd: forged hosted sender from the Internet: 5 over a limit of 3 delivered, then the owner sends its 3" \
  tests/e2e/policyd.sh "$BUILD" forged
check "policyd: an undeclared mailbox's login is limited by name" \
  tests/e2e/policyd.sh "$BUILD" implicit
check "policyd: the recipients cap at RCPT: a message to 30 under a cap of 10 goes in three transactions, all 30 reach the sink" \
  tests/e2e/policyd.sh "$BUILD" cap
check "policyd: inbound mail to a forwarding address (limit 2): 2 forwarded, the 3rd deferred at RCPT; all with count-forward-remote no" \
  tests/e2e/policyd.sh "$BUILD" forward
check "policyd: a list post from 127.0.0.1 (news-bounces@) to 5 over a mailbox limit of 1 is delivered" \
  tests/e2e/policyd.sh "$BUILD" list
check "milter: XCLIENT logins, limits, 4xx at end of data" \
  tests/e2e/milter.sh "$BUILD" smtp
check "milter: local sendmail by a script's uid: 2 delivered, the rest held, report" \
  tests/e2e/milter.sh "$BUILD" local
check "milter: inbound mail to a forwarding address (limit 2): 2 forwarded, the 3rd deferred at envrcpt, and its quoted, dotted, bang-path and +ext forms" \
  tests/e2e/milter.sh "$BUILD" forward
check "milter: shared-host deployment: SMTP and local mail over a unix: socket, --user, peer credentials" \
  bash -c "tests/e2e/milter.sh '$BUILD' smtp-unix && tests/e2e/milter.sh '$BUILD' local-unix"
# Exim: Debian's package is fetched (apt-get download), never installed;
# without it the scenario is skipped, and this says so.
if EXIM_FETCH=$(tests/e2e/exim.sh "$BUILD" fetch 2>&1); then
  check "exim: the ACL snippets with Debian's Exim 4.96: limits, RCPT, sendmail -t by uid (frozen past the limit), forged senders, no server" \
    tests/e2e/exim.sh "$BUILD" run
else
  printf 'skip exim: the Exim packages cannot be fetched: %s\n' \
    "$(tail -n 1 <<<"$EXIM_FETCH")"
fi
check "the system's Postfix config and queue are untouched" system_untouched
check "no /etc/postfix bind mount is left behind" no_private_mounts
check_summary
