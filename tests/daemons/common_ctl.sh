#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The control socket end to end: ctl_testd (a small daemon around
# obspamd_common) serves it, obspamctl and a raw client talk to it.
#
#   tests/daemons/common_ctl.sh BUILD_DIR
#
# Checks status, report, history (table, --json, --svg), reload (good and
# bad configuration: the running one is kept), save, ping, the exit
# statuses, the socket's mode, the raw protocol's errors, and the socket
# file's life (stale file removed at start, removed at stop).
set -euo pipefail

# shellcheck source=tests/daemons/ctl_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/ctl_lib.sh" common_ctl "${1:-}"

conf=$work/obspam.conf
cat >"$conf" <<'EOF'
action defer
default mailbox=100 domain=1000 subscription=5000 scripts=yes
plan starter scripts=no
subscription acme uid=10001 contact=ops@acme.example
subscription bakery plan=starter uid=10002
domain example.com subscription=acme
domain bakery.example subscription=bakery
mailbox info@example.com limit=3
EOF
cp "$conf" "$work/good.conf"
{
  sent info@example.com:1 info@example.com:2 info@example.com:1 \
    info@example.com:5
  cat <<'EOF'
decide flags=script uid=10002 script=/var/www/bakery/contact.php time=now
decide flags=script uid=10001 script=/var/www/acme/x.php recipients=4 time=now
decide sender=nobody@else.example time=now
EOF
} >"$work/feed"

sock=$work/ctl.sock
export OBSPAM_CONTROL=unix:$sock
start_daemon "$work/log" --config "$conf" --state "$work/state" \
  --control "unix:$sock" --feed "$work/feed"

# The time the feed stood for, and how obspamctl shows it.
now=$(sed -n 's/^fed 7 lines now=\([0-9]*\)$/\1/p' "$work/testd.out")
[[ -n $now ]] || { echo "FAIL: no 'fed' line"; cat "$work/testd.out"; exit 1; }
ts=$(date -u -d "@$now" '+%Y-%m-%d %H:%M:%S')
iso=$(date -u -d "@$now" '+%Y-%m-%dT%H:%M:%SZ')
day=$(date -u -d "@$now" '+%Y-%m-%d')
hour=$(date -u -d "@$now" '+%H')

# The refusal texts the daemons send, through the feed.
expect "refusal texts" \
  "verdict action=refuse kind=mailbox object=info@example.com limit=3 count=3 retry=-1 code=451 text=4.7.1 mailbox info@example.com cannot send this message: it has more recipients than its limit of 3 recipients per hour
verdict action=refuse kind=subscription object=bakery limit=5000 count=0 retry=-1 code=451 text=4.7.1 scripts of subscription bakery may not send mail" \
  "$(grep 'retry=-1' "$work/testd.out")"

# ---- the socket ----------------------------------------------------------

expect "socket mode" "600" "$(stat -c %a "$sock")"
# Another user cannot connect, even through a directory open to all.
chmod 755 "$work"
if command -v setpriv >/dev/null; then
  rc=0
  setpriv --reuid=65534 --regid=65534 --clear-groups "$CTL" ping \
    >/dev/null 2>"$work/nobody.err" || rc=$?
  expect "another user is refused (exit)" "3" "$rc"
  expect "another user is refused (message)" \
    "obspamctl: cannot connect to unix:$sock: Permission denied" \
    "$(cat "$work/nobody.err")"
fi
# A socket opened to all (by mistake, or for a group): the daemon checks
# the peer's credentials, answers "permission denied" and closes without
# reading the request. obspamctl shows that answer, never the broken pipe
# its request may run into: twenty runs, since which comes first varies.
chmod 666 "$sock"
if command -v setpriv >/dev/null; then
  bad=0
  for i in $(seq 20); do
    rc=0
    setpriv --reuid=65534 --regid=65534 --clear-groups "$CTL" ping \
      >/dev/null 2>"$work/nobody.err" || rc=$?
    if [[ $rc != 1 || $(cat "$work/nobody.err") != \
      "obspamctl: permission denied" ]]; then
      bad=$((bad + 1))
      echo "run $i: exit $rc: $(cat "$work/nobody.err")"
    fi
  done
  expect "a refused user sees the daemon's answer (20 runs)" "0" "$bad"
fi
chmod 600 "$sock"
chmod 700 "$work"

run_ctl 0 ping
[[ $out =~ ^ctl_testd\ \(libobspam\ [0-9]+\.[0-9]+\.[0-9]+\),\ pid\ $pid,\ up\ [0-9]+\ s$ ]] ||
  { echo "FAIL: ping said '$out'"; exit 1; }
echo "ok: ping"

