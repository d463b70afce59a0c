#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `cmake --install` of BUILD_DIR into a staging prefix puts obspam-policyd
# in sbin, its man page in man8 and its systemd unit in lib/systemd/system,
# the unit naming the installed daemon (the prefix is chosen at install
# time); systemd-analyze, when present, finds no error in the unit.
#
#   tests/daemons/policyd_install.sh BUILD_DIR
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
BUILD=${1:?usage: policyd_install.sh BUILD_DIR}
STAGE=$(mktemp -d /tmp/obspam-policyd-install.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT

for prefix in /usr /usr/local; do
  dest="$STAGE$prefix"
  cmake --install "$BUILD" --prefix "$dest" >"$STAGE/install.log"
  unit="$dest/lib/systemd/system/obspam-policyd.service"
  for f in "$dest/sbin/obspam-policyd" "$dest/share/man/man8/obspam-policyd.8" \
    "$unit"; do
    if [[ ! -f $f ]]; then
      echo "prefix $prefix: $f is not installed"
      cat "$STAGE/install.log"
      exit 1
    fi
  done
  [[ -x $dest/sbin/obspam-policyd ]] || { echo "not executable"; exit 1; }
  want="ExecStart=$dest/sbin/obspam-policyd --foreground \\"
  if ! grep -qxF "$want" "$unit"; then
    echo "prefix $prefix: the unit does not start $dest/sbin/obspam-policyd:"
    grep -n Exec "$unit"
    exit 1
  fi
  if grep -n '@[A-Z_]*@' "$unit"; then
    echo "prefix $prefix: a placeholder is left in the unit"
    exit 1
  fi
  echo "prefix $prefix: sbin/obspam-policyd, man8/obspam-policyd.8," \
    "lib/systemd/system/obspam-policyd.service"
done

# The installed daemon runs against the installed library.
LD_LIBRARY_PATH="$(dirname "$(find "$STAGE/usr" -name 'libobspam.so.1' | head -1)")" \
  "$STAGE/usr/sbin/obspam-policyd" --config examples/obspam.conf --check-config

if command -v systemd-analyze >/dev/null 2>&1; then
  # Only errors about this unit count; the man page is not installed
  # system-wide, and the User= need not exist here.
  out=$(systemd-analyze verify "$STAGE/usr/lib/systemd/system/obspam-policyd.service" 2>&1 |
    grep '^obspam-policyd.service' | grep -v "man obspam-policyd(8)" || true)
  if [[ -n $out ]]; then
    echo "systemd-analyze verify:"
    echo "$out"
    exit 1
  fi
  echo "systemd-analyze verify: no error in obspam-policyd.service"
fi
