#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# What a hosting panel asks of a daemon, end to end: obspamctl list, top,
# blocked, overview, reset and set-limit (text and --json), the log lines
# of reset and set-limit with the client's uid, a limit set live that
# survives a reload leaving its object's line alone and is dropped by one
# that changes it, and times in another zone (--tz, TZ) for status,
# report, history and the SVG chart.
#
#   tests/daemons/ctl_panel.sh BUILD_DIR
set -euo pipefail

# shellcheck source=tests/daemons/ctl_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/ctl_lib.sh" ctl_panel "${1:-}"

conf=$work/obspam.conf
# The longest retention: the days of 2026 when the clocks changed stay
# days it keeps.
cat >"$conf" <<'EOF'
retention 87600
default mailbox=100 domain=1000 subscription=5000 scripts=yes
subscription acme uid=10001
subscription bakery uid=10002 subscription=2
domain example.com subscription=acme
domain bakery.example subscription=bakery
mailbox info@example.com limit=3
mailbox anna@bakery.example
mailbox quiet@example.com
EOF
# info: 3 sent, 1 over its limit; anna fills bakery (2); bob, carol and
# dave are implicit mailboxes; a script of acme sends 5.
{
  sent info@example.com:3 info@example.com:1 anna@bakery.example:2 \
    bob@example.com:1 carol@example.com:1 dave@example.com:1
  echo "decide flags=script uid=10001 script=/var/www/acme/x.php" \
    "recipients=5 time=now"
} >"$work/feed"
sock=$work/ctl.sock
export OBSPAM_CONTROL=unix:$sock
start_daemon "$work/log" --config "$conf" --control "unix:$sock" \
  --feed "$work/feed"
now=$(sed -n 's/^fed 7 lines now=\([0-9]*\)$/\1/p' "$work/testd.out")
[[ -n $now ]] || { echo "FAIL: no 'fed' line"; cat "$work/testd.out"; exit 1; }
expect "the feed's verdicts" "accept refuse accept accept accept accept accept" \
  "$(sed -n 's/^verdict action=\([a-z]*\) .*/\1/p' "$work/testd.out" | xargs)"

# ---- list ------------------------------------------------------------------

run_ctl 0 list mailbox
expect "list mailbox" "KIND     NAME                 SENDING  COUNT  LIMIT  SENT  REFUSED  OVER  BLOCKED BY
mailbox  anna@bakery.example  no           2    100     2        0     0  subscription bakery
mailbox  bob@example.com      yes          1    100     1        0     0  -
mailbox  carol@example.com    yes          1    100     1        0     0  -
mailbox  dave@example.com     yes          1    100     1        0     0  -
mailbox  info@example.com     no           3      3     3        1     1  mailbox info@example.com
mailbox  quiet@example.com    yes          0    100     0        0     0  -" "$out"

run_ctl 0 list mailbox --parent example.com --active
expect "list --parent --active" "bob@example.com carol@example.com dave@example.com info@example.com" \
  "$(tail -n +2 <<<"$out" | awk '{print $2}' | xargs)"

# Paging: one row, and where the next page starts (names in any case).
run_ctl 0 list mailbox --after BOB@example.com --limit 1
expect "list --after --limit (text)" "KIND     NAME               SENDING  COUNT  LIMIT  SENT  REFUSED  OVER  BLOCKED BY
mailbox  carol@example.com  yes          1    100     1        0     0  -
More after carol@example.com: obspamctl list mailbox --after carol@example.com" "$out"
run_ctl 0 list mailbox --after carol@example.com --limit 2 --json
python3 - "$work/ctl.out" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1]))
def row(name, sent, refused, exceeded, limit, count, sending, by):
    return {"kind": "mailbox", "name": name, "sent": sent, "refused": refused,
            "exceeded": exceeded, "limit": limit, "count": count,
            "sending": sending, "blocked_by": by, "last_reset": None,
            "since_reset": []}
want = {"kind": "mailbox", "parent": None, "active": False,
        "rows": [row("dave@example.com", 1, 0, 0, 100, 1, True, None),
                 row("info@example.com", 3, 1, 1, 3, 3, False,
                     {"kind": "mailbox", "name": "info@example.com"})],
        "next": "info@example.com"}
