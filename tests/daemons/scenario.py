# SPDX-License-Identifier: MIT
"""What the scenario tests of the daemons share (policyd_test.py,
milter_test.py, slow_clients.py, and the scripts that talk to a control
socket or the metrics endpoint): the failure of a check, an exact
comparison, the plural of a count, one request and its whole answer, the
texts and configurations of the scenarios both daemons run, and the runner
of named scenarios.

A scenario is a function sc_NAME(tmp) (scenario_NAME in milter_test.py) whose first docstring line says what
it checks; it runs in a temporary directory of its own, where the daemons
it starts write their logs (*.log), and raises on the first check that
does not hold."""

import os
import re
import shlex
import socket
import subprocess
import tempfile
import threading
import time
import traceback


class Failure(Exception):
    """A check that did not hold."""


def expect(got, want, what=""):
    if got != want:
        raise Failure(f"{what}: got {got!r}, expected {want!r}")


def counted(n, unit="recipient"):
    return f"{n} {unit}{'' if n == 1 else 's'}"


def over_recipients_limit(kind, name, limit):
    """The refusal of a message with more recipients than the hourly limit
    of kind name, as both daemons word it (the policy server after
    "action=")."""
    return (f"451 4.7.1 {kind} {name} cannot send this message: it has more "
            f"recipients than its limit of {counted(limit)} per hour")


def forward_list_configs(config, list_address):
    """The configurations of the scenarios forwards_reload, which reload
    from one to the next: config with the domain fwd.example and neither a
    forward nor a list (plain), with the forward sales@fwd.example
    (forwards), with the list list_address (lists), and with both
    (marked)."""
    plain = config + "domain fwd.example subscription=acme\n"
    forwards = plain + "forward sales@fwd.example remote\n"
    listed = f"list {list_address}\n"
    return plain, forwards, plain + listed, forwards + listed


