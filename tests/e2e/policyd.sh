#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# obspam-policyd behind a real, private Postfix:
#   smtpd_data_restrictions = check_policy_service inet:127.0.0.1:PORT
# with every accepted message relayed to smtp-sink. Clients log in as
# hosted mailboxes through XCLIENT LOGIN (smtpd_authorized_xclient_hosts).
#
#   tests/e2e/policyd.sh BUILD_DIR mailbox       a mailbox limit of 3: 3 of
#                                                6 messages reach the sink,
#                                                the other DATA get 451 4.7.1
#   tests/e2e/policyd.sh BUILD_DIR subscription  two mailboxes under one
#                                                subscription limit of 4
#   tests/e2e/policyd.sh BUILD_DIR restart       the counters survive a
#                                                restart (SIGTERM, start)
#   tests/e2e/policyd.sh BUILD_DIR unix          as mailbox, deployed as on
#                                                a shared host: Postfix asks
#                                                on unix:private/obspam-policy
#                                                (its queue's private
#                                                directory), the daemon runs
#                                                as another user (--user) and
#                                                answers smtpd, which runs
#                                                as postfix, by its
#                                                credentials
#   tests/e2e/policyd.sh BUILD_DIR forged        inbound mail from an
#                                                Internet client with a
#                                                hosted sender is not
#                                                counted: 5 over a limit
#                                                of 3 delivered, then the
#                                                owner still sends its 3
#   tests/e2e/policyd.sh BUILD_DIR implicit      the login of an undeclared
#                                                mailbox is limited by name
#   tests/e2e/policyd.sh BUILD_DIR cap           the recipients cap at RCPT
#                                                (check_policy_service in
#                                                smtpd_recipient_restrictions
#                                                too): a message to 30
#                                                under a cap of 10 goes in
#                                                three transactions, and all
#                                                30 reach the sink
#   tests/e2e/policyd.sh BUILD_DIR forward       inbound mail from an
#                                                Internet client to a
#                                                forwarding address
#                                                (virtual_alias_maps to a
#                                                remote one) whose mailbox
#                                                limit is 2: with
#                                                count-forward-remote yes
#                                                two are forwarded and the
#                                                third deferred at RCPT;
#                                                after a reload with no,
#                                                all are
#   tests/e2e/policyd.sh BUILD_DIR list          a list post from 127.0.0.1
#                                                with sender news-bounces@
#                                                to 5 recipients over a
#                                                mailbox limit of 1 is
#                                                delivered (lists exempt);
#                                                the same from a sender
#                                                that is no list is not
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=tests/e2e/lib/postfix.sh
. tests/e2e/lib/postfix.sh
# shellcheck source=tests/e2e/lib/adapter.sh
. tests/e2e/lib/adapter.sh

ad_args "usage: policyd.sh BUILD_DIR mailbox|subscription|restart|unix|forged|implicit|cap|forward|list" "$@"
POLICYD=$(pf_find_program "$BUILD" obspam-policyd policyd) || exit 1

pf_init
CONFIG=$PF_TMP/obspam.conf
STATE=$PF_TMP/obspam.state
CONTROL=$PF_TMP/policyd.sock
POLICY_PORT=$(ad_port)

{
  ad_config_common
  cat <<'CONF'

# A domain whose mailboxes may send 2 each; none is declared.
domain hosted.example subscription=acme mailbox=2

# At most 10 recipients per message, for the domain's mailboxes (none is
# declared).
domain capped.example subscription=acme max-recipients=10

# A mailing list of a domain whose mailboxes may send 1.
domain lists.example subscription=acme mailbox=1
list news@lists.example
CONF
} >"$CONFIG"

# Every refusal logged whole (--refusal-log-interval 0): the scenarios
# match each refusal's queue ID with Postfix's log.
start_policyd() {
  pf_daemon_start "$PF_TMP/policyd.log" "$POLICYD" --config "$CONFIG" \
    --refusal-log-interval 0 \
    --listen "inet:127.0.0.1:$POLICY_PORT" --state "$STATE" \
    --control "unix:$CONTROL" --foreground
  POLICYD_PID=$PF_DAEMON_PID
}