assert got == want, json.dumps(got, indent=1)
EOF
echo "ok: list --json pages"
run_ctl 0 list mailbox --after info@example.com --json
python3 - "$work/ctl.out" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1]))
assert [r["name"] for r in got["rows"]] == ["quiet@example.com"], got
assert got["next"] is None, got
EOF
echo "ok: the last page has no next"

run_ctl 0 list subscription --json
python3 - "$work/ctl.out" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1]))
rows = {r["name"]: (r["sent"], r["refused"], r["exceeded"], r["limit"],
                    r["count"], r["sending"]) for r in got["rows"]}
# acme: info's 3, bob's, carol's and dave's 1, the script's 5; info's
# refusal is recorded on acme too, but not as over acme's limit.
assert rows == {"acme": (11, 1, 0, 5000, 11, True),
                "bakery": (2, 0, 0, 2, 2, False)}, rows
EOF
echo "ok: list subscription --json"
run_ctl 0 list mailbox --parent bakery --json
python3 - "$work/ctl.out" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1]))
assert got["parent"] == "bakery", got
assert [r["name"] for r in got["rows"]] == ["anna@bakery.example"], got
EOF
echo "ok: list under a subscription"

run_ctl 1 list mailbox --parent nope.example
expect "list under an unknown parent" "obspamctl: enumerate: no plan, subscription or domain 'nope.example' above a mailbox" "$err"
run_ctl 2 list plan
run_ctl 2 list mailbox --limit x
expect "a bad --limit" "obspamctl: bad limit 'x': expected a count, 0..100000000 (0: all)
Try 'obspamctl --help'." "$err"
run_ctl 2 status mailbox info@example.com --parent example.com
expect "--parent with another command" "obspamctl: --parent goes with list only
Try 'obspamctl --help'." "$err"

# ---- blocked ---------------------------------------------------------------

run_ctl 0 blocked
expect "blocked" "KIND          NAME                 BLOCKED BY                WINDOW  LIMIT
subscription  bakery               subscription bakery       hour        2
domain        bakery.example       subscription bakery       hour        2
mailbox       anna@bakery.example  subscription bakery       hour        2
mailbox       info@example.com     mailbox info@example.com  hour        3" "$out"
run_ctl 0 blocked --json
python3 - "$work/ctl.out" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1]))
bakery = {"kind": "subscription", "name": "bakery", "window": "hour",
          "limit": 2}
want = {"rows": [
    {"kind": "subscription", "name": "bakery", "blocked_by": bakery},
    {"kind": "domain", "name": "bakery.example", "blocked_by": bakery},
    {"kind": "mailbox", "name": "anna@bakery.example", "blocked_by": bakery},
    {"kind": "mailbox", "name": "info@example.com",
     "blocked_by": {"kind": "mailbox", "name": "info@example.com",
                    "window": "hour", "limit": 3}}]}
assert got == want, json.dumps(got, indent=1)
EOF
echo "ok: blocked --json"

# ---- top -------------------------------------------------------------------

run_ctl 0 top --limit 8 --json
python3 - "$work/ctl.out" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1]))
assert got["timezone"] == "UTC", got
def row(kind, name, sent, refused, exceeded, limit, count, sending,
        uid=None, sub=None):
    return {"kind": kind, "name": name, "sent": sent, "refused": refused,
            "exceeded": exceeded, "limit": limit, "count": count,
            "sending": sending, "uid": uid, "subscription": sub}
# Most sent first, then most refused, ties by kind and name.
want = [row("subscription", "acme", 11, 1, 0, 5000, 11, True),
        row("domain", "example.com", 6, 1, 0, 1000, 6, True),
        row("script", "/var/www/acme/x.php", 5, 0, 0, None, None, None,
            10001, "acme"),
        row("mailbox", "info@example.com", 3, 1, 1, 3, 3, False),
        row("subscription", "bakery", 2, 0, 0, 2, 2, False),
        row("domain", "bakery.example", 2, 0, 0, 1000, 2, False),
        row("mailbox", "anna@bakery.example", 2, 0, 0, 100, 2, False),
        row("mailbox", "bob@example.com", 1, 0, 0, 100, 1, True)]