def exchange(where, data, timeout=10.0):
    """Sends data on a connection of its own to where (the path of a Unix
    socket, or a (host, port) pair) and returns all the peer sent until it
    closed the connection."""
    family = socket.AF_UNIX if isinstance(where, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(where)
        s.sendall(data)
        with s.makefile("rb") as answer:
            return answer.read()


def recv_or_reset(sock, size=65536):
    """What sock gives: b"" at its end, and when the peer reset it."""
    try:
        return sock.recv(size)
    except ConnectionResetError:
        return b""


def check_answer(where, request, want, timeout=10.0):
    """Asserts the whole answer of where to one request, as text."""
    got = exchange(where, request, timeout).decode()
    if got != want:
        raise Failure(f"{request!r}: {got!r} != {want!r}")


def same_minute(room):
    """Waits, when needed, so that the next `room` seconds stay within one
    clock minute: a refusal then says "try again in 60 minutes" exactly."""
    sec = time.time() % 60
    if sec > 60 - room:
        time.sleep(60 - sec + 0.2)


def free_port():
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, probe, timeout=10.0, interval=0.05):
    """The first true value of probe(), asked every interval seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = probe()
        if got:
            return got
        time.sleep(interval)
    raise Failure(f"timed out waiting for {what}")


def policy_request(login, instance=None):
    """A policy request at DATA from login, with an instance of its own
    unless one is given."""
    attrs = {"request": "smtpd_access_policy", "protocol_state": "DATA",
             "protocol_name": "ESMTP", "client_address": "203.0.113.5",
             "sasl_username": login, "sender": login, "recipient_count": "1",
             "instance": instance or f"i{time.monotonic_ns()}"}
    return "".join(f"{k}={v}\n" for k, v in attrs.items()).encode() + b"\n"


def read_policy_answer(s):
    """The answer on s without its empty line, or None when the server
    closed (or reset) the connection without one."""
    data = b""
    while not data.endswith(b"\n\n"):
        chunk = recv_or_reset(s, 4096)
        if not chunk:
            if data:
                raise Failure(f"connection closed inside an answer: {data!r}")
            return None
        data += chunk
    return data.decode().strip()


def ask_policy(port, login, timeout=10.0):
    """One policy_request on a connection of its own; returns the action
    line ("" when the connection closed unanswered)."""
    with socket.create_connection(("127.0.0.1", port), timeout) as s:
        s.sendall(policy_request(login))
        return read_policy_answer(s) or ""


class PolicyLoad:
    """Connections that each send one DATA request after another, as
    Postfix's smtpd processes do, and time each one: the longest wait,
    the answers by their first word, the requests closed unanswered (the
    connection is then opened again), per tenth of a second. check, when
    given, is called with each answer: what it raises ends that
    connection, and finish() reports it."""

    def __init__(self, port, conns, login=lambda i: f"m{i}@acme.example",
                 total=None, go=None, check=None, timeout=20.0):
        self.port = port
        self.check = check
        self.timeout = timeout
        self.go = go
        self.login = login
        self.total = total
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sent = 0
        self.answers = {}
        self.unanswered = 0
        self.longest = 0.0
        self.longest_at = 0.0
        self.times = []  # (when answered or closed, answered)
        self.errors = []
        self.threads = [threading.Thread(target=self.run, args=(i,))
                        for i in range(conns)]
        for t in self.threads:
            t.start()

    def take(self):
        with self.lock:
            if self.total is not None and self.sent >= self.total:
                return False
            self.sent += 1
            return True

    def run(self, i):
        s = None
        try:
            if self.go is not None:
                s = socket.create_connection(("127.0.0.1", self.port),
                                             self.timeout)
                self.go.wait(self.timeout)
            while not self.stop.is_set() and self.take():
                if s is None:
                    s = socket.create_connection(("127.0.0.1", self.port),
                                                 self.timeout)
                t0 = time.monotonic()
                s.sendall(policy_request(self.login(i)))
                a = read_policy_answer(s)
                t1 = time.monotonic()
                with self.lock:
                    if t1 - t0 > self.longest:
                        self.longest, self.longest_at = t1 - t0, t0
                    self.times.append((t1, a is not None))
                    if a is None:
                        self.unanswered += 1
                    else:
                        word = a.split()[0]
                        self.answers[word] = self.answers.get(word, 0) + 1
                if a is None:
                    s.close()
                    s = None
                elif self.check:
                    self.check(a)
        except BaseException as e:  # reported by finish()
            self.errors.append(repr(e))
        finally:
            if s is not None:
                s.close()

    def answered(self):
        with self.lock:
            return sum(self.answers.values())

    def count(self):
        with self.lock:
            return sum(self.answers.values()) + self.unanswered

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(self.timeout)
        if self.errors:
            raise Failure(f"load: {self.errors[0]}")


def http_get(port, path="/metrics", timeout=10.0):
    """The whole answer of 127.0.0.1:port to GET path over HTTP/1.0."""
    return exchange(("127.0.0.1", port),
                    f"GET {path} HTTP/1.0\r\n\r\n".encode(), timeout)


def mailer(tmp):
    """A --notify-command that keeps each mail it is given in a file of its
    own: returns the directory of the mails and the command."""
    mails = os.path.join(tmp, "mails")
    os.makedirs(mails)
    cmd = os.path.join(tmp, "mailer.sh")
    with open(cmd, "w") as f:
        f.write("#!/bin/sh\ncat > \"$1/mail.$$\"\n")
    os.chmod(cmd, 0o755)
    return mails, f"{cmd} {mails}"


def mails_in(directory):
    """The texts of the mails that mailer() kept, in no particular order."""
    texts = []
    for name in os.listdir(directory):
        with open(os.path.join(directory, name)) as f:
            texts.append(f.read())
    return texts


def expect_notice_commands(mail, control, kind, name, log_path):
    """The obspamctl commands a notice mail suggests reach the daemon of
    the control socket, and its grep command finds one line in the
    daemon's log at log_path: returns the command and the line."""
    expect(re.findall(r"^    obspamctl.*$", mail, re.M),
           [f"    obspamctl --control {control} status {kind} {name}",
            f"    obspamctl --control {control} report --since 24h"],
           "obspamctl commands")
    grep = re.search(r"^    (grep -iE .*)$", mail, re.M).group(1)
    found = subprocess.run(f"{grep} {shlex.quote(log_path)}", shell=True,
                           capture_output=True, text=True)
    lines = found.stdout.splitlines()
    expect(len(lines), 1, f"lines {grep} finds")
    return grep, lines[0]


def scenarios_of(namespace, prefix="sc_"):
    """The scenarios of a module, by name: its functions PREFIX + NAME."""
    return {name[len(prefix):]: fn for name, fn in namespace.items()
            if name.startswith(prefix)}


def list_scenarios(scenarios):
    for name, fn in scenarios.items():
        print(f"{name:16} {fn.__doc__.splitlines()[0]}")


def run(scenarios, names, prefix):
    """Runs the named scenarios, each in a fresh temporary directory whose
    name starts with prefix, and prints "ok" or "FAIL" for each; a failure
    also prints its traceback and the end of each log the scenario left.
    Returns 2 for an unknown name, 1 when any failed, else 0."""
    failed = 0
    for name in names:
        if name not in scenarios:
            print(f"unknown scenario {name!r}; see --list", flush=True)
            return 2
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            start = time.monotonic()
            try:
                scenarios[name](tmp)
                print(f"ok   {name} ({time.monotonic() - start:.1f} s)",
                      flush=True)
            except Exception:  # noqa: BLE001 - reported, then the next one
                failed += 1
                print(f"FAIL {name}")
                traceback.print_exc()
                for log in sorted(os.listdir(tmp)):
                    if log.endswith(".log"):
                        print(f"--- {log}:")
                        with open(os.path.join(tmp, log),
                                  errors="replace") as f:
                            print(f.read()[-4000:])
    return 1 if failed else 0
