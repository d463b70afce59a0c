#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The harness itself, with a stand-in policy server that answers DUNNO: a
# private Postfix instance relays every message it accepts to smtp-sink,
# XCLIENT LOGIN reaches the policy service as sasl_username, and a local
# sendmail submission by a non-root user goes through the private queue.
# When this check fails, the daemon scenarios cannot pass either.
#
#   tests/e2e/harness.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=tests/e2e/lib/postfix.sh
. tests/e2e/lib/postfix.sh

pf_init
python3 "$PF_LIB/stub_policy.py" "$PF_TMP/policy.port" "$PF_TMP/policy.log" &
pf_track $!
pf_wait_path "$PF_TMP/policy.port" || pf_die "the stub policy server did not start"
policy_port=$(cat "$PF_TMP/policy.port")

pf_configure \
  "smtpd_data_restrictions = check_policy_service inet:127.0.0.1:$policy_port"
pf_start

replies=$(python3 "$PF_LIB/smtpclient.py" --port "$PF_SMTPD_PORT" \
  --login info@acme.example --sender info@acme.example --count 3 --tag h)
printf '%s\n' "$replies"
pf_expect "replies at end of data" "accepted accepted accepted" \
  "$(awk '{printf "%s%s", sep, $2; sep=" "}' <<<"$replies")"
pf_wait_delivered 3
pf_expect "messages of the login at the sink" 3 \
  "$(pf_sink_grep '^X-Mail-Args: <info@acme.example>')"
pf_expect "policy requests at DATA with sasl_username=info@acme.example" 3 \
  "$(grep -c '^DATA info@acme.example info@acme.example$' "$PF_TMP/policy.log")"

# A local submission by a non-root user: sendmail -> postdrop -> the
# private maildrop -> pickup -> cleanup -> the sink. postdrop is set-gid
# postdrop: the private maildrop and public directories must belong to that
# group as in the system's queue ("postfix start" creates them so; the
# sticky and set-gid bits that Debian's postinst adds to the system's are
# not needed).
perms() {
  local mode
  mode=$(stat -c '%a' "$1")
  printf '%s %s' "$(stat -c '%U:%G' "$1")" "${mode: -3}"
}
pf_expect "owner and mode of the private maildrop" "postfix:postdrop 730" \
  "$(perms "$PF_QUEUE/maildrop")"
pf_expect "owner and mode of the private public directory" \
  "postfix:postdrop 710" "$(perms "$PF_QUEUE/public")"
pf_test_user obspamtest >/dev/null
printf 'From: <obspamtest@e2e.obspam.test>\nTo: <someone@remote.example>\nSubject: e2e local 1\n\nA local submission.\n-- end of test message\n' |
  pf_sendmail_as obspamtest -t -f obspamtest@e2e.obspam.test ||
  pf_die "sendmail as obspamtest failed"
pf_wait_delivered 4
pf_expect "local submissions at the sink" 1 \
  "$(pf_sink_grep '^Subject: e2e local 1$')"
pf_expect "the pickup log line of the local submission" 1 \
  "$(grep -c "postfix/pickup.*uid=$(id -u obspamtest) from=<obspamtest@e2e.obspam.test>" "$PF_MAILLOG")"