# ---- status ----------------------------------------------------------------

# status_text FIRST_LINE LIMIT SENT REFUSED OVER TOTAL: the text of
# status for an object with an hourly limit, its last refusal at $ts.
status_text() {
  printf '%s\n' "$1" "  limit          $2 per hour" \
    "  sent           $3 in the last 60 minutes" \
    "  refused        $4 in the last 60 minutes" \
    "  over its limit $5 in the last 60 minutes" \
    "  refused total  $6 within the retention period"
  printf '  last refusal   %s UTC' "$ts"
}

run_ctl 0 status mailbox info@example.com
expect "status mailbox" "$(status_text "mailbox info@example.com: not sending: \
mailbox info@example.com is at its limit of 3 per hour" 3 3 2 2 2)" "$out"

run_ctl 0 --control "$sock" status domain EXAMPLE.COM
expect "status domain (bare path, name in upper case)" \
  "$(status_text "domain example.com: sending" 1000 3 2 0 2)" "$out"

run_ctl 0 status subscription bakery --json
python3 -m json.tool "$work/ctl.out" >/dev/null
python3 - "$work/ctl.out" "$iso" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1]))
want = {"kind": "subscription", "name": "bakery", "sending": True,
        "limit": 5000, "count": 0, "refused": 1, "refused_total": 1,
        "last_refused": sys.argv[2], "exceeded": 1, "disabled": False,
        "blocked_by": None,
        "limits": {"minute": None, "hour": 5000, "day": None},
        "counts": {"minute": 0, "hour": 0, "day": 0},
        "max_recipients": None, "forwarded": 0, "list_deliveries": 0,
        "last_reset": None}
assert got == want, f"{got} != {want}"
EOF
echo "ok: status --json"
run_ctl 0 status mailbox info@example.com --json
python3 - "$work/ctl.out" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1]))
assert (got["sending"], got["exceeded"], got["disabled"], got["blocked_by"]) \
    == (False, 2, False, {"kind": "mailbox", "name": "info@example.com",
                          "window": "hour", "limit": 3}), got
assert (got["limits"], got["counts"]) == (
    {"minute": None, "hour": 3, "day": None},
    {"minute": 3, "hour": 3, "day": 3}), got
EOF
echo "ok: status --json names what blocks"

run_ctl 1 status mailbox nobody@example.com
expect "unknown object" "obspamctl: stats_get: no mailbox 'nobody@example.com'" "$err"
run_ctl 2 status plan starter
expect "bad kind" "obspamctl: bad kind 'plan': expected subscription, domain or mailbox
Try 'obspamctl --help'." "$err"
run_ctl 2 status mailbox
run_ctl 1 status mailbox 'bad name@example.com'
expect "bad name" "obspamctl: stats_get: mailbox name 'bad name@example.com': name holds a blank or a control character" "$err"

# ---- report ----------------------------------------------------------------

run_ctl 0 report
header=$(head -n 1 <<<"$out")
[[ $header =~ ^Report\ for\ the\ clock\ hours\ from\ [0-9]{4}-[0-9]{2}-[0-9]{2}\ [0-9]{2}:00\ to\ [0-9]{4}-[0-9]{2}-[0-9]{2}\ [0-9]{2}:00\ UTC$ ]] ||
  { echo "FAIL: report header '$header'"; exit 1; }
expect "report table" "
Refused:
KIND          NAME                         SENT  REFUSED  OVER  LIMIT  WINDOW   FIRST REFUSAL        LAST REFUSAL           UID  SUBSCRIPTION
mailbox       info@example.com                3        2     2      3  hour     $ts  $ts      -  -
subscription  bakery                          0        1     1   5000  scripts  $ts  $ts      -  -
script        /var/www/bakery/contact.php     0        1     0      -  -        $ts  $ts  10002  bakery

Scripts by messages sent:
NAME                 SENT    UID  SUBSCRIPTION
/var/www/acme/x.php     4  10001  acme" "$(tail -n +2 <<<"$out")"

run_ctl 0 report --since 90m --json
python3 -m json.tool "$work/ctl.out" >/dev/null
python3 - "$work/ctl.out" "$iso" <<'EOF'
import json, re, sys
got = json.load(open(sys.argv[1]))
t = sys.argv[2]
iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
assert iso.match(got["from"]) and iso.match(got["to"]), got
def row(kind, name, sent, refused, exceeded, limit, window, uid=None,
        sub=None):
    return {"kind": kind, "name": name, "sent": sent, "refused": refused,
            "first_refused": t if refused else None,
            "last_refused": t if refused else None,
            "exceeded": exceeded, "limit": limit, "window": window,
            "uid": uid, "subscription": sub, "forwarded": 0,
            "list_deliveries": 0}
