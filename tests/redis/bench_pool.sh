#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bench_pool.sh: the library on the Redis store, with a pool of 1
# connection and of 8, on loopback and through a proxy that adds DELAY_MS
# to each round trip (tests/redis/delay_proxy.py); a private redis-server
# on 127.0.0.1, stopped on exit.
#
#   tests/redis/bench_pool.sh [BUILD_DIR]     (default: build)
#
# Prints one line per run (tests/redis/bench_pool.c); never fails on a
# time. Environment: SECONDS_EACH=3  DELAY_MS=1  THREADS=8
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2
BUILD=$(cd "${1:-build}" && pwd) || exit 2
HERE=tests/redis
SECS=${SECONDS_EACH:-3}
DELAY=${DELAY_MS:-1}
THREADS=${THREADS:-8}
# shellcheck source=tests/redis/private.sh
. "$HERE/private.sh" bench

BIN=$REDIS_TEST_DIR/bench_pool
cc -std=gnu99 -O2 -g -Wall -Wextra -Iinclude -pthread -o "$BIN" \
  "$HERE/bench_pool.c" -L"$BUILD" -lobspam -Wl,-rpath,"$BUILD" || exit 2

P=$("$HERE/servers.sh" port)
"$HERE/servers.sh" start main "$P" --appendonly no || exit 2
PP=$("$HERE/servers.sh" port)
start_proxy "$PP" "$P" "$DELAY" ||
  { echo "the proxy did not start" >&2; exit 2; }

echo "redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), $(nproc) cores, ${SECS} s each"
for where in "loopback:$P" "+${DELAY}ms:$PP"; do
  port=${where#*:}
  label=${where%%:*}
  for pool in 1 8; do
    printf '%-9s pool=%d  ' "$label" "$pool"
    "$BIN" "redis://127.0.0.1:$port?pool=$pool" sync "$THREADS" "$SECS"
  done
  printf '%-9s pool=8  ' "$label"
  "$BIN" "redis://127.0.0.1:$port?pool=8" batch 1 "$SECS"
  printf '%-9s pool=8  ' "$label"
  "$BIN" "redis://127.0.0.1:$port?pool=8" start 16 "$SECS"
done
