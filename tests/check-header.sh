#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Keeps the header test complete: every OBSPAM_*_INIT macro that the public
# header defines must be used by each header test source, so that a structure
# added later is compiled as C99 and as C++ too.
#
# usage: check-header.sh HEADER SOURCE...
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 HEADER SOURCE..." >&2
  exit 2
fi
header=$1
shift
status=0

macros=$(sed -n 's/^#define \(OBSPAM_[A-Z0-9_]*_INIT\)\([[:space:]\\].*\)\{0,1\}$/\1/p' "$header" | sort -u)
if [[ -z $macros ]]; then
  echo "FAIL: no OBSPAM_*_INIT macro found in $header"
  exit 1
fi
for source in "$@"; do
  for macro in $macros; do
    if ! grep -qw "$macro" "$source"; then
      echo "FAIL: $(basename "$source") does not use $macro"
      status=1
    fi
  done
done
[[ $status -ne 0 ]] || echo "ok: $(wc -w <<<"$macros") *_INIT macros used by $# header tests"
exit $status
