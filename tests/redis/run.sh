#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Redis stage: shared counters in real Redis servers started here, on
# private 127.0.0.1 ports with private directories (never the system's
# service), stopped on exit.
#
#   tests/redis/run.sh BUILD_DIR        (from the repository's root)
#
# Ends with the line "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2
BUILD=$(cd "${1:-build}" && pwd) || exit 2
HERE=tests/redis

# shellcheck source=tests/lib/deps.sh
. tests/lib/deps.sh
# shellcheck source=tests/lib/check.sh
. tests/lib/check.sh

obspam_need_packages redis-server redis-sentinel libhiredis-dev \
  libcriterion-dev python3 gcc || echo "warning: could not install packages" >&2

# shellcheck source=tests/redis/private.sh
. "$HERE/private.sh" redis

SRV=$HERE/servers.sh
BIN=$REDIS_TEST_DIR/bin
mkdir -p "$BIN"
CFLAGS=(-std=gnu99 -O1 -g -Wall -Wextra -Werror -Iinclude -Itests)
# shellcheck disable=SC2054 # -Wl,-rpath,DIR is one word
LINK=(-L"$BUILD" -lobspam -Wl,-rpath,"$BUILD")

check "redis: build cluster_test" \
  cc "${CFLAGS[@]}" -pthread -o "$BIN/cluster_test" "$HERE/cluster_test.c" \
  "${LINK[@]}"
check "redis: build equiv_redis" \
  cc "${CFLAGS[@]}" -o "$BIN/equiv_redis" "$HERE/equiv_redis.c" "${LINK[@]}"
# shellcheck disable=SC2046 # pkg-config prints words
check "redis: build property_redis (tests/test_property.c on Redis)" \
  cc "${CFLAGS[@]}" -Wno-unused-parameter -o "$BIN/property_redis" \
  "$HERE/property_redis.c" $(pkg-config --cflags --libs criterion) "${LINK[@]}"

P1=$("$SRV" port)
check "redis: start redis-server on 127.0.0.1:$P1" "$SRV" start main "$P1"
URI=redis://127.0.0.1:$P1

check "redis: a bad store line is refused with FILE:LINE" \
  "$BIN/cluster_test" badconf
check "redis: two relays share one limit" "$BIN/cluster_test" shared "$URI"
check "redis: an object active in two hours is one report row" \
  "$BIN/cluster_test" report_hours "$URI"
check "redis: top and enumerate read Redis; a reset is every relay's" \
  "$BIN/cluster_test" panel "$URI"
check "redis: active objects by pages, read in chunks, across reloads" \
  "$BIN/cluster_test" enum_active "$URI"
check "redis: a reset empties every window on every relay, as in memory" \
  "$BIN/cluster_test" reset "$URI"
check "redis: the minute and day windows and the cap, at each bucket edge" \
  "$BIN/cluster_test" windows "$URI"
check "redis: stats and reports of the minute and day windows" \
  "$BIN/cluster_test" windows_status "$URI"
check "redis: keys of 1.3.0 are counted and reported after the upgrade" \
  "$BIN/cluster_test" upgrade "$URI" "redis-cli -h 127.0.0.1 -p $P1"
check "redis: a node of 1.3 charging between decisions: no charge is missed" \
  "$BIN/cluster_test" mixed "$URI" "redis-cli -h 127.0.0.1 -p $P1" \
  "$HERE/charge-1.3.lua"
check "redis: a relay stopped leaves the shared counters to the next" \
  "$BIN/cluster_test" restart "$URI"
check "redis: the property stream gives the model's verdicts on Redis" \
  env OBSPAM_TEST_REDIS="$URI" "$BIN/property_redis" --jobs 2
check "redis: memory and Redis give the same verdicts, stats, reports, notices" \
  "$BIN/equiv_redis" "$URI"
check "redis: killed, local fallback or defer; restarted, shared again" \
  "$BIN/cluster_test" fallback "$URI" "$SRV kill main" "$SRV restart main"
check "redis: an outage's local charges are added to Redis once it is back" \
  "$BIN/cluster_test" ledger "$URI" "$SRV kill main" "$SRV restart main"
