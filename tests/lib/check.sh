# shellcheck shell=bash
# A tiny test runner for the stage scripts (tests/NAME/run.sh).
#
#   . tests/lib/check.sh
#   check "policy request parsing" build/tests/policyd_proto
#   check "reload on SIGHUP" tests/daemons/reload.sh build
#   check_summary          # prints "N passed, N failed"; fails if any failed
#
# A check passes when its command exits 0. Its output goes to a log file
# under $CHECK_LOG_DIR (default: a temporary directory); a failure prints
# the last lines of it.

CHECK_PASSED=0
CHECK_FAILED=0
CHECK_LOG_DIR=${CHECK_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/obspam-check.XXXXXX")}

check() {
  local name=$1 log rc=0
  shift
  log="$CHECK_LOG_DIR/$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '_').log"
  printf -- '-- %s: %s\n' "$name" "$*"
  "$@" >"$log" 2>&1 || rc=$?
  if [[ $rc -eq 0 ]]; then
    CHECK_PASSED=$((CHECK_PASSED + 1))
    printf 'ok   %s\n' "$name"
  else
    CHECK_FAILED=$((CHECK_FAILED + 1))
    printf 'FAIL %s (exit %d; log: %s)\n' "$name" "$rc" "$log"
    tail -n 40 "$log" | sed 's/^/     | /'
  fi
}

check_summary() {
  echo "$CHECK_PASSED passed, $CHECK_FAILED failed"
  [[ $CHECK_FAILED -eq 0 ]]
}
