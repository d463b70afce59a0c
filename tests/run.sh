#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The project's test command: installs what is missing, then runs every test
# stage and ends with one line "N passed, N failed" that counts the ctest
# tests of all stages. Exits non-zero when anything failed.
#
#   tests/run.sh            every stage, in order
#   tests/run.sh asan tsan  only the stages named
#
# Stages (each is a function stage_NAME below; add new ones to STAGES):
#   build  RelWithDebInfo build with -Werror in build/, every test
#   asan   AddressSanitizer + UndefinedBehaviorSanitizer build in build-asan/,
#          every test
#   tsan   ThreadSanitizer build in build-tsan/, the tests labelled "threads"
#          (the thread-stress suites tests/test_threads*.c)
#   bindings  the Python and PHP bindings against build/'s library
#          (tests/bindings/run.sh, which installs php-cli when missing)
#   daemons, e2e, redis, fuzz, faults, abi
#          tests/NAME/run.sh BUILD_DIR, each installing what it needs and
#          ending with "N passed, N failed": the daemons against real
#          sockets, Postfix end to end, the Redis store (with Sentinel),
#          fuzzers, fault injection, the ABI guard
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=tests/lib/deps.sh
. tests/lib/deps.sh

STAGES=(build asan tsan bindings daemons e2e redis fuzz faults abi)
JOBS=${OBSPAM_JOBS:-2}
# binutils: nm and readelf, for the export test.
# libmilter-dev: obspam-milter is built with the other examples;
# libhiredis-dev: the Redis store is built into the library.
PACKAGES=(cmake make gcc g++ libc6-dev pkg-config binutils
  libxxhash-dev uthash-dev libcriterion-dev libmilter-dev libhiredis-dev)

passed=0
failed=0
stage_results=()

header() {
  printf '\n======== %s ========\n' "$*"
}

# note_stage NAME RESULT: remembers one line for the summary.
note_stage() {
  stage_results+=("$(printf '%-6s %s' "$1" "$2")")
}

# configure DIR CMAKE-ARGS...
configure() {
  local dir=$1
  shift
  cmake -S . -B "$dir" "$@"
}

