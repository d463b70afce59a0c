#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# reload_stall.sh: the longest answer gap of obspam-policyd during a reload
# of the 1M-mailbox configuration with a save due every second
# (tests/daemons/durable.py stall), over several rounds, optionally with
# busy processes competing for the CPU.
#
#   tests/bench/reload_stall.sh [BUILD_DIR]     (default: build)
#
# Environment:
#   ROUNDS=5   runs of the scenario
#   HOGS=0     processes that spin at normal priority during every run
#              (HOGS=2 on a 2-CPU machine: each core has one); they are
#              started here and stopped when a run ends
#
# Prints each run's figures and the medians: the longest gap with saves
# alone and during the reload and the saves after it. It never fails on a
# time (the scenario's own bound, 150 ms, still applies to each run).
set -euo pipefail

ROUNDS=${ROUNDS:-5}
HOGS=${HOGS:-0}
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
[[ $BUILD == /* ]] || BUILD="$PWD/$BUILD"

HOG_PIDS=()
stop_hogs() {
  local pid
  for pid in "${HOG_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  HOG_PIDS=()
}
trap stop_hogs EXIT

OUT=$(mktemp "${TMPDIR:-/tmp}/reload_stall.XXXXXX")
trap 'stop_hogs; rm -f "$OUT"' EXIT
echo "reload_stall: $(nproc) CPUs, $HOGS spinning processes, $ROUNDS rounds;" \
  "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= ROUNDS; r++)); do
  for ((h = 0; h < HOGS; h++)); do
    bash -c 'while :; do :; done' &
    HOG_PIDS+=($!)
  done
  line=$(python3 tests/daemons/durable.py "$BUILD" stall 2>&1 | grep 'longest gap' || true)
  stop_hogs
  echo "  round $r: ${line:-no figures (the scenario failed)}"
  sed -n 's/.*longest gap \([0-9.]*\) ms with saves alone, \([0-9.]*\) ms during.*/\1 \2/p' \
    <<<"$line" >>"$OUT"
done
echo "reload_stall: load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
sort -n -k1 "$OUT" | awk '{ a[NR] = $1 } END { if (NR) printf "median longest gap, saves alone: %.1f ms\n", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
sort -n -k2 "$OUT" | awk '{ a[NR] = $2 } END { if (NR) printf "median longest gap, during the reload: %.1f ms\n", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