# The objects over their own limit, then the scripts by messages sent
# (acme and example.com were refused only because of info's limit).
want = [row("mailbox", "info@example.com", 3, 2, 2, 3, "hour"),
        row("subscription", "bakery", 0, 1, 1, 5000, "scripts"),
        row("script", "/var/www/acme/x.php", 4, 0, 0, None, None, 10001,
            "acme"),
        row("script", "/var/www/bakery/contact.php", 0, 1, 0, None, None,
            10002, "bakery")]
assert got["rows"] == want, json.dumps(got, indent=1)
assert got["timezone"] == "UTC", got
EOF
echo "ok: report --json"

run_ctl 0 report --since=7d
run_ctl 2 report --since 24x
expect "bad duration" "obspamctl: bad duration '24x': expected a number and a unit s, m, h or d (90m, 24h, 7d), at most 100 years
Try 'obspamctl --help'." "$err"
run_ctl 2 status mailbox info@example.com --since 1h
expect "option of another command" "obspamctl: --since goes with report and top only
Try 'obspamctl --help'." "$err"

# ---- history ---------------------------------------------------------------

run_ctl 0 history mailbox info@example.com --day "$day"
table="mailbox info@example.com on $day (UTC), per clock hour:

HOUR       SENT   REFUSED"
for ((h = 0; h < 24; h++)); do
  if [[ $h -eq $((10#$hour)) ]]; then
    table+=$'\n'$(printf '%02d:00  %8d  %8d' "$h" 3 2)
  else
    table+=$'\n'$(printf '%02d:00  %8d  %8d' "$h" 0 0)
  fi
done
table+=$'\n'$(printf 'total  %8d  %8d' 3 2)
table+=$'\n'"limit         3 per hour"
expect "history table" "$table" "$out"

run_ctl 0 history script /var/www/acme/x.php --day "$day" --json
python3 -m json.tool "$work/ctl.out" >/dev/null
python3 - "$work/ctl.out" "$day" "$hour" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1]))
day, hour = sys.argv[2], int(sys.argv[3])
assert got["kind"] == "script" and got["name"] == "/var/www/acme/x.php", got
assert got["day"] == day and got["timezone"] == "UTC", got
assert [h["hour"] for h in got["hours"]] == \
    [f"{day}T{h:02d}:00:00Z" for h in range(24)], got["hours"]
assert [h["sent"] for h in got["hours"]] == \
    [4 if h == hour else 0 for h in range(24)], got["hours"]
assert all(h["refused"] == 0 for h in got["hours"]), got["hours"]
assert got["sent"] == 4 and got["refused"] == 0, got
assert got["limit"] is None, got  # a script has none
EOF
echo "ok: history --json (script)"

run_ctl 0 history mailbox info@example.com --day "$day" --svg "$work/chart.svg"
expect "history --svg message" "obspamctl: chart written to $work/chart.svg" "$err"
python3 - "$work/chart.svg" "$hour" <<'EOF'
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
ns = "{http://www.w3.org/2000/svg}"
assert root.tag == ns + "svg" and root.get("version") == "1.1", root.tag
rects = root.iter(ns + "rect")
bars = {"sent": [], "refused": []}
for r in rects:
    if r.get("class") in bars:
        bars[r.get("class")].append(float(r.get("height")))
hour = int(sys.argv[2])
assert len(bars["sent"]) == 24 and len(bars["refused"]) == 24, bars
for kind, value in (("sent", 3), ("refused", 2)):
    for h, height in enumerate(bars[kind]):
        assert (height > 0) == (h == hour), (kind, h, height)
# 3 sent and 2 refused on a scale of 3: the refused bar is 2/3 as high.
assert abs(bars["refused"][hour] / bars["sent"][hour] - 2 / 3) < 0.01, bars
texts = [t.text for t in root.iter(ns + "text")]
assert [f"{h:02d}" for h in range(24)] == [t for t in texts if t and
        len(t) == 2 and t.isdigit() and texts.count(t) >= 1][-24:], texts
assert "sent" in texts and "refused" in texts, texts
# The hourly limit, 3, as a line at the top of the scale (3 sent: the
# sent bar reaches it).
lines = [l for g in root.iter(ns + "g") if g.get("class") == "limit"
         for l in g.iter(ns + "line")]
assert len(lines) == 1, lines
assert lines[0].get("y1") == lines[0].get("y2"), lines[0].attrib
bar_top = [float(r.get("y")) for r in root.iter(ns + "rect")
           if r.get("class") == "sent"][hour]
assert abs(float(lines[0].get("y1")) - bar_top) < 0.05, (lines[0].attrib, bar_top)
assert "limit 3 per hour" in texts, texts
EOF
echo "ok: history --svg is SVG 1.1 with 24 bars of each"
if command -v rsvg-convert >/dev/null; then
  rsvg-convert "$work/chart.svg" -o "$work/chart.png"
  expect "the chart renders to a PNG" "PNG" "$(head -c 4 "$work/chart.png" | tail -c 3)"
fi
run_ctl 0 history mailbox info@example.com --day "$day" --svg -
[[ $out == '<?xml version="1.0" encoding="UTF-8" standalone="no"?>'* ]] ||
  { echo "FAIL: --svg - did not print the SVG"; exit 1; }
echo "ok: --svg -"

run_ctl 1 history script /nope.php --day "$day"
expect "unknown script" "obspamctl: history: no script '/nope.php'" "$err"
run_ctl 2 history mailbox info@example.com --day 2024-02-30
expect "bad day" "obspamctl: bad day '2024-02-30': expected YYYY-MM-DD
Try 'obspamctl --help'." "$err"
# A day older than the retention (720 hours) was shown as a day without
# mail; its hours are not kept. The hour of now may change while
# obspamctl runs: the oldest hour kept is then the later one.
oldest() { date -u -d "@$(( $1 / 3600 * 3600 - 719 * 3600 ))" "+$2"; }
before=$(date +%s)
run_ctl 2 history mailbox info@example.com --day 2001-01-01
after=$(date +%s)
want="obspamctl: day 2001-01-01 is older than the retention (720 hours): the oldest hour kept is"
[[ $err == "$want $(oldest "$before" '%Y-%m-%d %H:%M') UTC" ||
   $err == "$want $(oldest "$after" '%Y-%m-%d %H:%M') UTC" ]] ||
  { echo "FAIL: a day older than the retention: $err"; exit 1; }
echo "ok: a day older than the retention is an error"
# The day of the oldest hour kept: the hours before it are not kept, not
# hours without mail ("-", null in JSON), and the footnote says so.
before=$(date +%s)
old_day=$(oldest "$before" '%Y-%m-%d')
old_hour=$((10#$(oldest "$before" '%H')))
run_ctl 0 history mailbox info@example.com --day "$old_day"
after=$(date +%s)
if [[ $(oldest "$before" '%H') == "$(oldest "$after" '%H')" ]]; then
  table="mailbox info@example.com on $old_day (UTC), per clock hour:

HOUR       SENT   REFUSED"
  for ((h = 0; h < 24; h++)); do
    if ((h < old_hour)); then
      table+=$'\n'$(printf '%02d:00  %8s  %8s' "$h" - -)
    else
      table+=$'\n'$(printf '%02d:00  %8d  %8d' "$h" 0 0)
    fi
  done
  table+=$'\n'$(printf 'total  %8d  %8d' 0 0)
  table+=$'\n'"limit         3 per hour"
  if ((old_hour > 0)); then
    table+=$'\n\n'"-: not kept: the retention (720 hours) keeps the hours from $(printf %02d "$old_hour"):00; the total is of the hours from $(printf %02d "$old_hour"):00."
  fi
  expect "history of the day the retention begins" "$table" "$out"
  run_ctl 0 history mailbox info@example.com --day "$old_day" --json
  python3 - "$work/ctl.out" "$old_day" "$old_hour" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1]))
