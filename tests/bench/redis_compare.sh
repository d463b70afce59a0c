#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# redis_compare.sh: obspam-policyd with its counters in memory against the
# same daemon with its counters in Redis (a private redis-server on
# 127.0.0.1), directly and through bench_delay_proxy, which adds DELAY_US
# each way (1 ms to each round trip, as a network between a relay and its
# Redis would), same configuration, same load, same run.
#
#   tests/bench/redis_compare.sh [BUILD_DIR]     (default: build)
#
# BUILD_DIR holds the project built with the examples and the benchmarks
# (bench_policy_load, bench_delay_proxy). For each store and each
# connection count, bench_policy_load runs WARMUP seconds unmeasured then
# DURATION seconds measured, one request in flight per connection (as
# Postfix: one smtpd process, one question at a time); then one table of
# req/s and p50/p99 latency, and the goals: Redis on loopback at least 60%
# of memory; through the delay, at least 60% of what the connections can
# reach at all with one request each in flight (CONNS / round trip, the
# round trip measured through the proxy), p99 under 10 ms. Prints figures
# and never fails on a time; exits non-zero only when a server cannot be
# started or a run had errors.
#
# Environment: DURATION=10  WARMUP=1  CONNS="16"  MAILBOXES=1000
#              STORES="memory redis redis-delay"  DELAY_US=500
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2
BUILD=$(cd "${1:-build}" && pwd) || exit 2
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-16}
MAILBOXES=${MAILBOXES:-1000}
STORES=${STORES:-memory redis redis-delay}
DELAY_US=${DELAY_US:-500}
POLICYD=$BUILD/examples/obspam-policyd
LOAD=$(find "$BUILD" -name bench_policy_load -type f -perm -u+x | head -n 1)
PROXY=$(find "$BUILD" -name bench_delay_proxy -type f -perm -u+x | head -n 1)

# shellcheck source=tests/lib/deps.sh
. tests/lib/deps.sh
obspam_need_packages redis-server python3 || true

