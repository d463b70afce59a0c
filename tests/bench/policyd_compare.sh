#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# policyd_compare.sh: obspam-policyd against the ceiling of this machine and
# against the rate-limiting policy servers Debian ships, under the same load.
#
#   tests/bench/policyd_compare.sh [BUILD_DIR]     (default: build)
#
# BUILD_DIR (relative to the repository root, or absolute) must hold the
# whole project built with the benchmarks and examples, preferably Release:
#   cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2
#
# Servers, all started here at the beginning, each on a private 127.0.0.1
# port with a private configuration and state in a temporary directory:
#   dunno      bench_dunno_server: answers DUNNO without parsing (the ceiling)
#   obspam     obspam-policyd: parses, decides (mailbox, domain and
#              subscription limits), with a state file as deployed, and so
#              with the journal of decisions written once per loop round
#   obspam-nojournal  the same without a state file: no journal (not
#              in the default SERVERS)
#   obspam-fsync      the same with --journal-fsync: each round's write
#              waits for the disk (not in the default SERVERS)
#   obspam-accept     with REFUSE=1, obspam-policyd with LIMIT 1,000,000
#              (every request accepted) beside the one that refuses, to
#              tell what the refusals cost (not in the default SERVERS)
#   obspam-before     obspam-policyd of another build, BEFORE=BUILD_DIR,
#              with the same configuration as obspam: a change measured
#              against the build before it in the same rounds (not in the
#              default SERVERS)
#   postfwd    postfwd1 (Perl, Net::Server::Multiplex): one rate() rule on
#              sasl_username
#   prl-mem    policyd-rate-limit (Python): limit per sasl_username, SQLite
#              in memory (":memory:"), the fastest backend it has
#   prl-file   policyd-rate-limit with SQLite in a file, as its Debian
#              configuration has it (a commit per request)
# Every server gets the same limit per mailbox and hour (LIMIT), high enough
# that everything is accepted; with REFUSE=1 a limit of one message, so that
# once the warm-up has sent each mailbox its one, every request is refused
# (a flood: obspam-policyd answers each with its refusal text and logs it). Postfix asks obspam-policyd and postfwd at
# DATA; policyd-rate-limit counts only at RCPT (it answers every other stage
# with DUNNO without looking at its database), so its requests say
# protocol_state=RCPT. The requests are otherwise identical: the ~30
# attributes Postfix 3.7 sends, for 1,000 mailboxes drawn at random.
#
# For each connection count, then for each server in turn (so that the
# ceiling and obspam-policyd are measured back to back, in about the same
# state of the machine), bench_policy_load runs WARMUP seconds unmeasured,
# then DURATION seconds measured, one request in flight per connection (no
# pipelining, as Postfix). Then one table: req/s, p50, p99 and max latency,
# errors, the server's CPU time (user + system, from /proc) per reply over
# the whole run, and the load generator's; the context switches of the
# server's first thread per reply, voluntary (it waited: epoll_wait
# found nothing) and involuntary (a thread it woke, or another process,
# took its CPU), each of which the server pays for in its own CPU time;
# and obspam-policyd's ratios to the ceiling and to the fastest peer.
# On a machine shared with other work
# the CPU time per reply moves much less than the requests per second.
# It prints figures and never fails on a time; it exits non-zero only when
# a server cannot be started or a run had errors.
#
# Environment:
#   DURATION=10  WARMUP=1  CONNS="1 4 16"  LIMIT=1000000 (per hour)
#   SERVERS="dunno obspam postfwd prl-mem prl-file"
#   REFUSE=0     1: all refused (LIMIT=1, and the domains' and
#                subscriptions' limits high enough that the mailbox is the
#                object named); the table then says which share of the
#                replies were refusals, and SERVERS defaults to
#                "dunno obspam"
#   ROUNDS=1     the measurements again, in the same order, this many
#                times: the table gives the median of each figure over
#                the rounds, and each round's CPU ratios to the ceiling
#   BEFORE=      a build directory, for the server obspam-before
#   PIN=0        1: servers on CPU 1 and the load generator on CPU 0
#                (taskset); on a 2-vCPU VM that is slower (cross-CPU
#                wake-ups), hence off by default
#   KEEP=0       1: keep the temporary directory (configs, logs, outputs)
#
# postfwd and policyd-rate-limit are installed from Debian when missing;
# their system services are neither started nor enabled by this script.
set -euo pipefail

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-"1 4 16"}
REFUSE=${REFUSE:-0}
if [[ $REFUSE == 1 ]]; then
  LIMIT=${LIMIT:-1}
  SERVERS=${SERVERS:-"dunno obspam"}