check "redis: the ledger carries forwards and list deliveries, exempt ones too" \
  "$BIN/cluster_test" ledger_marks "$URI" "$SRV kill main" "$SRV restart main" \
  "redis-cli -h 127.0.0.1 -p $P1"
check "redis: Redis frozen: no decision waits past store-timeout, one episode" \
  "$BIN/cluster_test" outage "$URI" "$SRV freeze main" "$SRV thaw main"
check "redis: the keys of objects a reload drops are deleted in the background" \
  "$BIN/cluster_test" housekeeping "$URI" "redis-cli -h 127.0.0.1 -p $P1"
# A proxy that adds 50 ms to each round trip to the main server, and
# counts the exchanges on its control port.
PD=$("$SRV" port)
PC=$("$SRV" port)
check "redis: the proxy adding 50 ms is ready" start_proxy "$PD" "$P1" 50 "$PC"
check "redis: a batch is one round trip; batches queued meanwhile share one" \
  "$BIN/cluster_test" roundtrips "redis://127.0.0.1:$PD" 50 "$PC"
check "redis: a panel's pass makes no round trip under the lock: reloads go on" \
  "$BIN/cluster_test" enum_lock "$URI" "redis://127.0.0.1:$PD" 50
check "redis: stats, history and a remove of 2,000 mailboxes: no round trip under the lock" \
  "$BIN/cluster_test" nolock "$URI" "redis://127.0.0.1:$PD" 50
stop_proxy
check "redis: obspam-policyd logs and counts a fallback episode once" \
  python3 "$HERE/policyd_store.py" "$BUILD" "$SRV" "$P1"
check "redis: killed under load, the recovery line's count is the metric's" \
  python3 "$HERE/policyd_store.py" "$BUILD" "$SRV" "$P1" load
check "redis: store-fallback defer under load: two lines, with the counts" \
  python3 "$HERE/policyd_store.py" "$BUILD" "$SRV" "$P1" defer
check "redis: Redis frozen and thawed 6 times under load: the lines add up" \
  python3 "$HERE/policyd_store.py" "$BUILD" "$SRV" "$P1" outages
check "redis: obspam-milter, every connection of the pool busy: two lines an episode, the metric's count" \
  python3 "$HERE/milter_busy.py" "$BUILD" "$P1"

# obspam-policyd's loop on the shared store (each scenario starts its own
# redis-server): tests/daemons/policyd_cluster.py.
C=tests/daemons/policyd_cluster.py
check "redis: policyd connections closed while their decisions are out" \
  python3 "$C" "$BUILD" inflight_close
check "redis: policyd under load, Redis stopped: no wait past the timeout" \
  python3 "$C" "$BUILD" outage
check "redis: the same with store-fallback defer" \
  python3 "$C" "$BUILD" outage_defer
check "redis: two policy servers on one Redis accept exactly the limit" \
  python3 "$C" "$BUILD" two_servers
# Scenarios of tests/daemons with the counters in Redis: the forward paths
# (several decisions per request) through the loop's asynchronous path,
# and requests pipelined on one connection, answered in order. (Not
# pipeline_deep: one connection's 10,000 requests take 10,000 round trips,
# one at a time, since each request's step depends on the answers before
# it; on a loaded machine that exceeds the scenario's time.)
for s in forwards rcpt rcpt_cap rcpt_recorded dedupe many; do
  check "redis: policyd scenario $s on Redis" \
    env OBSPAM_TEST_STORE="$URI" python3 tests/daemons/policyd_test.py "$BUILD" "$s"
done

# Sentinel: a master, one replica, one sentinel (quorum 1).
PM=$("$SRV" port)
PR=$("$SRV" port)
PS=$("$SRV" port)
check "redis: start master 127.0.0.1:$PM" "$SRV" start master "$PM"
check "redis: start replica 127.0.0.1:$PR" \
  "$SRV" start replica "$PR" --replicaof 127.0.0.1 "$PM"
check "redis: start sentinel 127.0.0.1:$PS" "$SRV" sentinel sentinel "$PS" "$PM"
check "redis: decisions follow a Sentinel failover" \
  "$BIN/cluster_test" failover "sentinel://127.0.0.1:$PS/mymaster" \
  "$HERE/failover.sh $PS $PR"

check_summary
