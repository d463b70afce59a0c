#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# What the admin is told about refusals that have no window: a
# subscription whose scripts may not send, on a server whose default
# caps the recipients of every message (the notice's log line and mails,
# and the report's WINDOW), beside a subscription that went over its
# own cap; set-limit on an implicit mailbox; the history of a day to
# come; limits set live and reloads of a file with a byte order mark and
# a '#' inside a name.
#
#   tests/daemons/ctl_admin.sh BUILD_DIR
set -euo pipefail

# shellcheck source=tests/daemons/ctl_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/ctl_lib.sh" ctl_admin "${1:-}"

conf=$work/obspam.conf
cat >"$conf" <<'EOF'
default mailbox=100 domain=1000 subscription=5000 max-recipients=50
subscription acme uid=10001 scripts=no contact=ops@acme.example
subscription bakery uid=10002 max-recipients=10
domain example.com subscription=acme
domain bakery.example subscription=bakery
EOF
# Both refused more than a notification period (an hour) ago, so that
# the flush at the end of the feed gives their notices.
cat >"$work/feed" <<'EOF'
decide flags=script uid=10001 script=/var/www/acme/x.php recipients=1 time=now-4000
decide flags=script uid=10002 script=/var/www/bakery/y.php recipients=20 time=now-4000
flush now
decide sasl=bob@example.com client=203.0.113.7 recipients=1 time=now
EOF
sock=$work/ctl.sock
export OBSPAM_CONTROL=unix:$sock
mkdir "$work/mails"
start_daemon "$work/log" --config "$conf" --control "unix:$sock" \
  --admin admin@host.example \
  --notify-command "cat >\"\$(mktemp '$work/mails/mail.XXXXXX')\"" \
  --feed "$work/feed"
expect "the feed's verdicts" "refuse refuse accept" \
  "$(sed -n 's/^verdict action=\([a-z]*\) .*/\1/p' "$work/testd.out" | xargs)"

# ---- notices ---------------------------------------------------------------

expect "notice lines" "kind=subscription object=acme subscription=acme limit=5000 unit=recipients window=scripts sent=0 refused=1 exceeded=1
kind=subscription object=bakery subscription=bakery limit=10 unit=recipients window=max-recipients sent=0 refused=1 exceeded=1" \
  "$(sed -n 's/.*: notice \(.*\) first=.*/\1/p' "$work/log")"

# Three mails: the admin's and the contact's about acme, the admin's
# about bakery (which has no contact).
for ((i = 0; i < 200; i++)); do
  [[ $(grep -c ': mail sent to=' "$work/log") -ge 3 ]] && break
  sleep 0.05
done
expect "mails sent" 3 "$(grep -c ': mail sent to=' "$work/log")"
mail_about() { # TO OBJECT: the body of that mail
  grep -l "^To: $1\$" "$work"/mails/mail.* | xargs grep -l "^Subject: .* $2:" |
    xargs sed '1,/^$/d'
}
body=$(mail_about admin@host.example "subscription acme")
expect "acme, to the admin" "The subscription acme went over its sending limit
on $(hostname).

  Object:         subscription acme
  Contact:        ops@acme.example (sent a copy of this notice)
  Limit:          scripts may not send mail" "$(head -6 <<<"$body")"
expect "acme, to the admin: what to do" "- If the traffic is legitimate, let its scripts send (scripts=yes) in the configuration" \
  "$(grep '^- If the traffic is legitimate' <<<"$body")"
body=$(mail_about ops@acme.example "subscription acme")
expect "acme, to its contact" "Your subscription acme
tried to send more mail than its limit allows.

  Object:         subscription acme
  Limit:          scripts may not send mail" "$(sed -n '3,7p' <<<"$body")"
expect "acme, to its contact: what to do" "- If the mail was legitimate, ask your hosting provider to let your
  scripts send mail:
  reply to this mail (admin@host.example)." \
  "$(grep -A2 '^- If the mail was legitimate' <<<"$body")"
body=$(mail_about admin@host.example "subscription bakery")
expect "bakery, to the admin" "The subscription bakery went over its limit of 10 recipients per message
on $(hostname).

  Object:         subscription bakery
  Limit:          10 recipients per message" "$(head -5 <<<"$body")"
expect "bakery, to the admin: what to do" "- If the traffic is legitimate, raise the limit in the configuration" \
  "$(grep '^- If the traffic is legitimate' <<<"$body")"

# ---- the report ------------------------------------------------------------