day, first = sys.argv[2], int(sys.argv[3])
assert [h["hour"] for h in got["hours"]] == \
    [f"{day}T{h:02d}:00:00Z" for h in range(24)], got["hours"]
assert got["hours"][:first] == [
    {"hour": f"{day}T{h:02d}:00:00Z", "sent": None, "refused": None,
     "kept": False} for h in range(first)], got["hours"]
assert all(h == {"hour": h["hour"], "sent": 0, "refused": 0}
           for h in got["hours"][first:]), got["hours"]
assert got["retention_hours"] == 720, got
assert got["oldest_hour_kept"] == f"{day}T{first:02d}:00:00Z", got
EOF
  echo "ok: history --json of the day the retention begins"
fi

# ---- reload and save ------------------------------------------------------

echo "plan Basik2 mailbox=lots" >>"$conf"
run_ctl 1 reload
expect "bad reload" "obspamctl: reload failed: $conf:9: bad value 'lots' for 'mailbox': expected a count, unlimited or inherit" "$err"
grep -q "error: reload failed: $conf:9: bad value 'lots'" "$work/log" ||
  { echo "FAIL: no 'reload failed' log line"; exit 1; }
run_ctl 0 status mailbox info@example.com
expect "the running configuration is kept" "  limit          3 per hour" \
  "$(sed -n 2p <<<"$out")"

