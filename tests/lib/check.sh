# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# A tiny test runner for the stage scripts (tests/NAME/run.sh).
#
#   . tests/lib/check.sh
#   check "policy request parsing" build/tests/policyd_proto
#   check "reload on SIGHUP" tests/daemons/reload.sh build
#   check_each policyd python3 tests/daemons/policyd_test.py build <<'EOF'
#   tcp   accept then refuse over TCP
#   EOF
#   check_summary          # prints "N passed, N failed"; fails if any failed
#
# A check passes when its command exits 0. Its output goes to a log file
# under $CHECK_LOG_DIR (default: a temporary directory); a failure prints
# the last lines of it. check_summary removes the logs when all passed.

CHECK_PASSED=0
CHECK_FAILED=0
CHECK_LOG_OWN=0
if [[ -z ${CHECK_LOG_DIR:-} ]]; then
  CHECK_LOG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/obspam-check.XXXXXX")
  CHECK_LOG_OWN=1
fi

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

# check_each PREFIX COMMAND...: a check for each line "NAME WHAT" of the
# standard input (a table in a here-document), named "PREFIX: WHAT", that
# runs COMMAND... NAME. The commands read nothing: their standard input is
# /dev/null, so that none of them eats the table.
check_each() {
  local prefix=$1 name what
  shift
  while read -r name what <&3; do
    check "$prefix: $what" "$@" "$name"
  done 3<&0 </dev/null
}

# Prints the closing line. The logs are removed when everything passed and
# kept (their directory named) when something failed.
check_summary() {
  if [[ $CHECK_FAILED -eq 0 && $CHECK_LOG_OWN -eq 1 ]]; then
    rm -rf -- "$CHECK_LOG_DIR"
  elif [[ $CHECK_FAILED -ne 0 ]]; then
    echo "logs: $CHECK_LOG_DIR"
  fi
  echo "$CHECK_PASSED passed, $CHECK_FAILED failed"
  [[ $CHECK_FAILED -eq 0 ]]
}
