#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The ABI stage: the built library against the committed v1 baseline.
#
#   tests/abi/run.sh BUILD_DIR        (from the repository's root)
#
# BUILD_DIR is a RelWithDebInfo build (debug information is what abidiff
# reads). Checks:
#   - the baseline describes this header's functions (baseline_functions.sh);
#   - BUILD_DIR/libobspam.so.1 against tests/abi/obspam-v1.abi with abidiff
#     (abigail-tools) and the header's constants and layouts against
#     obspam-v1.constants (abicheck.sh): only added functions and appended
#     structure fields may differ;
#   - nm -D of the library is the header's functions (tests/check-exports.sh);
#   - the guard itself: variants of the library with one deliberate change
#     each are built from a scratch copy and must fail (a field's type, two
#     fields swapped, a function removed, a parameter's type, enum values) or
#     pass (nothing, a function added, a field appended, an internal change)
#     (selftest.sh).
# Ends with the line "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2
BUILD=${1:-build}
HERE=tests/abi
BASELINE=$HERE/obspam-v1.abi

# shellcheck source=tests/lib/deps.sh
. tests/lib/deps.sh
# shellcheck source=tests/lib/check.sh
. tests/lib/check.sh

obspam_need_packages abigail-tools binutils gcc libc6-dev perl ||
  echo "warning: could not install what this stage needs" >&2

check "abi: the baseline holds the header's functions" \
  "$HERE/baseline_functions.sh" "$BASELINE" include/obspam.h
check "abi: $BUILD/libobspam.so.1 against the v1 baseline" \
  "$HERE/abicheck.sh" "$BASELINE" "$BUILD/libobspam.so.1" include
check "abi: nm -D exports exactly the header's functions" \
  tests/check-exports.sh "$BUILD/libobspam.so.1" include/obspam.h libobspam.so.1

for variant in field-type field-order removed signature enum; do
  check "abi guard refuses a change: $variant" "$HERE/selftest.sh" "$BASELINE" "$variant"
done
for variant in same added appended internal; do
  check "abi guard allows: $variant" "$HERE/selftest.sh" "$BASELINE" "$variant"
done

check_summary
