#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# obspam-milter behind a real, private Postfix: smtpd_milters and
# non_smtpd_milters = inet:127.0.0.1:PORT, every accepted message relayed
# to smtp-sink.
#
#   tests/e2e/milter.sh BUILD_DIR smtp    XCLIENT logins: a mailbox limit of
#                                         3 and a subscription limit of 4
#                                         shared by two mailboxes; exactly
#                                         the limits' worth reach the sink,
#                                         the rest get 451 4.7.1 at end of
#                                         data
#   tests/e2e/milter.sh BUILD_DIR local   local sendmail submissions by a
#                                         non-root user whose uid belongs to
#                                         a subscription with a limit of 2,
#                                         with an X-PHP-Originating-Script
#                                         header: 2 delivered, the third
#                                         held, the script in the report; a
#                                         fourth with forged headers that
#                                         claim another uid is held too
#   tests/e2e/milter.sh BUILD_DIR forward inbound mail from an Internet
#                                         client to a forwarding address
#                                         (virtual_alias_maps to a remote
#                                         one) whose mailbox limit is 2:
#                                         two forwarded, the third
#                                         deferred at RCPT (envrcpt), and
#                                         so is the address then written
#                                         quoted, with a trailing dot, as
#                                         a bang path and with a +ext
#   tests/e2e/milter.sh BUILD_DIR SCENARIO-unix
#                                         the same, deployed as on a shared
#                                         host: the milter listens on a
#                                         unix: socket in a set-group-ID
#                                         directory of group postfix (as
#                                         tmpfiles.d/obspam.conf makes it),
#                                         runs as a user of its own
#                                         (--user) and answers Postfix's
#                                         smtpd and cleanup, which run as
#                                         postfix, by their credentials
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=tests/e2e/lib/postfix.sh
. tests/e2e/lib/postfix.sh
# shellcheck source=tests/e2e/lib/adapter.sh
. tests/e2e/lib/adapter.sh

ad_args "usage: milter.sh BUILD_DIR smtp|local|forward[-unix]" "$@"
UNIX=0
if [[ $SCENARIO == *-unix ]]; then
  UNIX=1
  SCENARIO=${SCENARIO%-unix}
fi
MILTER=$(pf_find_program "$BUILD" obspam-milter milter) || exit 1

TEST_USER=obspamtest
SCRIPT=/var/www/vhosts/shop.example/httpdocs/contact.php
# A uid that no user has here: a subscription's, claimed by forged headers.
OTHER_UID=4000000001

pf_init
uid=$(pf_test_user "$TEST_USER")
CONFIG=$PF_TMP/obspam.conf
STATE=$PF_TMP/obspam.state
CONTROL=$PF_TMP/milter.sock
MILTER_PORT=$(ad_port)

{
  ad_config_common
  cat <<CONF

# The web customer whose PHP scripts run as the test user ($TEST_USER).
subscription web uid=$uid subscription=2 scripts=yes
domain shop.example subscription=web
# A roomy customer whose uid a forged header claims (see local_forged).
subscription other uid=$OTHER_UID subscription=100 scripts=yes
CONF
} >"$CONFIG"

if [[ $UNIX -eq 1 ]]; then
  MILTER_USER=obspame2e
  MILTER_UID=$(pf_test_user "$MILTER_USER")
  SOCKET_DIR=$PF_TMP/obspam-milter
  install -d -m 2750 -o "$MILTER_USER" -g postfix "$SOCKET_DIR"
  install -d -m 0750 -o "$MILTER_USER" "$PF_TMP/state"
  STATE=$PF_TMP/state/obspam.state
  SOCKET=$SOCKET_DIR/milter.sock
  POSTFIX_MILTER=unix:$SOCKET
  # Every refusal logged whole (--refusal-log-interval 0): the scenarios
  # match each refusal's queue ID with Postfix's log.
  pf_daemon_start "$PF_TMP/milter.log" "$MILTER" --config "$CONFIG" \
    --refusal-log-interval 0 \
    --socket "unix:$SOCKET" --user "$MILTER_USER" --state "$STATE" \
    --control "unix:$CONTROL" --vhost-pattern '/var/www/vhosts/%d/' \
    --foreground
  MILTER_PID=$PF_DAEMON_PID
  pf_expect "the socket's mode, owner and group" \
    "srw-rw---- $MILTER_USER:postfix" "$(stat -c '%A %U:%G' "$SOCKET")"
  pf_expect "the milter's uids" \
    "$MILTER_UID $MILTER_UID $MILTER_UID $MILTER_UID" \
    "$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$MILTER_PID/status")"
