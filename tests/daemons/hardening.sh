#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The library and the daemons of BUILD_DIR are built hardened (CMake option
# OBSPAM_HARDENING, on by default), read from their ELF headers: full RELRO
# (a GNU_RELRO segment and BIND_NOW: the GOT is resolved at start and then
# read-only), position-independent executables (type DYN, FLAGS_1 PIE), the
# stack protector (__stack_chk_fail) and _FORTIFY_SOURCE (__*_chk calls).
# Each missing property of each file is one line, and the check fails.
#
#   tests/daemons/hardening.sh BUILD_DIR
set -euo pipefail

BUILD=${1:?usage: hardening.sh BUILD_DIR}
missing=0

# lack FILE WHAT: one property FILE does not have.
lack() {
  echo "$1: $2"
  missing=$((missing + 1))
}

# elf FILE exe|lib
elf() {
  local file=$1 kind=$2 header dynamic segments symbols
  if [[ ! -f $file ]]; then
    lack "$file" "not built"
    return
  fi
  header=$(readelf -hW "$file")
  dynamic=$(readelf -dW "$file")
  segments=$(readelf -lW "$file")
  symbols=$(readelf --dyn-syms -W "$file")
  grep -q 'GNU_RELRO' <<<"$segments" || lack "$file" "no GNU_RELRO segment"
  grep -Eq '\(FLAGS\).*BIND_NOW|\(FLAGS_1\).*NOW|\(BIND_NOW\)' <<<"$dynamic" ||
    lack "$file" "no BIND_NOW (FLAGS BIND_NOW or FLAGS_1 NOW): the GOT stays writable"
  grep -Eq ' __stack_chk_fail(@|$)' <<<"$symbols" ||
    lack "$file" "no __stack_chk_fail: built without -fstack-protector-strong"
  grep -Eq ' __[a-z0-9_]+_chk(@|$)' <<<"$symbols" ||
    lack "$file" "no __*_chk function: built without _FORTIFY_SOURCE"
  if [[ $kind == exe ]]; then
    grep -Eq 'Type: +DYN' <<<"$header" ||
      lack "$file" "type $(awk '/Type:/ {print $2}' <<<"$header"), not DYN: not a PIE"
    grep -Eq '\(FLAGS_1\).*PIE' <<<"$dynamic" ||
      lack "$file" "no FLAGS_1 PIE: not a position-independent executable"
  fi
  echo "checked $file"
}

elf "$BUILD/libobspam.so.1" lib
elf "$BUILD/examples/obspam-policyd" exe
elf "$BUILD/examples/obspamctl/obspamctl" exe
if [[ -e $BUILD/examples/obspam-milter ]] ||
  grep -q '^OBSPAM_BUILD_MILTER:BOOL=ON' "$BUILD/CMakeCache.txt"; then
  elf "$BUILD/examples/obspam-milter" exe
fi
if [[ $missing -gt 0 ]]; then
  echo "$missing hardening properties missing"
  exit 1
fi
echo "every file is hardened"
