#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The baseline must describe the header it guards: every function of the
# baseline is still declared OBSPAM_API in the header (none was dropped from
# it), and while the header says 1.0.x, the baseline holds exactly the
# header's functions (it was made from this header: obspam_check included).
# Later 1.x headers may declare more functions than the baseline.
#
#   tests/abi/baseline_functions.sh BASELINE HEADER
# shellcheck disable=SC2001 # sed over multi-line values is clearer here
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 BASELINE HEADER" >&2
  exit 2
fi
baseline=$1
header=$2

# The same parsing as tests/check-exports.sh: comments and preprocessor
# lines dropped, declarations joined, the name before '(' after OBSPAM_API.
declared=$(tr '\n' '\r' <"$header" |
  sed 's:/\*[^*]*\*\+\([^/*][^*]*\*\+\)*/: :g' | tr '\r' '\n' |
  sed 's://.*$::' | grep -v '^[[:space:]]*#' | tr '\n' ' ' |
  grep -o 'OBSPAM_API[^(;]*(' |
  sed 's/[[:space:]]*($//; s/.*[^A-Za-z0-9_]//' | sort -u)
in_baseline=$(sed -n "s/.*<elf-symbol name='\([^']*\)'.*type='func-type'.*/\1/p" \
  "$baseline" | sort -u)
if [[ -z $in_baseline ]]; then
  echo "FAIL: no function symbol in $baseline"
  exit 1
fi
minor=$(sed -n 's/^#define OBSPAM_VERSION_MINOR \([0-9]*\)$/\1/p' "$header")
status=0
gone=$(comm -23 <(echo "$in_baseline") <(echo "$declared"))
if [[ -n $gone ]]; then
  echo "FAIL: in the baseline but no longer declared OBSPAM_API:"
  sed 's/^/  /' <<<"$gone"
  status=1
fi
new=$(comm -13 <(echo "$in_baseline") <(echo "$declared"))
if [[ -n $new && $minor == 0 ]]; then
  echo "FAIL: declared in a header that says 1.0 but not in the 1.0" \
    "baseline. A function added after 1.0 needs OBSPAM_VERSION_MINOR" \
    "raised (the baseline stays 1.0's); only a baseline made before 1.0" \
    "was released may be regenerated (tests/abi/make_baseline.sh):"
  sed 's/^/  /' <<<"$new"
  status=1
fi
if [[ $status -eq 0 ]]; then
  echo "ok: the baseline's $(wc -l <<<"$in_baseline") functions are the" \
    "header's${new:+ (added since: $(tr '\n' ' ' <<<"$new"))}"
fi
exit $status