else
  POSTFIX_MILTER=inet:127.0.0.1:$MILTER_PORT
  pf_daemon_start "$PF_TMP/milter.log" "$MILTER" --config "$CONFIG" \
    --refusal-log-interval 0 \
    --socket "inet:$MILTER_PORT@127.0.0.1" --state "$STATE" \
    --control "unix:$CONTROL" --vhost-pattern '/var/www/vhosts/%d/' \
    --foreground
  MILTER_PID=$PF_DAEMON_PID
  pf_wait_port "$MILTER_PORT" || pf_die "obspam-milter does not listen"
fi

# Postfix never shows a milter pickup's "Received: by HOST (Postfix, from
# userid N) id QUEUEID;" header (milter8.c skips a message's first header),
# so obspam-milter reads the submitter's uid from the header that this
# header_checks rule prepends (see examples/milter/submission.h and
# obspam-milter(8)).
cat >"$PF_CONF/obspam_header_checks" <<'RULE'
/^Received: by [^ ]+ \([^,)]+, from userid ([0-9]+)\)[[:space:]]+id ([0-9A-Za-z]+);/ PREPEND X-Obspam-Pickup: uid=$1 id=$2
RULE
# milter_default_action = tempfail: should the milter fail, no message
# slips through unchecked (and the counts below show it).
pf_configure \
  "relay_domains = fwd.example" \
  "virtual_alias_maps = inline:{ sales@fwd.example=elsewhere@remote.example }" \
  "recipient_delimiter = +" \
  "smtpd_milters = $POSTFIX_MILTER" \
  "non_smtpd_milters = $POSTFIX_MILTER" \
  "milter_default_action = tempfail" \
  "header_checks = regexp:$PF_CONF/obspam_header_checks"
pf_start

# refusals LINES KIND OBJECT LIMIT: how many of the client's lines are a 451
# 4.7.1 at end of data with the milter's text, which names the refusing
# object and its limit.
refusals() {
  grep -c -E "^[0-9]+ eod 451 4\.7\.1 $2 $3 has sent to $4 recipients in the last 60 minutes, its limit is $4 recipients per hour; try again in [0-9]+ minutes?\$" <<<"$1" || true
}

# local_message N: a message as a PHP script's mail() hands it to
# sendmail, with PHP's X-PHP-Originating-Script header ("UID:SCRIPT").
local_message() {
  printf 'X-PHP-Originating-Script: %s:%s\nFrom: <%s@e2e.obspam.test>\nTo: <someone@remote.example>\nSubject: e2e local %s\nX-E2E-Tag: local-%s\n\nLocal submission %s by a script.\n-- end of test message\n' \
    "$uid" "$SCRIPT" "$TEST_USER" "$1" "$1" "$1"
}

# local_forged N: a message whose script forges the milter's header and
# PHP's, claiming the uid of the roomy subscription "other". Postfix's
# header_checks rule prepends the true X-Obspam-Pickup header above both,
# and a forged one cannot name the queue ID the message will get.
local_forged() {
  printf 'X-Obspam-Pickup: uid=%s id=0123456789A
X-PHP-Originating-Script: %s:%s
From: <%s@e2e.obspam.test>
To: <someone@remote.example>
Subject: e2e local %s
X-E2E-Tag: local-%s

Local submission %s by a script that forges headers.
-- end of test message
' \
    "$OTHER_UID" "$OTHER_UID" "$SCRIPT" "$TEST_USER" "$1" "$1" "$1"
}

