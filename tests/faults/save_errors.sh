#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Snapshots on a disk that says no. A previous snapshot exists; saving a new
# one fails; obspam_state_save must answer OBSPAM_EIO with the system's
# reason, keep the previous snapshot byte for byte, and leave no temporary
# file behind; the previous snapshot must still load.
#
#   tests/faults/save_errors.sh SAVE_ERRORS_BINARY SCENARIO
#
# Scenarios:
#   full      the directory is a 64 KiB tmpfs; the new snapshot does not fit
#   readonly  the directory is a file system mounted read-only
#   denied    the process may not write in the directory (run as nobody)
#   missing   the directory does not exist
#
# full and readonly mount file systems: they need root and run in a private
# mount namespace (unshare -m), so that nothing is visible outside it and
# everything goes away with it. The binary is tests/faults/save_errors.c.
set -euo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 SAVE_ERRORS_BINARY full|readonly|denied|missing" >&2
  exit 2
fi
bin=$(realpath "$1")
scenario=$2
self=$(realpath "${BASH_SOURCE[0]}")

needs_namespace() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "this scenario mounts a file system: it needs root" >&2
    exit 1
  fi
  if [[ -z ${OBSPAM_IN_NAMESPACE:-} ]]; then
    # A private mount namespace: the mounts below are seen by no one else
    # and vanish when it ends.
    exec env OBSPAM_IN_NAMESPACE=1 unshare --mount --propagation private \
      "$self" "$bin" "$scenario"
  fi
}

# expect_kept DIR HASH: the previous snapshot is intact and alone.
expect_kept() {
  local dir=$1 hash=$2 now leftovers
  now=$(sha256sum <"$dir/state")
  if [[ $now != "$hash" ]]; then
    echo "FAIL: the previous snapshot changed" >&2
    return 1
  fi
  leftovers=$(find "$dir" -name 'state.tmp.*' | wc -l)
  if [[ $leftovers -ne 0 ]]; then
    echo "FAIL: $leftovers temporary file(s) left:" >&2
    ls -la "$dir" >&2
    return 1
  fi
  echo "the previous snapshot is intact, no temporary file is left"
}

# expect_eio REASON COMMAND...: the save fails with OBSPAM_EIO and REASON.
expect_eio() {
  local reason=$1 out
  shift
  out=$("$@") || {
    echo "FAIL: the save did not fail with OBSPAM_EIO" >&2
    return 1
  }
  echo "$out"
  if [[ $out != *"$reason"* ]]; then
    echo "FAIL: the message does not say '$reason'" >&2
    return 1
  fi
}

# The previous snapshot: written 0600, whatever the umask. Its checksum
# goes to $hash.
write_previous() {
  local dir=$1 mode
  (umask 000 && "$bin" write "$dir/state")
  mode=$(stat -c %a "$dir/state")
  if [[ $mode != 600 ]]; then
    echo "FAIL: the snapshot has mode $mode, expected 600" >&2
    return 1
  fi
  echo "snapshot mode: 0$mode"
  hash=$(sha256sum <"$dir/state")
}

# tmpfs_dir SIZE NAME: $dir, a new directory with a tmpfs of SIZE named
# NAME mounted on it (in the scenario's own mount namespace).
tmpfs_dir() {
  needs_namespace
  dir=$(mktemp -d)
  mount -t tmpfs -o "size=$1,mode=0700" "$2" "$dir"
}

dir=
cleanup() {
  if [[ -n $dir ]]; then
    umount "$dir" 2>/dev/null || true
    rm -rf "$dir"
  fi
}
trap cleanup EXIT

case $scenario in
full)
  tmpfs_dir 64k obspam-full
  write_previous "$dir"
  expect_eio "No space left on device" "$bin" fail "$dir/state"
  expect_kept "$dir" "$hash"
  "$bin" load "$dir/state"
  ;;
readonly)
  tmpfs_dir 1m obspam-ro
  write_previous "$dir"
  mount -o remount,ro "$dir"
  expect_eio "Read-only file system" "$bin" fail "$dir/state"
  expect_kept "$dir" "$hash"
  "$bin" load "$dir/state"
  ;;
denied)
  # Root writes anywhere: the save runs as nobody, in a directory of root's
  # that nobody may enter and read but not write.
  if [[ $(id -u) -ne 0 ]]; then
    echo "this scenario switches to the user nobody: it needs root" >&2
    exit 1
  fi
  dir=$(mktemp -d)
  chmod 0755 "$dir"
  mkdir "$dir/bin" "$dir/data"
  cp "$bin" "$dir/bin/save_errors"
  chmod 0755 "$dir/bin" "$dir/bin/save_errors" "$dir/data"
  write_previous "$dir/data"
  expect_eio "Permission denied" \
    setpriv --reuid=nobody --regid=nogroup --clear-groups \
    "$dir/bin/save_errors" fail "$dir/data/state"
  expect_kept "$dir/data" "$hash"
  "$bin" load "$dir/data/state"
  ;;
missing)
  dir=$(mktemp -d)
  expect_eio "No such file or directory" "$bin" fail "$dir/no/such/dir/state"
  ;;
*)
  echo "unknown scenario '$scenario'" >&2
  exit 2
  ;;
esac
echo "ok: $scenario"