else
  LIMIT=${LIMIT:-1000000}
  SERVERS=${SERVERS:-"dunno obspam postfwd prl-mem prl-file"}
fi
PIN=${PIN:-0}
KEEP=${KEEP:-0}
ROUNDS=${ROUNDS:-1}
BEFORE=${BEFORE:-}
MAILBOXES=1000

cd "$(dirname "$0")/../.."
BUILD=${1:-build}
[[ $BUILD == /* ]] || BUILD="$PWD/$BUILD"

LOAD="$BUILD/bench/bench_policy_load"
DUNNO="$BUILD/bench/bench_dunno_server"
POLICYD="$BUILD/examples/obspam-policyd"

die() {
  echo "policyd_compare: $*" >&2
  exit 1
}

for bin in "$LOAD" "$DUNNO"; do
  [[ -x $bin ]] || die "$bin is missing: build the project with the benchmarks in $BUILD"
done
if [[ " $SERVERS " == *" obspam-before "* ]]; then
  [[ -n $BEFORE ]] || die "obspam-before needs BEFORE=BUILD_DIR"
  [[ $BEFORE == /* ]] || BEFORE="$PWD/$BEFORE"
  [[ -x $BEFORE/examples/obspam-policyd ]] || die "$BEFORE/examples/obspam-policyd is missing"
fi
if [[ " $SERVERS " == *" obspam "* && ! -x $POLICYD ]]; then
  echo "policyd_compare: $POLICYD is not built: obspam-policyd skipped" >&2
  SERVERS=${SERVERS//obspam/}
fi

# ---- the peers, from Debian ---------------------------------------------

# Installing policyd-rate-limit would start its service (postinst). Where
# nothing stops that yet, a policy-rc.d that denies every start is put in
# place for the install only, and a unit the install enabled is disabled:
# the benchmark runs its own instances by hand.
install_peers() {
  local missing=() pkg made_policy=0 rc=0
  for pkg in postfwd policyd-rate-limit; do
    [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true) == "install ok installed" ]] ||
      missing+=("$pkg")
  done
  [[ ${#missing[@]} -gt 0 ]] || return 0
  # shellcheck source=tests/lib/deps.sh
  . tests/lib/deps.sh
  if [[ $(id -u) -eq 0 && ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# policyd_compare.sh: no service starts during its install\nexit 101\n' \
      >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
  fi
  obspam_need_packages "${missing[@]}" || rc=$?
  [[ $made_policy -eq 0 ]] || rm -f /usr/sbin/policy-rc.d
  [[ $rc -eq 0 ]] || die "cannot install ${missing[*]}"
  if [[ " ${missing[*]} " == *" policyd-rate-limit "* && -d /run/systemd/system ]]; then
    systemctl disable --now policyd-rate-limit.service >/dev/null 2>&1 || true
  fi
}
if [[ " $SERVERS " == *" postfwd "* || " $SERVERS " == *" prl-"* ]]; then
  install_peers
fi

# ---- bookkeeping ----------------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/policyd_compare.XXXXXX")
chmod 755 "$TMP" # policyd-rate-limit runs as its own user and reads here
RESULTS="$TMP/results"
: >"$RESULTS"
SERVER_PID=""          # set by start_NAME
SERVER_STOP_SIGNAL=TERM
declare -A PIDS=() PORTS=() STOP_SIGNALS=()
FAILED=0

# A process that is gone or a zombie is not running.
running() {
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}

stop_pid() { # PID SIGNAL
  local pid=$1 sig=$2 i
  [[ -n $pid ]] || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    running "$pid" || break
    sleep 0.1
  done
  if running "$pid"; then
    echo "policyd_compare: pid $pid did not stop on SIG$sig: killed" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
  local name
  # A server that failed to start half-way.
  stop_pid "$SERVER_PID" "$SERVER_STOP_SIGNAL"
  for name in "${!PIDS[@]}"; do
    stop_pid "${PIDS[$name]}" "${STOP_SIGNALS[$name]}"
  done
  if [[ $KEEP == 1 ]]; then
    echo "policyd_compare: kept $TMP"
  else
    rm -rf "$TMP"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

SERVER_CPU=()
LOAD_CPU=()
if [[ $PIN == 1 ]]; then
  [[ $(nproc) -ge 2 ]] || die "PIN=1 needs two CPUs"
  SERVER_CPU=(taskset -c 1)
  LOAD_CPU=(taskset -c 0)
fi

# CPU time (user + system) a process has used, in clock ticks.
cpu_ticks() {
  sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{ print $12 + $13 }'
}
CLK_TCK=$(getconf CLK_TCK)

# The context switches of a process's first thread (the loop of every
# server here but postfwd's and policyd-rate-limit's children): "VOL
# INVOL", those it made waiting and those the scheduler forced on it.
ctx_switches() {
  awk '/^voluntary_ctxt_switches/ { v = $2 } /^nonvoluntary_ctxt_switches/ { n = $2 }
       END { print v + 0, n + 0 }' "/proc/$1/status" 2>/dev/null
}

# shellcheck source=tests/lib/ports.sh
. tests/lib/ports.sh

# Waits until PORT accepts connections, at most 15 s, while PID (when
# given) runs.
wait_port() {
  local port=$1 pid=${2:-} i
  for ((i = 0; i < 300; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    if [[ -n $pid ]] && ! running "$pid"; then
      return 1
    fi
    sleep 0.05
  done
  return 1
}

# ---- the configurations ---------------------------------------------------

# The mailboxes are the load generator's own (userKKKK@dDDD.example, ten
# per domain); five domains make a subscription.
"$LOAD" -m "$MAILBOXES" --list-mailboxes >"$TMP/mailboxes"
{
  echo "# policyd_compare.sh: $MAILBOXES mailboxes, $LIMIT messages per hour each"
  if [[ $REFUSE == 1 ]]; then
    # A domain or subscription as full as its mailboxes would be named
    # instead of the mailbox (the highest level among equal waits).
    echo "default mailbox=$LIMIT domain=$((LIMIT * 10 + 1)) subscription=$((LIMIT * 50 + 1))"
  else
    echo "default mailbox=$LIMIT domain=$((LIMIT * 10)) subscription=$((LIMIT * 50))"
  fi
  awk '!seen[$2]++ { d = n++; if (d % 5 == 0) printf "subscription s%03d\n", d / 5;
         printf "domain %s subscription=s%03d\n", $2, int(d / 5) }' "$TMP/mailboxes"
  awk '{ printf "mailbox %s@%s\n", $1, $2 }' "$TMP/mailboxes"
} >"$TMP/obspam.conf"
# obspam-accept's: the same objects, every request accepted.
sed "s/^default .*/default mailbox=1000000 domain=10000000 subscription=50000000/" \
  "$TMP/obspam.conf" >"$TMP/obspam-accept.conf"

echo "id=RATE01; sasl_username=~.; action=rate(sasl_username/$LIMIT/3600/451 4.7.1 rate limit exceeded)" \
  >"$TMP/postfwd.cf"

prl_config() { # NAME DATABASE PORT
  cat <<EOF
# policyd_compare.sh: $1
debug: False
user: "policyd-rate-limit"
group: "policyd-rate-limit"
pidfile: "$TMP/$1/pid"
backend: 0
sqlite_config:
    database: "$2"
SOCKET: ["127.0.0.1", $3]
limits:
    - [$LIMIT, 3600]
limits_by_id: {}
limit_by_sasl: True
limit_by_sender: False
limit_by_ip: False
limited_networks: []
success_action: "dunno"
fail_action: "defer_if_permit Rate limit reach, retry later"
db_error_action: "dunno"
report: False
delay_to_close: 300
EOF
}

# ---- the servers ----------------------------------------------------------

# start_NAME sets SERVER_PID and PORT (and SERVER_STOP_SIGNAL), or fails.
start_dunno() {
  local i
  "${SERVER_CPU[@]}" "$DUNNO" inet:127.0.0.1:0 >"$TMP/dunno.out" 2>"$TMP/dunno.log" &
  SERVER_PID=$!
  for ((i = 0; i < 100; i++)); do
    PORT=$(sed -n 's/^listening on inet:127\.0\.0\.1:\([0-9]*\)$/\1/p' "$TMP/dunno.out")
    [[ -z $PORT ]] || return 0
    running "$SERVER_PID" || break
    sleep 0.05
  done
  return 1
}

start_obspam() { # NAME [OPTIONS...]
  local name=$1 config=$TMP/obspam.conf policyd=$POLICYD
  shift
  [[ $name != obspam-accept ]] || config=$TMP/obspam-accept.conf
  [[ $name != obspam-before ]] || policyd=$BEFORE/examples/obspam-policyd
  PORT=$(free_port)
  "${SERVER_CPU[@]}" "$policyd" --config "$config" \
    --listen "inet:127.0.0.1:$PORT" --foreground "$@" \
    >"$TMP/$name.log" 2>&1 &
  SERVER_PID=$!
  wait_port "$PORT" "$SERVER_PID"
}

# postfwd1 has no foreground server mode (without -d it reads one request
# from stdin): it daemonizes, and its pid comes from its pidfile.
start_postfwd() {
  local user=() i
  PORT=$(free_port)
  [[ $(id -u) -ne 0 ]] || user=(-u postfw -g postfw)
  "${SERVER_CPU[@]}" /usr/sbin/postfwd1 -d -f "$TMP/postfwd.cf" -i 127.0.0.1 -p "$PORT" \
    --pidfile "$TMP/postfwd.pid" "${user[@]}" --nodns --perfmon --norulelog \
    --noidlestats >"$TMP/postfwd.log" 2>&1 || return 1
  for ((i = 0; i < 100; i++)); do
    SERVER_PID=$(cat "$TMP/postfwd.pid" 2>/dev/null) || true
    [[ -z $SERVER_PID ]] || break
    sleep 0.05
  done
  [[ -n $SERVER_PID ]] && wait_port "$PORT" "$SERVER_PID"
}

# policyd-rate-limit drops privileges when started as root, after creating
# directories next to its database (which fails for ":memory:"), so root
# starts it as its own user directly. It exits cleanly on SIGUSR1 (SIGINT
# is ignored by a background job of a script).
start_prl() { # NAME DATABASE
  local name=$1 db=$2 run=()
  PORT=$(free_port)
  mkdir -p "$TMP/$name"
  prl_config "$name" "$db" "$PORT" >"$TMP/$name/config.yaml"
  if [[ $(id -u) -eq 0 ]]; then
    chown -R policyd-rate-limit:policyd-rate-limit "$TMP/$name"
    run=(setpriv --reuid=policyd-rate-limit --regid=policyd-rate-limit --clear-groups)
  fi
  "${SERVER_CPU[@]}" "${run[@]}" /usr/bin/policyd-rate-limit -f "$TMP/$name/config.yaml" \
    >"$TMP/$name.log" 2>&1 &
  SERVER_PID=$!
  SERVER_STOP_SIGNAL=USR1
  wait_port "$PORT" "$SERVER_PID"
}

start_server() {
  SERVER_STOP_SIGNAL=TERM
  case $1 in
  dunno) start_dunno ;;
  obspam) start_obspam obspam --state "$TMP/obspam.state" ;;
  obspam-nojournal) start_obspam obspam-nojournal ;;
  obspam-fsync) start_obspam obspam-fsync --state "$TMP/obspam-fsync.state" --journal-fsync ;;
  obspam-accept) start_obspam obspam-accept --state "$TMP/obspam-accept.state" ;;
  obspam-before) start_obspam obspam-before --state "$TMP/obspam-before.state" ;;
  postfwd) start_postfwd ;;
  prl-mem) start_prl prl-mem ":memory:" ;;
  prl-file) start_prl prl-file "$TMP/prl-file/db.sqlite3" ;;
  *) die "unknown server '$1' (known: dunno obspam obspam-nojournal obspam-fsync obspam-accept obspam-before postfwd prl-mem prl-file)" ;;
  esac
}