run_ctl 0 report --since 3h
expect "report: the subscriptions' windows" "subscription acme 1 1 1 5000 scripts
subscription bakery 0 1 1 10 max-recipients" \
  "$(awk '$1 == "subscription" {print $1, $2, $3, $4, $5, $6, $7}' <<<"$out")"
run_ctl 0 report --since 3h --json
python3 - "$work/ctl.out" <<'EOF'
import json, sys
rows = {r["name"]: (r["window"], r["limit"])
        for r in json.load(open(sys.argv[1]))["rows"]
        if r["kind"] == "subscription"}
assert rows == {"acme": ("scripts", 5000),
                "bakery": ("max-recipients", 10)}, rows
EOF
echo "ok: report --json: the subscriptions' windows"

# ---- set-limit on an implicit mailbox --------------------------------------

# bob@example.com is shown by status, but the library has limits for
# declared objects only: the admin is told so, not that there is no such
# mailbox.
run_ctl 0 status mailbox bob@example.com
expect "status of an implicit mailbox" "mailbox bob@example.com: sending" \
  "$(head -1 <<<"$out")"
run_ctl 1 set-limit mailbox BOB@example.com mailbox 5/h
expect "set-limit on an implicit mailbox" "obspamctl: mailbox bob@example.com is not declared (an implicit mailbox of its domain): give it a mailbox line in the configuration file, or set its domain's mailbox limit" "$err"
run_ctl 1 set-limit mailbox bob@example.com max-recipients 5
expect "set-limit max-recipients on an implicit mailbox" "obspamctl: mailbox bob@example.com is not declared (an implicit mailbox of its domain): give it a mailbox line in the configuration file, or set its domain's mailbox limit" "$err"
run_ctl 1 set-limit mailbox nobody@example.com mailbox 5/h
expect "set-limit on no mailbox" "obspamctl: set_window_limit: no mailbox 'nobody@example.com'" "$err"
expect "no set-limit logged" "" "$(grep 'set-limit' "$work/log" || true)"

# ---- history of days without data ------------------------------------------

# A day to come has not begun: it is no table of hours without mail. A
# day that has begun, without mail, is one.
run_ctl 2 history mailbox bob@example.com --day 2099-01-01
expect "history of a day to come" "obspamctl: 2099-01-01 has not begun yet (in UTC)" "$err"
yesterday=$(date -u -d yesterday +%F)
run_ctl 0 history mailbox bob@example.com --day "$yesterday"
expect "history of a day without mail" "mailbox bob@example.com on $yesterday (UTC), per clock hour:
total         0         0
limit       100 per hour" "$(head -1 <<<"$out"; tail -2 <<<"$out")"

stop_daemon

# ---- set-limit and a reload: which lines are the objects' ------------------

# A file with a byte order mark, whose first line declares an object, and
# a mailbox with '#' inside its name (a comment starts only at the start
# of a word). Limits set live stay while a reload leaves their object's
# line alone (its comment does not count), and go when it changes it.
printf '\xef\xbb\xbfsubscription acme subscription=5000\n' >"$conf"
cat >>"$conf" <<'EOF'
domain example.com subscription=acme
mailbox a#b@example.com limit=5 # the help desk
EOF
start_daemon "$work/log2" --config "$conf" --control "unix:$sock"
run_ctl 0 set-limit subscription acme subscription 7
run_ctl 0 set-limit mailbox 'a#b@example.com' mailbox 9
sed -i 's/# the help desk/# the help desk, Anna/' "$conf"
run_ctl 0 reload
expect "a reload that changes a comment keeps the limits set live" "kind=subscription object=acme limit=subscription value=7/h
kind=mailbox object=a#b@example.com limit=mailbox value=9/h" \
  "$(sed -n 's/.*: set-limit kept \(.*\): the configuration file does not change that object$/\1/p' "$work/log2")"
sed -i 's/subscription=5000/subscription=6000/; s/limit=5/limit=6/' "$conf"
run_ctl 0 reload
expect "a reload that changes their lines drops them" "kind=subscription object=acme limit=subscription value=7/h
kind=mailbox object=a#b@example.com limit=mailbox value=9/h" \
  "$(sed -n 's/.*: set-limit dropped \(.*\): the configuration file changes that object$/\1/p' "$work/log2")"
run_ctl 0 status subscription acme
expect "the file's subscription limit" "  limit          6000 per hour" "$(sed -n 2p <<<"$out")"
run_ctl 0 status mailbox 'a#b@example.com'
expect "the file's mailbox limit" "  limit          6 per hour" "$(sed -n 2p <<<"$out")"
stop_daemon