# build DIR [TARGET...]: builds the targets (default: all) as far as it can
# (make -k), so that one test that does not compile leaves the others to
# run; fails if anything failed to build.
build() {
  local dir=$1 keep_going=(-k) targets=()
  shift
  if [[ $# -gt 0 ]]; then
    targets=(--target "$@")
  fi
  if grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja' "$dir/CMakeCache.txt"; then
    keep_going=(-k 0)
  fi
  cmake --build "$dir" -j "$JOBS" "${targets[@]}" -- "${keep_going[@]}"
}

# run_ctest STAGE DIR CTEST-ARGS...: runs ctest in DIR and adds the tests it
# ran to the totals. A ctest failure without a summary line (it could not
# run at all) counts as one failed test.
run_ctest() {
  local stage=$1 dir=$2
  shift 2
  local log="$dir/ctest-run.log" rc=0 line total=0 bad=0
  ctest --test-dir "$dir" --output-on-failure --timeout 900 "$@" 2>&1 |
    tee "$log" || rc=$?
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' \
    "$log" | tail -n 1 || true)
  if [[ -n $line ]]; then
    bad=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$line")
    total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
  fi
  if [[ $rc -ne 0 && $bad -eq 0 ]]; then
    bad=1
  fi
  passed=$((passed + total - (bad > total ? total : bad)))
  failed=$((failed + bad))
  if [[ $bad -eq 0 ]]; then
    note_stage "$stage" "ok: $total tests passed"
  else
    note_stage "$stage" "FAILED: $bad of $total tests failed (log: $log)"
  fi
}

# A configuration or build that fails counts as one failed test (and the
# tests that could not be built fail in ctest).
build_failed() {
  failed=$((failed + 1))
  note_stage "$1" "FAILED: $3 in $2 failed"
}

stage_build() {
  header "Stage build: RelWithDebInfo, -Werror, every test (build/)"
  if ! configure build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DOBSPAM_WERROR=ON -DOBSPAM_SANITIZE= -DOBSPAM_BUILD_TESTS=ON \
    -DOBSPAM_BUILD_DAEMONS=ON -DOBSPAM_BUILD_EXAMPLES=ON \
    -DOBSPAM_BUILD_BENCH=ON; then
    build_failed build build/ "configuring"
    return 0
  fi
  build build || build_failed build build/ "building"
  run_ctest build build --no-tests=error
}

stage_asan() {
  header "Stage asan: AddressSanitizer + UBSan, every test (build-asan/)"
  if ! configure build-asan -DCMAKE_BUILD_TYPE=Debug \
    -DOBSPAM_WERROR=OFF -DOBSPAM_SANITIZE=address,undefined \
    -DOBSPAM_BUILD_TESTS=ON -DOBSPAM_BUILD_DAEMONS=ON \
    -DOBSPAM_BUILD_EXAMPLES=ON -DOBSPAM_BUILD_BENCH=OFF; then
    build_failed asan build-asan/ "configuring"
    return 0
  fi
  build build-asan || build_failed asan build-asan/ "building"
  # The build also has -fno-sanitize-recover, and the tests fail on any
  # sanitizer report in their output (leaks found as a Criterion worker
  # exits included).
  local -x ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0
  local -x UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  run_ctest asan build-asan --no-tests=error
}

stage_tsan() {
  header "Stage tsan: ThreadSanitizer, tests labelled threads (build-tsan/)"
  local suites=() source
  for source in tests/test_threads*.c; do
    [[ -e $source ]] && suites+=("$(basename "$source" .c)")
  done
  if [[ ${#suites[@]} -eq 0 ]]; then
    echo "No thread-stress suite (tests/test_threads*.c) yet: nothing to run."
    note_stage tsan "skipped: no tests/test_threads*.c"
    return 0
  fi
  if ! configure build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DOBSPAM_WERROR=OFF -DOBSPAM_SANITIZE=thread -DOBSPAM_BUILD_TESTS=ON \
    -DOBSPAM_BUILD_DAEMONS=OFF -DOBSPAM_BUILD_EXAMPLES=OFF \
    -DOBSPAM_BUILD_BENCH=OFF; then
    build_failed tsan build-tsan/ "configuring"
    return 0
  fi
  # Only the suites this stage runs: the others are built by the stages
  # above.
  build build-tsan "${suites[@]}" || build_failed tsan build-tsan/ "building"
  local -x TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
  run_ctest tsan build-tsan -L threads --no-tests=error
}

# run_script STAGE LOG COMMAND...: runs a test script that ends with the line
# "N passed, N failed" and adds its counts to the totals; a script that
# fails without that line counts as one failed test.
run_script() {
  local stage=$1 log=$2 rc=0 line p f
  shift 2
  "$@" 2>&1 | tee "$log" || rc=$?
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1 || true)
  if [[ -z $line ]]; then
    failed=$((failed + 1))
    note_stage "$stage" "FAILED: no summary line, exit $rc (log: $log)"
    return 0
  fi
  p=${line%% passed*}
  f=${line#*passed, }
  f=${f%% failed*}
  passed=$((passed + p))
  failed=$((failed + f))
  if [[ $rc -ne 0 && $f -eq 0 ]]; then
    failed=$((failed + 1))
    f=1
  fi
  if [[ $f -eq 0 ]]; then
    note_stage "$stage" "ok: $p tests passed"
  else
    note_stage "$stage" "FAILED: $f failed, $p passed (log: $log)"
  fi
}

stage_bindings() {
  header "Stage bindings: Python (ctypes) and PHP (FFI) against build/"
  if [[ ! -e build/libobspam.so.1 ]]; then
    configure build -DOBSPAM_WERROR=ON && build build ||
      { build_failed bindings build/ "building"; return 0; }
  fi
  run_script bindings build/bindings-run.log tests/bindings/run.sh build
}

# A stage whose tests live in a script of their own, tests/NAME/run.sh,
# run against build/.
script_stage() {
  local name=$1 what=$2
  header "Stage $name: $what"
  if [[ ! -x tests/$name/run.sh ]]; then
    echo "No tests/$name/run.sh: nothing to run."
    note_stage "$name" "skipped: no tests/$name/run.sh"
    return 0
  fi
  if [[ ! -e build/libobspam.so.1 ]]; then
    configure build -DOBSPAM_WERROR=ON && build build ||
      { build_failed "$name" build/ "building"; return 0; }
  fi
  run_script "$name" "build/$name-run.log" "tests/$name/run.sh" build
}

stage_daemons() { script_stage daemons "obspam-policyd, obspam-milter, obspamctl"; }
stage_e2e() { script_stage e2e "a private Postfix instance end to end"; }
stage_redis() { script_stage redis "shared counters in private Redis and Sentinel servers"; }
stage_fuzz() { script_stage fuzz "libFuzzer targets, bounded, and regressions"; }
stage_faults() { script_stage faults "allocation failures on every entry point, full disks"; }
stage_abi() { script_stage abi "the ABI against the committed baseline"; }

main() {
  local stage stages=("$@")
  if [[ ${#stages[@]} -eq 0 ]]; then
    stages=("${STAGES[@]}")
  fi
  for stage in "${stages[@]}"; do
    if ! declare -F "stage_$stage" >/dev/null; then
      echo "run.sh: unknown stage '$stage' (stages: ${STAGES[*]})" >&2
      exit 2
    fi
  done

  header "Dependencies"
  obspam_need_packages "${PACKAGES[@]}"
  echo "All needed packages are installed."

  for stage in "${stages[@]}"; do
    "stage_$stage"
  done

  header "Summary"
  printf '%s\n' "${stage_results[@]}"
  echo "$passed passed, $failed failed"
  [[ $failed -eq 0 ]]
}

main "$@"