describe() {
  case $1 in
  dunno) echo "ceiling (DUNNO, no parsing)" ;;
  obspam) echo "obspam-policyd" ;;
  obspam-nojournal) echo "obspam-policyd, no state, no journal" ;;
  obspam-fsync) echo "obspam-policyd, --journal-fsync" ;;
  obspam-accept) echo "obspam-policyd, all accepted" ;;
  obspam-before) echo "obspam-policyd of $(basename "$(dirname "$BEFORE")")/$(basename "$BEFORE")" ;;
  postfwd) echo "postfwd1 rate()" ;;
  prl-mem) echo "policyd-rate-limit, sqlite :memory:" ;;
  prl-file) echo "policyd-rate-limit, sqlite file" ;;
  esac
}

# ---- the runs -------------------------------------------------------------

nconns=$(wc -w <<<"$CONNS")
nservers=$(wc -w <<<"$SERVERS")
echo "policyd_compare: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, $(uname -r)"
echo "policyd_compare: load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
estimate=$(awk -v n="$nservers" -v c="$nconns" -v d="$DURATION" -v w="$WARMUP" -v r="$ROUNDS" \
  'BEGIN { printf "%d", r * n * c * (d + w) + 3 * n }')
echo "policyd_compare: $ROUNDS round(s) of $nservers servers x connections {$CONNS}, ${WARMUP} s warm-up +" \
  "${DURATION} s measured each: about $estimate s; pinning:" \
  "$([[ $PIN == 1 ]] && echo "servers on CPU 1, load on CPU 0" || echo none)"
