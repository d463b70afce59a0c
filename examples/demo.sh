#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The first thing to run on a fresh Debian machine (as root): installs what
# is missing, builds libobspam and its examples (no tests) in build-demo/,
# and runs them: the quickstart, then obspam-policyd, the Postfix policy
# server, answering a burst of policy requests.
#
#   examples/demo.sh
#
# Each step is a function; a new demo is one more demo_* function called
# from main.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=tests/lib/deps.sh
. tests/lib/deps.sh

BUILD_DIR=${OBSPAM_DEMO_BUILD_DIR:-build-demo}
# libmilter-dev: the examples include obspam-milter.
PACKAGES=(cmake make gcc libc6-dev libxxhash-dev uthash-dev libmilter-dev)

# What demo_policyd starts, for cleanup on any exit.
POLICYD_PID=
DEMO_TMP=
cleanup() {
  if [[ -n $POLICYD_PID ]] && kill -0 "$POLICYD_PID" 2>/dev/null; then
    kill -TERM "$POLICYD_PID" 2>/dev/null || true
    wait "$POLICYD_PID" 2>/dev/null || true
  fi
  if [[ -n $DEMO_TMP ]]; then
    rm -rf "$DEMO_TMP"
  fi
}
trap cleanup EXIT

step() {
  printf '\n==> %s\n' "$*"
}

demo_deps() {
  step "Checking the Debian packages needed to build"
  obspam_need_packages "${PACKAGES[@]}"
}

demo_build() {
  step "Building libobspam and the examples in $BUILD_DIR/"
  mkdir -p "$BUILD_DIR"
  local log="$BUILD_DIR/demo-build.log"
  if ! { cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DOBSPAM_BUILD_TESTS=OFF -DOBSPAM_BUILD_BENCH=OFF \
    -DOBSPAM_BUILD_EXAMPLES=ON &&
    cmake --build "$BUILD_DIR" -j 2; } >"$log" 2>&1; then
    cat "$log"
    echo "demo.sh: the build failed (log: $log)" >&2
    return 1
  fi
  echo "Built $BUILD_DIR/libobspam.so.1 and $BUILD_DIR/examples/ (log: $log)."
}

demo_quickstart() {
  step "Running the quickstart ($BUILD_DIR/examples/quickstart, source: examples/quickstart.c)"
  echo
  "$BUILD_DIR/examples/quickstart"
}

# policy_request FD N: sends one Postfix policy request about message N of
# demo@bakery.example (authenticated, one recipient) at protocol state
# $STATE, and prints the daemon's answer.
policy_request() {
  local fd=$1 n=$2 answer empty
  printf '%s\n' \
    request=smtpd_access_policy \
    "protocol_state=$STATE" \
    protocol_name=ESMTP \
    client_address=203.0.113.7 \
    sasl_method=plain \
    sasl_username=demo@bakery.example \
    sender=demo@bakery.example \
    recipient=customer@example.org \
    "recipient_count=$([[ $STATE == RCPT ]] && echo 0 || echo 1)" \
    "instance=demo.$n" \
    '' >&"$fd"
  if ! read -r -t 10 answer <&"$fd" || ! read -r -t 10 empty <&"$fd" ||
    [[ -n $empty ]]; then
    echo "demo.sh: no answer from obspam-policyd" >&2
    return 1
  fi
  printf '  %-6s message %d: %s\n' "$STATE" "$n" "$answer"
}

demo_policyd() {
  step "Running obspam-policyd, the Postfix policy server, on examples/obspam.conf"
  local policyd="$BUILD_DIR/examples/obspam-policyd" obspamctl="" port="" i
  for i in "$BUILD_DIR/examples/obspamctl" \
    "$BUILD_DIR/examples/obspamctl/obspamctl"; do
    if [[ -f $i && -x $i ]]; then
      obspamctl=$i
      break
    fi
  done
  DEMO_TMP=$(mktemp -d /tmp/obspam-demo.XXXXXX)
  # Port 0: the kernel picks a free port, which the "ready" line names.
  "$policyd" --foreground --config examples/obspam.conf \
    --listen inet:127.0.0.1:0 \
    --control "unix:$DEMO_TMP/control.sock" \
    --state "$DEMO_TMP/policyd.state" >"$DEMO_TMP/policyd.log" 2>&1 &
  POLICYD_PID=$!
  for i in $(seq 100); do
    port=$(sed -n 's/.*ready: listening on inet:127\.0\.0\.1:\([0-9]*\).*/\1/p' \
      "$DEMO_TMP/policyd.log")
    if [[ -n $port ]] || ! kill -0 "$POLICYD_PID" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  if [[ -z $port ]]; then
    cat "$DEMO_TMP/policyd.log"
    echo "demo.sh: obspam-policyd did not start" >&2
    return 1
  fi
  echo "$policyd --foreground --config examples/obspam.conf" \
    "--listen inet:127.0.0.1:0 --control unix:$DEMO_TMP/control.sock"
  echo "is listening on 127.0.0.1:$port (pid $POLICYD_PID)."
  echo
  echo "Postfix asks it about each message (check_policy_service in"
  echo "smtpd_data_restrictions). demo@bakery.example may send 5 messages an"
  echo "hour; it sends 8 over one policy connection, then tries a ninth,"
  echo "which is refused at RCPT already, without being counted:"
  echo

  exec 3<>"/dev/tcp/127.0.0.1/$port"
  STATE=DATA
  for i in $(seq 8); do
    policy_request 3 "$i"
  done
  STATE=RCPT
  policy_request 3 9
  exec 3>&-

  echo
  echo "What the daemon logged (stderr in the foreground, syslog otherwise):"
  sed 's/^/  /' "$DEMO_TMP/policyd.log"
  if [[ -n $obspamctl ]]; then
    echo
    echo "+ obspamctl --control unix:$DEMO_TMP/control.sock report"
    "$obspamctl" --control "unix:$DEMO_TMP/control.sock" report
  else
    echo "demo.sh: obspamctl was not built; no report" >&2
  fi
  echo
  echo "Stopping obspam-policyd (SIGTERM saves the counters)."
  kill -TERM "$POLICYD_PID"
  wait "$POLICYD_PID"
  POLICYD_PID=
}

main() {
  demo_deps
  demo_build
  demo_quickstart
  demo_policyd
}

main "$@"
