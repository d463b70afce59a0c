#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The fuzzing stage: builds the libFuzzer targets of tests/fuzz/ with clang
# (-fsanitize=fuzzer,address,undefined -g -O1) and the library's own sources,
# replays every seed (tests/fuzz/corpus/TARGET/) and every regression input
# (tests/fuzz/regressions/TARGET/) as a normal test, then fuzzes each target
# for a bounded time on a copy of its seeds in a temporary directory.
#
#   tests/fuzz/run.sh BUILD_DIR        (from the repository's root)
#
# The binaries go to BUILD_DIR/fuzz/. Nothing is written into the
# repository: new corpus entries stay in the temporary copy, and an input
# that breaks a target is kept as BUILD_DIR/fuzz/artifacts/TARGET-crash-*
# (add it under tests/fuzz/regressions/TARGET/ once the bug is fixed).
#
# Environment:
#   OBSPAM_FUZZ_TIME     seconds of fuzzing per target (default 30; 0: replay
#                        only)
#   OBSPAM_FUZZ_TARGETS  the targets to run (default: every tests/fuzz/fuzz_*.c)
#   CLANG                the compiler (default: clang)
#
# Ends with the line "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2
BUILD=${1:-build}
HERE=tests/fuzz
OUT="$BUILD/fuzz"
TIME=${OBSPAM_FUZZ_TIME:-30}
CLANG=${CLANG:-clang}

# shellcheck source=tests/lib/deps.sh
. tests/lib/deps.sh
# shellcheck source=tests/lib/check.sh
. tests/lib/check.sh

# clang, and the runtimes of libFuzzer and the sanitizers.
obspam_need_packages clang libclang-rt-14-dev libxxhash-dev uthash-dev ||
  echo "warning: could not install the fuzzing toolchain" >&2

TMP=$(mktemp -d "${TMPDIR:-/tmp}/obspam-fuzz.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT/obj" "$OUT/artifacts"

CFLAGS=(-g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=all
  -D_GNU_SOURCE -Iinclude -Isrc -Wall -Wextra)
targets=()
if [[ -n ${OBSPAM_FUZZ_TARGETS:-} ]]; then
  read -r -a targets <<<"$OBSPAM_FUZZ_TARGETS"
else
  for f in "$HERE"/fuzz_*.c; do
    targets+=("$(basename "$f" .c)")
  done
fi

# The library's sources, compiled once with the fuzzer's coverage
# instrumentation and linked into every target.
build_library() {
  local src obj objs=()
  rm -f "$OUT"/obj/*.o
  for src in src/*.c; do
    obj="$OUT/obj/$(basename "$src" .c).o"
    echo "+ $CLANG -c $src"
    "$CLANG" "${CFLAGS[@]}" -fsanitize=fuzzer-no-link,address,undefined \
      -c "$src" -o "$obj" || return 1
    objs+=("$obj")
  done
}

# A target: its file, the library, and the extra sources it names on a line
# "// fuzz-sources: FILE..." (the policy parser of the policy server).
build_target() {
  local name=$1 extra=() line
  line=$(sed -n 's|^// fuzz-sources: ||p' "$HERE/$name.c")
  if [[ -n $line ]]; then
    read -r -a extra <<<"$line"
  fi
  rm -f "$OUT/$name"
  echo "+ $CLANG -fsanitize=fuzzer,address,undefined $HERE/$name.c ${extra[*]}"
  "$CLANG" "${CFLAGS[@]}" -fsanitize=fuzzer,address,undefined \
    -Iexamples/policyd "$HERE/$name.c" "${extra[@]}" "$OUT"/obj/*.o \
    -lpthread -o "$OUT/$name"
}

# Runs a target on its seeds and regression inputs, each once, as a test.
replay() {
  local name=$1 files=()
  mapfile -t files < <(find "$HERE/corpus/$name" "$HERE/regressions/$name" \
    -type f 2>/dev/null | sort)
  if [[ ${#files[@]} -eq 0 ]]; then
    echo "no seed or regression input for $name"
    return 1
  fi
  echo "replaying ${#files[@]} inputs"
  OBSPAM_FUZZ_DIR="$TMP/work" "$OUT/$name" -rss_limit_mb=2048 -timeout=10 \
    "${files[@]}"
}

# Fuzzes a target for $TIME seconds on a copy of its seeds.
fuzz() {
  local name=$1 rc=0 crash
  rm -rf "$TMP/corpus-$name"
  mkdir -p "$TMP/corpus-$name"
  cp -r "$HERE/corpus/$name/." "$TMP/corpus-$name/"
  OBSPAM_FUZZ_DIR="$TMP/work" "$OUT/$name" -max_total_time="$TIME" \
    -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$OUT/artifacts/$name-" "$TMP/corpus-$name" || rc=$?
  if [[ $rc -ne 0 ]]; then
    for crash in "$OUT/artifacts/$name"-*; do
      [[ -e $crash ]] || continue
      echo "input kept: $crash"
      echo "reproduce:  $OUT/$name $crash"
    done
  fi
  return $rc
}

mkdir -p "$TMP/work"
check "fuzz: build the library with $CLANG" build_library
for name in "${targets[@]}"; do
  check "fuzz: build $name" build_target "$name"
done
for name in "${targets[@]}"; do
  [[ -x $OUT/$name ]] || continue
  check "fuzz: replay $name seeds and regressions" replay "$name"
done
if [[ $TIME -gt 0 ]]; then
  for name in "${targets[@]}"; do
    [[ -x $OUT/$name ]] || continue
    check "fuzz: $name for ${TIME}s" fuzz "$name"
  done
fi
check_summary