assert got["rows"] == want, json.dumps(got, indent=1)
EOF
echo "ok: top --json"
run_ctl 0 top --kind mailbox --limit 2
expect "top --kind mailbox (text)" "KIND     NAME                 SENT  REFUSED  OVER  COUNT  LIMIT  SENDING  UID  SUBSCRIPTION
mailbox  info@example.com        3        1     1      3      3  no         -  -
mailbox  anna@bakery.example     2        0     0      2    100  no         -  -" \
  "$(tail -n +3 <<<"$out")"
[[ $(head -n 1 <<<"$out") =~ ^Top\ senders\ of\ the\ clock\ hours\ from\ .*\ UTC$ ]] ||
  { echo "FAIL: top header: $out"; exit 1; }
run_ctl 0 top --kind script --since 2h
expect "top --kind script (text)" "KIND    NAME                 SENT  REFUSED  OVER  COUNT  LIMIT  SENDING    UID  SUBSCRIPTION
script  /var/www/acme/x.php     5        0     0      -      -  -        10001  acme" \
  "$(tail -n +3 <<<"$out")"
run_ctl 2 top --kind plan
run_ctl 2 top --since 1x

# ---- overview --------------------------------------------------------------

run_ctl 0 overview --json
python3 - "$work/ctl.out" "$now" <<'EOF'
import datetime, json, sys
got = json.load(open(sys.argv[1]))
now = int(sys.argv[2])
day_from = now - now % 3600 - 23 * 3600
assert got["enabled"] is True, got
assert got["not_sending"] == {"subscription": 1, "domain": 1, "mailbox": 2}, got
assert (got["refused_hour"], got["refused_day"]) == (1, 1), got
assert got["day_from"] == datetime.datetime.fromtimestamp(
    day_from, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), got
# The senders: mailboxes and scripts, ties by kind and name.
assert [(r["kind"], r["name"], r["sent"]) for r in got["top"]] == [
    ("script", "/var/www/acme/x.php", 5), ("mailbox", "info@example.com", 3),
    ("mailbox", "anna@bakery.example", 2), ("mailbox", "bob@example.com", 1),
    ("mailbox", "carol@example.com", 1)], got["top"]
EOF
echo "ok: overview --json"
run_ctl 0 overview
since=$(date -u -d "@$((now - now % 3600 - 23 * 3600))" '+%Y-%m-%d %H:%M')
expect "overview (text)" "Protection:   on
Not sending:  1 subscription, 1 domain, 2 mailboxes
Refused:      1 in the last 60 minutes, 1 since $since UTC

Top senders since $since UTC:" "$(head -n 5 <<<"$out")"
expect "overview's senders" "script /var/www/acme/x.php mailbox info@example.com mailbox anna@bakery.example mailbox bob@example.com mailbox carol@example.com" \
  "$(tail -n +7 <<<"$out" | awk '{print $1, $2}' | xargs)"

# ---- reset -----------------------------------------------------------------

run_ctl 0 reset mailbox INFO@example.com
expect "reset" "mailbox info@example.com: counters reset" "$out"
grep -q "reset kind=mailbox object=info@example.com uid=$(id -u)$" "$work/log" ||
  { echo "FAIL: no reset log line"; cat "$work/log"; exit 1; }
run_ctl 0 status mailbox info@example.com
expect "after a reset it sends again" "mailbox info@example.com: sending
  limit          3 per hour
  sent           0 since the reset (in the last 60 minutes)
  refused        0 since the reset (in the last 60 minutes)
  over its limit 0 since the reset (in the last 60 minutes)
  refused total  1 within the retention period" "$(head -n 6 <<<"$out")"
# The reset was made at most a second before its log line.
python3 - "$(tail -n 1 <<<"$out")" "$(sed -n 's/^\([^ ]*\) .*: reset kind=mailbox object=info@example.com .*/\1/p' "$work/log")" <<'EOF'
import datetime, sys
logged = datetime.datetime.strptime(sys.argv[2], "%Y-%m-%dT%H:%M:%SZ")
want = ["  last reset     %s UTC" % (logged - datetime.timedelta(seconds=s))
        for s in (0, 1)]
