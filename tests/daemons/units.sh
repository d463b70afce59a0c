#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# What `cmake --install` ships for systemd, checked offline:
#   - each unit's `systemd-analyze security --offline=true` exposure is at
#     most 2.5 (it runs as obspam, without capabilities, sandboxed), and
#     `systemd-analyze verify` finds no error in it;
#   - the units pass no option the daemons refuse (their ExecStart, with
#     --check-config added, parses);
#   - sysusers.d/obspam.conf creates the user obspam, and
#     tmpfiles.d/obspam.conf the directories the units write, with the
#     owners and modes they need (into a scratch root, not this system's).
#
#   tests/daemons/units.sh BUILD_DIR
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
BUILD=${1:?usage: units.sh BUILD_DIR}
STAGE=$(mktemp -d /tmp/obspam-units.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT
MAX_EXPOSURE=2.5
failures=0

fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

cmake --install "$BUILD" --prefix "$STAGE/usr" >"$STAGE/install.log"
UNITS=$STAGE/usr/lib/systemd/system
units=(obspam-policyd.service)
[[ -e $BUILD/examples/obspam-milter ]] && units+=(obspam-milter.service)
for f in "$UNITS/obspam-policyd.socket" "$STAGE/usr/lib/sysusers.d/obspam.conf" \
  "$STAGE/usr/lib/tmpfiles.d/obspam.conf"; do
  [[ -f $f ]] || fail "$f is not installed"
done

for unit in "${units[@]}"; do
  # ./ makes systemd-analyze read the file rather than look the unit up.
  out=$(cd "$UNITS" && systemd-analyze security --offline=true "./$unit" 2>&1) ||
    true
  level=$(sed -nE "s/.*Overall exposure level for $unit: ([0-9.]+).*/\1/p" <<<"$out")
  if [[ -z $level ]]; then
    fail "$unit: no exposure level from systemd-analyze security:"
    echo "$out"
  elif awk -v l="$level" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(l > m) }'; then
    fail "$unit: exposure $level, more than $MAX_EXPOSURE:"
    grep '✗' <<<"$out" || true
  else
    echo "$unit: exposure $level (at most $MAX_EXPOSURE)"
  fi
  # Only errors about this unit count: the man page is not installed
  # system-wide, and the user and groups need not exist here.
  bad=$(systemd-analyze verify "$UNITS/$unit" 2>&1 |
    grep -F "${unit%.service}" |
    grep -v -e "man ${unit%.service}(8)" -e "Failed to resolve" || true)
  [[ -z $bad ]] || fail "systemd-analyze verify $unit: $bad"
  # The options the unit passes, as the daemon parses them (--check-config
  # exits after parsing and loading the configuration).
  exec_line=$(sed -n '/^ExecStart=/,/[^\\]$/p' "$UNITS/$unit" | tr -d '\\\n' |
    sed -E 's/^ExecStart=//; s/"\$\{[A-Z_]+\}"/""/g; s/\$[A-Z_]+//g')
  read -ra words <<<"$exec_line"
  args=()
  for w in "${words[@]:1}"; do
    [[ $w == '""' ]] && w=""
    args+=("$w")
  done
  daemon=$BUILD/examples/${unit%.service}
  for i in "${!args[@]}"; do
    [[ ${args[$i]} == /etc/obspam/obspam.conf ]] && args[i]=$ROOT/examples/obspam.conf
  done
  if ! "$daemon" "${args[@]}" --check-config >"$STAGE/check.log" 2>&1; then
    fail "$unit: the daemon refuses the unit's options: ${args[*]}"
    cat "$STAGE/check.log"
  fi
done

bad=$(systemd-analyze verify "$UNITS/obspam-policyd.socket" 2>&1 |
  grep -F obspam-policyd.socket | grep -v "man obspam-policyd(8)" || true)
[[ -z $bad ]] || fail "systemd-analyze verify obspam-policyd.socket: $bad"

# The user and the directories, in a scratch root that has Postfix's
# users and groups as this system's /etc has them.
R=$STAGE/root
mkdir -p "$R/etc"
printf 'root:x:0:0:root:/root:/bin/sh\npostfix:x:102:105::/var/spool/postfix:/usr/sbin/nologin\n' \
  >"$R/etc/passwd"
printf 'root:x:0:\npostfix:x:105:\npostdrop:x:106:\n' >"$R/etc/group"
systemd-sysusers --root="$R" "$STAGE/usr/lib/sysusers.d/obspam.conf" ||
  fail "systemd-sysusers failed"
uid=$(awk -F: '$1 == "obspam" { print $3 }' "$R/etc/passwd")
gid=$(awk -F: '$1 == "obspam" { print $3 }' "$R/etc/group")
home=$(awk -F: '$1 == "obspam" { print $6 }' "$R/etc/passwd")
[[ -n $uid && -n $gid ]] || fail "sysusers.d made no user or group obspam"
[[ $home == /var/lib/obspam ]] || fail "obspam's home is '$home'"
systemd-tmpfiles --root="$R" --create "$STAGE/usr/lib/tmpfiles.d/obspam.conf" ||
  fail "systemd-tmpfiles failed"
expect_dir() {
  local got
  got=$(stat -c '%a %u:%g' "$R$1" 2>&1 || true)
  if [[ $got == "$2" ]]; then
    echo "$1: $got"
  else
    fail "$1: '$got', expected '$2'"
  fi
}
expect_dir /var/lib/obspam "750 $uid:$gid"
expect_dir /run/obspam "750 $uid:$gid"
expect_dir /run/obspam-milter "750 $uid:$gid"
expect_dir /var/spool/postfix/obspam-milter "2750 $uid:105"

# Every directory a unit may write is one tmpfiles.d makes (or Postfix's
# maildrop, optional) and the one its daemon writes by default.
for unit in "${units[@]}"; do
  for path in $(sed -n 's/^ReadWritePaths=//p' "$UNITS/$unit"); do
    path=${path#-}
    [[ $path == /var/spool/postfix/maildrop ]] && continue
    [[ -d $R$path ]] || fail "$unit may write $path, which tmpfiles.d does not make"
  done
done
grep -q '^ReadWritePaths=.*/var/spool/postfix/obspam-milter' "$UNITS/obspam-milter.service" 2>/dev/null ||
  [[ ! -e $UNITS/obspam-milter.service ]] ||
  fail "obspam-milter.service cannot write its socket's directory"

if [[ $failures -gt 0 ]]; then
  echo "$failures failures"
  exit 1
fi
echo "units, sysusers.d and tmpfiles.d: ok"
