# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# A private Postfix instance for the end-to-end tests, and the smtp-sink it
# relays everything to. Sourced by the scenario scripts (tests/e2e/*.sh).
#
#   . tests/e2e/lib/postfix.sh
#   pf_init                   # temp dir, free ports, trap EXIT cleans up
#   pf_configure 'smtpd_data_restrictions = check_policy_service inet:...'
#   pf_start                  # smtp-sink, then Postfix; waits until ready
#   python3 "$PF_LIB/smtpclient.py" --port "$PF_SMTPD_PORT" ...
#   pf_wait_delivered 3       # the queue drains and the sink holds 3
#   pf_stop                   # also done by the EXIT trap
#
# Everything lives under one temporary directory ($PF_TMP): the config
# directory, the queue, the data directory, the mail log and the sink's
# captured messages. Postfix listens on 127.0.0.1 only, on a free port, and
# relays every message to the sink on another free port. The system's
# Postfix (/etc/postfix, /var/spool/postfix, port 25) is never used: every
# postfix command gets "-c $PF_CONF", and local sendmail submissions run in
# a mount namespace of their own where $PF_CONF is bind-mounted over
# /etc/postfix (pf_sendmail_as).

PF_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Seconds that any single wait may take before the test gives up.
PF_TIMEOUT=${PF_TIMEOUT:-30}

# Processes started here (besides Postfix, which pf_stop stops), stopped
# by the EXIT trap in reverse order.
PF_PIDS=()
PF_STARTED=0

pf_log() { printf 'e2e: %s\n' "$*" >&2; }
pf_die() {
  pf_log "FAIL: $*"
  exit 1
}

# shellcheck source=tests/lib/ports.sh
. "$PF_LIB/../../lib/ports.sh"

# pf_free_port: a TCP port of 127.0.0.1 that is free right now
# (tests/lib/ports.sh).
pf_free_port() { free_port; }

# pf_wait_port PORT [SECONDS]: waits until something accepts connections
# on 127.0.0.1:PORT.
pf_wait_port() {
  local port=$1 timeout=${2:-$PF_TIMEOUT}
  python3 - "$port" "$timeout" <<'PY'
import socket, sys, time
port, deadline = int(sys.argv[1]), time.time() + float(sys.argv[2])
while True:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        sys.exit(0)
    except OSError:
        if time.time() > deadline:
            sys.exit("nothing accepts connections on 127.0.0.1:%d after %ss"
                     % (port, sys.argv[2]))
        time.sleep(0.05)
PY
}

# pf_wait_path PATH [SECONDS]: waits until PATH exists (a socket, a file).
pf_wait_path() {
  local path=$1 timeout=${2:-$PF_TIMEOUT} end
  end=$((SECONDS + timeout))
  until [[ -e $path ]]; do
    ((SECONDS < end)) || {
      pf_log "$path did not appear within ${timeout}s"
      return 1
    }
    sleep 0.05
  done
}

# pf_init: creates the temporary tree, picks the ports, installs the
# cleanup trap. Sets PF_TMP, PF_CONF, PF_QUEUE, PF_DATA, PF_MAILLOG,
# PF_SINK_DIR, PF_SMTPD_PORT, PF_SINK_PORT.
pf_init() {
  [[ $(id -u) -eq 0 ]] || pf_die "the Postfix tests must run as root"
  command -v postfix >/dev/null || pf_die "postfix is not installed"
  command -v smtp-sink >/dev/null || pf_die "smtp-sink is not installed"
  PF_TMP=$(mktemp -d /tmp/obspam-e2e.XXXXXX)
  # The queue's own directories are checked by Postfix for their owners;
  # the tree above them must be reachable by the postfix user.
  chmod 755 "$PF_TMP"
  PF_CONF=$PF_TMP/etc
  PF_QUEUE=$PF_TMP/spool
  PF_DATA=$PF_TMP/data
  PF_MAILLOG=$PF_TMP/log/maillog
  PF_SINK_DIR=$PF_TMP/sink
  mkdir -p "$PF_CONF" "$PF_QUEUE" "$PF_DATA" "$PF_TMP/log" "$PF_SINK_DIR"
  chown postfix:postfix "$PF_DATA" "$PF_SINK_DIR"
  PF_SMTPD_PORT=$(pf_free_port)
  PF_SINK_PORT=$(pf_free_port)
  while [[ $PF_SINK_PORT == "$PF_SMTPD_PORT" ]]; do
    PF_SINK_PORT=$(pf_free_port)
  done
  trap pf_cleanup EXIT
  pf_log "private Postfix in $PF_TMP: smtpd 127.0.0.1:$PF_SMTPD_PORT," \
    "smtp-sink 127.0.0.1:$PF_SINK_PORT"
}