assert sys.argv[1] in want, (sys.argv[1], want)
EOF
echo "ok: status says when the reset was"
run_ctl 0 status mailbox info@example.com --json
python3 - "$work/ctl.out" "$(sed -n 's/^\([^ ]*\) .*: reset kind=mailbox object=info@example.com .*/\1/p' "$work/log")" <<'EOF'
import datetime, json, sys
got = json.load(open(sys.argv[1]))["last_reset"]
logged = datetime.datetime.strptime(sys.argv[2], "%Y-%m-%dT%H:%M:%SZ")
want = [(logged - datetime.timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ")
        for s in (0, 1)]
assert got in want, (got, want)
EOF
echo "ok: status --json says when the reset was"
run_ctl 0 list mailbox --after dave@example.com --limit 1 --json
python3 - "$work/ctl.out" "$now" <<'EOF'
import datetime, json, sys
got = json.load(open(sys.argv[1]))["rows"][0]
t = datetime.datetime.strptime(got["last_reset"], "%Y-%m-%dT%H:%M:%SZ")
t = int(t.replace(tzinfo=datetime.timezone.utc).timestamp())
assert got["name"] == "info@example.com" and got["sending"] is True, got
assert int(sys.argv[2]) <= t <= int(sys.argv[2]) + 60, (t, got)
# Its figures count from the reset, which the last hour holds.
assert got["since_reset"] == ["count", "sent", "refused", "exceeded"], got
assert (got["count"], got["sent"], got["refused"], got["exceeded"]) == \
    (0, 0, 0, 0), got
EOF
echo "ok: list shows the last reset"
# The table marks the figures that count from the reset, as status says
# "since the reset", and says what the mark means.
run_ctl 0 list mailbox --after dave@example.com --limit 2
expect "list marks what counts from the reset" "KIND     NAME               SENDING  COUNT  LIMIT  SENT  REFUSED  OVER  BLOCKED BY
mailbox  info@example.com   yes         0*      3    0*       0*    0*  -
mailbox  quiet@example.com  yes          0    100     0        0     0  -
*: since the object's reset, which fell in the window (COUNT, REFUSED
   and OVER: the last 60 minutes; SENT: the last 24 hours)." "$out"
# History keeps what happened.
run_ctl 0 history mailbox info@example.com --json
python3 - "$work/ctl.out" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1]))
assert (got["sent"], got["refused"]) == (3, 1), got
EOF
echo "ok: a reset keeps the history"
run_ctl 1 reset mailbox nobody@nowhere.example
run_ctl 2 reset plan basic
run_ctl 2 reset mailbox

# ---- time zones ------------------------------------------------------------

# Asia/Kolkata, written as a POSIX string so that the test needs no time
# zone database: 5 h 30 ahead of UTC, so the library's clock hours start
# at :30 there.
ist='IST-5:30'
hour=$((now - now % 3600))
day=$(TZ=$ist date -d "@$hour" '+%Y-%m-%d')
label=$(TZ=$ist date -d "@$hour" '+%H:%M')
run_ctl 0 history mailbox anna@bakery.example --day "$day" --tz "$ist"
expect "history --tz: the title" "mailbox anna@bakery.example on $day ($ist), per clock hour:" \
  "$(head -n 1 <<<"$out")"
expect "history --tz: 24 hours starting at :30" "24 00:30 23:30" \
  "$(grep -cE '^[0-9]{2}:30 ' <<<"$out") $(sed -n 4p <<<"$out" | cut -c1-5) $(sed -n 27p <<<"$out" | cut -c1-5)"
expect "history --tz: the hour of the mail" "$label         2         0" \
  "$(grep -E '^[0-9]{2}:[0-9]{2} +[1-9]' <<<"$out")"
