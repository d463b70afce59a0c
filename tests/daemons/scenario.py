# SPDX-License-Identifier: MIT
"""What the scenario tests of the daemons share (policyd_test.py,
milter_test.py, slow_clients.py, and the scripts that talk to a control
socket or the metrics endpoint): the failure of a check, an exact
comparison, the plural of a count, one request and its whole answer, and
the runner of named scenarios.

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
import time
import traceback


class Failure(Exception):
    """A check that did not hold."""


def expect(got, want, what=""):
    if got != want:
        raise Failure(f"{what}: got {got!r}, expected {want!r}")


def counted(n, unit="recipient"):
    return f"{n} {unit}{'' if n == 1 else 's'}"


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