echo "policyd_compare: limit $LIMIT per mailbox and hour:" \
  "$([[ $REFUSE == 1 ]] && echo "all refused after the warm-up" || echo "all accepted")"

# Every server runs from the start: an idle one uses no CPU. The servers
# are then measured back to back for each connection count, so that the
# ceiling and obspam-policyd see the machine in about the same state.
started=""
for server in $SERVERS; do
  SERVER_PID=""
  if ! start_server "$server"; then
    echo "policyd_compare: $(describe "$server") did not start; its log:" >&2
    tail -n 20 "$TMP/$server.log" "$TMP/$server.out" >&2 2>/dev/null || true
    stop_pid "$SERVER_PID" "$SERVER_STOP_SIGNAL"
    SERVER_PID=""
    FAILED=1
    continue
  fi
  PIDS[$server]=$SERVER_PID
  PORTS[$server]=$PORT
  STOP_SIGNALS[$server]=$SERVER_STOP_SIGNAL
  SERVER_PID=""
  started="$started $server"
  echo "policyd_compare: $(describe "$server"): pid ${PIDS[$server]}, port $PORT"
done

for ((round = 1; round <= ROUNDS; round++)); do
  for c in $CONNS; do
    for server in $started; do
      state=DATA
      [[ $server != prl-* ]] || state=RCPT
      rc=0
      ticks0=$(cpu_ticks "${PIDS[$server]}")
      read -r vcs0 ivcs0 < <(ctx_switches "${PIDS[$server]}")
      timeout $((${DURATION%.*} + ${WARMUP%.*} + 30)) "${LOAD_CPU[@]}" "$LOAD" \
        -c "$c" -d "$DURATION" -w "$WARMUP" -m "$MAILBOXES" -s "$state" -l "$server" \
        "inet:127.0.0.1:${PORTS[$server]}" >"$TMP/$server-$c.out" 2>&1 || rc=$?
      sed "s/^/  [round $round] /" "$TMP/$server-$c.out"
      if [[ $rc -ne 0 ]]; then
        echo "policyd_compare: $(describe "$server"), $c connections: exit status $rc" >&2
        FAILED=1
      fi
      ticks1=$(cpu_ticks "${PIDS[$server]}")
      read -r vcs1 ivcs1 < <(ctx_switches "${PIDS[$server]}")
      # The server's CPU time over the whole run (warm-up included) per reply
      # read: a figure that other work on the machine disturbs much less than
      # requests per second.
      # Context switches per reply, over the whole run likewise: a server
      # that a woken client preempts pays a switch for it in its own time.
      awk -v t0="$ticks0" -v t1="$ticks1" -v hz="$CLK_TCK" -v v0="$vcs0" -v v1="$vcs1" \
        -v i0="$ivcs0" -v i1="$ivcs1" '/^RESULT / {
          n = 0
          for (i = 2; i <= NF; i++) if ($i ~ /^replies_total=/) n = substr($i, 15)
          cpu = (n > 0 && t1 != "") ? (t1 - t0) * 1e6 / hz / n : -1
          printf("%s cpu_us=%.2f vcs=%.3f ivcs=%.3f\n", $0, cpu,
            n > 0 ? (v1 - v0) / n : -1, n > 0 ? (i1 - i0) / n : -1)
        }' "$TMP/$server-$c.out" >>"$RESULTS"
    done
  done