TZ=$ist run_ctl 0 history mailbox anna@bakery.example --day "$day" --json
python3 - "$work/ctl.out" "$ist" "$hour" <<'EOF'
import datetime, json, sys
got = json.load(open(sys.argv[1]))
assert got["timezone"] == sys.argv[2], got
hour = datetime.datetime.fromtimestamp(int(sys.argv[3]), datetime.timezone.utc)
# JSON times stay absolute (UTC): the hours are the library's.
sent = [h["hour"] for h in got["hours"] if h["sent"]]
assert sent == [hour.strftime("%Y-%m-%dT%H:%M:%SZ")], got["hours"]
assert all(h["hour"].endswith(":00:00Z") for h in got["hours"]), got
EOF
echo "ok: history --json in TZ"

# A day when the clocks change: 23 hours in March, 25 in October.
cet='CET-1CEST,M3.5.0,M10.5.0/3'
run_ctl 0 history mailbox anna@bakery.example --day 2026-03-29 --tz "$cet"
expect "a day of 23 hours" "23 00:00 01:00 03:00" \
  "$(grep -cE '^[0-9]{2}:00 ' <<<"$out") $(sed -n 4,6p <<<"$out" | cut -c1-5 | xargs)"
run_ctl 0 history mailbox anna@bakery.example --day 2026-10-25 --tz "$cet" --json
python3 - "$work/ctl.out" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1]))
hours = [h["hour"] for h in got["hours"]]
assert len(hours) == 25, hours
assert hours[0] == "2026-10-24T22:00:00Z" and hours[-1] == "2026-10-25T22:00:00Z", hours
EOF
echo "ok: a day of 25 hours"
run_ctl 0 history mailbox anna@bakery.example --day 2026-03-29 --tz "$cet" --svg "$work/dst.svg"
python3 - "$work/dst.svg" "$cet" <<'EOF'
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
bars = [r for r in root.iter(ns + "rect") if r.get("class") == "sent"]
assert len(bars) == 23, len(bars)
texts = [t.text for t in root.iter(ns + "text")]
assert f"hour of 2026-03-29 ({sys.argv[2]})" in texts, texts
assert "03" in texts and "02" not in texts, texts
lines = [l for g in root.iter(ns + "g") if g.get("class") == "limit"
         for l in g.iter(ns + "line")]
assert len(lines) == 1, lines  # the limit, 100 per hour
EOF
echo "ok: the SVG chart of a day of 23 hours"

# status and report show their times in the zone, with its abbreviation.
run_ctl 0 --tz "$ist" status subscription acme
expect "status --tz" "  last refusal   $(TZ=$ist date -d "@$now" '+%Y-%m-%d %H:%M:%S') IST" \
  "$(tail -n 1 <<<"$out")"
TZ=$ist run_ctl 0 report
[[ $(head -n 1 <<<"$out") =~ ^Report\ for\ the\ clock\ hours\ from\ [0-9-]{10}\ [0-9]{2}:30\ to\ [0-9-]{10}\ [0-9]{2}:30\ IST$ ]] ||
  { echo "FAIL: report header in TZ: $(head -n 1 <<<"$out")"; exit 1; }
expect "report in TZ: the refusal's time" "$(TZ=$ist date -d "@$now" '+%Y-%m-%d %H:%M:%S')" \
  "$(grep '^mailbox' <<<"$out" | grep -oE '[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}' | head -n 1)"
run_ctl 0 report --tz "$ist" --json
python3 - "$work/ctl.out" "$ist" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1]))
assert got["timezone"] == sys.argv[2], got
assert got["from"].endswith("Z") and got["to"].endswith("Z"), got
EOF
echo "ok: report in a zone"
run_ctl 2 history mailbox anna@bakery.example --tz Mars/Olympus
expect "an unknown zone" "obspamctl: unknown time zone 'Mars/Olympus': expected a name of the time zone database (Europe/Berlin) or a POSIX TZ string (CET-1CEST,M3.5.0,M10.5.0/3)
Try 'obspamctl --help'." "$err"
TZ=Nowhere run_ctl 2 report
expect "an unknown TZ" "obspamctl: unknown time zone 'Nowhere' (TZ): expected a name of the time zone database (Europe/Berlin) or a POSIX TZ string (CET-1CEST,M3.5.0,M10.5.0/3)
Try 'obspamctl --help'." "$err"
if [[ -e /usr/share/zoneinfo/Europe/Berlin ]]; then
  run_ctl 0 history mailbox anna@bakery.example --day 2026-03-29 --tz Europe/Berlin
  expect "a zone of the database" "23" "$(grep -cE '^[0-9]{2}:00 ' <<<"$out")"
