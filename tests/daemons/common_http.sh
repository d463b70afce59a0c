#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The metrics endpoint end to end: ctl_testd serves GET /metrics on a free
# port of 127.0.0.1, with counters the feed makes known, and
# common_http.py checks the answers (exact lines, 404, 405, 400, slow
# clients). Between two scrapes, obspamctl reloads (once badly) and saves,
# which the second scrape must show.
#
#   tests/daemons/common_http.sh BUILD_DIR
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/daemons/ctl_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/ctl_lib.sh" common_http "${1:-}"

cat >"$work/obspam.conf" <<'EOF'
default mailbox=100
subscription acme uid=10001
domain example.com subscription=acme domain=5
mailbox info@example.com limit=2
whitelist 192.0.2.0/24
EOF
cp "$work/obspam.conf" "$work/good.conf"
# 3 accepted, 3 refused (2 by the mailbox, 1 by the domain), 1 exempt,
# 2 unknown; 3 connections of which 1 closed; 2 bad requests (one of them
# a decision the library refuses).
cat >"$work/feed" <<'EOF'
decide sasl=info@example.com client=203.0.113.7
decide sasl=info@example.com client=203.0.113.7
decide sasl=info@example.com client=203.0.113.7
decide sasl=info@example.com client=203.0.113.7
decide sasl=sales@example.com client=203.0.113.7 recipients=3
decide sasl=sales@example.com client=203.0.113.7 recipients=3
decide sasl=info@example.com client=192.0.2.10
decide sender=someone@else.example client=203.0.113.7
decide sender=other@else.example
decide sasl=info@example.com client=not-an-address
connection open
connection open
connection open
connection close
bad
EOF

"$TESTD" --config "$work/obspam.conf" --control "unix:$work/ctl.sock" \
  --state "$work/state" --metrics inet:127.0.0.1:0 --feed "$work/feed" \
  >"$work/out" 2>"$work/log" &
pid=$!
port=
for ((i = 0; i < 200; i++)); do
  if grep -q ': ready$' "$work/log"; then
    port=$(sed -n 's/.*metrics listening on inet:127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/log")
    break
  fi
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
if [[ -z $port ]]; then
  echo "ctl_testd did not start:"
  cat "$work/log"
  exit 1
fi
cat "$work/out"

# The version obspam_build_info names: the project's, which the library has.
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$BUILD/CMakeCache.txt")
python3 "$HERE/common_http.py" "$port" first "$version"
# A bad reload, a good one, a save: the counters and the snapshot age move.
echo "plan x mailbox=lots" >>"$work/obspam.conf"
"$CTL" --control "unix:$work/ctl.sock" reload && {
  echo "the bad reload succeeded"
  exit 1
}
cp "$work/good.conf" "$work/obspam.conf"
"$CTL" --control "unix:$work/ctl.sock" reload
"$CTL" --control "unix:$work/ctl.sock" save
python3 "$HERE/common_http.py" "$port" second "$version"

kill -TERM "$pid"
wait "$pid"
pid=
# The port is closed with the daemon.
if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 2)" "$port" 2>/dev/null; then
  echo "the metrics port is still open after the daemon stopped"
  exit 1
fi
echo "metrics endpoint checks passed"
