#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# memory.sh BUILD_DIR: the bytes Redis keeps for one active mailbox (its
# keys only; its domain and subscription keep as much each), measured with
# MEMORY USAGE in a private redis-server on 127.0.0.1. Prints figures and
# never fails on a size; exits non-zero only when something cannot run.
#
# Loads, in message time ending now: one message; one message every 5 s
# for an hour; one every 5 s for a day (every bucket of every window
# filled).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
BUILD=$(cd "${1:-build}" && pwd)
HERE=tests/redis

# shellcheck source=tests/redis/private.sh
. "$HERE/private.sh" redis-mem

cc -std=gnu99 -O1 -Wall -Wextra -Werror -Iinclude -Itests \
  -o "$REDIS_TEST_DIR/cluster_test" "$HERE/cluster_test.c" \
  -L"$BUILD" -lobspam -Wl,-rpath,"$BUILD"
port=$("$HERE/servers.sh" port)
"$HERE/servers.sh" start mem "$port" >/dev/null
uri=redis://127.0.0.1:$port

printf '| load | keys | bytes |\n| --- | ---: | ---: |\n'
for load in "one message:5:5" "every 5 s for an hour:3600:5" \
  "every 5 s for a day:86400:5"; do
  IFS=: read -r what seconds step <<<"$load"
  prefix="mem$seconds:"
  "$REDIS_TEST_DIR/cluster_test" load "$uri" "$prefix" "$seconds" "$step" \
    >/dev/null
  keys=0 bytes=0
  for key in $(redis-cli -p "$port" --scan --pattern "$prefix*:mbx:*"); do
    b=$(redis-cli -p "$port" MEMORY USAGE "$key" SAMPLES 0)
    keys=$((keys + 1))
    bytes=$((bytes + b))
  done
  printf '| %s | %d | %d |\n' "$what" "$keys" "$bytes"
done
