#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Writes the ABI baseline of this major version into tests/abi/, from a
# RelWithDebInfo build (the library needs its debug information):
#
#   tests/abi/make_baseline.sh BUILD_DIR
#
# Run by hand, once per major version (the v1 files are committed); never by
# the tests. Writes:
#   obspam-v1.abi        abidw's description of BUILD_DIR/libobspam.so.1,
#                        public types only (--headers-dir include
#                        --drop-private-types), without the paths of the
#                        build (--no-corpus-path --no-comp-dir-path
#                        --short-locs)
#   obspam-v1.constants  the header's constants and structure layouts
#                        (tests/abi/constants.c)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
if [[ $# -ne 1 ]]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
lib="$1/libobspam.so.1"
major=$(sed -n 's/^#define OBSPAM_VERSION_MAJOR \([0-9]*\)$/\1/p' include/obspam.h)
if [[ $(readelf --debug-dump=info "$lib" 2>/dev/null | grep -c obspam_verdict) -eq 0 ]]; then
  echo "$lib has no debug information: build with -DCMAKE_BUILD_TYPE=RelWithDebInfo" >&2
  exit 1
fi
abidw --no-corpus-path --no-comp-dir-path --short-locs \
  --headers-dir include --drop-private-types \
  --out-file "tests/abi/obspam-v$major.abi" "$lib"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"${CC:-cc}" -std=c99 -Iinclude tests/abi/constants.c -o "$tmp/constants"
"$tmp/constants" >"tests/abi/obspam-v$major.constants"
echo "wrote tests/abi/obspam-v$major.abi and tests/abi/obspam-v$major.constants"
