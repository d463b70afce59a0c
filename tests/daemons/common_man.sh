#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# obspamctl.8: groff reads it without a warning, man shows it, and it
# documents every command and option that obspamctl --help lists.
#
#   tests/daemons/common_man.sh BUILD_DIR
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$(cd "${1:?usage: common_man.sh BUILD_DIR}" && pwd)
# The page as it is installed: made from examples/obspamctl/obspamctl.8.in.
page=$BUILD/man/obspamctl.8

warnings=$(groff -man -ww -z "$page" 2>&1)
if [[ -n $warnings ]]; then
  echo "groff warns:"
  echo "$warnings"
  exit 1
fi
warnings=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
if [[ -n $warnings ]]; then
  echo "man warns:"
  echo "$warnings"
  exit 1
fi
text=$(MANWIDTH=80 man -l "$page" 2>/dev/null)
for word in NAME SYNOPSIS DESCRIPTION COMMANDS OPTIONS "EXIT STATUS" \
  ENVIRONMENT FILES EXAMPLES "SEE ALSO"; do
  grep -q "^$word" <<<"$text" || { echo "no section $word"; exit 1; }
done
# Every command and option of --help is in the page.
help=$("$BUILD/examples/obspamctl/obspamctl" --help)
for word in status report history list top blocked overview reset set-limit \
  reload save ping --control --json --tz --parent --active --after --limit \
  --kind TZ \
  --timeout --since --day --svg --help --version OBSPAM_CONTROL \
  /run/obspam/control.sock; do
  grep -q -- "$word" <<<"$help" || { echo "--help lacks $word"; exit 1; }
  grep -q -- "$word" <<<"$text" || { echo "the man page lacks $word"; exit 1; }
done
echo "obspamctl.8 is fine"
