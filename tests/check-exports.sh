#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Export test: the shared library must export exactly the functions that the
# public header declares with OBSPAM_API (no more: no xxHash, no uthash, no
# obspam__ internals; no fewer), all under the version node OBSPAM_1, and its
# SONAME must be the one the ABI promises.
#
# usage: check-exports.sh LIBRARY HEADER [SONAME]
#   e.g. check-exports.sh build/libobspam.so include/obspam.h libobspam.so.1
# NM and READELF may name the tools to use (default: nm, readelf).
# shellcheck disable=SC2001 # sed over multi-line values is clearer here
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
  echo "usage: $0 LIBRARY HEADER [SONAME]" >&2
  exit 2
fi
lib=$1
header=$2
want_soname=${3:-libobspam.so.1}
nm=${NM:-nm}
readelf=${READELF:-readelf}
status=0

# Functions declared OBSPAM_API: drop block comments (across lines), line
# comments and preprocessor lines, join the rest into one line (declarations
# span lines), and take the identifier before the first '(' that follows
# each OBSPAM_API.
declared=$(tr '\n' '\r' <"$header" |
  sed 's:/\*[^*]*\*\+\([^/*][^*]*\*\+\)*/: :g' | tr '\r' '\n' |
  sed 's://.*$::' | grep -v '^[[:space:]]*#' | tr '\n' ' ' |
  grep -o 'OBSPAM_API[^(;]*(' |
  sed 's/[[:space:]]*($//; s/.*[^A-Za-z0-9_]//' | sort -u)
if [[ -z $declared ]]; then
  echo "FAIL: no OBSPAM_API function found in $header" >&2
  exit 1
fi

# Defined dynamic symbols. The version node itself (OBSPAM_1, type A) is not
# a symbol anyone links to.
symbols=$("$nm" -D --defined-only "$lib" | awk 'NF >= 3 && $2 != "A" { print $3 }')
exported=$(sed 's/@.*//' <<<"$symbols" | sort -u)

missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
extra=$(comm -13 <(echo "$declared") <(echo "$exported"))
if [[ -n $missing ]]; then
  echo "FAIL: declared OBSPAM_API in $(basename "$header") but not exported:"
  sed 's/^/  /' <<<"$missing"
  status=1
fi
if [[ -n $extra ]]; then
  echo "FAIL: exported but not declared OBSPAM_API in $(basename "$header"):"
  sed 's/^/  /' <<<"$extra"
  status=1
fi

# Every export carries the version node of the version script.
unversioned=$(grep -v '@@\?OBSPAM_1$' <<<"$symbols" || true)
if [[ -n $unversioned ]]; then
  echo "FAIL: exported without the version OBSPAM_1:"
  sed 's/^/  /' <<<"$unversioned"
  status=1
fi

soname=$("$readelf" -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p')
if [[ $soname != "$want_soname" ]]; then
  echo "FAIL: SONAME of $lib is '${soname}', expected '$want_soname'"
  status=1
fi

if [[ $status -eq 0 ]]; then
  echo "ok: $(wc -l <<<"$declared") functions exported as declared," \
    "version OBSPAM_1, SONAME $soname"
fi
exit $status
