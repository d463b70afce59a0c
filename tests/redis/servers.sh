#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Private Redis servers for tests/redis/run.sh, on 127.0.0.1 only, each in
# its own directory under $REDIS_TEST_DIR (never the system's service):
#
#   servers.sh port                      prints a free 127.0.0.1 port
#   servers.sh start NAME PORT [ARGS]    starts redis-server NAME, waits for PING
#   servers.sh sentinel NAME PORT MASTER_PORT
#                                        starts a sentinel watching "mymaster"
#   servers.sh kill NAME                 kill -9 (a crash)
#   servers.sh restart NAME              starts NAME again, same port and data
#   servers.sh freeze NAME / thaw NAME   SIGSTOP / SIGCONT: a server that
#                                        accepts connections but never answers
#   servers.sh stopall                   stops every server started here
#
# A server keeps its data in an append-only file, written before each
# reply leaves (appendfsync no: Redis writes the file before it answers,
# and only leaves fsync to the kernel), so a crash of the server (kill -9)
# and a restart lose nothing that was acknowledged. An fsync on every
# write would only guard against the machine crashing, and on a busy
# disk it made each round trip wait for it (the property stream took
# 2m50s instead of 41 s).
set -euo pipefail
: "${REDIS_TEST_DIR:?set REDIS_TEST_DIR}"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_ping PORT: up to 10 s for PONG.
wait_ping() {
  local _
  for _ in $(seq 1 100); do
    if [[ $(redis-cli -h 127.0.0.1 -p "$1" PING 2>/dev/null) == PONG ]]; then
      return 0
    fi
    sleep 0.1
  done
  echo "redis on port $1 did not answer PING within 10 s" >&2
  return 1
}

start() {
  local name=$1 port=$2 dir=$REDIS_TEST_DIR/$1
  shift 2
  mkdir -p "$dir"
  printf '%s\n' "$port" >"$dir/port"
  printf '%s\n' "$*" >"$dir/args"
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" \
    --save '' --appendonly yes --appendfsync no \
    --logfile "$dir/log" --daemonize no "$@" </dev/null >/dev/null 2>&1 &
  echo $! >"$dir/pid"
  wait_ping "$port"
}

sentinel() {
  local name=$1 port=$2 master=$3 dir=$REDIS_TEST_DIR/$1
  mkdir -p "$dir"
  printf '%s\n' "$port" >"$dir/port"
  cat >"$dir/sentinel.conf" <<CONF
bind 127.0.0.1
port $port
dir $dir
logfile $dir/log
sentinel monitor mymaster 127.0.0.1 $master 1
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 10000
CONF
  redis-sentinel "$dir/sentinel.conf" </dev/null >/dev/null 2>&1 &
  echo $! >"$dir/pid"
  wait_ping "$port"
}

kill_one() {
  local pid
  pid=$(cat "$REDIS_TEST_DIR/$1/pid")
  kill -9 "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}

restart() {
  local name=$1 port args
  port=$(cat "$REDIS_TEST_DIR/$name/port")
  args=$(cat "$REDIS_TEST_DIR/$name/args")
  # shellcheck disable=SC2086 # the saved arguments are words
  start "$name" "$port" $args
}

# Stops every server and waits (up to 10 s each) until it is gone, so
# that nothing writes into its directory any more.
stopall() {
  local f pid _
  for f in "$REDIS_TEST_DIR"/*/pid; do
    [[ -e $f ]] || continue
    pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
  done
}

cmd=$1
shift
case $cmd in
port) free_port ;;
start) start "$@" ;;
sentinel) sentinel "$@" ;;
kill) kill_one "$@" ;;
freeze) kill -STOP "$(cat "$REDIS_TEST_DIR/$1/pid")" ;;
thaw) kill -CONT "$(cat "$REDIS_TEST_DIR/$1/pid")" ;;
restart) restart "$@" ;;
stopall) stopall ;;
*) echo "servers.sh: unknown command $cmd" >&2; exit 2 ;;
esac
