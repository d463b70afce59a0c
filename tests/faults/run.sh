#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The fault-injection stage:
#
#   tests/faults/run.sh BUILD_DIR        (from the repository's root)
#
# - allocation failures: tests/faults/faults.c, linked with the library's
#   sources under AddressSanitizer, UndefinedBehaviorSanitizer and
#   LeakSanitizer and with malloc, calloc, realloc and strdup wrapped
#   (-Wl,--wrap), fails the Nth allocation of a call for every N, on every
#   public entry point, and checks that the call answers OBSPAM_ENOMEM, that
#   the engine is unchanged and fully usable, and that nothing leaks;
# - snapshots on a full disk, a read-only file system, a directory the
#   process may not write and a missing one (tests/faults/save_errors.sh):
#   OBSPAM_EIO, the previous snapshot kept, no temporary file left;
# - obspam-policyd (built in BUILD_DIR) with its state file on a tmpfs that
#   fills up (tests/faults/diskfull.sh): the answers, log lines, metrics,
#   saves and every count across kill -9 during and after the episode.
#
# The programs are built into BUILD_DIR/faults/. Ends with the line
# "N passed, N failed"; exits non-zero on any failure.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2
BUILD=${1:-build}
OUT="$BUILD/faults"
CC=${CC:-cc}

# shellcheck source=tests/lib/deps.sh
. tests/lib/deps.sh
# shellcheck source=tests/lib/check.sh
. tests/lib/check.sh

# gcc and its sanitizer runtimes; util-linux for unshare and setpriv;
# python3 for the daemon's scenarios.
obspam_need_packages gcc libc6-dev libxxhash-dev uthash-dev util-linux \
  python3 ||
  echo "warning: could not install what this stage needs" >&2
mkdir -p "$OUT"

CFLAGS=(-std=gnu99 -g -O1 -fno-omit-frame-pointer -D_GNU_SOURCE
  -Iinclude -Isrc -Wall -Wextra -Wshadow -Werror)

build_faults() {
  rm -f "$OUT/faults"
  echo "+ $CC -fsanitize=address,undefined src/*.c tests/faults/faults.c" \
    "-Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup"
  "$CC" "${CFLAGS[@]}" -fsanitize=address,undefined \
    -fno-sanitize-recover=all src/*.c tests/faults/faults.c \
    -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup \
    -lpthread -o "$OUT/faults"
}

# The library's sources are compiled in: the binary runs as any user.
build_save_errors() {
  rm -f "$OUT/save_errors"
  echo "+ $CC src/*.c tests/faults/save_errors.c"
  "$CC" "${CFLAGS[@]}" src/*.c tests/faults/save_errors.c -lpthread \
    -o "$OUT/save_errors"
}

# faults CASE...: the allocation failures of some entry points. Leaks are
# checked by faults itself after each case (and at exit).
faults() {
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 "$OUT/faults" "$@"
}

check "faults: build (ASan, UBSan, wrapped allocator)" build_faults
check "faults: build save_errors" build_save_errors

check "ENOMEM: obspam_engine_new" faults engine_new
check "ENOMEM: obspam_add" faults add
check "ENOMEM: obspam_remove" faults remove
check "ENOMEM: obspam_set_limit, effective_limit" faults set_limit effective_limit
check "ENOMEM: obspam_set_window_limit, set_max_recipients" faults set_window_limit set_max_recipients
check "ENOMEM: obspam_set_uid" faults set_uid
check "ENOMEM: obspam_set_scripts_allowed" faults set_scripts_allowed
check "ENOMEM: obspam_set_contact" faults set_contact
check "ENOMEM: obspam_set_option, get_option" faults set_option get_option
check "ENOMEM: obspam_whitelist_add, whitelist_remove" faults whitelist_add whitelist_remove
check "ENOMEM: obspam_local_network_add, local_network_remove" faults local_network_add local_network_remove
check "ENOMEM: obspam_forward_add, forward_remove, mailing_list_add, mailing_list_remove" faults forward_add forward_remove mailing_list_add mailing_list_remove
check "ENOMEM: obspam_implicit_status" faults implicit_status
check "ENOMEM: obspam_load_config_string (with forward and list lines)" faults load_config_string
check "ENOMEM: obspam_load_config" faults load_config
check "ENOMEM: obspam_decide" faults decide
check "ENOMEM: obspam_decide_batch, alike the messages one by one" faults decide_batch
check "ENOMEM: obspam_check, stats_get" faults check stats_get
check "ENOMEM: obspam_history" faults history
check "ENOMEM: obspam_report" faults report
check "ENOMEM: obspam_set_notify, notify_flush" faults set_notify notify_flush
check "ENOMEM: obspam_state_save" faults state_save
check "ENOMEM: obspam_state_load" faults state_load
check "ENOMEM: obspam_journal_open (resumable), flush, close" faults journal_open journal_flush journal_close
check "ENOMEM: obspam_enumerate, top, reset, set_unknown_uid_subscription" faults enumerate top reset set_unknown_uid_subscription

check "EIO: snapshot on a full disk" tests/faults/save_errors.sh "$OUT/save_errors" full
check "EIO: snapshot on a read-only file system" tests/faults/save_errors.sh "$OUT/save_errors" readonly
check "EIO: snapshot in a directory without write permission" tests/faults/save_errors.sh "$OUT/save_errors" denied
check "EIO: snapshot in a missing directory" tests/faults/save_errors.sh "$OUT/save_errors" missing

check "ENOSPC: policyd on a full disk: answers, log, metrics, saves, kill -9" \
  tests/faults/diskfull.sh "$BUILD" episode
check "ENOSPC: policyd drops what the journal cannot hold, then saves it" \
  tests/faults/diskfull.sh "$BUILD" dropped

check_summary
