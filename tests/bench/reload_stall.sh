#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# reload_stall.sh: the longest answer gap of obspam-policyd, as its client
# and as the server itself sees it, during a reload of the 1M-mailbox
# configuration with a save every second, with the saves alone and with
# neither (tests/daemons/durable.py stall), over several rounds,
# optionally with busy processes competing for the CPU.
#
#   tests/bench/reload_stall.sh [BUILD_DIR]     (default: build)
#
# Environment:
#   ROUNDS=5   runs of the scenario
#   HOGS=0     processes that spin at normal priority during every run
#              (HOGS=2 on a 2-CPU machine: each core has one); they are
#              started here and stopped when a run ends
#
# Prints each run's figures and, for each phase of the scenario (nothing,
# saves alone, the reload with saves), the medians over the runs: the
# client's longest gap between two answers; the server's own longest round
# and longest wait (to the bucket of its histogram, from /metrics) and how
# many of each passed 10 ms; the time its loop thread waited for a CPU;
# then the medians of the server's longest round and wait since its start
# (exact). It never fails on a time (the scenario's own bounds still apply
# to each run).
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
  lines=$(python3 tests/daemons/durable.py "$BUILD" stall 2>&1 |
    grep -E '^    (three phases of |(nothing|saves alone|reload and saves):)|^(ok|FAIL) |^scenario\.Failure: ' || true)
  stop_hogs
  echo "  round $r:"
  sed 's/^ */    /' <<<"${lines:-no figures (the scenario failed)}"
  echo "$lines" >>"$OUT"
done
echo "reload_stall: load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$OUT" <<'PY'
import re
import statistics
import sys

text = open(sys.argv[1]).read()
def median(values):
    return statistics.median(values) if values else float("nan")

print("medians over the runs:")
phase = re.compile(
    r"^    ([a-z ]+): client gap ([\d.]+) ms; server round <= ([\d.]+) ms "
    r"\((\d+) of \d+ over 10 ms\), wait <= ([\d.]+) ms \((\d+) of \d+ over "
    r"10 ms\); loop thread ran (\d+) ms, waited (\d+) ms for a CPU", re.M)
for name in ("nothing", "saves alone", "reload and saves"):
    rows = [tuple(float(x) for x in m.groups()[1:])
            for m in phase.finditer(text) if m.group(1) == name]
    cols = list(zip(*rows)) or [[]] * 7
    print(f"  {name}: client's longest gap {median(cols[0]):.1f} ms; "
          f"server's longest round <= {median(cols[1]):g} ms "
          f"({median(cols[2]):g} over 10 ms), longest wait <= "
          f"{median(cols[3]):g} ms ({median(cols[4]):g} over 10 ms); "
          f"the loop thread waited {median(cols[6]):.0f} ms for a CPU "
          f"and ran {median(cols[5]):.0f} ms ({len(rows)} runs)")
since = [(float(a), float(b)) for a, b in re.findall(
    r"longest since the start: round ([\d.]+) ms, wait ([\d.]+) ms", text)]
if since:
    print(f"  the server's longest since its start: round "
          f"{median([a for a, _ in since]):.2f} ms, wait "
          f"{median([b for _, b in since]):.2f} ms")
PY