[[ -x $POLICYD ]] || { echo "redis_compare: $POLICYD is not built" >&2; exit 2; }
[[ -n $LOAD ]] || { echo "redis_compare: bench_policy_load is not built" >&2; exit 2; }
[[ -n $PROXY ]] || { echo "redis_compare: bench_delay_proxy is not built" >&2; exit 2; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/obspam-redis-bench.XXXXXX")
PIDS=()
# shellcheck disable=SC2317 # called by the trap
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null
  rm -rf -- "$TMP"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
  local i
  for ((i = 0; i < 200; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

RPORT=$(free_port)
mkdir -p "$TMP/redis"
redis-server --bind 127.0.0.1 --port "$RPORT" --dir "$TMP/redis" --save '' \
  --appendonly no --logfile "$TMP/redis/log" </dev/null >/dev/null 2>&1 &
PIDS+=($!)
wait_port "$RPORT" || { echo "redis_compare: redis-server did not start" >&2; exit 2; }

# The proxy that delays each direction by DELAY_US.
"$PROXY" -d "$DELAY_US" "127.0.0.1:$RPORT" >"$TMP/proxy.out" 2>"$TMP/proxy.err" &
PIDS+=($!)
for ((i = 0; i < 200; i++)); do
  DPORT=$(sed -n 's/^listening 127\.0\.0\.1://p' "$TMP/proxy.out")
  [[ -n $DPORT ]] && break
  sleep 0.05
done
[[ -n $DPORT ]] || { echo "redis_compare: bench_delay_proxy did not start" >&2; exit 2; }
# The round trip through it: the median of 200 PINGs, one at a time.
RTT_US=$(python3 - "$DPORT" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
t = []
for _ in range(200):
    a = time.perf_counter()
    s.sendall(b"PING\r\n")
    d = b""
    while not d.endswith(b"\r\n"):
        d += s.recv(64)
    t.append(time.perf_counter() - a)
t.sort()
print(int(t[len(t) // 2] * 1e6))
PY
) || { echo "redis_compare: no PING through bench_delay_proxy" >&2; exit 2; }

# The same tree as policyd_compare.sh: ten mailboxes a domain, five domains
# a subscription, limits high enough that everything is accepted.
"$LOAD" -m "$MAILBOXES" --list-mailboxes >"$TMP/mailboxes"
{
  echo "default mailbox=1000000 domain=10000000 subscription=50000000"
  awk '!seen[$2]++ { d = n++; if (d % 5 == 0) printf "subscription s%03d\n", d / 5;
         printf "domain %s subscription=s%03d\n", $2, int(d / 5) }' "$TMP/mailboxes"
  awk '{ printf "mailbox %s@%s\n", $1, $2 }' "$TMP/mailboxes"
} >"$TMP/memory.conf"
{
  echo "store redis://127.0.0.1:$RPORT"
  echo "store-prefix bench:"
  cat "$TMP/memory.conf"
} >"$TMP/redis.conf"
{
  echo "store redis://127.0.0.1:$DPORT"
  echo "store-prefix bench:"
  cat "$TMP/memory.conf"
} >"$TMP/redis-delay.conf"

FAILED=0
for store in $STORES; do
  PORT=$(free_port)
  "$POLICYD" --config "$TMP/$store.conf" --listen "inet:127.0.0.1:$PORT" \
    --foreground --state "$TMP/$store.state" >"$TMP/$store.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  wait_port "$PORT" || { echo "redis_compare: policyd ($store) did not start" >&2; cat "$TMP/$store.log" >&2; exit 2; }
  for c in $CONNS; do
    echo "== $store store, $c connection(s)"
    redis-cli -p "$RPORT" CONFIG RESETSTAT >/dev/null
    timeout $((DURATION + WARMUP + 30)) "$LOAD" -c "$c" -d "$DURATION" -w "$WARMUP" \
      -m "$MAILBOXES" -l "$store" "inet:127.0.0.1:$PORT" >"$TMP/$store-$c.out" 2>&1 || FAILED=1
    sed 's/^/  /' "$TMP/$store-$c.out"
    grep '^RESULT ' "$TMP/$store-$c.out" >>"$TMP/results"
    # Redis's own time per decision (one EVALSHA each): 1e6 / that is
    # the most one Redis core can decide in a second, whatever the client.
    if [[ $store != memory ]]; then
      redis-cli -p "$RPORT" INFO commandstats | tr -d '\r' |
        sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),usec=[0-9]*,usec_per_call=\([0-9.]*\).*/  redis: \1 EVALSHA, \2 us each in Redis/p' |
        tee -a "$TMP/redis-time"
    fi
  done
  kill "$pid"
  wait "$pid" 2>/dev/null
  # A figure made partly without Redis is not one of Redis.
  if grep -q 'store: the shared store does not answer' "$TMP/$store.log"; then
    echo "redis_compare: $store: the store did not answer for a while (fallback episodes below); its figures are not Redis's" >&2
    grep 'store: ' "$TMP/$store.log" >&2
    FAILED=1
  fi
done

echo
echo "machine: $(nproc) CPU ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)), $(redis-server --version | awk '{print $1, $3}'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "round trip to Redis through bench_delay_proxy (-d $DELAY_US): $RTT_US us (median PING)"
[[ -s $TMP/redis-time ]] && echo "Redis's time per decision, per run:" && cat "$TMP/redis-time"
printf '%-12s %6s %10s %9s %9s\n' store conns req/s p50_us p99_us
awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
       printf "%-12s %6s %10.0f %9s %9s\n", v["label"], v["conns"], v["rps"], v["p50_us"], v["p99_us"] }' "$TMP/results"
# The goals, per connection count.
awk -v rtt="$RTT_US" '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
       rps[v["label"], v["conns"]] = v["rps"]; p99[v["label"], v["conns"]] = v["p99_us"]
       if (!(v["conns"] in seen)) { seen[v["conns"]] = 1; order[n++] = v["conns"] } }
     END { for (k = 0; k < n; k++) { c = order[k]
         if (rps["memory", c] > 0 && rps["redis", c] > 0)
           printf "%s connections: redis on loopback %.0f%% of memory (goal >= 60%%: %s)\n", c,
             100 * rps["redis", c] / rps["memory", c],
             (rps["redis", c] >= 0.6 * rps["memory", c] ? "met" : "MISSED")
         if (rps["redis-delay", c] > 0) {
           bound = c * 1e6 / rtt
           printf "%s connections: redis-delay %.0f req/s, %.0f%% of %d / %d us = %.0f (goal >= 60%%: %s); p99 %s us (goal < 10000: %s)\n",
             c, rps["redis-delay", c], 100 * rps["redis-delay", c] / bound, c, rtt, bound,
             (rps["redis-delay", c] >= 0.6 * bound ? "met" : "MISSED"), p99["redis-delay", c],
             (p99["redis-delay", c] < 10000 ? "met" : "MISSED") } } }' "$TMP/results"
exit "$FAILED"
