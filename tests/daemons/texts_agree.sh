#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# One SMTP code everywhere: the daemons answer 451 4.7.1 (action defer) and
# 550 5.7.1 (action reject); the quickstart's output, the READMEs and the
# man pages (as man renders them) must say the same, and quote refusal
# texts in the form the daemons write (tests/daemons/common_refusal.c pins
# the texts themselves). The daemons' units and the notice mails agree on
# the control sockets.
#
#   tests/daemons/texts_agree.sh BUILD_DIR
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:?usage: tests/daemons/texts_agree.sh BUILD_DIR}
cd "$ROOT"
work=$(mktemp -d /tmp/texts-agree.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail=0

quickstart=$(find "$BUILD" -name quickstart -type f -perm -u+x | head -n 1)
[[ -n $quickstart ]] || { echo "FAIL: no quickstart in $BUILD"; exit 1; }
"$quickstart" >"$work/quickstart.out"
grep -q 'answers "451 4.7.1" and' "$work/quickstart.out" ||
  { echo "FAIL: the quickstart does not say 451 4.7.1:"; cat "$work/quickstart.out"; fail=1; }

# Every text a reader sees: the quickstart's output, the Markdown files,
# and the man pages rendered (their words are split over requests).
cp "$work/quickstart.out" "$work/all.quickstart"
for f in README.md SECURITY.md bindings/README.md examples/*/README.md; do
  [[ -f $f ]] && cp "$f" "$work/all.$(tr / _ <<<"$f")"
done
# The pages as the build made them from examples/*/*.in, with the
# project's version in place.
pages=("$BUILD"/man/*.[0-9])
[[ -f ${pages[0]} ]] || { echo "FAIL: no manual pages in $BUILD/man"; exit 1; }
for f in "${pages[@]}"; do
  LC_ALL=C.UTF-8 MANWIDTH=10000 man -l "$f" 2>/dev/null | col -b \
    >"$work/all.$(basename "$f")"
done

# A status code with 4.7.1 or 5.7.1 other than the daemons'.
if grep -HnoE '\b[0-9]{3}[ =]+[45]\.7\.1\b' "$work"/all.* |
  grep -vE ':(451[ =]+4\.7\.1|550[ =]+5\.7\.1)$'; then
  echo "FAIL: the codes above are not the daemons' (451 4.7.1, 550 5.7.1)"
  fail=1
fi
# Refusal texts in the words of the daemons: "has sent to N recipients"
# or "has sent N messages", "its limit is N recipients|messages per ...".
if grep -HnE 'has sent [0-9N]+ recipient|its limit is [0-9NL]+ per ' "$work"/all.*; then
  echo "FAIL: the refusal texts above are not in the daemons' words"
  fail=1
fi
n=$(cat "$work"/all.* | grep -cE '451 4\.7\.1 .* has sent (to )?[0-9]+ (recipients|messages) in the last 60 minutes, its limit is [0-9]+ (recipients|messages) per hour; try again in [0-9]+ minutes?' || true)
[[ $n -ge 3 ]] || { echo "FAIL: only $n refusal texts quoted in full"; fail=1; }

# The obspamctl commands of the notice mails name the daemon's own control
# socket, left out when it is obspamctl's default: the policy server's unit
# uses that default, the milter's unit another socket, which the mail test
# (common_refusal.c, notice::mail_of_the_milter) pins.
default=$(sed -n 's/^#define OBSPAMD_CONTROL_DEFAULT "\(.*\)"$/\1/p' examples/common/sockets.h)
pol=$(sed -n 's/.*--control unix:\([^ ]*\).*/\1/p' examples/policyd/obspam-policyd.service.in)
mil=$(sed -n 's/.*--control unix:\([^ ]*\).*/\1/p' examples/milter/obspam-milter.service.in)
if [[ -z $default || $pol != "$default" ]]; then
  echo "FAIL: obspam-policyd's unit uses --control unix:$pol, obspamctl's default is $default"
  fail=1
fi
if [[ -z $mil || $mil == "$default" ]]; then
  echo "FAIL: obspam-milter's unit uses --control unix:$mil, not a socket of its own"
  fail=1
elif ! grep -qF "\"    obspamctl --control $mil \"" tests/daemons/common_refusal.c; then
  echo "FAIL: the milter's mail test does not use its unit's socket $mil"
  fail=1
fi
[[ $fail -eq 0 ]] && echo "the texts agree ($n refusal texts quoted in full)"
exit "$fail"