sed 's/limit=3/limit=10/' "$work/good.conf" >"$conf"
run_ctl 0 reload --json
expect "good reload" "{\"result\": \"ok\", \"message\": \"configuration reloaded from $conf\"}" "$out"
run_ctl 0 status mailbox info@example.com
expect "the new configuration runs, counters kept" \
  "mailbox info@example.com: sending
  limit          10 per hour
  sent           3 in the last 60 minutes" "$(head -n 3 <<<"$out")"

# SIGHUP does the same.
sed 's/limit=3/limit=11/' "$work/good.conf" >"$conf"
kill -HUP "$pid"
for ((i = 0; i < 100; i++)); do
  [[ $(grep -c "reload ok path=$conf" "$work/log") -ge 2 ]] && break
  sleep 0.05
done
run_ctl 0 status mailbox info@example.com
expect "SIGHUP reloads" "  limit          11 per hour" "$(sed -n 2p <<<"$out")"

rm -f "$work/state"
run_ctl 0 save
expect "save" "state saved to $work/state" "$out"
[[ -s $work/state ]] || { echo "FAIL: no state file"; exit 1; }

# ---- the raw protocol ------------------------------------------------------

python3 - "$sock" "$work/log" <<'EOF'
import socket, sys, time
import scenario
path = sys.argv[1]

def ask(data):
    return scenario.exchange(path, data).decode()

def check(request, want):
    scenario.check_answer(path, request, want)

commands = ("ping, status, report, history, list, top, blocked, overview, "
            "reset, set-limit, reload or save")
check(b"bogus\n", f"error unknown command 'bogus': expected {commands}\n")
check(b"\n", f"error empty request: expected a command ({commands})\n")
check(b"status mailbox\r\n", "error usage: status KIND NAME\n")
check(b"status plan basic\n", "error bad kind 'plan': expected "
      "subscription, domain or mailbox\n")
check(b"history plan 0 1 basic\n", "error bad kind 'plan': expected "
      "subscription, domain, mailbox or script\n")
check(b"history mailbox 0 x info@example.com\n",
      "error bad time 'x': expected Unix seconds\n")