if [[ $SCENARIO == unix ]]; then
  # Postfix first: its private directory (postfix, mode 0700) exists once
  # it runs, and smtpd connects to the policy socket only when asked.
  pf_configure \
    "smtpd_data_restrictions = check_policy_service unix:private/obspam-policy"
  pf_start
  SOCKET=$PF_QUEUE/private/obspam-policy
  USER_UID=$(pf_test_user obspamtest)
  STATE=$PF_TMP/state/obspam.state
  mkdir -m 0750 "$PF_TMP/state"
  chown obspamtest "$PF_TMP/state"
  chmod 0644 "$CONFIG"
  pf_daemon_start "$PF_TMP/policyd.log" "$POLICYD" --config "$CONFIG" \
    --refusal-log-interval 0 \
    --listen "unix:$SOCKET" --user obspamtest --state "$STATE" --foreground
  POLICYD_PID=$PF_DAEMON_PID
  pf_expect "the socket's mode, owner and group" \
    "srw-rw---- obspamtest:postfix" "$(stat -c '%A %U:%G' "$SOCKET")"
  pf_expect "the daemon's uids" "$USER_UID $USER_UID $USER_UID $USER_UID" \
    "$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$POLICYD_PID/status")"
  pf_expect "the daemon's capabilities (effective, bounding)" "0 0" \
    "$(awk '/^CapEff:/ {e=$2} /^CapBnd:/ {b=$2} END {print e+0, b+0}' \
      "/proc/$POLICYD_PID/status")"
  SCENARIO=mailbox
  UNIX=1
else
  start_policyd
  # acme.example receives mail too (relayed to the sink): an Internet
  # client may deliver to it. The cap needs the server at RCPT, last of
  # the recipient restrictions, as the README has it.
  rcpt=()
  [[ $SCENARIO == cap || $SCENARIO == forward ]] && rcpt=(
    "smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:$POLICY_PORT")
  # The forward as a panel writes it for Postfix (README, "Forwards and
  # mailing lists").
  [[ $SCENARIO == forward ]] && rcpt+=(
    "virtual_alias_maps = inline:{ sales@fwd.example=elsewhere@remote.example }")
  pf_configure \
    "smtpd_data_restrictions = check_policy_service inet:127.0.0.1:$POLICY_PORT" \
    "relay_domains = acme.example fwd.example" "${rcpt[@]}"
  pf_start
  UNIX=0
fi

# refusals LINES KIND OBJECT LIMIT: how many of the client's lines are a 451
# 4.7.1 at DATA that names the refusing object and its limit, with the
# policy server's text ("... has sent to N recipients in the last 60
# minutes, its limit is N recipients per hour; try again in M minutes").
refusals() {
  grep -c -E "^[0-9]+ data 451 4\.7\.1 .*$2 $3 has sent to $4 recipients in the last 60 minutes, its limit is $4 recipients per hour; try again in [0-9]+ minutes?\$" <<<"$1" || true
}

case $SCENARIO in
mailbox)
  ad_send "replies to info@acme.example (limit 3)" \
    "accepted accepted accepted data data data" \
    --login info@acme.example --sender info@acme.example --count 6 \
    --tag mailbox
  pf_expect "451 4.7.1 refusals naming mailbox info@acme.example" 3 \
    "$(refusals "$AD_OUT" mailbox info@acme.example 3)"
  pf_wait_delivered 3
  pf_expect "messages of info@acme.example at the sink" 3 \
    "$(ad_from info@acme.example)"
  pf_expect "the first three messages at the sink" 3 \
    "$(pf_sink_grep '^X-E2E-Tag: mailbox-[123]$')"
  # Each refusal line carries Postfix's queue ID of its message, the one
  # Postfix logs for that transaction.
  ad_expect_queue_ids "$PF_TMP/policyd.log"
  ;;
subscription)
  ad_shared_limit data
  ad_send "alice's 4th message (her own limit is 10)" "data" \
    --login alice@shared.example --sender alice@shared.example --count 1 \
    --first 4 --tag alice
  pf_expect "alice's 451 4.7.1 refusal naming subscription shared" 1 \
    "$(refusals "$AD_OUT" subscription shared 4)"
  pf_wait_delivered 4
  pf_expect "messages of alice at the sink" 3 "$(ad_from alice@shared.example)"
  pf_expect "messages of bob at the sink" 1 "$(ad_from bob@shared.example)"
  ;;