# pf_configure [MAIN.CF-LINE...]: writes main.cf and master.cf; each
# argument is one more main.cf line ("name = value"), e.g. the policy
# service or the milters.
pf_configure() {
  local line
  {
    cat <<CF
# A private Postfix instance of the obspam end-to-end tests.
compatibility_level = 3.6
queue_directory = $PF_QUEUE
data_directory = $PF_DATA
mail_owner = postfix
setgid_group = postdrop
myhostname = e2e.obspam.test
mydomain = obspam.test
myorigin = \$myhostname
# Nothing is delivered here: every message goes to the smtp-sink.
mydestination =
local_recipient_maps =
local_transport = error:local delivery is disabled in this test instance
alias_maps =
alias_database =
relayhost = [127.0.0.1]:$PF_SINK_PORT
default_transport = smtp
relay_transport = smtp
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtputf8_enable = no
biff = no
readme_directory = no
# No syslog in a test sandbox: Postfix writes its own log file.
maillog_file = $PF_MAILLOG
maillog_file_prefixes = $PF_TMP
# Retry deferred deliveries quickly, should the sink ever refuse one.
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 10s
CF
    for line in "$@"; do
      printf '%s\n' "$line"
    done
  } >"$PF_CONF/main.cf"
  # No chroot: the private queue has no chroot environment (etc/, lib/).
  cat >"$PF_CONF/master.cf" <<CF
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:$PF_SMTPD_PORT inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
CF
  # postfix(1) looks for its dynamic map list in the config directory.
  cp /etc/postfix/dynamicmaps.cf "$PF_CONF/" 2>/dev/null || true
  postfix -c "$PF_CONF" check || pf_die "postfix check failed for $PF_CONF"
}

# pf_start: starts the sink and Postfix, and waits until both accept
# connections.
pf_start() {
  # smtp-sink must drop root (-u); it writes one file per message into
  # PF_SINK_DIR ("m.<random hex>").
  smtp-sink -u postfix -d "$PF_SINK_DIR/m." "127.0.0.1:$PF_SINK_PORT" 64 \
    >"$PF_TMP/log/smtp-sink.log" 2>&1 &
  PF_PIDS+=($!)
  pf_wait_port "$PF_SINK_PORT" || pf_die "smtp-sink did not start"
  postfix -c "$PF_CONF" start || {
    tail -n 30 "$PF_MAILLOG" >&2 2>/dev/null
    pf_die "postfix -c $PF_CONF start failed"
  }
  PF_STARTED=1
  pf_wait_port "$PF_SMTPD_PORT" || {
    tail -n 30 "$PF_MAILLOG" >&2 2>/dev/null
    pf_die "the private smtpd does not accept connections"
  }
  # The pickup service's trigger socket: local submissions need it.
  pf_wait_path "$PF_QUEUE/public/pickup" || pf_die "no pickup service"
}

# pf_stop: stops Postfix (waiting until master has exited).
pf_stop() {
  local end
  if [[ $PF_STARTED -eq 1 ]]; then
    postfix -c "$PF_CONF" stop >/dev/null 2>&1 || true
    end=$((SECONDS + PF_TIMEOUT))
    while postfix -c "$PF_CONF" status >/dev/null 2>&1; do
      ((SECONDS < end)) || {
        postfix -c "$PF_CONF" abort >/dev/null 2>&1 || true
        break
      }
      sleep 0.1
    done
    PF_STARTED=0
  fi
}

# pf_track PID: has the EXIT trap stop PID (a daemon the test started).
pf_track() {
  PF_PIDS+=("$1")
}

# pf_untrack PID: PID was stopped and reaped: the EXIT trap must not signal
# it (the number may belong to another process by then).
pf_untrack() {
  local i
  for i in "${!PF_PIDS[@]}"; do
    [[ ${PF_PIDS[i]} == "$1" ]] && unset 'PF_PIDS[i]'
  done
  PF_PIDS=("${PF_PIDS[@]}")
}

# pf_kill PID: stops one process started by the test (SIGTERM, then
# SIGKILL after PF_TIMEOUT seconds) and reaps it.
pf_kill() {
  local pid=$1 end
  kill -TERM "$pid" 2>/dev/null || return 0
  end=$((SECONDS + PF_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= end)); then
      pf_log "process $pid ignores SIGTERM: killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.05
  done
  wait "$pid" 2>/dev/null || true
}

