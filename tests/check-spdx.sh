#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every source file carries the project's licence, MIT (LICENSE), as an
# SPDX line among its first three lines: C and headers, shell, Python and
# PHP, CMake, manual pages and the installed unit, sysusers.d, tmpfiles.d,
# pkg-config and Exim files. Data (configurations the tests load, fuzzing
# inputs, snapshots) and prose are not source.
#
#   tests/check-spdx.sh [REPOSITORY_ROOT]
set -euo pipefail
cd "${1:-$(dirname "${BASH_SOURCE[0]}")/..}"

if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "skip: not a git checkout, no file list"
  exit 0
fi
missing=0 checked=0
while IFS= read -r f; do
  case $f in
  tests/fuzz/corpus/* | tests/fuzz/regressions/*) continue ;;
  *.c | *.h | *.py | *.sh | *.php | CMakeLists.txt | */CMakeLists.txt | \
    *.cmake.in | *.pc.in | *.8.in | *.5.in | *.service.in | *.socket | \
    *.unit.in | *.sysusers | *.tmpfiles | *.acl | */obspam-macros.conf | \
    *.map | .ci/run) ;;
  *) continue ;;
  esac
  checked=$((checked + 1))
  if ! head -n 3 "$f" | grep -q 'SPDX-License-Identifier: MIT'; then
    echo "no SPDX line: $f"
    missing=$((missing + 1))
  fi
done < <(git ls-files)
echo "$checked source files, $missing without an SPDX line"
[[ $missing -eq 0 && $checked -gt 0 ]]
