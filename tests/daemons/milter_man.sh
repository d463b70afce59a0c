#!/usr/bin/env bash
# obspam-milter.8 renders with man(1) and groff reports no warning; the
# options the man page documents are those that --help lists; the
# header_checks rule it shows is the one installed (obspam-milter.regexp).
#
#   tests/daemons/milter_man.sh BUILD_DIR
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
BUILD=${1:?usage: milter_man.sh BUILD_DIR}
# The page as it is installed: made from examples/milter/obspam-milter.8.in.
PAGE=$BUILD/man/obspam-milter.8
RULE=examples/milter/obspam-milter.regexp

warnings=$(groff -man -ww -z "$PAGE" 2>&1)
if [[ -n $warnings ]]; then
  echo "groff warns about $PAGE:"
  echo "$warnings"
  exit 1
fi
text=$(MANWIDTH=200 man -l "$PAGE" 2>&1)
for section in NAME SYNOPSIS DESCRIPTION OPTIONS "POSTFIX CONFIGURATION" \
  SENDMAIL SIGNALS LOGGING FILES "EXIT STATUS" LIMITS "SEE ALSO"; do
  if ! grep -qx "$section" <<<"$text"; then
    echo "man -l $PAGE: no section $section"
    exit 1
  fi
done

# Every long option of --help, and no other, has an entry in OPTIONS.
help_opts=$("$BUILD/examples/obspam-milter" --help |
  grep -o -- '^  --[a-z-]*' | tr -d ' ' | sort -u)
man_opts=$(sed -n '/^OPTIONS$/,/^POSTFIX CONFIGURATION$/p' <<<"$text" |
  grep -o -- '^       --[a-z-]*' | tr -d ' ' | sort -u)
if [[ $help_opts != "$man_opts" ]]; then
  echo "--help and the man page list different options:"
  diff <(echo "$help_opts") <(echo "$man_opts") || true
  exit 1
fi

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