check(b"report 10\n", "error usage: report FROM TO (Unix times)\n")
check(b"report -5 10\n", "error bad time '-5': expected Unix seconds\n")
check(b"reload now\n", "error usage: reload [force]\n")
check(b"x" * 5000, "error request is longer than 4096 bytes\n")
check(b"report 0 1\n", "ok\nfrom\t0\nto\t1\nend\n")
before = int(time.time())
got = ask(b"history mailbox 0 1 info@example.com\n")
after = int(time.time())
assert got in ["ok\nlimit\t11\nkept\t%d\t720\nend\n"
               % (t // 3600 * 3600 - 719 * 3600) for t in (before, after)], got
got = ask(b"status mailbox INFO@example.com\n").split("\n")
assert got[:8] == ["ok", "kind\tmailbox", "name\tinfo@example.com",
                   "sending\t1", "limit\t11", "count\t3", "refused\t2",
                   "refused_total\t2"] and got[9:] == [
                   "exceeded\t2", "exceeded_total\t2", "disabled\t0",
                   "blocked_kind\t-", "blocked_by\t", "limit_by\t-1",
                   "limit_minute\t-1", "count_minute\t3", "limit_day\t-1",
                   "count_day\t3", "max_recipients\t-1", "window_by\t-",
                   "forwarded\t0", "list_deliveries\t0", "last_reset\t0",
                   "end", ""], got
# A client that sends nothing is dropped after 5 seconds.
s = socket.socket(socket.AF_UNIX)
s.settimeout(15)
s.connect(path)
t = time.monotonic()
assert s.recv(100) == b""
took = time.monotonic() - t
assert 4 < took < 9, took
print("raw protocol ok")
EOF
echo "ok: raw protocol"

# ---- exit statuses and usage ---------------------------------------------------

run_ctl 3 --control "unix:$work/none.sock" ping
expect "cannot connect" "obspamctl: cannot connect to unix:$work/none.sock: No such file or directory" "$err"
run_ctl 2 --control inet:127.0.0.1 ping
expect "bad --control" "obspamctl: --control: bad socket address 'inet:127.0.0.1': no port: expected inet:HOST:PORT or inet:[IPV6]:PORT
Try 'obspamctl --help'." "$err"
run_ctl 2
expect "no command" "obspamctl: no command given
Try 'obspamctl --help'." "$err"
run_ctl 2 frobnicate
run_ctl 2 ping --bogus
expect "unknown option" "obspamctl: unknown option '--bogus'
Try 'obspamctl --help'." "$err"
run_ctl 0 --help
[[ $out == "Usage: obspamctl [--control unix:PATH] [--json] [--tz ZONE] COMMAND [ARGS]"* ]] ||
  { echo "FAIL: --help"; exit 1; }
if [[ ! -e /run/obspam/control.sock ]]; then
  rc=0
  env -u OBSPAM_CONTROL "$CTL" ping >/dev/null 2>"$work/default.err" || rc=$?
  expect "the default socket" "3 obspamctl: cannot connect to unix:/run/obspam/control.sock: No such file or directory" \
    "$rc $(cat "$work/default.err")"
fi

# ---- the socket file's life ------------------------------------------------

# A second daemon on the same socket does not start.
rc=0
"$TESTD" --config "$conf" --control "unix:$sock" 2>"$work/log2" || rc=$?
expect "a live socket is not taken over" "1" "$rc"
grep -q "error: control: cannot listen on unix:$sock: another process is listening on it" "$work/log2" ||
  { echo "FAIL: no message"; cat "$work/log2"; exit 1; }
rc=0
"$TESTD" --config "$conf" --control "unix:$work/nodir/ctl.sock" 2>"$work/log3" || rc=$?
expect "the socket's directory must exist" "1" "$rc"
grep -q "error: control: cannot listen on unix:$work/nodir/ctl.sock: the directory $work/nodir does not exist" "$work/log3" ||
  { echo "FAIL: no message"; cat "$work/log3"; exit 1; }

# SIGTERM: the state is saved and the socket removed.
rm -f "$work/state"
stop_daemon
[[ -s $work/state ]] || { echo "FAIL: no state saved at exit"; exit 1; }
[[ ! -e $sock ]] || { echo "FAIL: the socket is still there"; exit 1; }
echo "ok: stop saves and removes the socket"

# Counters come back from the state file; a killed daemon's stale socket
# is replaced.
start_daemon "$work/log4" --config "$conf" --state "$work/state" \
  --control "unix:$sock"
kill -KILL "$pid"
{ wait "$pid"; } 2>/dev/null || true
pid=
[[ -S $sock ]] || { echo "FAIL: expected a stale socket"; exit 1; }
start_daemon "$work/log5" --config "$conf" --state "$work/state" \
  --control "unix:$sock"
run_ctl 0 status mailbox info@example.com
expect "counters restored, stale socket replaced" "  sent           3 in the last 60 minutes" \
  "$(sed -n 3p <<<"$out")"
stop_daemon

# Without a state file, save is an error.
start_daemon "$work/log6" --config "$conf" --control "unix:$sock"
run_ctl 1 save
expect "save without a state file" "obspamctl: save failed: no state file is configured" "$err"
# A report of nothing says so, and speaks of no "other" script.
run_ctl 0 report
expect "an empty report" "
No refusals.

No script sent mail." "$(tail -n +2 <<<"$out")"
stop_daemon

# ---- windows and the recipients cap -----------------------------------------

# A burst limit per minute, a limit per day, and a cap on recipients per
# message (the domain's, which its undeclared mailboxes inherit): the
# refusal texts, status and report name each.
cat >"$work/windows.conf" <<'EOF'
default mailbox=100 domain=1000 subscription=5000
subscription acme uid=10001
domain example.com subscription=acme max-recipients=5
mailbox burst@example.com limit=2/m,3,10/d
mailbox daily@example.com limit=1/d
EOF
sent burst@example.com:1 burst@example.com:1 burst@example.com:1 \
  daily@example.com:1 daily@example.com:1 capme@example.com:6 \
  >"$work/windows.feed"
start_daemon "$work/log8" --config "$work/windows.conf" --control "unix:$sock" \
  --feed "$work/windows.feed"
refusals=$(grep '^verdict action=refuse' "$work/testd.out")
wnow=$(sed -n 's/^fed 6 lines now=\([0-9]*\)$/\1/p' "$work/testd.out")
expect "refusals of each window and of the cap (count)" 3 "$(grep -c . <<<"$refusals")"
# Every message at the same time now: the minute's 5-second bucket of now
# leaves the window 60 s after that bucket began, the day's clock hour 24
# hours after it began. The day's wait is said in hours and minutes,
# rounded up.
delay=$((60 - wnow % 5))
said="$delay seconds"
[[ $delay -eq 60 ]] && said="1 minute"
expect "the minute's refusal" "verdict action=refuse kind=mailbox object=burst@example.com limit=2 count=2 retry=$delay code=451 text=4.7.1 mailbox burst@example.com has sent to 2 recipients in the last minute, its limit is 2 recipients per minute; try again in $said" \
  "$(grep 'object=burst' <<<"$refusals")"
delay=$((86400 - wnow % 3600))
minutes=$(((delay + 59) / 60))
said="$((minutes / 60)) hours"
case $((minutes % 60)) in
0) ;;
1) said+=" 1 minute" ;;
*) said+=" $((minutes % 60)) minutes" ;;
esac
expect "the day's refusal" "verdict action=refuse kind=mailbox object=daily@example.com limit=1 count=1 retry=$delay code=451 text=4.7.1 mailbox daily@example.com has sent to 1 recipient in the last 24 hours, its limit is 1 recipient per day; try again in $said" \
  "$(grep 'object=daily' <<<"$refusals")"