fi

# ---- set-limit -------------------------------------------------------------

run_ctl 0 set-limit mailbox info@example.com mailbox 5/m,10
expect "set-limit" "mailbox info@example.com: mailbox limit set to 5/m,10/h until the configuration file changes that mailbox" "$out"
grep -q "set-limit kind=mailbox object=info@example.com limit=mailbox value=5/m,10/h uid=$(id -u): kept until the configuration changes that object$" "$work/log" ||
  { echo "FAIL: no set-limit log line"; cat "$work/log"; exit 1; }
run_ctl 0 status mailbox info@example.com
expect "the limits set live" "  limit          5 per minute
  limit          10 per hour" "$(sed -n 2,3p <<<"$out")"
# Another window of another mailbox; a domain's cap.
run_ctl 0 set-limit mailbox quiet@example.com mailbox 7/d --json
expect "set-limit --json" '{"result": "ok", "message": "mailbox quiet@example.com: mailbox limit set to 7/d until the configuration file changes that mailbox"}' "$out"
run_ctl 0 set-limit domain example.com max-recipients 9
run_ctl 0 status mailbox quiet@example.com --json
python3 - "$work/ctl.out" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1]))
assert got["limits"] == {"minute": None, "hour": 100, "day": 7}, got
assert got["max_recipients"] == 9, got
EOF
echo "ok: set-limit of a window and of the cap"

run_ctl 1 set-limit mailbox info@example.com domain 5
expect "set-limit: a limit the kind has not" "obspamctl: a mailbox has no domain limit: expected mailbox" "$err"
run_ctl 1 set-limit mailbox info@example.com mailbox 5/x
expect "set-limit: a bad window" "obspamctl: bad value '5/x': unknown window 'x': expected /m, /h or /d" "$err"
run_ctl 1 set-limit mailbox info@example.com mailbox 5,6
expect "set-limit: a window twice" "obspamctl: bad value '5,6': the hour window is given twice" "$err"
run_ctl 1 set-limit mailbox info@example.com mailbox lots
expect "set-limit: not a count" "obspamctl: bad value 'lots': 'lots' is not a count, unlimited or inherit" "$err"
run_ctl 1 set-limit mailbox nobody@example.com mailbox 5
expect "set-limit: an unknown object" "obspamctl: set_window_limit: no mailbox 'nobody@example.com'" "$err"
run_ctl 2 set-limit server x mailbox 5
run_ctl 2 set-limit mailbox info@example.com mailbox
run_ctl 0 status mailbox info@example.com
expect "a refused change changes nothing" "  limit          5 per minute
  limit          10 per hour" "$(sed -n 2,3p <<<"$out")"

# A reload that leaves those objects' lines alone keeps the limits set
# live (another object's line changed, and a comment and blanks).
sed -i 's/^mailbox anna@bakery.example$/mailbox anna@bakery.example limit=50/;
  s/^domain example.com subscription=acme$/domain   example.com  subscription=acme   # the shop/' "$conf"
run_ctl 0 reload
run_ctl 0 status mailbox info@example.com
expect "kept across a reload" "  limit          5 per minute
  limit          10 per hour" "$(sed -n 2,3p <<<"$out")"
run_ctl 0 status mailbox quiet@example.com --json
python3 - "$work/ctl.out" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1]))
assert got["limits"]["day"] == 7 and got["max_recipients"] == 9, got
EOF
expect "the reload's log lines (kept)" "set-limit kept kind=mailbox object=info@example.com limit=mailbox value=5/m,10/h: the configuration file does not change that object
set-limit kept kind=mailbox object=quiet@example.com limit=mailbox value=7/d: the configuration file does not change that object
set-limit kept kind=domain object=example.com limit=max-recipients value=9: the configuration file does not change that object" \
  "$(grep -o 'set-limit kept .*' "$work/log")"

