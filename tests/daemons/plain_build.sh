#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A plain `cmake -S . -B DIR && cmake --build DIR` on a machine without
# Criterion and without libmilter: configuring says so in one line each,
# leaves the tests and the milter out, and builds the library, the policy
# server and obspamctl. The machine's Criterion and libmilter are hidden
# from CMake (pkg-config finds no .pc file; the system include and library
# directories are ignored, the header-only dependencies named by hand).
#
#   tests/daemons/plain_build.sh [BUILD_DIR]    (BUILD_DIR is not used)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TMP=$(mktemp -d /tmp/obspam-plain-build.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fail() {
  echo "FAIL: $*"
  exit 1
}

hidden="/usr/include;/usr/lib/x86_64-linux-gnu;/usr/lib;/lib/x86_64-linux-gnu;/lib"
hidden+=";/usr/local/include;/usr/local/lib"
# header_dir FILE: the system include directory that holds FILE itself.
header_dir() {
  local d
  for d in /usr/local/include /usr/include; do
    [[ -e $d/$1 ]] && { echo "$d"; return 0; }
  done
  fail "no $1 (libxxhash-dev, uthash-dev)"
}
xxhash=$(header_dir xxhash.h)
uthash=$(header_dir uthash.h)
echo "+ cmake -S . -B $TMP/b (Criterion and libmilter hidden)"
PKG_CONFIG_LIBDIR=/nonexistent PKG_CONFIG_PATH= \
  cmake -S "$ROOT" -B "$TMP/b" -DCMAKE_IGNORE_PATH="$hidden" \
  -DOBSPAM_XXHASH_INCLUDE_DIR="$xxhash" -DOBSPAM_UTHASH_INCLUDE_DIR="$uthash" \
  >"$TMP/configure.log" 2>&1 || { cat "$TMP/configure.log"; fail "configuring failed"; }
grep -x -- '-- Criterion not found (Debian: libcriterion-dev): the tests are not built' \
  "$TMP/configure.log" || { cat "$TMP/configure.log"; fail "no notice about Criterion"; }
grep -x -- '-- libmilter not found (Debian: libmilter-dev): obspam-milter is not built' \
  "$TMP/configure.log" || { cat "$TMP/configure.log"; fail "no notice about libmilter"; }
[[ ! -e $TMP/b/CTestTestfile.cmake ]] || ! grep -q add_test "$TMP/b/CTestTestfile.cmake" ||
  fail "tests are defined although Criterion is missing"

echo "+ cmake --build $TMP/b"
cmake --build "$TMP/b" -j "${OBSPAM_JOBS:-2}" >"$TMP/build.log" 2>&1 ||
  { tail -n 40 "$TMP/build.log"; fail "building failed"; }
for f in libobspam.so.1 libobspam.a examples/obspam-policyd examples/obspamctl/obspamctl; do
  [[ -e $TMP/b/$f ]] || fail "$f was not built"
done
[[ ! -e $TMP/b/examples/obspam-milter ]] || fail "obspam-milter was built without libmilter"
"$TMP/b/examples/obspam-policyd" --version
echo "plain build: library, obspam-policyd and obspamctl; no tests, no milter"