expect "the cap's refusal" "verdict action=refuse kind=mailbox object=capme@example.com limit=5 count=6 retry=-1 code=451 text=4.7.1 mailbox capme@example.com cannot send this message: it has 6 recipients, its limit is 5 recipients per message" \
  "$(grep 'object=capme' <<<"$refusals")"
echo "ok: refusal texts of each window"

run_ctl 0 status mailbox burst@example.com
expect "status of a mailbox with three windows" "mailbox burst@example.com: not sending: mailbox burst@example.com is at its limit of 2 per minute
  limit          2 per minute
  limit          3 per hour
  limit          10 per day
  max recipients 5 per message
  sent           2 in the last minute
  sent           2 in the last 60 minutes
  sent           2 in the last 24 hours
  refused        1 in the last 60 minutes" "$(head -n 9 <<<"$out")"
run_ctl 0 status mailbox daily@example.com
expect "status at its daily limit" "mailbox daily@example.com: not sending: mailbox daily@example.com is at its limit of 1 per day" \
  "$(head -n 1 <<<"$out")"
run_ctl 0 status mailbox burst@example.com --json
python3 - "$work/ctl.out" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1]))
assert got["limits"] == {"minute": 2, "hour": 3, "day": 10}, got
assert got["counts"] == {"minute": 2, "hour": 2, "day": 2}, got
assert got["max_recipients"] == 5, got
assert got["blocked_by"] == {"kind": "mailbox", "name": "burst@example.com",
                             "window": "minute", "limit": 2}, got
assert (got["limit"], got["count"]) == (3, 2), got  # the hour, as before
EOF
echo "ok: status --json with windows"
run_ctl 0 report --json
python3 - "$work/ctl.out" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1]))
rows = {r["name"]: (r["window"], r["limit"], r["exceeded"]) for r in got["rows"]}
assert rows == {"burst@example.com": ("minute", 2, 1),
                "daily@example.com": ("day", 1, 1),
                "capme@example.com": ("max-recipients", 5, 1)}, rows
EOF
echo "ok: report --json rows name their window"
run_ctl 0 report
expect "report table with windows" "mailbox  burst@example.com     2        1     1      2  minute
mailbox  capme@example.com     0        1     1      5  max-recipients
mailbox  daily@example.com     1        1     1      1  day" \
  "$(grep -E '^mailbox' <<<"$out" | sed -E 's/ +[0-9]{4}-.*//' | sort)"
stop_daemon

# ---- names outside ASCII ---------------------------------------------------

# UTF-8 names stay intact in the log, status, report and JSON (only
# control characters and bytes that are not UTF-8 are replaced).
cat >"$work/utf8.conf" <<'EOF'
default mailbox=100 domain=1000 subscription=5000
subscription bäckerei uid=10003 subscription=2
domain example.com subscription=bäckerei
mailbox jörg@example.com limit=1
mailbox anna@example.com
EOF
cat >"$work/utf8.feed" <<'EOF'
decide sasl=jörg@example.com client=203.0.113.7 recipients=1 time=now
decide sasl=JöRG@Example.COM client=203.0.113.7 recipients=1 time=now queue_id=4FgH2x1Kz9
decide flags=script uid=10003 script=/var/www/bücher/kontakt.php time=now
EOF
start_daemon "$work/log7" --config "$work/utf8.conf" --control "unix:$sock" \
  --feed "$work/utf8.feed"
grep -q "refuse kind=mailbox object=jörg@example.com limit=1 count=1 unit=recipients retry=[0-9]* queue_id=4FgH2x1Kz9 sasl=JöRG@Example.COM " "$work/log7" ||
  { echo "FAIL: no UTF-8 refusal line"; cat "$work/log7"; exit 1; }
run_ctl 0 status mailbox jörg@example.com
expect "status, UTF-8" "mailbox jörg@example.com: not sending: subscription bäckerei is at its limit of 2 per hour" \
  "$(head -n 1 <<<"$out")"