# A reload that changes info's line drops its limit; the others stay.
sed -i 's/limit=3/limit=4/' "$conf"
run_ctl 0 reload
expect "the reload's answer (one dropped)" "configuration reloaded from $conf; 1 limit set live dropped (the log names it)" "$out"
run_ctl 0 status mailbox info@example.com
expect "dropped when the file changes the object" "mailbox info@example.com: sending
  limit          4 per hour
  max recipients 9 per message" "$(head -n 3 <<<"$out")"
expect "the reload's log line (dropped)" "set-limit dropped kind=mailbox object=info@example.com limit=mailbox value=5/m,10/h: the configuration file changes that object" \
  "$(grep -o 'set-limit dropped .*' "$work/log")"
run_ctl 0 status mailbox quiet@example.com --json
python3 - "$work/ctl.out" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1]))
assert got["limits"]["day"] == 7 and got["max_recipients"] == 9, got
EOF
echo "ok: the other limits set live stay"
# Removing the domain's line drops its cap (and its mailboxes with it).
sed -i '/^domain   example.com/d; /@example.com/d' "$conf"
run_ctl 0 reload --force
expect "the reload's answer (two dropped)" "configuration reloaded from $conf; 2 limits set live dropped (the log names them)" "$out"
expect "the reload's log lines (objects gone)" "set-limit dropped kind=mailbox object=quiet@example.com limit=mailbox value=7/d: the configuration file changes that object
set-limit dropped kind=domain object=example.com limit=max-recipients value=9: the configuration file changes that object" \
  "$(grep -o 'set-limit dropped .*' "$work/log" | tail -n 2)"

# ---- the raw protocol ------------------------------------------------------

python3 - "$sock" <<'EOF'
import sys
import scenario
def check(request, want):
    scenario.check_answer(sys.argv[1], request, want)
check(b"list\n", "error usage: list KIND [parent=NAME] [active] [after=NAME] [limit=N]\n")
check(b"list mailbox bogus=1\n", "error bad option 'bogus=1': usage: list KIND [parent=NAME] [active] [after=NAME] [limit=N]\n")
check(b"list mailbox active=1\n", "error bad option 'active=1': usage: list KIND [parent=NAME] [active] [after=NAME] [limit=N]\n")
check(b"list mailbox limit=-1\n", "error bad limit '-1': expected a count, 0..100000000\n")
check(b"list mailbox parent=bakery limit=1\n",
      "ok\nrow\tmailbox\tanna@bakery.example\t0\t2\t0\t0\t50\t2\tsubscription\tbakery\t0\nend\n")
check(b"top 10\n", "error usage: top FROM TO [kind=KIND] [limit=N]\n")
check(b"top 0 1 kind=plan\n", "error bad kind 'plan': expected subscription, domain, mailbox or script\n")
check(b"top 0 1\n", "ok\nfrom\t0\nto\t1\nend\n")
check(b"blocked now\n", "error usage: blocked (no arguments)\n")
check(b"overview x\n", "error usage: overview (no arguments)\n")
check(b"reset mailbox\n", "error usage: reset KIND NAME\n")
check(b"set-limit mailbox x@example.com mailbox\n", "error usage: set-limit KIND NAME WHICH VALUE\n")
check(b"set-limit mailbox anna@bakery.example mailbox 1 2\n", "error usage: set-limit KIND NAME WHICH VALUE\n")
check(b"set-limit server x mailbox 1\n", "error bad kind 'server': expected plan, subscription, domain or mailbox\n")
check(b"set-limit mailbox anna@bakery.example bogus 1\n", "error bad limit 'bogus': expected subscription, domain, mailbox or max-recipients\n")
print("raw protocol ok")
EOF
echo "ok: raw protocol of the panel commands"

# Protection off: every object sends, and the overview says so.
echo "enabled no" >>"$conf"
run_ctl 0 reload
run_ctl 0 blocked
expect "blocked with protection off" "Every object can send." "$out"
run_ctl 0 overview
expect "overview with protection off" "Protection:   off (every message passes)
Not sending:  0 subscriptions, 0 domains, 0 mailboxes" "$(head -n 2 <<<"$out")"

stop_daemon
echo "all panel checks passed"