restart)
  ad_send "replies before the restart" "accepted accepted accepted data" \
    --login info@acme.example --sender info@acme.example --count 4 \
    --tag before
  ad_send "alice's replies before the restart (subscription limit 4)" \
    "accepted accepted accepted accepted" \
    --login alice@shared.example --sender alice@shared.example --count 4 \
    --tag before
  pf_wait_delivered 7

  pf_daemon_stop "$POLICYD_PID"
  [[ -s $STATE ]] || pf_die "no state file $STATE after SIGTERM"
  start_policyd
  # The restarted daemon's own view, through its control socket.
  pf_expect "mailbox info@acme.example's count after the restart" 3 \
    "$(ad_status mailbox info@acme.example count)"
  pf_expect "subscription shared's count after the restart" 4 \
    "$(ad_status subscription shared count)"

  ad_send "info@acme.example's next message after the restart" "data" \
    --login info@acme.example --sender info@acme.example --count 1 --first 5 \
    --tag after
  pf_expect "its refusal names mailbox info@acme.example, 3 sent" 1 \
    "$(refusals "$AD_OUT" mailbox info@acme.example 3)"
  ad_send "bob's first message after the restart (subscription full)" "data" \
    --login bob@shared.example --sender bob@shared.example --count 1 \
    --tag after
  pf_expect "its refusal names subscription shared, 4 sent" 1 \
    "$(refusals "$AD_OUT" subscription shared 4)"
  # The restarted daemon still accepts what fits.
  ad_send "another mailbox of acme after the restart" "accepted" \
    --login sales@acme.example --sender sales@acme.example --count 1 \
    --tag after
  pf_wait_delivered 8
  pf_expect "messages of info@acme.example at the sink" 3 \
    "$(ad_from info@acme.example)"
  pf_expect "messages of shared.example at the sink" 4 \
    "$(pf_sink_grep '^X-Mail-Args: <[a-z]+@shared\.example>')"
  ;;
forged)
  # With the default count-unauthenticated local, mail without login from
  # a client on the Internet is inbound mail, whatever sender it claims.
  ad_send "forged info@acme.example from 198.51.100.77 (limit 3)" \
    "$(pf_repeat accepted 5)" \
    --addr 198.51.100.77 --sender info@acme.example \
    --rcpt postmaster@acme.example --count 5 --tag forged
  pf_wait_delivered 5
  # The owner, logged in, still has its whole limit.
  ad_send "replies to the owner info@acme.example (limit 3)" \
    "accepted accepted accepted data" \
    --login info@acme.example --sender info@acme.example --count 4 --tag owner
  pf_expect "its 451 4.7.1 refusal naming mailbox info@acme.example" 1 \
    "$(refusals "$AD_OUT" mailbox info@acme.example 3)"
  pf_wait_delivered 8
  pf_expect "forged messages at the sink" 5 \
    "$(pf_sink_grep '^X-E2E-Tag: forged-[1-5]$')"
  pf_expect "the owner's messages at the sink" 3 \
    "$(pf_sink_grep '^X-E2E-Tag: owner-[123]$')"
  ;;
implicit)
  # stolen@hosted.example has no mailbox line: it is limited by name, by
  # the domain's mailbox limit of 2, and another login has its own 2.
  ad_send "replies to stolen@hosted.example (limit 2, not declared)" \
    "accepted accepted data data" \
    --login stolen@hosted.example --sender stolen@hosted.example --count 4 \
    --tag stolen
  pf_expect "451 4.7.1 refusals naming mailbox stolen@hosted.example" 2 \
    "$(refusals "$AD_OUT" mailbox stolen@hosted.example 2)"
  ad_send "replies to other@hosted.example (its own limit of 2)" \
    "accepted accepted data" \
    --login other@hosted.example --sender other@hosted.example --count 3 \
    --tag other
  pf_wait_delivered 4
  pf_expect "messages of stolen@hosted.example at the sink" 2 \
    "$(ad_from stolen@hosted.example)"
  pf_expect "obspamctl status of the implicit mailbox: its count" 2 \
    "$(ad_status mailbox stolen@hosted.example count)"
  ;;
