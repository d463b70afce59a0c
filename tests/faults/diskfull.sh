#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# obspam-policyd with its state file on a disk that fills up: mounts a
# tmpfs of 512 KiB in a private mount namespace (unshare -m, so that
# nothing is visible outside it and everything goes away with it) and runs
# one scenario of tests/faults/diskfull.py on it. Needs root.
#
#   tests/faults/diskfull.sh BUILD_DIR SCENARIO
#   tests/faults/diskfull.sh BUILD_DIR --list
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 BUILD_DIR SCENARIO|--list" >&2
  exit 2
fi
build=$(realpath "$1")
scenario=$2
self=$(realpath "${BASH_SOURCE[0]}")
here=$(dirname "$self")

if [[ $scenario == --list ]]; then
  exec python3 "$here/diskfull.py" "$build" --list
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "this test mounts a file system: it needs root" >&2
  exit 1
fi
if [[ -z ${OBSPAM_IN_NAMESPACE:-} ]]; then
  exec env OBSPAM_IN_NAMESPACE=1 unshare --mount --propagation private \
    "$self" "$build" "$scenario"
fi

dir=$(mktemp -d)
cleanup() {
  umount "$dir" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
mount -t tmpfs -o size=512k,mode=0700 obspam-diskfull "$dir"
OBSPAM_DISKFULL_DIR=$dir python3 "$here/diskfull.py" "$build" "$scenario"