done
echo "policyd_compare: load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- the table ------------------------------------------------------------

echo
awk -v servers="$SERVERS" -v conns="$CONNS" \
  -v names="$(for s in $SERVERS; do printf '%s=%s;' "$s" "$(describe "$s")"; done)" '
  {
    delete kv
    for (i = 2; i <= NF; i++) { split($i, p, "="); kv[p[1]] = p[2] }
    key = kv["label"] SUBSEP kv["conns"]
    # Each round of the key in turn: the table takes the medians.
    r = ++nr[key]
    v["rps", key, r] = kv["rps"]; v["p50", key, r] = kv["p50_us"]
    v["p99", key, r] = kv["p99_us"]; v["mx", key, r] = kv["max_us"]
    v["err", key, r] = kv["errors"]; v["cpu", key, r] = kv["cpu_us"]
    v["lcpu", key, r] = kv["load_cpu_us"]
    v["vcs", key, r] = kv["vcs"]; v["ivcs", key, r] = kv["ivcs"]
    # The share of the measured replies that were refusals.
    all = kv["dunno"] + kv["refused"] + kv["other"]
    v["refd", key, r] = all > 0 ? 100 * kv["refused"] / all : 0
  }
  function median(f, key,    n, i, j, t, a) {
    n = nr[key]
    for (i = 1; i <= n; i++) a[i] = v[f, key, i] + 0
    for (i = 2; i <= n; i++)
      for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    for (key in nr) {
      rps[key] = median("rps", key); p50[key] = median("p50", key)
      p99[key] = median("p99", key); mx[key] = median("mx", key)
      err[key] = median("err", key); cpu[key] = median("cpu", key)
      lcpu[key] = median("lcpu", key); refd[key] = median("refd", key)
      vcs[key] = median("vcs", key); ivcs[key] = median("ivcs", key)
    }
    ns = split(servers, sv, " "); nc = split(conns, cv, " ")
    nn = split(names, nl, ";")
    for (i = 1; i <= nn; i++) { split(nl[i], p, "="); name[p[1]] = p[2] }
    printf "| %-36s | %5s | %9s | %9s | %9s | %9s | %6s | %8s | %11s | %9s | %8s | %8s |\n", "server",
      "conns", "req/s", "p50 us", "p99 us", "max us", "errors", "refused",
      "CPU us/req", "load CPU", "vcs/req", "ivcs/req"
    printf "|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n", "--------------------------------------",
      "------:", "----------:", "----------:", "----------:", "----------:", "-------:",
      "---------:", "------------:", "----------:", "---------:", "---------:"
    for (i = 1; i <= ns; i++)
      for (j = 1; j <= nc; j++) {
        key = sv[i] SUBSEP cv[j]
        if (!(key in rps)) {
          printf "| %-36s | %5s | %9s | %9s | %9s | %9s | %6s | %8s | %11s | %9s | %8s | %8s |\n",
            name[sv[i]], cv[j], "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"
          continue
        }
        printf "| %-36s | %5d | %9d | %9.1f | %9.1f | %9.1f | %6d | %7.1f%% | %11.2f | %9.2f | %8.3f | %8.3f |\n",
          name[sv[i]], cv[j], rps[key], p50[key], p99[key], mx[key], err[key], refd[key],
          cpu[key], lcpu[key], vcs[key], ivcs[key]
      }
    print ""
    for (j = 1; j <= nc; j++) {
      c = cv[j]; o = "obspam" SUBSEP c; d = "dunno" SUBSEP c
      best = 0; bestname = ""; bestkey = ""
      for (i = 1; i <= ns; i++) {
        if (sv[i] == "dunno" || sv[i] ~ /^obspam/) continue
        k = sv[i] SUBSEP c
        if ((k in rps) && rps[k] > best) { best = rps[k]; bestname = name[sv[i]]; bestkey = k }
      }
      line = ""
      if ((o in rps) && (d in rps) && rps[d] > 0)
        line = line sprintf("; %.1f%% of the ceiling (goal >= 85%%: %s)",
          100 * rps[o] / rps[d], rps[o] >= 0.85 * rps[d] ? "met" : "MISSED")
      if ((o in rps) && best > 0)
        line = line sprintf("; %.1fx the fastest peer, %s (goal >= 20x: %s)",
          rps[o] / best, bestname, rps[o] >= 20 * best ? "met" : "MISSED")
      if ((o in cpu) && (d in cpu) && cpu[o] > 0 && cpu[d] > 0)
        line = line sprintf("; CPU per request %.2fx the ceiling'"'"'s", cpu[o] / cpu[d])
      if ((o in cpu) && bestkey != "" && cpu[o] > 0 && cpu[bestkey] > 0)
        line = line sprintf(", %.1fx less than the fastest peer'"'"'s", cpu[bestkey] / cpu[o])
      k = "obspam-nojournal" SUBSEP c
      if ((o in rps) && (k in rps) && rps[k] > 0)
        line = line sprintf("; with the journal %.1f%% of the requests per second without it (goal >= 90%%: %s)",
          100 * rps[o] / rps[k], rps[o] >= 0.9 * rps[k] ? "met" : "MISSED")
      if (!(o in rps)) line = "; not measured"
      # What no server could beat here: the ceiling over the fastest peer.
      if ((d in rps) && best > 0)
        line = line sprintf("; (the ceiling itself is %.1fx the fastest peer)", rps[d] / best)
      line = sprintf("obspam-policyd, %2d connection%s: ", c, c == 1 ? " " : "s") substr(line, 3)
      print line
    }
    # Every obspam-policyd against the ceiling, and round by round.
    for (i = 1; i <= ns; i++) {
      if (sv[i] !~ /^obspam/) continue
      for (j = 1; j <= nc; j++) {
        k = sv[i] SUBSEP cv[j]; d = "dunno" SUBSEP cv[j]
        if (!(k in cpu) || !(d in cpu) || cpu[d] <= 0) continue
        line = sprintf("%s, %d connections: CPU per request %.2fx the ceiling'"'"'s (median)",
          name[sv[i]], cv[j], cpu[k] / cpu[d])
        if (nr[k] > 1 && nr[k] == nr[d]) {
          line = line "; rounds:"
          for (r = 1; r <= nr[k]; r++)
            line = line sprintf(" %.2fx", v["cpu", d, r] > 0 ? v["cpu", k, r] / v["cpu", d, r] : 0)
        }
        print line
      }
    }
  }' "$RESULTS"

exit "$FAILED"
