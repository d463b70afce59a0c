#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# obspam-milter.8 renders with man(1) and groff reports no warning; the
# options the man page documents are those that --help lists; the
# header_checks rule it shows is the one installed (obspam-milter.regexp).
#
#   tests/daemons/milter_man.sh BUILD_DIR
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
BUILD=${1:?usage: milter_man.sh BUILD_DIR}
RULE=examples/milter/obspam-milter.regexp
# shellcheck source=tests/daemons/man_lib.sh
. tests/daemons/man_lib.sh

# The page is made from examples/milter/obspam-milter.8.in.
daemon_page "$BUILD" obspam-milter 200 NAME SYNOPSIS DESCRIPTION OPTIONS \
  "POSTFIX CONFIGURATION" SENDMAIL SIGNALS LOGGING FILES "EXIT STATUS" \
  LIMITS "SEE ALSO"

# The rule of the man page (two lines there) is the installed file's.
rule=$(grep -v '^#' "$RULE")
man_rule=$(grep -A1 -- '^ *\/\^Received: by' <<<"$text" |
  sed 's/^ *//' | paste -sd' ')
if [[ $rule != "$man_rule" ]]; then
  echo "the man page's rule differs from $RULE:"
  echo "  man:  $man_rule"
  echo "  file: $rule"
  exit 1
fi
echo "$PAGE: $(wc -l <<<"$text") lines, $(wc -l <<<"$man_opts") options, no warnings"