case $SCENARIO in
smtp)
  ad_send "replies to info@acme.example (limit 3)" \
    "accepted accepted accepted eod eod eod" \
    --login info@acme.example --sender info@acme.example --count 6 \
    --tag mailbox
  pf_expect "451 4.7.1 refusals at end of data naming mailbox info@acme.example" \
    3 "$(refusals "$AD_OUT" mailbox info@acme.example 3)"
  # Each refusal line carries the queue ID (the i macro) of its message,
  # the one Postfix logs for that transaction.
  ad_expect_queue_ids "$PF_TMP/milter.log"
  ad_shared_limit eod
  pf_wait_delivered 7
  pf_expect "messages of info@acme.example at the sink" 3 \
    "$(ad_from info@acme.example)"
  pf_expect "the first three of info@acme.example at the sink" 3 \
    "$(pf_sink_grep '^X-E2E-Tag: mailbox-[123]$')"
  pf_expect "messages of alice at the sink" 3 "$(ad_from alice@shared.example)"
  pf_expect "messages of bob at the sink" 1 "$(ad_from bob@shared.example)"
  ;;
local)
  sender=$TEST_USER@e2e.obspam.test
  # Two messages as "sendmail -t" (recipients from the headers), one at a
  # time, so that their order is known.
  for n in 1 2; do
    local_message "$n" | pf_sendmail_as "$TEST_USER" -t -f "$sender" ||
      pf_die "sendmail -t (message $n) failed"
    pf_wait_delivered "$n"
  done
  # The third with its recipient on the command line: over the limit.
  local_message 3 |
    pf_sendmail_as "$TEST_USER" -f "$sender" someone@remote.example ||
    pf_die "sendmail -f (message 3) failed"
  # sendmail itself succeeds: postdrop queued the message before the
  # milter saw it. The milter holds it (smfi_quarantine): Postfix moves it
  # to the hold queue, and it never reaches the sink.
  if ! pf_wait_delivered 2 1; then
    if [[ $(pf_sink_grep '^X-E2E-Tag: local-3$') -ne 0 ]]; then
      pf_die "the third local submission reached the sink: obspam-milter" \
        "did not refuse it (did it tell the script's uid $uid?)"
    fi
    pf_die "the third local submission is not in the hold queue"
  fi
  pf_expect "local submissions at the sink" 2 "$(ad_from "$sender")"
  pf_expect "local submissions 1 and 2 at the sink" 2 \
    "$(pf_sink_grep '^X-E2E-Tag: local-[12]$')"
  held=$(find "$PF_QUEUE/hold" -type f)
  pf_expect "the held message is the third" 1 \
    "$(postcat -c "$PF_CONF" -h "$held" | grep -c '^X-E2E-Tag: local-3$' || true)"
  pf_expect "Postfix's milter-hold log lines for local submissions" 1 \
    "$(grep -c 'milter-hold: END-OF-MESSAGE from localhost\[127\.0\.0\.1\]' "$PF_MAILLOG" || true)"
  pf_expect "pickup's uid for the three submissions" 3 \
    "$(grep -c "postfix/pickup\[[0-9]*\]: [0-9A-F]*: uid=$uid from=<$sender>" "$PF_MAILLOG" || true)"

  # A fourth whose headers claim another customer's uid is still charged
  # to the test user's subscription, which is full: held as well.
  local_forged 4 | pf_sendmail_as "$TEST_USER" -t -f "$sender" ||
    pf_die "sendmail -t (message 4) failed"
  pf_wait_delivered 2 2 ||
    pf_die "the message with forged headers was not held"
  pf_expect "Postfix's milter-hold log lines after the forged one" 2 \
    "$(grep -c 'milter-hold: END-OF-MESSAGE from localhost\[127\.0\.0\.1\]' "$PF_MAILLOG" || true)"

  "$(ad_obspamctl)" --control "unix:$CONTROL" --json report \
    >"$PF_TMP/report.json" || pf_die "obspamctl report failed"
  pf_log "obspamctl --json report: $(tr -d '\n' <"$PF_TMP/report.json")"
  # report_row KIND NAME FIELD: a field of the report's row for an object.
  report_row() {
    python3 - "$PF_TMP/report.json" "$@" <<'PY'
import json, sys
path, kind, name, field = sys.argv[1:]
rows = [r for r in json.load(open(path))["rows"]
        if r["kind"] == kind and r["name"] == name]
print(rows[0][field] if len(rows) == 1 else "%d rows" % len(rows))
PY
  }
  pf_expect "the report's messages sent by the script $SCRIPT" 2 \
    "$(report_row script "$SCRIPT" sent)"
  pf_expect "the report's refusals of subscription web" 2 \
    "$(report_row subscription web refused)"
  pf_expect "the report's messages sent by subscription web" 2 \
    "$(report_row subscription web sent)"
  pf_expect "the report's over-the-limit attempts of subscription web" 2 \
    "$(report_row subscription web exceeded)"
  pf_expect "the report's limit of subscription web" 2 \
    "$(report_row subscription web limit)"
  pf_expect "subscription web's count of the last 60 minutes" 2 \
    "$(ad_status subscription web count)"
  # --vhost-pattern /var/www/vhosts/%d/ finds shop.example in the
  # script's path: the domain is charged with its subscription.
  pf_expect "domain shop.example's count (from the script's path)" 2 \
    "$(ad_status domain shop.example count)"
  pf_expect "subscription other's count (the forged uid is not charged)" 0 \
    "$(ad_status subscription other count)"
  ;;
