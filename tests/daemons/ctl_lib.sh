# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# What the shell tests of ctl_testd and obspamctl share. Sourced, after
# `set -euo pipefail`, as
#
#   . "$(dirname "${BASH_SOURCE[0]}")/ctl_lib.sh" NAME BUILD_DIR
#
# it sets BUILD, TESTD (ctl_testd) and CTL (obspamctl), checks that both
# were built, makes the scratch directory $work (removed at exit, with the
# daemon whose process id the script left in $pid stopped first), and
# defines expect, run_ctl, start_daemon and stop_daemon. The scripts'
# Python finds the module scenario (a request and its whole answer) on
# PYTHONPATH.

PYTHONPATH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)${PYTHONPATH:+:$PYTHONPATH}
export PYTHONPATH

# Times are shown in $TZ: the expected values are UTC.
unset TZ
BUILD=$(cd "${2:?usage: $1.sh BUILD_DIR}" && pwd)
TESTD=$BUILD/tests/daemons/ctl_testd
CTL=$BUILD/examples/obspamctl/obspamctl
for f in "$TESTD" "$CTL"; do
  [[ -x $f ]] || { echo "missing $f: build the project first" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/obspam-$1.XXXXXX")
pid=
cleanup() {
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# expect NAME EXPECTED ACTUAL: exact comparison, with a diff on failure.
expect() {
  if [[ "$2" != "$3" ]]; then
    echo "FAIL: $1"
    diff -u <(printf '%s\n' "$2") <(printf '%s\n' "$3") || true
    exit 1
  fi
  echo "ok: $1"
}

# run_ctl STATUS ARGS...: runs obspamctl, expects the exit status, and
# leaves its standard output in $out and its standard error in $err.
run_ctl() {
  local want=$1 rc=0
  shift
  "$CTL" "$@" >"$work/ctl.out" 2>"$work/ctl.err" || rc=$?
  out=$(cat "$work/ctl.out")
  err=$(cat "$work/ctl.err")
  if [[ $rc -ne $want ]]; then
    echo "FAIL: obspamctl $* exited with $rc, expected $want"
    echo "stdout: $out"
    echo "stderr: $err"
    exit 1
  fi
}

# start_daemon LOG ARGS...: starts ctl_testd in the background and waits
# (10 s at most) for its "ready" line.
start_daemon() {
  local log=$1 i
  shift
  "$TESTD" "$@" >"$work/testd.out" 2>"$log" &
  pid=$!
  for ((i = 0; i < 200; i++)); do
    grep -qs ': ready$' "$log" && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "ctl_testd exited before it was ready:"
      cat "$log"
      exit 1
    fi
    sleep 0.05
  done
  echo "ctl_testd not ready after 10 s:"
  cat "$log"
  exit 1
}

# sent LOGIN:RECIPIENTS...: ctl_testd's feed lines for messages sent now
# by each LOGIN over SMTP from 203.0.113.7, to that many recipients.
sent() {
  local m
  for m; do
    printf 'decide sasl=%s client=203.0.113.7 recipients=%s time=now\n' \
      "${m%:*}" "${m##*:}"
  done
}

# stop_daemon: SIGTERM, and a bounded wait for the exit.
stop_daemon() {
  local i
  kill -TERM "$pid"
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "FAIL: ctl_testd did not stop within 10 s"
    exit 1
  fi
  wait "$pid" || { echo "FAIL: ctl_testd exited with $?"; exit 1; }
  pid=
}