cap)
  # many@capped.example, an implicit mailbox, may send 10 recipients per
  # message: an honest client sends a message to 30 in three
  # transactions of one session, the 11th RCPT of the first two answered
  # 452 (after which the client asks for no more in that transaction).
  AD_OUT=$(pf_send --login many@capped.example --sender many@capped.example \
    --rcpts 30 --tag many)
  printf '%s\n' "$AD_OUT"
  pf_expect "transactions of the message to 30 (cap 10)" \
    "1 accepted 250 rcpts=10 deferred=20
1 accepted 250 rcpts=10 deferred=10
1 accepted 250 rcpts=10 deferred=0" "$(cut -d ' ' -f 1-5 <<<"$AD_OUT")"
  pf_expect "the 452 4.5.3 of the recipients past the cap, in Postfix's log" 2 \
    "$(grep -c 'reject: RCPT from .*: 452 4\.5\.3 .*Too many recipients' \
      "$PF_MAILLOG" || true)"
  pf_wait_delivered 3
  pf_expect "recipients of the three messages at the sink" 30 \
    "$(cat $(pf_sink_files) | grep -E '^X-Rcpt-Args: <rcpt-many-1-[0-9]+@remote\.example>' |
      sort -u | wc -l)"
  pf_expect "messages of 10 recipients at the sink" 3 \
    "$(for f in $(pf_sink_files); do grep -c '^X-Rcpt-Args:' "$f"; done |
      grep -cx 10)"
  pf_expect "many@capped.example's count (30 recipients, no refusal)" "30 0" \
    "$(ad_status mailbox many@capped.example count refused)"
  ;;
forward)
  ad_forward "$PF_TMP/policyd.log" '.*'
  # Remote forwards not counted: everything goes through.
  printf 'count-forward-remote no\n' >>"$CONFIG"
  "$(ad_obspamctl)" --control "unix:$CONTROL" reload
  ad_send "replies with count-forward-remote no" "$(pf_repeat accepted 3)" \
    --addr 198.51.100.77 --sender someone@outside.example \
    --rcpt sales@fwd.example --count 3 --first 4 --tag fwd
  pf_wait_delivered 5
  pf_expect "forwarded messages at the sink" 5 \
    "$(pf_sink_grep '^X-Rcpt-Args: <elsewhere@remote\.example>')"
  ;;
list)
  # A list server on this host (127.0.0.1, a local network) posts to 5
  # subscribers with the list's bounce address; the domain's mailboxes
  # may send 1 recipient.
  AD_OUT=$(pf_send --sender news-bounces@lists.example --rcpts 5 --tag list)
  printf '%s\n' "$AD_OUT"
  pf_expect "the list post to 5 (lists exempt)" \
    "1 accepted 250 rcpts=5 deferred=0" "$(cut -d ' ' -f 1-5 <<<"$AD_OUT")"
  # The same from a sender that is no list is ordinary local mail.
  ad_send "the same post from other@lists.example (limit 1)" "data" \
    --sender other@lists.example --rcpts 5 --tag other
  pf_wait_delivered 1
  pf_expect "recipients of the list post at the sink" 5 \
    "$(mapfile -t sunk < <(pf_sink_files)
      grep -h -E '^X-Rcpt-Args: <rcpt-list-1-[1-5]@remote\.example>' "${sunk[@]}" |
        sort -u | wc -l)"
  pf_expect "messages of other@lists.example at the sink" 0 \
    "$(ad_from other@lists.example)"
  ;;
*)
  pf_die "unknown scenario '$SCENARIO' (mailbox, subscription, restart, unix, forged, implicit, cap, forward, list)"
  ;;
esac

if [[ $UNIX -eq 1 ]]; then
  # smtpd, the postfix user, was answered; nobody was refused; no TCP.
  ad_expect_unix_peers "$PF_TMP/policyd.log"
  pf_expect "Postfix's complaints about the policy service" 0 \
    "$(grep -c 'problem talking to server' "$PF_MAILLOG" || true)"
fi

pf_daemon_stop "$POLICYD_PID"
if [[ $UNIX -eq 1 ]]; then
  pf_expect "the state saved at exit by the daemon's user" obspamtest \
    "$(stat -c %U "$STATE" 2>&1)"
fi
pf_log "obspam-policyd's log:"
cat "$PF_TMP/policyd.log" >&2