run_ctl 0 status subscription bäckerei --json
python3 - "$work/ctl.out" <<'EOF'
import json, sys
raw = open(sys.argv[1], "rb").read()
assert "bäckerei".encode() in raw, raw
got = json.loads(raw)
assert got["name"] == "bäckerei" and got["count"] == 2, got
EOF
# A mailbox that never sent, blocked by its full subscription.
run_ctl 0 status mailbox anna@example.com
expect "status, blocked by an ancestor" \
  "mailbox anna@example.com: not sending: subscription bäckerei is at its limit of 2 per hour" \
  "$(head -n 1 <<<"$out")"
run_ctl 0 status mailbox anna@example.com --json
python3 - "$work/ctl.out" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1], encoding="utf-8"))
assert (got["sending"], got["exceeded"], got["disabled"], got["blocked_by"]) \
    == (False, 0, False, {"kind": "subscription", "name": "bäckerei",
                          "window": "hour", "limit": 2}), got
EOF
run_ctl 0 report
expect "report, UTF-8 (aligned by characters)" "KIND     NAME              SENT  REFUSED  OVER  LIMIT  WINDOW
mailbox  jörg@example.com     1        1     1      1  hour  " \
  "$(grep -E '^(KIND|mailbox)' <<<"$out" | sed -E 's/  (FIRST REFUSAL|[0-9]{4}-).*//')"
expect "report, UTF-8 script" "/var/www/bücher/kontakt.php     1  10003  bäckerei" \
  "$(tail -n 1 <<<"$out")"
run_ctl 0 report --json
python3 - "$work/ctl.out" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1], encoding="utf-8"))
names = [r["name"] for r in got["rows"]]
assert names == ["jörg@example.com", "/var/www/bücher/kontakt.php"], names
EOF
# Protection disabled: said, whatever the counts.
echo "enabled no" >>"$work/utf8.conf"
run_ctl 0 reload
run_ctl 0 status mailbox anna@example.com
expect "status, protection disabled" \
  "mailbox anna@example.com: protection is disabled" "$(head -n 1 <<<"$out")"
run_ctl 0 status mailbox anna@example.com --json
python3 - "$work/ctl.out" <<'EOF'
import json, sys
got = json.load(open(sys.argv[1]))
assert (got["disabled"], got["blocked_by"]) == (True, None), got
EOF
stop_daemon
echo "ok: UTF-8 names"

# ---- JSON stays valid whatever bytes a daemon sends ------------------------

# A daemon never sends a control character or a byte that is not UTF-8 in
# a name, but obspamctl does not count on it: a stand-in daemon answers
# with both, and the JSON escapes the control character (\u0001) and
# writes the stray byte as U+FFFD; the table shows them as '?' and U+FFFD.
fake=$work/fake.sock
python3 - "$fake" <<'EOF' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(2)
for _ in range(2):
    c, _ = s.accept()
    request = b""
    while not request.endswith(b"\n"):
        chunk = c.recv(4096)
        if not chunk:
            break
        request += chunk
    c.sendall(b"ok\nkind\tmailbox\nname\tj\xc3\xb6rg\x01x\xffy@example.com\n"
              b"sending\t1\nlimit\t-1\ncount\t0\nrefused\t0\n"
              b"refused_total\t0\nlast_refused\t0\nexceeded\t0\n"
              b"exceeded_total\t0\ndisabled\t0\nblocked_kind\t-\n"
              b"blocked_by\t\nlimit_by\t-1\nlimit_minute\t-1\n"
              b"count_minute\t0\nlimit_day\t-1\ncount_day\t0\n"
              b"max_recipients\t-1\nwindow_by\t-\nend\n")
    c.close()
EOF
fake_pid=$!
for ((i = 0; i < 100; i++)); do [[ -S $fake ]] && break; sleep 0.05; done
run_ctl 0 --control "unix:$fake" --json status mailbox x@example.com
python3 - "$work/ctl.out" <<'EOF'
import json, sys
raw = open(sys.argv[1], "rb").read()
assert b'"j\xc3\xb6rg\\u0001x\xef\xbf\xbdy@example.com"' in raw, raw
got = json.loads(raw.decode("utf-8"))
assert got["name"] == "jörg\x01x\ufffdy@example.com", got
assert got["limit"] is None and got["blocked_by"] is None, got
EOF
run_ctl 0 --control "unix:$fake" status mailbox x@example.com
expect "a stray byte in a table" "mailbox jörg?x�y@example.com: sending" \
  "$(head -n 1 <<<"$out")"
wait "$fake_pid"
echo "ok: JSON and tables stay valid UTF-8"
echo "all control checks passed"