pf_cleanup() {
  local rc=$? i log
  pf_stop
  for ((i = ${#PF_PIDS[@]} - 1; i >= 0; i--)); do
    pf_kill "${PF_PIDS[i]}"
  done
  if [[ $rc -ne 0 && -n ${PF_TMP:-} ]]; then
    # The daemons' logs (LOG of pf_daemon_start), then Postfix's.
    for log in "$PF_TMP"/*.log; do
      [[ -f $log ]] || continue
      pf_log "--- last lines of $log ---"
      tail -n 30 "$log" >&2 || true
    done
    pf_log "--- last lines of the Postfix log ($PF_MAILLOG) ---"
    tail -n 40 "$PF_MAILLOG" >&2 2>/dev/null || true
  fi
  if [[ -n ${PF_TMP:-} && -z ${PF_KEEP:-} ]]; then
    rm -rf "$PF_TMP"
  elif [[ -n ${PF_TMP:-} ]]; then
    pf_log "kept $PF_TMP (PF_KEEP is set)"
  fi
  exit "$rc"
}

# pf_queue_count: the messages in the private queue (maildrop included).
pf_queue_count() {
  find "$PF_QUEUE"/{maildrop,incoming,active,deferred,hold} -type f \
    2>/dev/null | wc -l
}

# pf_sink_files: the complete messages captured by the sink, one path a
# line. Every test message ends with the line "-- end of test message"; a
# file without it is still being written.
pf_sink_files() {
  grep -l -x -- '-- end of test message' "$PF_SINK_DIR"/m.* 2>/dev/null |
    sort || true
}

pf_sink_count() {
  pf_sink_files | grep -c . || true
}

# pf_wait_delivered N [HOLD [MAILDROP]]: waits until the incoming, active
# and deferred queues are empty, the hold queue holds HOLD messages and the
# maildrop MAILDROP (both 0 by default: refused local submissions may end
# up in either, depending on the milter's answer), and the sink holds at
# least N complete messages; then fails unless it holds exactly N.
pf_wait_delivered() {
  local want=$1 hold=${2:-0} maildrop=${3:-0} end queued got h m
  end=$((SECONDS + PF_TIMEOUT))
  while :; do
    queued=$(find "$PF_QUEUE"/{incoming,active,deferred} -type f \
      2>/dev/null | wc -l)
    h=$(find "$PF_QUEUE/hold" -type f 2>/dev/null | wc -l)
    m=$(find "$PF_QUEUE/maildrop" -type f 2>/dev/null | wc -l)
    got=$(pf_sink_count)
    if [[ $queued -eq 0 && $h -eq $hold && $m -eq $maildrop &&
      $got -ge $want ]]; then
      break
    fi
    # The sink never loses a message: more than N is a failure already.
    if [[ $got -gt $want ]]; then
      sleep 0.5
      got=$(pf_sink_count)
      break
    fi
    if ((SECONDS >= end)); then
      pf_log "after ${PF_TIMEOUT}s: $got message(s) at the sink (want" \
        "$want), $queued in the queue, $h on hold (want $hold), $m in" \
        "the maildrop (want $maildrop)"
      postqueue -c "$PF_CONF" -p >&2 || true
      return 1
    fi
    sleep 0.1
  done
  if [[ $got -ne $want ]]; then
    pf_log "the sink holds $got message(s), want exactly $want"
    return 1
  fi
  pf_log "the sink holds exactly $want message(s); $hold on hold," \
    "$maildrop in the maildrop, nothing else queued"
}

# pf_sink_grep PATTERN: how many captured messages contain a line matching
# the extended regular expression PATTERN.
pf_sink_grep() {
  local files
  mapfile -t files < <(pf_sink_files)
  [[ ${#files[@]} -gt 0 ]] || {
    echo 0
    return 0
  }
  grep -l -E -- "$1" "${files[@]}" | grep -c . || true
}

# pf_expect NAME WANT GOT: fails the test unless WANT equals GOT.
pf_expect() {
  if [[ $2 != "$3" ]]; then
    pf_log "$1: want '$2', got '$3'"
    exit 1
  fi
  pf_log "ok: $1 = '$3'"
}

# pf_system_queue_snapshot: the files in the system's Postfix queue (none
# of the tests may add any).
pf_system_queue_snapshot() {
  find /var/spool/postfix/{maildrop,incoming,active,deferred,hold} \
    -type f 2>/dev/null | sort || true
}

# pf_test_user NAME: makes sure the non-root system user NAME exists (for
# local submissions) and prints its uid.
pf_test_user() {
  local name=$1
  if ! id -u "$name" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "$name" ||
      pf_die "cannot create the test user $name"
  fi
  id -u "$name"
}

# pf_sendmail_as USER SENDMAIL-ARG...: runs /usr/sbin/sendmail as USER
# (standard input: the message) against the private instance. Postfix's
# sendmail hands the message to the set-gid postdrop, which reads only the
# default configuration directory: so the command runs in a mount namespace
# of its own where $PF_CONF is bind-mounted over /etc/postfix, and postdrop
# writes into the private maildrop. The system's /etc/postfix is untouched
# outside that namespace.
pf_sendmail_as() {
  local user=$1 uid gid
  shift
  uid=$(id -u "$user") && gid=$(id -g "$user") || return 1
  # The inner script's variables are its own: single quotes are meant.
  # shellcheck disable=SC2016
  unshare --mount --propagation private -- /bin/sh -c '
    conf=$1 uid=$2 gid=$3
    shift 3
    mount --bind "$conf" /etc/postfix || exit 1
    exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/ \
      setpriv --reuid="$uid" --regid="$gid" --clear-groups -- \
      /usr/sbin/sendmail "$@"' sh "$PF_CONF" "$uid" "$gid" "$@"
}

# pf_daemon_start LOG COMMAND...: starts a daemon of the project in the
# foreground (its own --foreground), in the background of this shell, with
# its output in LOG, and waits until it logs "ready:". Sets PF_DAEMON_PID.
# Fails (showing LOG) when the daemon exits first or the wait times out.
pf_daemon_start() {
  local log=$1 end name
  shift
  name=$(basename "$1")
  : >"$log"
  "$@" >>"$log" 2>&1 &
  PF_DAEMON_PID=$!
  pf_track "$PF_DAEMON_PID"
  end=$((SECONDS + PF_TIMEOUT))
  until grep -q ' ready: ' "$log"; do
    if ! kill -0 "$PF_DAEMON_PID" 2>/dev/null; then
      cat "$log" >&2
      pf_die "$name exited before it was ready"
    fi
    if ((SECONDS >= end)); then
      cat "$log" >&2
      pf_die "$name was not ready within ${PF_TIMEOUT}s"
    fi
    sleep 0.05
  done
  pf_log "started $name (pid $PF_DAEMON_PID): $(grep -m1 ' ready: ' "$log")"
}

# pf_daemon_stop PID: SIGTERM, and waits until the daemon has exited (it
# saves its state on the way out); fails unless it exits with status 0.
pf_daemon_stop() {
  local pid=$1 end rc=0
  kill -TERM "$pid" || pf_die "cannot signal pid $pid"
  end=$((SECONDS + PF_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    ((SECONDS < end)) || pf_die "pid $pid still runs ${PF_TIMEOUT}s after SIGTERM"
    sleep 0.05
  done
  wait "$pid" || rc=$?
  pf_untrack "$pid"
  [[ $rc -eq 0 ]] || pf_die "pid $pid exited with status $rc after SIGTERM"
  pf_log "pid $pid stopped on SIGTERM (exit status 0)"
}

# pf_send ARGS...: runs the SMTP client (lib/smtpclient.py) against the
# private smtpd; prints its lines, one per message.
pf_send() {
  python3 "$PF_LIB/smtpclient.py" --port "$PF_SMTPD_PORT" "$@" ||
    pf_die "the SMTP client failed: smtpclient.py $*"
}

# pf_stages LINES: the stage words of the client's lines, space-separated
# ("accepted accepted data").
pf_stages() {
  awk '{printf "%s%s", sep, $2; sep=" "}' <<<"$1"
}

# pf_repeat WORD N: WORD N times, space-separated.
pf_repeat() {
  local i out=""
  for ((i = 0; i < $2; i++)); do
    out+="${out:+ }$1"
  done
  printf '%s' "$out"
}

# pf_find_program BUILD_DIR NAME SUBDIR: the path of a program of the
# project's build, in BUILD_DIR/examples (where the daemons are put) or
# BUILD_DIR/examples/SUBDIR (CMake's default place); fails if neither.
pf_find_program() {
  local dir
  for dir in "$1/examples" "$1/examples/$3"; do
    if [[ -f $dir/$2 && -x $dir/$2 ]]; then
      printf '%s\n' "$dir/$2"
      return 0
    fi
  done
  pf_log "no $2 in $1/examples or $1/examples/$3: build the examples first"
  return 1
}
