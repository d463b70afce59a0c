# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# What the scenarios of the two Postfix adapters (policyd.sh, milter.sh),
# and in part Exim's (exim.sh), share: the part of the configuration both limit, the daemon's port, the
# client's replies, the refusal lines' queue IDs, the forward scenario, the
# daemon's view through obspamctl, and the checks of a unix: deployment.
# Sourced after lib/postfix.sh; the functions read BUILD, CONTROL and the
# daemon's LOG where they say so.

# ad_args USAGE ARGS...: BUILD (made absolute) and SCENARIO from the
# script's two arguments; without them, the usage, and the script exits.
ad_args() {
  BUILD=${2:?$1}
  SCENARIO=${3:?$1}
  [[ $BUILD == /* ]] || BUILD=$PWD/$BUILD
}

# ad_config_common: the configuration lines both adapters' scenarios use:
# high server defaults (so that only the limits below refuse), a mailbox
# with a limit of 3, two mailboxes that share a subscription limit of 4,
# and a forwarding address whose mailboxes may send 2.
ad_config_common() {
  cat <<'CONF'
action defer
default mailbox=100 domain=1000 subscription=5000 scripts=yes

# One mailbox with a limit of 3 in a roomy subscription.
subscription acme subscription=100
domain acme.example subscription=acme
mailbox info@acme.example limit=3

# Two roomy mailboxes that share one subscription limit of 4.
subscription shared subscription=4
domain shared.example subscription=shared
mailbox alice@shared.example limit=10
mailbox bob@shared.example limit=10

# A forwarding address of a domain whose mailboxes may send 2: Postfix's
# virtual_alias_maps sends its mail to elsewhere@remote.example.
domain fwd.example subscription=acme mailbox=2
forward sales@fwd.example remote
CONF
}

# ad_port: a free port of 127.0.0.1 for the daemon, other than Postfix's
# smtpd and sink ports.
ad_port() {
  local port
  port=$(pf_free_port)
  while [[ $port == "$PF_SMTPD_PORT" || $port == "$PF_SINK_PORT" ]]; do
    port=$(pf_free_port)
  done
  printf '%s\n' "$port"
}

# ad_send WHAT STAGES PF_SEND-ARGS...: sends with pf_send, prints the
# client's lines and expects their stage words; the lines stay in AD_OUT
# for the checks that follow.
ad_send() {
  local what=$1 stages=$2
  shift 2
  AD_OUT=$(pf_send "$@")
  printf '%s\n' "$AD_OUT"
  pf_expect "$what" "$stages" "$(pf_stages "$AD_OUT")"
}

# ad_from ADDRESS: how many messages at the sink have the envelope sender
# ADDRESS.
ad_from() {
  pf_sink_grep "^X-Mail-Args: <$1>"
}

# ad_shared_limit REFUSED: alice and bob send 3 messages each under the
# subscription limit of 4 they share: alice's go through, bob's first
# too, and his other two are refused at the stage REFUSED (data or eod)
# with a reply naming subscription shared (that the scenario's function
# refusals counts).
ad_shared_limit() {
  ad_send "replies to alice (3 of the subscription's 4)" \
    "accepted accepted accepted" \
    --login alice@shared.example --sender alice@shared.example --count 3 \
    --tag alice
  ad_send "replies to bob (the subscription's last slot, then full)" \
    "accepted $1 $1" \
    --login bob@shared.example --sender bob@shared.example --count 3 --tag bob
  pf_expect "bob's 451 4.7.1 refusals naming subscription shared" 2 \
    "$(refusals "$AD_OUT" subscription shared 4)"
}

# ad_expect_queue_ids LOG: each of the 3 refusal lines of mailbox
# info@acme.example in the daemon's LOG carries the queue ID of its
# message, the one Postfix logs for that transaction.
ad_expect_queue_ids() {
  local ids id
  ids=$(sed -n 's/.* refuse kind=mailbox object=info@acme\.example .* queue_id=\([^ ]*\) .*/\1/p' \
    "$1" | sort -u)
  pf_expect "queue IDs in the refusal lines" 3 "$(grep -c '^[0-9A-Za-z]\{6,\}$' <<<"$ids" || true)"
  for id in $ids; do
    grep -q "postfix/smtpd\[[0-9]*\]: $id: " "$PF_MAILLOG" ||
      pf_die "queue ID $id of a refusal line is not in Postfix's log"
  done
}

# ad_status KIND NAME FIELD...: the fields of "obspamctl --json status
# KIND NAME", space-separated, from the daemon of CONTROL.
ad_status() {
  local kind=$1 name=$2 json
  shift 2
  json=$("$(ad_obspamctl)" --control "unix:$CONTROL" --json status "$kind" "$name") ||
    pf_die "obspamctl status $kind $name failed"
  python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(*(d[f] for f in sys.argv[2:]))' \
    "$json" "$@"
}

# ad_obspamctl: the path of the build's obspamctl.
ad_obspamctl() {
  pf_find_program "$BUILD" obspamctl obspamctl || pf_die "no obspamctl"
}

# ad_forward LOG BEFORE: the forward scenario: three messages from an
# Internet client to sales@fwd.example (limit 2, undeclared: implicit),
# inbound mail not counted as such but each one forward of its mailbox;
# the third is deferred at RCPT with a reply whose text follows BEFORE
# (a regular expression) after "451 4.7.1 ", and the daemon's LOG tells
# a forward.
ad_forward() {
  ad_send "replies to mail for sales@fwd.example (forward limit 2)" \
    "accepted accepted rcpt" --addr 198.51.100.77 \
    --sender someone@outside.example --rcpt sales@fwd.example --count 3 \
    --tag fwd
  pf_expect "its 451 4.7.1 at RCPT naming mailbox sales@fwd.example" 1 \
    "$(grep -c -E "^3 rcpt 451 4\\.7\\.1 ${2}mailbox sales@fwd\\.example has sent to 2 recipients in the last 60 minutes" <<<"$AD_OUT" || true)"
  pf_expect "the refusal's log line tells a forward" 1 \
    "$(grep -c 'refuse kind=mailbox object=sales@fwd\.example .*sender=sales@fwd\.example client=198\.51\.100\.77 recipients=1 window=hour mail=forward-remote$' \
      "$1" || true)"
  pf_wait_delivered 2
  pf_expect "forwarded messages at the sink" 2 \
    "$(pf_sink_grep '^X-Rcpt-Args: <elsewhere@remote\.example>')"
  pf_expect "sales@fwd.example's count and refusals" "2 1" \
    "$(ad_status mailbox sales@fwd.example count refused)"
}

# ad_expect_unix_peers LOG: the daemon of LOG answered Postfix, which runs
# as postfix, over its unix: socket: it refused no peer and warned of no
# TCP.
ad_expect_unix_peers() {
  pf_expect "peer refusals in the daemon's log" 0 \
    "$(grep -c 'peer refused' "$1" || true)"
  pf_expect "TCP warnings in the daemon's log" 0 \
    "$(grep -c 'over TCP' "$1" || true)"
}
