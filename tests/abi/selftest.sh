#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Shows that the ABI guard catches what it must and lets through what it may:
# builds variants of the library from a scratch copy of include/ and src/,
# each with one deliberate change, and runs tests/abi/abicheck.sh on each
# against the baseline.
#
#   tests/abi/selftest.sh BASELINE VARIANT
#
# Variants that must FAIL the check:
#   field-type   obspam_verdict.limit becomes int32_t (a layout change)
#   field-order  two fields of obspam_stats swap places
#   removed      obspam_check is no longer exported
#   signature    obspam_set_uid takes an int instead of an int64_t
#   enum         OBSPAM_ACCEPT and OBSPAM_REFUSE trade values
# Variants that must PASS:
#   same         the sources as they are, built apart
#   added        a new exported function, obspam_selftest_added
#   internal     a field added to the opaque struct obspam_engine
#   appended     a field appended to obspam_stats (allowed by struct_size)
# shellcheck disable=SC2016 # the edits are perl expressions, not shell
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 BASELINE VARIANT" >&2
  exit 2
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
baseline=$(realpath "$1")
variant=$2
CC=${CC:-cc}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$ROOT/include" "$ROOT/src" "$tmp/"
h="$tmp/include/obspam.h"

# edit FILE PERL-EXPR: applies a substitution that must change the file.
edit() {
  local file=$1 expr=$2 before
  before=$(sha256sum <"$file")
  perl -0pi -e "$expr" "$file"
  if [[ $(sha256sum <"$file") == "$before" ]]; then
    echo "selftest: the edit '$expr' changed nothing in $file:" \
      "the header moved on; update this variant" >&2
    exit 2
  fi
}

expect=pass
case $variant in
field-type)
  expect=fail
  edit "$h" 's/(int32_t kind;\s+\/\* refusing object.s kind[^\n]*\n\s+)int64_t limit;/${1}int32_t limit;/'
  ;;
field-order)
  expect=fail
  edit "$h" 's/int64_t count;( +\/\* charged in the last 60 minutes \*\/\n)(\s+)int64_t refused;( +\/\* attempts refused in the last 60 minutes \*\/)/int64_t refused;$1$2int64_t count;$3/'
  ;;
removed)
  expect=fail
  edit "$h" 's/OBSPAM_API int obspam_check\(/int obspam_check(/'
  ;;
signature)
  expect=fail
  edit "$h" 's/(obspam_set_uid\(obspam_engine \*e, const char \*subscription,\s+)int64_t uid\)/${1}int uid)/'
  edit "$tmp/src/admin.c" 's/(int obspam_set_uid\(obspam_engine \*e, const char \*subscription,\s+)int64_t uid\)/${1}int uid)/'
  ;;
enum)
  expect=fail
  edit "$h" 's/OBSPAM_ACCEPT = 0,/OBSPAM_ACCEPT = 1,/; s/OBSPAM_REFUSE = 1,/OBSPAM_REFUSE = 0,/'
  ;;
same) ;;
added)
  edit "$h" 's/(#ifdef __cplusplus\n\}\n#endif\n\n#endif)/OBSPAM_API int obspam_selftest_added(void);\n\n$1/'
  printf '%s\n' '#include "obspam.h"' \
    'int obspam_selftest_added(void) { return 42; }' >"$tmp/src/selftest_added.c"
  ;;
appended)
  edit "$h" 's/(int64_t last_refused;  \/\* time of the last refusal; 0 = never \*\/\n)/${1}  int64_t selftest_appended;\n/'
  ;;
internal)
  edit "$tmp/src/engine.h" 's/(struct obspam_engine \{\n)/${1}  int selftest_padding[7];\n/'
  ;;
*)
  echo "unknown variant '$variant'" >&2
  exit 2
  ;;
esac

# Built like the project's library (debug information, hidden visibility,
# the version script); -O1 is enough for the types and quicker than -O2.
echo "+ building the '$variant' variant"
"$CC" -std=gnu99 -O1 -g -fPIC -shared -fvisibility=hidden -D_GNU_SOURCE \
  -I"$tmp/include" -I"$tmp/src" "$tmp"/src/*.c -lpthread \
  -Wl,--version-script="$tmp/src/libobspam.map" -Wl,-soname,libobspam.so.1 \
  -o "$tmp/libobspam.so.1"

rc=0
"$ROOT/tests/abi/abicheck.sh" "$baseline" "$tmp/libobspam.so.1" \
  "$tmp/include" || rc=$?
if [[ $expect == fail && $rc -eq 0 ]]; then
  echo "selftest: the '$variant' change went through the guard" >&2
  exit 1
fi
if [[ $expect == pass && $rc -ne 0 ]]; then
  echo "selftest: the guard refused the harmless '$variant' change" >&2
  exit 1
fi
echo "selftest: '$variant' ${expect}ed the check, as it must"
