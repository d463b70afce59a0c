#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# obspam-policyd.8 renders with man(1) and groff reports no warning; the
# options the man page documents are those that --help lists.
#
#   tests/daemons/policyd_man.sh BUILD_DIR
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
BUILD=${1:?usage: policyd_man.sh BUILD_DIR}
# shellcheck source=tests/daemons/man_lib.sh
. tests/daemons/man_lib.sh

# The page is made from examples/policyd/obspam-policyd.8.in.
daemon_page "$BUILD" obspam-policyd 80 NAME SYNOPSIS DESCRIPTION OPTIONS \
  "POSTFIX CONFIGURATION" SIGNALS LOGGING FILES "EXIT STATUS" LIMITS \
  "SEE ALSO"
echo "$PAGE: $(wc -l <<<"$text") lines, $(wc -l <<<"$man_opts") options, no warnings"
