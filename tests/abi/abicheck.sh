#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Compares a built libobspam.so.1 with the committed v1 ABI baseline.
#
#   tests/abi/abicheck.sh BASELINE LIBRARY [HEADERS_DIR]
#
# BASELINE is tests/abi/obspam-v1.abi (abidw's description of the library);
# beside it, obspam-v1.constants lists the header's constants and the layout
# of its structures (tests/abi/constants.c), which abidiff does not see.
#
# abidiff's exit status is a bit mask (libabigail's abidiff manual):
#   1 ABIDIFF_ERROR, 2 ABIDIFF_USAGE_ERROR: the comparison itself failed;
#   4 ABIDIFF_ABI_CHANGE: something changed (a type, a function's
#     signature, a function added or removed, ...);
#   8 ABIDIFF_ABI_INCOMPATIBLE_CHANGE: a change that is incompatible for
#     sure (a function or variable removed).
# A 1.x release may only add functions and append fields at the end of the
# structures (that the caller sizes with struct_size). abidiff cannot tell an
# appended field from any other layout change, so every change fails here
# except added functions: bit 8 fails, and bit 4 fails unless the report,
# with added symbols left out (--no-added-syms), shows no change at all.
#
# Fields appended to the public structures are allowed by the suppressions
# in obspam-v1.abignore. That suppression is lenient (libabigail 2.2 also
# lets two swapped fields of the same size through): the constants check
# holds every v1 field to its offset and size, and catches that.
#
# Only the types of the public header count (--headers-dir2 with
# --drop-private-types): the internals of the opaque obspam_engine may change
# freely. The baseline was written the same way (see tests/abi/run.sh).
set -uo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
  echo "usage: $0 BASELINE LIBRARY [HEADERS_DIR]" >&2
  exit 2
fi
baseline=$1
lib=$2
headers=${3:-include}

constants=${baseline%.abi}.constants
suppressions=${baseline%.abi}.abignore
CC=${CC:-cc}

# The constants and layouts of the header, compared line by line.
check_constants() {
  local tmp now line kind name value base_size now_size status=0
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064 # expand now: tmp is local
  trap "rm -rf '$tmp'" RETURN
  if ! "$CC" -std=c99 -I"$headers" "$(dirname "$0")/constants.c" \
    -o "$tmp/constants"; then
    echo "FAIL: tests/abi/constants.c does not compile against $headers:" \
      "a constant or a field of v1 is gone"
    return 1
  fi
  now=$("$tmp/constants")
  while IFS= read -r line; do
    read -r kind name value <<<"$line"
    case $kind in
    sizeof)
      now_size=$(awk -v n="$name" '$1 == "sizeof" && $2 == n { print $3 }' \
        <<<"$now")
      base_size=${value%% *}
      if [[ -z $now_size || $now_size -lt $base_size ]]; then
        echo "FAIL: sizeof $name is ${now_size:-gone}, v1 has $base_size"
        status=1
      fi
      ;;
    *)
      if ! grep -qxF -- "$line" <<<"$now"; then
        echo "FAIL: v1 has '$line'; now: '$(grep -- " $name " <<<"$now" ||
          echo "nothing")'"
        status=1
      fi
      ;;
    esac
  done <"$constants"
  [[ $status -eq 0 ]] &&
    echo "ok: the $(wc -l <"$constants") constants and field layouts of v1 hold"
  return $status
}

# abidiff: functions and the types they use.
check_abidiff() {
  local report rc
  local args=(--headers-dir2 "$headers" --drop-private-types
    --suppressions "$suppressions")
  report=$(abidiff "${args[@]}" "$baseline" "$lib")
  rc=$?
  echo "$report"
  if ((rc & 3)); then
    echo "FAIL: abidiff could not compare (exit $rc)"
    return 1
  fi
  if ((rc & 8)); then
    echo "FAIL: incompatible ABI change (abidiff exit $rc)"
    return 1
  fi
  if ((rc & 4)); then
    # Something changed: tolerable only if all of it is added functions.
    abidiff "${args[@]}" --no-added-syms "$baseline" "$lib" >/dev/null
    rc=$?
    if ((rc != 0)); then
      echo "FAIL: the ABI changed (abidiff exit $rc): only added functions" \
        "and fields appended to a structure are allowed in 1.x"
      return 1
    fi
    echo "ok: functions were added; nothing else changed"
    return 0
  fi
  echo "ok: the functions and their types are the baseline's"
}

status=0
check_constants || status=1
check_abidiff || status=1
exit $status
