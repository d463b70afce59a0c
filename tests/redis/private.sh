# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# What the scripts of tests/redis that start their own servers share.
#
#   . tests/redis/private.sh NAME        (from the repository's root)
#
# makes the private directory $REDIS_TEST_DIR (obspam-NAME.XXXXXX, where
# tests/redis/servers.sh keeps its servers) and, on exit, stops the proxy
# of start_proxy and every server, and removes the directory.

REDIS_TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/obspam-$1.XXXXXX")
export REDIS_TEST_DIR
REDIS_PROXY=
redis_private_cleanup() {
  stop_proxy
  tests/redis/servers.sh stopall
  rm -rf -- "$REDIS_TEST_DIR"
}
trap redis_private_cleanup EXIT

# start_proxy PORT REDIS_PORT DELAY_MS [CONTROL_PORT]:
# tests/redis/delay_proxy.py on 127.0.0.1:PORT in front of REDIS_PORT,
# adding DELAY_MS to each round trip (and counting exchanges, holding
# them, on CONTROL_PORT); fails unless it says it is ready.
start_proxy() {
  local line
  coproc PROXY { exec python3 tests/redis/delay_proxy.py "$@"; }
  # bash unsets PROXY_PID once it reaps the coprocess: keep the pid apart.
  REDIS_PROXY=$PROXY_PID
  read -r line <&"${PROXY[0]}" && [[ $line == ready ]]
}

# stop_proxy: stops the proxy of start_proxy, if one runs.
stop_proxy() {
  if [[ -n $REDIS_PROXY ]]; then
    kill "$REDIS_PROXY" 2>/dev/null
    wait "$REDIS_PROXY" 2>/dev/null
    REDIS_PROXY=
  fi
  return 0
}
