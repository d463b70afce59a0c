#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench_enum.sh: paging through the active mailboxes of MAILBOXES on the
# Redis store, through tests/bench/delay_proxy.c (bench_delay_proxy, which
# adds DELAY_US twice to each round trip), while another thread decides
# and a third reloads (tests/redis/bench_enum.c); a private redis-server
# on 127.0.0.1, stopped on exit.
#
#   tests/redis/bench_enum.sh [BUILD_DIR]     (default: build)
#
# Prints one line of figures; never fails on a time. Environment:
# MAILBOXES=100000 ACTIVE=1000 DELAY_US=500 (1 ms a round trip)
# LIMIT_S=300 (a pass that takes longer is stopped and says so)
# IDLE_S=5. Then the pass again without reloads, and IDLE_S seconds of
# decisions and reloads without a pass: what each costs alone.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2
BUILD=$(cd "${1:-build}" && pwd) || exit 2
HERE=tests/redis
# shellcheck source=tests/redis/private.sh
. "$HERE/private.sh" benum

PROXY=$BUILD/bench/bench_delay_proxy
[[ -x $PROXY ]] || { echo "bench_enum: $PROXY is not built" >&2; exit 2; }
BIN=$REDIS_TEST_DIR/bench_enum
cc -std=gnu99 -O2 -g -Wall -Wextra -Iinclude -pthread -o "$BIN" \
  "$HERE/bench_enum.c" -L"$BUILD" -lobspam -Wl,-rpath,"$BUILD" || exit 2

P=$("$HERE/servers.sh" port)
"$HERE/servers.sh" start main "$P" --appendonly no || exit 2
coproc DPROXY { exec "$PROXY" -d "${DELAY_US:-500}" "127.0.0.1:$P"; }
DPROXY_KEEP=$DPROXY_PID
trap 'kill "$DPROXY_KEEP" 2>/dev/null; wait "$DPROXY_KEEP" 2>/dev/null; redis_private_cleanup' EXIT
read -r line <&"${DPROXY[0]}"
PP=${line##*:}
[[ $line == listening* && -n $PP ]] || { echo "bench_enum: the proxy did not start" >&2; exit 2; }

echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), $(nproc) cores, +$(( ${DELAY_US:-500} * 2 )) us a round trip"
"$BIN" "redis://127.0.0.1:$P" "redis://127.0.0.1:$PP" "${MAILBOXES:-100000}" \
  "${ACTIVE:-1000}" "${LIMIT_S:-300}"
echo "the same without reloads:"
"$BIN" "redis://127.0.0.1:$P" "redis://127.0.0.1:$PP" "${MAILBOXES:-100000}" \
  "${ACTIVE:-1000}" "${LIMIT_S:-300}" steady
echo "the same without the pass, ${IDLE_S:-5} s:"
"$BIN" "redis://127.0.0.1:$P" "redis://127.0.0.1:$PP" "${MAILBOXES:-100000}" \
  "${ACTIVE:-1000}" "${IDLE_S:-5}" idle