forward)
  ad_forward "$PF_TMP/milter.log" ''
  # The same address as Postfix also takes it, quoted, with the domain's
  # trailing dot, as a bang path, with an extension (recipient_delimiter
  # = +): Postfix forwards each one, so each is the forward of the
  # mailbox at its limit, deferred at RCPT.
  n=3
  for form in '"sales"@fwd.example' sales@fwd.example. fwd.example!sales \
    sales+x@fwd.example; do
    n=$((n + 1))
    ad_send "mail for <$form> (the forward at its limit)" rcpt \
      --addr 198.51.100.77 --sender someone@outside.example \
      --rcpt "$form" --first "$n" --tag fwd
  done
  pf_expect "sales@fwd.example's count and refusals after them" "2 5" \
    "$(ad_status mailbox sales@fwd.example count refused)"
  pf_expect "forwarded messages at the sink after them" 2 \
    "$(pf_sink_grep '^X-Rcpt-Args: <elsewhere@remote\.example>')"
  ;;
*)
  pf_die "unknown scenario '$SCENARIO' (smtp, local, forward, smtp-unix, local-unix, forward-unix)"
  ;;
esac

if [[ $UNIX -eq 1 ]]; then
  # Postfix (the postfix user) was served; nobody was refused; no TCP.
  ad_expect_unix_peers "$PF_TMP/milter.log"
  pf_expect "Postfix's complaints about the milter" 0 \
    "$(grep -c -E "milter $POSTFIX_MILTER: (can't|read error|unreasonable)" "$PF_MAILLOG" || true)"
fi
pf_daemon_stop "$MILTER_PID"
if [[ $UNIX -eq 1 ]]; then
  pf_expect "the state saved at exit by the milter's user" "$MILTER_USER" \
    "$(stat -c %U "$STATE" 2>&1)"
  pf_expect "the socket removed at exit" gone \
    "$([[ -e $SOCKET ]] && echo present || echo gone)"
fi
pf_log "obspam-milter's log:"
cat "$PF_TMP/milter.log" >&2
