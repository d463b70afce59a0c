#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# obspamctl's command line (getopt_long) and its errors under --json:
# --opt=VALUE, options after the command, "--", missing and unexpected
# values; under --json every error, of usage (2), of the daemon (1) or of
# the connection (3), is also one JSON document {"error": MESSAGE,
# "exit_status": N} on standard output, the text staying on standard
# error. ctl_testd answers on a private Unix socket.
#
#   tests/daemons/ctl_options.sh BUILD_DIR
set -euo pipefail

# shellcheck source=tests/daemons/ctl_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/ctl_lib.sh" ctl_options "${1:-}"

# json_error STATUS MESSAGE: $out is exactly that error document, and $err
# the same message as text.
json_error() {
  python3 -c '
import json, sys
doc = json.loads(sys.argv[1])
want = {"error": sys.argv[3], "exit_status": int(sys.argv[2])}
assert doc == want, (doc, want)
' "$out" "$1" "$2" || { echo "FAIL: JSON error: $out"; exit 1; }
  [[ $err == "obspamctl: $2"* ]] || { echo "FAIL: the text on standard error: $err"; exit 1; }
  echo "ok: JSON error $out"
}

cat >"$work/obspam.conf" <<'CONF'
subscription acme
domain example.com subscription=acme
mailbox info@example.com limit=3
CONF
sock=$work/ctl.sock
export OBSPAM_CONTROL=unix:$sock
"$TESTD" --config "$work/obspam.conf" --control "unix:$sock" 2>"$work/log" &
pid=$!
for ((i = 0; i < 200; i++)); do
  grep -q ': ready$' "$work/log" && break
  kill -0 "$pid" 2>/dev/null || { echo "ctl_testd exited:"; cat "$work/log"; exit 1; }
  sleep 0.05
done
grep -q ': ready$' "$work/log" || { echo "ctl_testd not ready:"; cat "$work/log"; exit 1; }

# ---- getopt_long -----------------------------------------------------------
run_ctl 0 --control="unix:$sock" --timeout=5 ping
run_ctl 0 ping --control "unix:$sock" --json
python3 -c 'import json, sys; assert json.loads(sys.argv[1])["name"] == "ctl_testd"' "$out" ||
  { echo "FAIL: ping --json after the command: $out"; exit 1; }
echo "ok: options after the command"
run_ctl 2 -- --json
expect "-- ends the options" "obspamctl: unknown command '--json': expected status, report, history, list, top, blocked, overview, reset, set-limit, reload, save or ping
Try 'obspamctl --help'." "$err"
run_ctl 2 report --since
expect "a missing value" "obspamctl: option --since needs a value
Try 'obspamctl --help'." "$err"
run_ctl 2 --json=yes ping
expect "a value for a flag" "obspamctl: option --json=yes takes no value
Try 'obspamctl --help'." "$err"
run_ctl 2 -x ping
expect "an unknown short option" "obspamctl: unknown option '-x'
Try 'obspamctl --help'." "$err"
run_ctl 2 --timeout 0 ping
expect "a bad timeout" "obspamctl: bad timeout '0': expected seconds, 1..86400
Try 'obspamctl --help'." "$err"
run_ctl 2 ping --bogus
expect "no JSON without --json" "" "$out"
run_ctl 0 -h
[[ $out == "Usage: obspamctl "* ]] || { echo "FAIL: -h"; exit 1; }

# ---- errors under --json ---------------------------------------------------
run_ctl 2 --json ping --bogus
json_error 2 "unknown option '--bogus'"
run_ctl 2 --bogus --json ping
json_error 2 "unknown option '--bogus'"
run_ctl 2 report --json --since
json_error 2 "option --since needs a value"
run_ctl 2 --json
json_error 2 "no command given"
run_ctl 2 --json frobnicate
json_error 2 "unknown command 'frobnicate': expected status, report, history, list, top, blocked, overview, reset, set-limit, reload, save or ping"
run_ctl 2 --json status mailbox
json_error 2 "usage: status KIND NAME"
run_ctl 2 --json --control inet:127.0.0.1 ping
json_error 2 "--control: bad socket address 'inet:127.0.0.1': no port: expected inet:HOST:PORT or inet:[IPV6]:PORT"
run_ctl 3 --json --control "unix:$work/none.sock" ping
json_error 3 "cannot connect to unix:$work/none.sock: No such file or directory"
run_ctl 1 --json status mailbox nobody@example.com
json_error 1 "stats_get: no mailbox 'nobody@example.com'"
run_ctl 1 --json save
json_error 1 "save failed: no state file is configured"

kill -TERM "$pid"
wait "$pid" || { echo "FAIL: ctl_testd exited with $?"; exit 1; }
pid=
echo "all obspamctl option checks passed"
