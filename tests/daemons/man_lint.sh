#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every manual page the build makes (BUILD_DIR/man, from the *.in sources)
# passes `mandoc -Tlint` without a warning, names the project's version in
# its title line and has no placeholder left; obspam.conf(5) is among them.
#
#   tests/daemons/man_lint.sh BUILD_DIR      (mandoc installed by run.sh)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$(cd "${1:?usage: man_lint.sh BUILD_DIR}" && pwd)
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$BUILD/CMakeCache.txt")
[[ -n $version ]] || { echo "no CMAKE_PROJECT_VERSION in $BUILD/CMakeCache.txt"; exit 1; }

# The sources, and the page each one makes.
mapfile -t sources < <(cd "$ROOT" && find doc examples -name '*.[1-8].in' | sort)
pages=()
for source in "${sources[@]}"; do
  pages+=("$BUILD/man/$(basename "$source" .in)")
done
printf '%s\n' "${pages[@]##*/}" | grep -qx obspam.conf.5 ||
  { echo "no obspam.conf.5 among the pages: ${pages[*]##*/}"; exit 1; }

bad=0
for page in "${pages[@]}"; do
  name=${page##*/}
  if [[ ! -f $page ]]; then
    echo "$name: not made by the build ($page)"
    bad=1
    continue
  fi
  # -Wwarning: warnings and worse; mandoc prints nothing for a clean page.
  out=$(mandoc -Tlint -Wwarning "$page" 2>&1 || true)
  if [[ -n $out ]]; then
    echo "$name: mandoc -Tlint:"
    echo "$out"
    bad=1
  fi
  th=$(grep -m1 '^\.TH ' "$page")
  if [[ $th != *"\"libobspam $version\""* ]]; then
    echo "$name: the title line does not say \"libobspam $version\": $th"
    bad=1
  fi
  if grep -n '@[A-Za-z_]*@' "$page"; then
    echo "$name: a placeholder is left"
    bad=1
  fi
  [[ $bad -ne 0 ]] || echo "$name: clean, libobspam $version"
done

# The example of obspam.conf(5) is a configuration the library takes.
policyd=$BUILD/examples/obspam-policyd
if [[ -x $policyd ]]; then
  example=$(mktemp /tmp/obspam-man-example.XXXXXX)
  sed -n '/^\.SH EXAMPLES/,/^\.SH /p' "$BUILD/man/obspam.conf.5" |
    sed -n '/^\.EX/,/^\.EE/p' | sed '/^\.E[XE]/d; s/\\-/-/g' >"$example"
  if [[ ! -s $example ]] || ! out=$("$policyd" --config "$example" --check-config 2>&1); then
    echo "obspam.conf.5: the example does not load:"
    cat "$example"
    echo "$out"
    bad=1
  else
    echo "obspam.conf.5: the example loads ($(wc -l <"$example") lines)"
  fi
  rm -f "$example"
fi
exit "$bad"
