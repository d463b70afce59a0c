#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Integration tests of obspam-policyd: the real daemon over real sockets.

    tests/daemons/policyd_test.py BUILD_DIR SCENARIO...
    tests/daemons/policyd_test.py BUILD_DIR --list

Each scenario starts its own daemons (BUILD_DIR/examples/obspam-policyd)
on free ports of 127.0.0.1 and sockets in a temporary directory, talks the
Postfix policy protocol to them, asserts exact answers, and stops every
process it started. Exit status 0 when every scenario passed.
"""

import grp
import json
import os
import re
import resource
import selectors
import signal
import socket
import stat
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from as_user import NOBODY, as_nobody  # noqa: E402
import scenario  # noqa: E402
from scenario import Failure, counted, expect  # noqa: E402,F401

BUILD = None
DAEMON = None
TIMEOUT = 10  # seconds for any single wait

CONFIG = """\
action defer
default mailbox=100 domain=1000 subscription=5000
subscription acme subscription=5000 contact=ops@acme.example
domain acme.example subscription=acme domain=5000
mailbox small@acme.example limit=3
mailbox tiny@acme.example limit=1
mailbox bulk@acme.example limit=150
mailbox crowd@acme.example limit=1000
whitelist 192.0.2.0/24
"""

CLIENT = "203.0.113.9"


def defer_text(kind, name, count, limit, minutes=60):
    """The text in recipients, the default unit."""
    return (f"action=451 4.7.1 {kind} {name} has sent to {counted(count)} "
            f"in the last 60 minutes, its limit is {counted(limit)} per "
            f"hour; try again in {minutes} "
            f"minute{'' if minutes == 1 else 's'}")


def reject_text(kind, name, count, limit):
    """A permanent refusal: no retry hint."""
    return (f"action=550 5.7.1 {kind} {name} has sent to {counted(count)} "
            f"in the last 60 minutes, its limit is {counted(limit)} per "
            f"hour")


DUNNO = "action=DUNNO"


def same_minute(room=5):
    scenario.same_minute(room)


class Daemon:
    """One obspam-policyd in the foreground, its log in a file."""

    def __init__(self, tmp, config_text=CONFIG, args=(), name="d", state=True,
                 control=False, wait=True, unix=True, preexec=None, env=None):
        self.tmp = tmp
        self.config = os.path.join(tmp, f"{name}.conf")
        # OBSPAM_TEST_STORE=redis://...: the same scenario with the
        # counters in that Redis, under a prefix of its own, so that each
        # decision goes through the loop's asynchronous path
        # (tests/redis/run.sh runs a few scenarios so).
        store = os.environ.get("OBSPAM_TEST_STORE")
        if config_text is not None and store:
            config_text = (f"store {store}\nstore-prefix "
                           f"t{os.getpid()}-{time.monotonic_ns()}:\n"
                           + config_text)
        if config_text is not None:
            with open(self.config, "w") as f:
                f.write(config_text)
        self.log_path = os.path.join(tmp, f"{name}.log")
        self.unix = os.path.join(tmp, f"{name}.sock") if unix else None
        self.state = os.path.join(tmp, f"{name}.state") if state else None
        self.control = os.path.join(tmp, f"{name}.control") if control else None
        cmd = [DAEMON, "--foreground", "--config", self.config,
               "--listen", "inet:127.0.0.1:0"]
        if self.unix:
            cmd += ["--listen", "unix:" + self.unix]
        if self.state:
            cmd += ["--state", self.state]
        if self.control:
            cmd += ["--control", "unix:" + self.control]
        cmd += list(args)
        self.cmd = cmd
        self.logf = open(self.log_path, "ab")
        # A daemon restarted under the same name appends to the same log:
        # only what this one writes counts.
        self.offset = self.logf.tell()
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=self.logf,
                                     stdin=subprocess.DEVNULL,
                                     preexec_fn=preexec, env=env)
        self.port = None
        if wait:
            self.wait_ready()

    def log(self):
        with open(self.log_path, "rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace")

    def wait_log(self, pattern, timeout=TIMEOUT, count=1):
        """Waits until pattern (a regex) matches count times in the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.findall(pattern, self.log(), re.M)
            if len(found) >= count:
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise Failure(f"no log line /{pattern}/ (x{count}); log:\n{self.log()}")

    def wait_ready(self):
        m = self.wait_log(r"ready: listening on inet:127\.0\.0\.1:(\d+)")
        self.port = int(m[-1])

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Failure(f"the daemon did not stop on {sig!r}")
        self.logf.close()
        # A sanitizer build reports into the log.
        if re.search(r"Sanitizer|runtime error: ", self.log()):
            raise Failure(f"sanitizer report:\n{self.log()}")
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.logf.closed:
            self.logf.close()

    def client(self, unix=False):
        return Client(self.unix if unix else ("127.0.0.1", self.port))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        # A scenario that stopped the daemon itself (to check its exit
        # status) finds stop() answering at once here.
        try:
            self.stop()
        finally:
            self.kill()
        return False


class Client:
    """A policy client: one connection, one request at a time."""

    def __init__(self, where):
        if isinstance(where, str):
            family = socket.AF_UNIX
        elif ":" in where[0]:
            family = socket.AF_INET6
        else:
            family = socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(where)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def read_answer(self):
        """One answer: its lines before the empty line, joined."""
        while b"\n\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Failure(f"connection closed; unread {self.buf!r}")
            self.buf += chunk
        answer, self.buf = self.buf.split(b"\n\n", 1)
        return answer.decode()

    def request(self, **attrs):
        self.send(encode(**attrs))
        return self.read_answer()

    def expect_closed(self, what):
        """The server must close the connection without a byte."""
        try:
            data = scenario.recv_or_reset(self.sock)
        except socket.timeout:
            raise Failure(f"{what}: the connection stayed open")
        expect(self.buf + data, b"", f"{what}: bytes before the close")


def encode(**attrs):
    attrs.setdefault("request", "smtpd_access_policy")
    return ("".join(f"{k}={v}\n" for k, v in attrs.items()) + "\n").encode()


def data_req(who, count=1, state="DATA", client=CLIENT, **more):
    attrs = dict(protocol_state=state, protocol_name="ESMTP",
                 client_address=client, sasl_username=who, sender=who,
                 recipient_count=count)
    attrs.update(more)
    return attrs


def rcpt_req(who, client=CLIENT):
    return dict(protocol_state="RCPT", protocol_name="ESMTP",
                client_address=client, sasl_username=who, sender=who,
                recipient="someone@example.org", recipient_count=0)


# ---- scenarios ----------------------------------------------------------


def sc_tcp(tmp):
    """Accept, then refuse with the exact defer text, over TCP; recipients
    are counted."""
    # Every refusal logged whole, to check the fields of each line (the
    # lines of a flood: refusal_flood).
    with Daemon(tmp, args=["--refusal-log-interval", "0"]) as d:
        same_minute()
        c = d.client()
        expect(c.request(**data_req("small@acme.example", 2)), DUNNO, "2 of 3")
        expect(c.request(**data_req("small@acme.example", 2)),
               defer_text("mailbox", "small@acme.example", 2, 3),
               "2 more do not fit")
        expect(c.request(**data_req("small@acme.example", 1)), DUNNO, "3 of 3")
        expect(c.request(**data_req("Small@ACME.example", 1)),
               defer_text("mailbox", "small@acme.example", 3, 3), "full")
        d.wait_log(r"refuse kind=mailbox object=small@acme\.example limit=3 "
                   r"count=3 unit=recipients retry=\d+ queue_id=- "
                   r"sasl=Small@ACME\.example "
                   r"sender=Small@ACME\.example client=203\.0\.113\.9 "
                   r"recipients=1 window=hour$")
        # Postfix's queue_id goes into the refusal line, as postfwd logs
        # it.
        expect(c.request(**data_req("small@acme.example", 1,
                                    queue_id="4FgH2x1Kz9")),
               defer_text("mailbox", "small@acme.example", 3, 3), "full")
        d.wait_log(r"refuse kind=mailbox object=small@acme\.example limit=3 "
                   r"count=3 unit=recipients retry=\d+ queue_id=4FgH2x1Kz9 "
                   r"sasl=small@acme\.example ")
        expect(d.stop(), 0, "exit status")


def sc_unix(tmp):
    """The same over a Unix socket; its mode is 0660 and its group postfix
    (when that group exists), or --socket-mode."""
    with Daemon(tmp) as d:
        same_minute()
        st = os.stat(d.unix)
        expect(oct(stat.S_IMODE(st.st_mode)), oct(0o660), "socket mode")
        try:
            expect(st.st_gid, grp.getgrnam("postfix").gr_gid, "socket group")
        except KeyError:
            pass  # no Postfix here: the group is the daemon's
        # No TCP warning for a Unix socket; one for the TCP listener.
        expect(len(re.findall(r"over TCP", d.log())), 1, "TCP warnings")
        c = d.client(unix=True)
        for i in range(3):
            expect(c.request(**data_req("small@acme.example")), DUNNO, f"#{i}")
        expect(c.request(**data_req("small@acme.example")),
               defer_text("mailbox", "small@acme.example", 3, 3), "refused")
        # The TCP listener shares the counters.
        expect(d.client().request(**data_req("small@acme.example")),
               defer_text("mailbox", "small@acme.example", 3, 3), "over TCP")
        expect(d.stop(), 0, "exit status")
        if os.path.exists(d.unix):
            raise Failure("the socket file is left behind after exit")
    with Daemon(tmp, name="m", args=["--socket-mode", "0600"]) as d:
        expect(oct(stat.S_IMODE(os.stat(d.unix).st_mode)), oct(0o600),
               "--socket-mode 0600")


def sc_reject(tmp):
    """action reject: 550 5.7.1."""
    with Daemon(tmp, CONFIG.replace("action defer", "action reject")) as d:
        same_minute()
        c = d.client()
        expect(c.request(**data_req("tiny@acme.example")), DUNNO, "1 of 1")
        expect(c.request(**data_req("tiny@acme.example")),
               reject_text("mailbox", "tiny@acme.example", 1, 1), "rejected")
        expect(c.request(**rcpt_req("tiny@acme.example")),
               reject_text("mailbox", "tiny@acme.example", 1, 1),
               "rejected at RCPT")


def sc_unit(tmp):
    """count messages: one message to 2 recipients is 1 message, in the
    reply and the log line."""
    with Daemon(tmp, "count messages\n" + CONFIG) as d:
        same_minute()
        c = d.client()
        expect(c.request(**data_req("tiny@acme.example", 2)), DUNNO,
               "1 message of 1, to 2 recipients")
        expect(c.request(**data_req("tiny@acme.example", 2)),
               "action=451 4.7.1 mailbox tiny@acme.example has sent 1 "
               "message in the last 60 minutes, its limit is 1 message per "
               "hour; try again in 60 minutes", "the second message")
        d.wait_log(r"refuse kind=mailbox object=tiny@acme\.example limit=1 "
                   r"count=1 unit=messages retry=\d+ queue_id=- ")


def sc_rcpt(tmp):
    """RCPT refuses early a sender at its limit and never charges."""
    # Every refusal logged whole: the lines count the refusals.
    with Daemon(tmp, args=["--refusal-log-interval", "0"]) as d:
        same_minute(10)
        c = d.client()
        for i in range(10):
            expect(c.request(**rcpt_req("small@acme.example")), DUNNO,
                   f"RCPT {i} before any message")
        expect(c.request(**data_req("small@acme.example", 2)), DUNNO, "2 of 3")
        # One more recipient fits: RCPT lets it through, though a message
        # to two would not.
        expect(c.request(**rcpt_req("small@acme.example")), DUNNO, "RCPT 2/3")
        expect(c.request(**data_req("small@acme.example", 2)),
               defer_text("mailbox", "small@acme.example", 2, 3),
               "DATA with 2 more")
        expect(c.request(**data_req("small@acme.example", 1)), DUNNO, "3 of 3")
        for i in range(20):
            expect(c.request(**rcpt_req("small@acme.example")),
                   defer_text("mailbox", "small@acme.example", 3, 3),
                   f"RCPT {i} at the limit")
        # Twenty refusals later the count is still 3.
        expect(c.request(**data_req("small@acme.example", 1)),
               defer_text("mailbox", "small@acme.example", 3, 3),
               "DATA after the RCPT refusals")
        d.wait_log(r"^.*refuse kind=mailbox object=small@acme\.example.*$",
                   count=22)


def sc_refusal_flood(tmp):
    """A flood of refusals of one mailbox is logged as its first refusal,
    at once, then one line with the count of the others at the end of the
    interval (--refusal-log-interval 2), with the queue ID of the first
    of them; an interval without a refusal ends it, and the next refusal
    is logged whole again."""
    d = Daemon(tmp, args=["--refusal-log-interval", "2"])
    name = r"refuse kind=mailbox object=tiny@acme\.example "
    try:
        same_minute(15)
        c = d.client()
        expect(c.request(**data_req("tiny@acme.example", queue_id="Q0")),
               DUNNO, "1 of 1")
        c.send(b"".join(encode(**data_req("tiny@acme.example",
                                          queue_id=f"Q{i}"))
                        for i in range(1, 51)))
        answers = [c.read_answer() for _ in range(50)]
        expect(answers,
               [defer_text("mailbox", "tiny@acme.example", 1, 1)] * 50,
               "50 refusals")
        first = d.wait_log(r"^.*" + name + r".*$")
        m = re.search(r"refuse kind=.*$", first[0])
        expect(re.sub(r"retry=\d+ ", "retry=N ", m.group(0)),
               "refuse kind=mailbox object=tiny@acme.example limit=1 count=1 "
               "unit=recipients retry=N queue_id=Q1 "
               "sasl=tiny@acme.example sender=tiny@acme.example "
               f"client={CLIENT} recipients=1 window=hour",
               "the first refusal, whole")
        lines = d.wait_log(r"^.*" + name + r"more=.*$", timeout=10)
        expect(re.search(r"refuse kind=.*$", lines[0]).group(0),
               "refuse kind=mailbox object=tiny@acme.example more=49 "
               "seconds=2 first_queue_id=Q2", "the count of the others")
        # The next interval has no refusal: the episode ends, silently.
        time.sleep(2.5)
        expect(len(re.findall(r"^.*" + name, d.log(), re.M)), 2,
               "lines after a quiet interval")
        expect(c.request(**data_req("tiny@acme.example", queue_id="Q51")),
               defer_text("mailbox", "tiny@acme.example", 1, 1), "again")
        lines = d.wait_log(r"^.*" + name + r".*queue_id=Q51 .*$")
        expect(d.stop(), 0, "exit status")
        expect(len(re.findall(r"^.*" + name, d.log(), re.M)), 3,
               "refusal lines in all")
    finally:
        d.kill()


def bad_from(where, data, source=None):
    """Sends data on a connection of its own, from the address source when
    given, and asserts that it is closed unanswered."""
    family = socket.AF_UNIX if isinstance(where, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT)
        if source is not None:
            s.bind((source, 0))
        s.connect(where)
        s.sendall(data)
        expect(scenario.recv_or_reset(s), b"", "a bad request's answer")


def sc_bad_request_flood(tmp):
    """A flood of bad requests is logged as the first of each client (its
    address, or its uid on a unix: socket), at once, then as one line per
    client with the count of the others at the end of the interval
    (--refusal-log-interval 2); an interval without one ends the episode,
    and the client's next bad request is logged whole again."""
    d = Daemon(tmp, args=["--refusal-log-interval", "2"])
    tcp = ("127.0.0.1", d.port)
    garbage = b"garbage\n\n"
    uid_over_tcp = encode(protocol_state="END-OF-MESSAGE", sender="x@y.example",
                          recipient_count=1, obspam_uid=10001)
    whole = (r"^.*warning: bad policy request from {}: line 1: 'garbage' is "
             r"not NAME=VALUE; closing without an answer$")
    more = r"^.*warning: (\d+) more bad requests from {} in the last 2 s$"
    try:
        for _ in range(150):
            bad_from(tcp, garbage)
        for _ in range(50):
            bad_from(tcp, uid_over_tcp)
        for _ in range(100):
            bad_from(d.unix, garbage)
        bad_from(tcp, garbage, source="127.0.0.2")
        uid = f"uid {os.getuid()}"
        expect(d.wait_log(more.format(r"127\.0\.0\.1"), timeout=10), ["199"],
               "the count of 127.0.0.1's others")
        expect(d.wait_log(more.format(uid), timeout=10), ["99"],
               f"the count of {uid}'s others")
        log = d.log()
        expect(len(re.findall(whole.format(r"127\.0\.0\.1:\d+"), log, re.M)),
               1, "127.0.0.1's first, whole")
        expect(len(re.findall(whole.format(r"unix:\S+"), log, re.M)), 1,
               "the unix: socket's first, whole")
        expect(len(re.findall(whole.format(r"127\.0\.0\.2:\d+"), log, re.M)),
               1, "127.0.0.2's one, whole")
        expect(len(re.findall(r"submitter's uid", log)), 0,
               "obspam_uid over TCP, after a bad request: counted")
        expect(len(re.findall(r"bad (policy )?requests? ", log)), 5,
               "lines in all")
        # The next interval has no bad request: the episode ends, silently.
        time.sleep(2.5)
        expect(len(re.findall(r"bad (policy )?requests? ", d.log())), 5,
               "lines after a quiet interval")
        bad_from(tcp, uid_over_tcp)
        d.wait_log(r"warning: request from 127\.0\.0\.1:\d+ names a "
                   r"submitter's uid \(obspam_uid\), which only an allowed "
                   r"peer of a unix: socket may do; closing without an "
                   r"answer$")
        bad_from(tcp, garbage)
        expect(d.stop(), 0, "exit status")
        # Stopping logs what was counted: the one after it, in the part of
        # an interval it ran (a second, or two on a slow machine).
        expect(re.findall(r"^.*warning: (\d+ more bad requests? from "
                          r"127\.0\.0\.1 in the last) [12] s$", d.log(),
                          re.M),
               ["199 more bad requests from 127.0.0.1 in the last",
                "1 more bad request from 127.0.0.1 in the last"],
               "the counts in all")
    finally:
        d.kill()


def control_ask(path, line):
    """The lines of the answer to one control request."""
    data = scenario.exchange(path, line.encode() + b"\n", TIMEOUT)
    return data.decode().splitlines()


def control_status(path, kind, name):
    """The status record of an object, through the control socket."""
    lines = control_ask(path, f"status {kind} {name}")
    data = lines
    if not lines or lines[0] != "ok" or lines[-1] != "end":
        raise Failure(f"status {kind} {name}: {data!r}")
    return dict(line.split("\t", 1) for line in lines[1:-1])


def sc_rcpt_recorded(tmp):
    """A refusal at RCPT is recorded once per message (Postfix's instance),
    and never charged."""
    with Daemon(tmp, control=True) as d:
        same_minute()
        c = d.client()
        expect(c.request(**data_req("tiny@acme.example", instance="a1")),
               DUNNO, "1 of 1")
        for i in range(5):
            expect(c.request(**rcpt_req("tiny@acme.example"), instance="b2"),
                   defer_text("mailbox", "tiny@acme.example", 1, 1),
                   f"message b2, RCPT {i}")
        for i in range(3):
            expect(c.request(**rcpt_req("tiny@acme.example"), instance="c3"),
                   defer_text("mailbox", "tiny@acme.example", 1, 1),
                   f"message c3, RCPT {i}")
        st = control_status(d.control, "mailbox", "tiny@acme.example")
        expect(st["count"], "1", "RCPT refusals charge nothing")
        expect(st["refused"], "2", "one refusal per message")
        expect(st["refused_total"], "2", "recorded in the history")


CAP_CONFIG = CONFIG + """\
domain capped.example subscription=acme max-recipients=10
mailbox three@capped.example limit=1000 max-recipients=3
subscription scripts uid=10005 max-recipients=2
"""

TOO_MANY = "action=452 4.5.3 Too many recipients"


def sc_rcpt_cap(tmp):
    """The recipients cap at RCPT: the recipient past the cap of the
    charged mailbox (its own, or its domain's for an implicit one) gets
    452 4.5.3, counted per message instance; a complete message over the
    cap is refused whole at DATA."""
    with Daemon(tmp, config_text=CAP_CONFIG, control=True) as d:
        same_minute()
        c = d.client()
        who = "anyone@capped.example"  # implicit: the domain's cap, 10
        for i in range(10):
            expect(c.request(**rcpt_req(who), instance="m1"), DUNNO,
                   f"m1 recipient {i + 1} of 10")
        for i in range(3):
            expect(c.request(**rcpt_req(who), instance="m1"), TOO_MANY,
                   f"m1 recipient {11 + i}")
        expect(c.request(**data_req(who, 10, instance="m1")), DUNNO,
               "m1 sent to 10")
        # The next transaction of the session counts from 0 again.
        for i in range(10):
            expect(c.request(**rcpt_req(who), instance="m2"), DUNNO,
                   f"m2 recipient {i + 1} of 10")
        expect(c.request(**rcpt_req(who), instance="m2"), TOO_MANY,
               "m2 recipient 11")
        # A client that sends DATA for more than the cap anyway: refused
        # whole, whatever the windows.
        expect(c.request(**data_req(who, 11, instance="m2")),
               "action=451 4.7.1 mailbox anyone@capped.example cannot send "
               "this message: it has 11 recipients, its limit is 10 "
               "recipients per message", "m2 with 11 recipients")
        # A declared mailbox with a cap of its own.
        three = "three@capped.example"
        for i in range(3):
            expect(c.request(**rcpt_req(three), instance="m3"), DUNNO,
                   f"m3 recipient {i + 1} of 3")
        expect(c.request(**rcpt_req(three), instance="m3"), TOO_MANY,
               "m3 recipient 4")
        # Another connection (another smtpd) counts its own messages.
        c2 = d.client()
        expect(c2.request(**rcpt_req(three), instance="m4"), DUNNO,
               "m4 recipient 1")
        # No instance, the count sent (Exim's $recipients_count).
        req = rcpt_req(three)
        req["recipient_count"] = 2
        expect(c2.request(**req), DUNNO, "3rd recipient by recipient_count")
        req["recipient_count"] = 3
        expect(c2.request(**req), TOO_MANY, "4th recipient by recipient_count")
        # No cap (acme.example): any number.
        for i in range(50):
            expect(c2.request(**rcpt_req("bulk@acme.example"), instance="m5"),
                   DUNNO, f"m5 recipient {i + 1}")
        # A local SMTP submission by a uid (Exim's exim -bs, on the Unix
        # socket): its subscription's cap.
        u = d.client(unix=True)
        script = dict(protocol_state="RCPT", sender="www@other.example",
                      recipient_count=0, obspam_uid=10005, instance="m6")
        for i in range(2):
            expect(u.request(**script), DUNNO, f"script recipient {i + 1}")
        expect(u.request(**script), TOO_MANY, "script recipient 3")
        # Nothing of this was charged or recorded as a refusal but m2.
        st = control_status(d.control, "mailbox", who)
        expect(st["count"], "10", "m1 was charged")
        expect(st["refused"], "1", "m2 refused whole")
        st = control_status(d.control, "mailbox", three)
        expect(st["count"], "0", "RCPT charges nothing")
        expect(st["refused"], "0", "a 452 is no refusal")


FWD_CONFIG = CONFIG + """\
count-forward-local yes
domain fwd.example subscription=acme mailbox=2
domain catch.example subscription=acme
mailbox real@catch.example
forward sales@fwd.example remote
forward desk@fwd.example local
forward @catch.example remote
list news@acme.example
mailbox news@acme.example limit=1
""" + "".join(f"forward b{i}@fwd.example remote\n" for i in range(8))


def sc_forwards(tmp):
    """Forwards learnt at RCPT per message instance and charged at DATA,
    one message of the forwarding mailbox per forwarding recipient; a
    forwarding mailbox at its limit refused at RCPT; the one recipient
    Postfix names at DATA when the RCPT check is absent; at most 8
    forwarding mailboxes per message; list posts from local clients."""
    with Daemon(tmp, config_text=FWD_CONFIG, control=True) as d:
        same_minute()
        c = d.client()

        def rcpt(rcpt_to, instance, sender="someone@outside.example",
                 client=CLIENT):
            return c.request(protocol_state="RCPT", client_address=client,
                             sender=sender, recipient=rcpt_to,
                             recipient_count=0, instance=instance)

        def data(count, instance, sender="someone@outside.example",
                 client=CLIENT, **more):
            return c.request(protocol_state="DATA", client_address=client,
                             sender=sender, recipient_count=count,
                             instance=instance, **more)

        def count_of(kind, name):
            st = control_status(d.control, kind, name)
            return st["count"], st["refused"]

        # Inbound mail to two forwards and a catch-all address.
        expect(rcpt("sales@fwd.example", "f1"), DUNNO, "f1 sales")
        expect(rcpt("Desk@fwd.example", "f1"), DUNNO, "f1 desk")
        expect(rcpt("ghost@catch.example", "f1"), DUNNO, "f1 ghost")
        expect(rcpt("real@catch.example", "f1"), DUNNO, "f1 real (no forward)")
        expect(count_of("mailbox", "sales@fwd.example"), ("0", "0"),
               "RCPT charges nothing")
        expect(data(4, "f1"), DUNNO, "f1 DATA")
        expect(count_of("mailbox", "sales@fwd.example"), ("1", "0"), "sales")
        expect(count_of("mailbox", "desk@fwd.example"), ("1", "0"), "desk")
        expect(count_of("domain", "catch.example"), ("1", "0"),
               "the catch-all charges the domain")
        expect(count_of("mailbox", "real@catch.example"), ("0", "0"),
               "a declared mailbox is no catch-all forward")
        # The END-OF-MESSAGE of the same message charges nothing again.
        expect(c.request(protocol_state="END-OF-MESSAGE",
                         client_address=CLIENT,
                         sender="someone@outside.example", recipient_count=4,
                         instance="f1"), DUNNO, "f1 END-OF-MESSAGE")
        expect(count_of("mailbox", "sales@fwd.example"), ("1", "0"),
               "charged once")
        # Without the RCPT check: the one recipient named at DATA.
        expect(data(1, "f2", recipient="sales@fwd.example"), DUNNO, "f2")
        expect(count_of("mailbox", "sales@fwd.example"), ("2", "0"),
               "the recipient named at DATA")
        # sales@ is at its limit of 2: its recipient is refused at RCPT,
        # and a DATA that names it is refused whole.
        expect(rcpt("sales@fwd.example", "f3"),
               "action=451 4.7.1 mailbox sales@fwd.example has sent to 2 "
               "recipients in the last 60 minutes, its limit is 2 recipients "
               "per hour; try again in 60 minutes", "f3 sales at its limit")
        expect(data(1, "f4", recipient="sales@fwd.example"),
               "action=451 4.7.1 mailbox sales@fwd.example has sent to 2 "
               "recipients in the last 60 minutes, its limit is 2 recipients "
               "per hour; try again in 60 minutes", "f4 sales at its limit")
        # A logged-in sender's message to desk@ (room for 1) and sales@
        # (full): refused, and the sender is not charged.
        expect(c.request(protocol_state="DATA", client_address=CLIENT,
                         sasl_username="small@acme.example",
                         sender="small@acme.example", recipient_count=1,
                         recipient="sales@fwd.example", instance="f5"),
               "action=451 4.7.1 mailbox sales@fwd.example has sent to 2 "
               "recipients in the last 60 minutes, its limit is 2 recipients "
               "per hour; try again in 60 minutes", "f5 refused")
        expect(count_of("mailbox", "small@acme.example"), ("0", "0"),
               "the sender of a refused forward is not charged")
        expect(count_of("mailbox", "sales@fwd.example"), ("2", "3"),
               "sales@ refusals: f3, f4, f5")
        # At most 8 forwarding mailboxes per message; the catch-all's
        # addresses are one of them (its domain).
        expect(rcpt("u1@catch.example", "f6"), DUNNO, "f6 u1")
        expect(rcpt("u2@catch.example", "f6"), DUNNO, "f6 u2")
        for i in range(7):
            expect(rcpt(f"b{i}@fwd.example", "f6"), DUNNO, f"f6 b{i}")
        expect(rcpt("b7@fwd.example", "f6"), TOO_MANY, "a 9th mailbox")
        expect(rcpt("u3@catch.example", "f6"), DUNNO, "f6 u3")
        expect(data(10, "f6"), DUNNO, "f6 DATA")
        expect(count_of("domain", "catch.example"), ("4", "0"),
               "one message per forwarding recipient")
        expect(count_of("mailbox", "b6@fwd.example"), ("1", "0"), "b6")
        # A list post from a local client is exempt; from elsewhere it is
        # inbound mail, not counted either; from a local client with
        # another sender it is charged.
        expect(data(500, "l1", sender="news-bounces+a=b@acme.example",
                    client="127.0.0.1"), DUNNO, "list post")
        expect(data(500, "l2", sender="tiny@acme.example",
                    client="127.0.0.1"),
               "action=451 4.7.1 mailbox tiny@acme.example cannot send this "
               "message: it has more recipients than its limit of 1 "
               "recipient per hour", "not a list")
        expect(count_of("domain", "acme.example"), ("0", "1"),
               "the list post was not charged (tiny's refusal was counted)")
        expect("mail=forward-remote" in d.log(), True,
               "the refusal log line tells a forward")
        # Reports and status tell forwards and list deliveries apart. A
        # post with the list's own address: exempt, and counted on its
        # declared mailbox; that mailbox over its limit when it logs in
        # from outside (no list post then), so that the report lists it.
        expect(data(3, "l3", sender="news@acme.example", client="127.0.0.1"),
               DUNNO, "list post from the list's address")
        expect(c.request(protocol_state="DATA", client_address=CLIENT,
                         sasl_username="news@acme.example",
                         sender="news@acme.example", recipient_count=2,
                         instance="l4"),
               "action=451 4.7.1 mailbox news@acme.example cannot send this "
               "message: it has more recipients than its limit of 1 "
               "recipient per hour", "news@ over its limit")
        st = control_status(d.control, "subscription", "acme")
        expect((st["count"], st["forwarded"], st["list_deliveries"]),
               ("14", "14", "503"), "acme: forwards and list deliveries")
        st = control_status(d.control, "domain", "acme.example")
        expect((st["count"], st["forwarded"], st["list_deliveries"]),
               ("0", "0", "503"), "acme.example: the list posts")
        st = control_status(d.control, "mailbox", "sales@fwd.example")
        expect((st["count"], st["forwarded"], st["list_deliveries"]),
               ("2", "2", "0"), "sales@: its forwards")
        ctl = os.path.join(BUILD, "examples", "obspamctl", "obspamctl")
        p = subprocess.run([ctl, "--control", d.control, "status", "mailbox",
                            "news@acme.example", "--json"],
                           capture_output=True, text=True, timeout=30)
        expect(p.returncode, 0, "obspamctl status --json")
        got = json.loads(p.stdout)
        expect((got["forwarded"], got["list_deliveries"]), (0, 3),
               "status --json of news@")
        p = subprocess.run([ctl, "--control", d.control, "status", "domain",
                            "acme.example"],
                           capture_output=True, text=True, timeout=30)
        expect(re.findall(r"^  (?:forwarded|mailing lists) .*$", p.stdout,
                          re.M),
               ["  mailing lists  503 in this clock hour"], "status text")
        p = subprocess.run([ctl, "--control", d.control, "report", "--json"],
                           capture_output=True, text=True, timeout=30)
        expect(p.returncode, 0, "obspamctl report --json")
        rows = {r["name"]: (r["sent"], r["forwarded"], r["list_deliveries"],
                            r["exceeded"])
                for r in json.loads(p.stdout)["rows"]}
        expect(rows, {"sales@fwd.example": (2, 2, 0, 3),
                      "tiny@acme.example": (0, 0, 0, 1),
                      "news@acme.example": (0, 0, 3, 1)},
               "report --json: forwards and list deliveries")
        p = subprocess.run([ctl, "--control", d.control, "report"],
                           capture_output=True, text=True, timeout=30)
        table = [re.sub(r"  +(\d{4}-|FIRST REFUSAL).*", "", line) for line in
                 p.stdout.splitlines() if re.match(r"^(KIND|mailbox) ", line)]
        expect(table,
               ["KIND     NAME               SENT  FORWARDED  LISTS  REFUSED"
                "  OVER  LIMIT  WINDOW",
                "mailbox  sales@fwd.example     2          2      0        3"
                "     3      2  hour",
                "mailbox  news@acme.example     0          0      3        1"
                "     1      1  hour",
                "mailbox  tiny@acme.example     0          0      0        1"
                "     1      1  hour"],
               "report: the FORWARDED and LISTS columns")


def sc_envelope_forms(tmp):
    """A sender or recipient in a form Postfix passes on as it came but
    rewrites before it sends the mail (a dot that ends the domain, a bang
    path, the percent hack; a recipient's +extension) is the mailbox
    Postfix sends as or forwards for. Before, a
    local script's "tiny@acme.example." was of no hosted domain and
    counted nowhere, and "sales@fwd.example." was no forward."""
    with Daemon(tmp, config_text=FWD_CONFIG, control=True) as d:
        same_minute()
        c = d.client()
        local = dict(sasl_username="", client="127.0.0.1")
        expect(c.request(**data_req("tiny@acme.example.", **local)), DUNNO,
               "tiny 1 of 1, trailing dot")
        for form in ("acme.example!tiny", "tiny%acme.example",
                     "tiny@acme.example."):
            expect(c.request(**data_req(form, **local)),
                   defer_text("mailbox", "tiny@acme.example", 1, 1), form)
        st = control_status(d.control, "mailbox", "tiny@acme.example")
        expect((st["count"], st["refused"]), ("1", "3"), "tiny@'s counts")

        def rcpt(rcpt_to, instance):
            return c.request(protocol_state="RCPT", client_address=CLIENT,
                             sender="someone@outside.example",
                             recipient=rcpt_to, recipient_count=0,
                             instance=instance)

        for i, form in enumerate(("sales@fwd.example.", "fwd.example!sales")):
            expect(rcpt(form, f"f{i}"), DUNNO, f"RCPT {form}")
            expect(c.request(protocol_state="DATA", client_address=CLIENT,
                             sender="someone@outside.example",
                             recipient_count=1, instance=f"f{i}"), DUNNO,
                   f"forward {i + 1} of 2")
        for i, form in enumerate(("sales%fwd.example", "sales+x@fwd.example")):
            expect(rcpt(form, f"g{i}"),
                   defer_text("mailbox", "sales@fwd.example", 2, 2),
                   f"{form}: a third forward of 2, at RCPT")


def sc_forward_repeated(tmp):
    """A forwarding address named again in one message (RCPT TO twice, or
    in another case) is one recipient, which Postfix delivers once: one
    message of its mailbox, not one per RCPT. Before, one inbound message
    with the address 3 times used up sales@'s limit of 2 and was deferred
    with both charges kept. A catch-all's distinct addresses are still a
    message each."""
    with Daemon(tmp, config_text=FWD_CONFIG, control=True) as d:
        same_minute()
        c = d.client()

        def rcpt(rcpt_to, instance):
            return c.request(protocol_state="RCPT", client_address=CLIENT,
                             sender="someone@outside.example",
                             recipient=rcpt_to, recipient_count=0,
                             instance=instance)

        for rcpt_to in ("sales@fwd.example", "sales@fwd.example",
                        "Sales@FWD.example"):
            expect(rcpt(rcpt_to, "r1"), DUNNO, f"r1 {rcpt_to}")
        expect(rcpt("u1@catch.example", "r1"), DUNNO, "r1 u1")
        expect(rcpt("u2@catch.example", "r1"), DUNNO, "r1 u2")
        expect(c.request(protocol_state="DATA", client_address=CLIENT,
                         sender="someone@outside.example", recipient_count=5,
                         instance="r1"), DUNNO, "r1 DATA")
        st = control_status(d.control, "mailbox", "sales@fwd.example")
        expect((st["count"], st["forwarded"], st["refused"]), ("1", "1", "0"),
               "sales@: one forward")
        st = control_status(d.control, "domain", "catch.example")
        expect((st["count"], st["forwarded"]), ("2", "2"),
               "the catch-all: one per address")
        # The next message to sales@ still fits its limit of 2.
        expect(rcpt("sales@fwd.example", "r2"), DUNNO, "r2 sales")
        expect(rcpt("sales@fwd.example", "r2"), DUNNO, "r2 sales again")
        expect(c.request(protocol_state="DATA", client_address=CLIENT,
                         sender="someone@outside.example", recipient_count=2,
                         instance="r2"), DUNNO, "r2 DATA")
        st = control_status(d.control, "mailbox", "sales@fwd.example")
        expect((st["count"], st["refused"]), ("2", "0"), "sales@: two")


def sc_forwards_reload(tmp):
    """A configuration without forward or list lines has no forward or
    list to look up, and the server does not ask; a reload that declares
    some recognises them from the next request, and one that drops them
    forgets them again."""
    plain, forwards, lists, marked = scenario.forward_list_configs(
        CONFIG, "news@acme.example")
    post_refused = "action=" + scenario.over_recipients_limit(
        "mailbox", "news-bounces@acme.example", 100)
    with Daemon(tmp, config_text=plain, control=True) as d:
        same_minute()
        c = d.client()

        def forward(instance):
            return c.request(protocol_state="DATA", client_address=CLIENT,
                             sender="someone@outside.example",
                             recipient_count=1, recipient="sales@fwd.example",
                             instance=instance)

        def post(instance):
            return c.request(protocol_state="DATA", client_address="127.0.0.1",
                             sender="news-bounces@acme.example",
                             recipient_count=500, instance=instance)

        def fwd_count():
            return control_status(d.control, "domain", "fwd.example")["count"]

        def reload(text, n):
            with open(d.config, "w") as f:
                f.write(text)
            d.send_signal(signal.SIGHUP)
            d.wait_log(r"reload ok path=", count=n)

        expect(forward("r1"), DUNNO, "no forward declared")
        expect(fwd_count(), "0", "inbound mail, not counted")
        expect(post("r2"), post_refused, "no list declared")
        reload(forwards, 1)
        expect(forward("r3"), DUNNO, "a forward now")
        expect(fwd_count(), "1", "the forward charged to its domain")
        expect(post("r4"), post_refused, "still no list declared")
        reload(lists, 2)
        expect(post("r5"), DUNNO, "a list post now, exempt")
        expect(forward("r6"), DUNNO, "no forward any more")
        expect(fwd_count(), "1", "not charged again")
        reload(marked, 3)
        expect(post("r7"), DUNNO, "still a list post")
        expect(forward("r8"), DUNNO, "a forward again")
        expect(fwd_count(), "2", "charged again")
        reload(plain, 4)
        expect(forward("r9"), DUNNO, "no forward any more")
        expect(fwd_count(), "2", "not charged again")
        expect(post("r10"), post_refused, "no list any more")
        expect(d.stop(), 0, "exit status")


def sc_dunno(tmp):
    """Whitelisted, unknown and other stages: DUNNO, nothing charged."""
    with Daemon(tmp) as d:
        same_minute()
        c = d.client()
        for i in range(5):
            expect(c.request(**data_req("tiny@acme.example",
                                        client="192.0.2.77")),
                   DUNNO, f"whitelisted #{i}")
        expect(c.request(**data_req("nobody@elsewhere.example")), DUNNO,
               "unknown sender")
        expect(c.request(**data_req("", client=CLIENT)), DUNNO, "bounce")
        for state in ("CONNECT", "EHLO", "HELO", "MAIL", "VRFY", "ETRN", ""):
            expect(c.request(**data_req("tiny@acme.example", state=state)),
                   DUNNO, f"state {state!r}")
        # "unknown" is no address: decided as a local submission.
        expect(c.request(**data_req("tiny@acme.example", client="unknown")),
               DUNNO, "tiny's first message")
        expect(c.request(**data_req("tiny@acme.example")),
               defer_text("mailbox", "tiny@acme.example", 1, 1),
               "tiny's second message")
        expect(c.request(**data_req("tiny@acme.example",
                                    client="::ffff:192.0.2.5")),
               DUNNO, "whitelisted, IPv4-mapped")


def sc_many(tmp):
    """1,000 requests one after another on one connection, then 200 sent
    at once (pipelined) and answered in order."""
    with Daemon(tmp) as d:
        same_minute(10)
        c = d.client()
        for i in range(1000):
            expect(c.request(**data_req("someone@elsewhere.example")), DUNNO,
                   f"request {i}")
        c.send(b"".join(encode(**data_req("bulk@acme.example"))
                        for _ in range(200)))
        answers = [c.read_answer() for _ in range(200)]
        expect(answers[:150], [DUNNO] * 150, "the first 150")
        expect(answers[150:],
               [defer_text("mailbox", "bulk@acme.example", 150, 150)] * 50,
               "the last 50")
        # Byte by byte works too.
        for b in encode(**data_req("someone@elsewhere.example")):
            c.send(bytes([b]))
        expect(c.read_answer(), DUNNO, "byte by byte")


def sc_slow_reader(tmp):
    """A client that sends 60,000 requests before it reads answers, with a
    small receive buffer, gets every answer in order: the server holds
    back (stops reading) while its answers cannot be written."""
    with Daemon(tmp) as d:
        same_minute(20)
        c = d.client()
        expect(c.request(**data_req("tiny@acme.example")), DUNNO, "1 of 1")
        c.close()
        c = Client.__new__(Client)
        c.buf = b""
        c.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.sock.connect(("127.0.0.1", d.port))
        total = 60000
        out = encode(**rcpt_req("tiny@acme.example")) * total
        refused = defer_text("mailbox", "tiny@acme.example", 1, 1)
        c.sock.setblocking(False)
        sent = 0
        blocked = 0
        deadline = time.monotonic() + 60
        # Send everything first; read only when sending would block.
        while sent < len(out) and time.monotonic() < deadline:
            try:
                sent += c.sock.send(out[sent:sent + 65536])
            except BlockingIOError:
                blocked += 1
                time.sleep(0.001)
                try:
                    c.buf += c.sock.recv(8192)
                except BlockingIOError:
                    pass
        expect(sent, len(out), "bytes sent")
        if blocked == 0:
            raise Failure("sending never blocked: no back pressure tested")
        c.sock.setblocking(True)
        c.sock.settimeout(TIMEOUT)
        answers = [c.read_answer() for _ in range(total)]
        expect(answers.count(refused), total, "answers")
        expect(c.buf, b"", "nothing more")
        print(f"{total} pipelined requests; the send blocked {blocked} times")


def sc_pipeline_deep(tmp):
    """10,000 requests in one write, read as fast as they come: all 10,000
    answered in order (an answer buffer that fills and drains at once must
    not leave the rest of the input unread)."""
    import threading
    with Daemon(tmp, CONFIG + "domain x.io subscription=acme domain=unlimited\n"
                "mailbox t@x.io limit=1000\n") as d:
        same_minute(20)
        c = d.client()
        expect(c.request(**data_req("t@x.io", 1000)), DUNNO, "1000 of 1000")
        total = 10000
        # Short requests with long answers: one read of 4 KiB holds 58
        # requests whose refusals (132 bytes each) are more than the 8 KiB
        # answer buffer takes, so it fills, and drains at once.
        one = (b"request=smtpd_access_policy\nprotocol_state=RCPT\n"
               b"sasl_username=t@x.io\n\n")
        refused = defer_text("mailbox", "t@x.io", 1000, 1000)
        errors = []

        def writer():
            try:
                c.sock.sendall(one * total)
            except OSError as e:
                errors.append(e)

        t = threading.Thread(target=writer)
        start = time.monotonic()
        t.start()
        try:
            answers = [c.read_answer() for _ in range(total)]
        except socket.timeout:
            raise Failure("the answers stopped coming")
        t.join(TIMEOUT)
        expect(errors, [], "the write")
        expect(answers.count(refused), total, "answers")
        expect(c.buf, b"", "nothing more")
        print(f"{total} requests in one write answered in "
              f"{time.monotonic() - start:.2f} s")


MALFORMED = [
    ("no '='", b"request=smtpd_access_policy\nhello\n\n",
     r"line 2: 'hello' is not NAME=VALUE"),
    ("empty name", b"request=smtpd_access_policy\n=x\n\n",
     r"line 2: attribute without a name"),
    ("NUL byte", b"request=smtpd_access_policy\nsender=a\0b\n\n",
     r"line 2: NUL byte"),
    ("no request", b"sender=a@acme.example\n\n",
     r"line 2: the request has no 'request' attribute"),
    ("other request", b"request=other\n\n",
     r"line 2: unsupported request 'other'"),
    ("bad count", b"request=smtpd_access_policy\nrecipient_count=x\n\n",
     r"line 3: bad recipient_count 'x': expected a number up to 2\^31"),
    ("long line", b"request=smtpd_access_policy\nsender=" + b"a" * 5000,
     r"line 2: line is longer than 4096 bytes"),
    ("101 attributes", b"request=smtpd_access_policy\n"
     + b"".join(b"a%d=1\n" % i for i in range(100)) + b"\n",
     r"line 101: more than 100 attributes"),
    ("70 KB request", b"request=smtpd_access_policy\n"
     + b"".join(b"a%02d=" % i + b"v" * 2000 + b"\n" for i in range(35)),
     r"line 34: the request is longer than 65536 bytes"),
]


def sc_malformed(tmp):
    """Each malformed request: logged, no answer, connection closed; a good
    request before it on the same connection was answered; the server goes
    on serving. (--refusal-log-interval 0: each bad request of a client is
    logged whole, not only the first of an interval.)"""
    with Daemon(tmp, args=["--refusal-log-interval", "0"]) as d:
        for i, (what, data, why) in enumerate(MALFORMED):
            c = d.client(unix=i % 2 == 1)
            expect(c.request(**data_req("someone@elsewhere.example")), DUNNO,
                   f"{what}: the good request first")
            c.send(data)
            c.expect_closed(what)
            c.close()
            d.wait_log(r"bad policy request from (127\.0\.0\.1:\d+|unix:\S+):"
                       r" " + why + r"; closing without an answer$")
        expect(d.client().request(**data_req("someone@elsewhere.example")),
               DUNNO, "still serving")


def sc_reload(tmp):
    """SIGHUP reloads (counters kept); a bad file is logged, the running
    configuration kept."""
    with Daemon(tmp) as d:
        same_minute(10)
        c = d.client()

        def expect_reloaded(small, new):
            """The first reload's limits: 2 for small@ (which has sent 2),
            0 for new@."""
            expect(c.request(**rcpt_req("small@acme.example")),
                   defer_text("mailbox", "small@acme.example", 2, 2), small)
            expect(c.request(**data_req("new@acme.example")),
                   "action=451 4.7.1 mailbox new@acme.example cannot send "
                   "this message: its limit is 0", new)

        expect(c.request(**data_req("small@acme.example", 2)), DUNNO, "2 of 3")
        with open(d.config, "w") as f:
            f.write(CONFIG.replace("small@acme.example limit=3",
                                   "small@acme.example limit=2")
                    + "mailbox new@acme.example limit=0\n")
        d.send_signal(signal.SIGHUP)
        d.wait_log(r"reload ok path=")
        expect_reloaded("the new limit with the old count", "a new mailbox")
        with open(d.config, "w") as f:
            f.write(CONFIG + "mailbox broken@acme.example limit=banana\n")
        d.send_signal(signal.SIGHUP)
        d.wait_log(re.escape(d.config) + r":10: bad value 'banana' for "
                   r"'limit'")
        expect_reloaded("the running configuration is kept",
                        "the new mailbox is kept")
        expect(d.stop(), 0, "exit status")


def sc_reload_guard(tmp):
    """An empty file, or one that drops more than half of the objects, is
    refused on SIGHUP and on obspamctl reload (counters and limits kept),
    and loaded by obspamctl reload --force; --check-config warns about an
    empty file."""
    ctl = os.path.join(BUILD, "examples", "obspamctl", "obspamctl")
    with Daemon(tmp, control=True) as d:
        c = d.client()
        expect(c.request(**data_req("small@acme.example", 2)), DUNNO, "2 of 3")
        with open(d.config, "w") as f:
            f.write("# the panel was interrupted here\n")
        d.send_signal(signal.SIGHUP)
        d.wait_log(r"error: reload failed: \S+/d\.conf declares nothing \(it "
                   r"is empty or only comments\): loaded, it would lift every "
                   r"limit; refused \(obspamctl reload --force loads it\)$")
        p = subprocess.run([ctl, "--control", d.control, "reload"],
                           capture_output=True, text=True, timeout=TIMEOUT)
        expect(p.returncode, 1, "obspamctl reload: status")
        expect(p.stderr, f"obspamctl: reload failed: {d.config} declares "
               f"nothing (it is empty or only comments): loaded, it would "
               f"lift every limit; refused (obspamctl reload --force loads "
               f"it)\n", "obspamctl reload: message")
        expect(control_status(d.control, "mailbox", "small@acme.example")
               ["count"], "2", "the counter kept")
        # A cut file: two of the six objects left.
        with open(d.config, "w") as f:
            f.write("".join(CONFIG.splitlines(True)[:4]))
        p = subprocess.run([ctl, "--control", d.control, "reload"],
                           capture_output=True, text=True, timeout=TIMEOUT)
        expect((p.returncode, p.stderr),
               (1, f"obspamctl: reload failed: {d.config} drops 4 of the 6 "
                f"objects of the running configuration (66%), more than the "
                f"50% --reload-max-drop allows; refused (obspamctl reload "
                f"--force loads it)\n"), "a cut file")
        expect(c.request(**data_req("small@acme.example", 2)),
               defer_text("mailbox", "small@acme.example", 2, 3),
               "still limited")
        p = subprocess.run([ctl, "--control", d.control, "reload", "--force"],
                           capture_output=True, text=True, timeout=TIMEOUT)
        expect((p.returncode, p.stdout),
               (0, f"configuration reloaded from {d.config}\n"), "--force")
        d.wait_log(r"reload ok path=\S+/d\.conf \(forced\)$")
        expect(c.request(**data_req("small@acme.example", 2)), DUNNO,
               "small is an implicit mailbox now")
    empty = os.path.join(tmp, "empty.conf")
    with open(empty, "w") as f:
        f.write("\n# nothing\n")
    p = subprocess.run([DAEMON, "--config", empty, "--check-config"],
                       capture_output=True, text=True, timeout=TIMEOUT)
    expect((p.returncode, p.stdout, p.stderr),
           (0, "", f"{empty}: warning: the file declares nothing (it is "
            f"empty or only comments): it limits nothing, and a reload to it "
            f"is refused unless forced\n"), "--check-config of an empty file")


def sc_reload_storm(tmp):
    """Reloads run beside the loop: requests keep being answered through a
    burst of SIGHUPs, and the last file written is the one in force."""
    big = CONFIG + "".join(f"mailbox m{i}@acme.example limit=7\n"
                           for i in range(50000))
    with Daemon(tmp, big) as d:
        c = d.client()
        for i in range(20):
            d.send_signal(signal.SIGHUP)
            for _ in range(20):
                expect(c.request(**rcpt_req("m1@acme.example")), DUNNO,
                       f"during reload burst {i}")
        with open(d.config, "w") as f:
            f.write(big + "mailbox last@acme.example limit=0\n")
        d.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        answer = DUNNO
        while answer == DUNNO and time.monotonic() < deadline:
            answer = c.request(**rcpt_req("last@acme.example"))
            time.sleep(0.02)
        expect(answer, "action=451 4.7.1 mailbox last@acme.example cannot "
               "send this message: its limit is 0", "the last file")
        # The new configuration is in force before its "reload ok" line is
        # written: wait for the line of the last reload.
        deadline = time.monotonic() + 30
        n = len(re.findall(r"reload ok path=", d.log()))
        while n < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
            n = len(re.findall(r"reload ok path=", d.log()))
        print(f"21 SIGHUPs, {n} reloads")
        if not 2 <= n <= 21:
            raise Failure(f"{n} reloads for 21 SIGHUPs")
        expect(d.stop(), 0, "exit status")


def sc_state(tmp):
    """SIGTERM saves the counters; a restart goes on counting; SIGINT
    too."""
    with Daemon(tmp) as d:
        same_minute(10)
        c = d.client()
        for i in range(3):
            expect(c.request(**data_req("small@acme.example")), DUNNO, f"#{i}")
        expect(d.stop(), 0, "exit status on SIGTERM")
        if not os.path.exists(d.state):
            raise Failure("no state file after SIGTERM")
    with Daemon(tmp) as d:
        expect(d.client().request(**data_req("small@acme.example")),
               defer_text("mailbox", "small@acme.example", 3, 3),
               "still refused after a restart")
        expect(d.client().request(**data_req("tiny@acme.example")), DUNNO,
               "tiny 1 of 1")
        expect(d.stop(signal.SIGINT), 0, "exit status on SIGINT")
    with Daemon(tmp) as d:
        expect(d.client().request(**data_req("tiny@acme.example")),
               defer_text("mailbox", "tiny@acme.example", 1, 1),
               "saved on SIGINT")


def sc_stale_temp(tmp):
    """Temporary files of saves killed before their rename (STATE.tmp.
    XXXXXX) are removed at start, with or without a state file, and at
    the next save; other files beside the state file are kept."""
    state = os.path.join(tmp, "d.state")
    left = [state + ".tmp.AbC123", state + ".tmp.z9z9z9"]
    kept = [state + ".tmp.short", state + ".bad-20240501000000",
            os.path.join(tmp, "other.tmp.AbC123")]
    for p in left + kept:
        with open(p, "wb") as f:
            f.write(b"half a save")
    with Daemon(tmp, control=True) as d:  # no state file yet
        expect([p for p in left if os.path.exists(p)], [], "left at start")
        expect([p for p in kept if os.path.exists(p)], kept, "kept")
        # A save killed now leaves one; the next save removes it.
        with open(left[0], "wb") as f:
            f.write(b"half a save")
        expect(control_ask(d.control, "save")[0], "ok", "save")
        expect(os.path.exists(left[0]), False, "left after a save")
        expect(os.path.exists(state), True, "the state file")
        expect([p for p in kept if os.path.exists(p)], kept, "kept")


def sc_stop_save_failed(tmp):
    """SIGTERM whose last save fails exits 1 (the counts since the last
    save are lost), after logging why; a good one exits 0."""
    with Daemon(tmp) as d:
        expect(d.client().request(**data_req("small@acme.example")), DUNNO,
               "a message")
        # A directory where the state file goes: the rename fails.
        os.mkdir(d.state)
        expect(d.stop(), 1, "exit status after a failed save")
        if not re.search(r"error: save failed: state_save: .*d\.state: Is a "
                         r"directory$", d.log(), re.M):
            raise Failure(f"no save failure logged:\n{d.log()}")
        if re.search(r"\bstopped$", d.log(), re.M):
            raise Failure("'stopped' logged after a failed save")
    os.rmdir(d.state)
    with Daemon(tmp, name="e") as d:
        expect(d.stop(), 0, "exit status after a good save")


def sc_save_interval(tmp):
    """--save-interval 1 writes the state while the daemon runs."""
    with Daemon(tmp, args=["--save-interval", "1"]) as d:
        expect(d.client().request(**data_req("tiny@acme.example")), DUNNO,
               "a charge")
        deadline = time.monotonic() + TIMEOUT
        while not os.path.exists(d.state) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not os.path.exists(d.state):
            raise Failure("no state file within 10 s")
        # A copy of the running state, loaded by another daemon.
        os.makedirs(os.path.join(tmp, "copy"))
        e = Daemon(os.path.join(tmp, "copy"), name="e")
        try:
            e.stop()
        finally:
            e.kill()
        with open(d.state, "rb") as src, open(e.state, "wb") as dst:
            dst.write(src.read())
        e = Daemon(os.path.join(tmp, "copy"), name="e")
        try:
            expect(e.client().request(**data_req("tiny@acme.example")),
                   defer_text("mailbox", "tiny@acme.example", 1, 1),
                   "the periodic save holds the charge")
        finally:
            e.stop()
            e.kill()


def sc_dedupe(tmp):
    """DATA and END-OF-MESSAGE of one message (same instance) charge once."""
    with Daemon(tmp) as d:
        same_minute()
        c = d.client()
        expect(c.request(**data_req("small@acme.example", instance="a.1")),
               DUNNO, "DATA")
        expect(c.request(**data_req("small@acme.example",
                                    state="END-OF-MESSAGE", instance="a.1")),
               DUNNO, "END-OF-MESSAGE, same instance")
        expect(c.request(**data_req("small@acme.example",
                                    state="END-OF-MESSAGE", instance="a.2")),
               DUNNO, "END-OF-MESSAGE, another message")
        expect(c.request(**data_req("small@acme.example", instance="a.3")),
               DUNNO, "the third message")
        expect(c.request(**data_req("small@acme.example", instance="a.4")),
               defer_text("mailbox", "small@acme.example", 3, 3),
               "the fourth message")


def sc_long_helo(tmp):
    """A request as Postfix sends it for a client whose EHLO name is as
    long as Postfix's line_length_limit (2048, the command and its CRLF)
    lets it be: its helo_name line has 2051 bytes. It is decided and
    charged like any other, not closed as malformed."""
    helo = "h" * (2048 - len("EHLO ") - 2)
    with Daemon(tmp) as d:
        same_minute()
        c = d.client()
        for i, want in enumerate(
                (DUNNO, defer_text("mailbox", "tiny@acme.example", 1, 1))):
            attrs = dict(request="smtpd_access_policy",
                         protocol_state="DATA", protocol_name="ESMTP",
                         helo_name=helo, queue_id="", instance=f"h.{i}",
                         sender="tiny@acme.example", recipient="",
                         recipient_count=1, client_address=CLIENT,
                         client_name="unknown", sasl_method="PLAIN",
                         sasl_username="tiny@acme.example")
            expect(c.request(**attrs), want, f"message {i + 1}")
        expect("bad policy request" in d.log(), False, "a line logged bad")


def sc_dedupe_reconnect(tmp):
    """Postfix closes a policy connection idle for
    smtpd_policy_service_max_idle (300 s) or open for max_ttl (1000 s),
    also between the DATA and the END-OF-MESSAGE of one message (a slow
    upload), and asks the second question on a new connection of the same
    smtpd process: the message is still charged once, and the recipients
    counted at RCPT still count. Over TCP, which names no process, each
    connection starts afresh."""
    with Daemon(tmp) as d:
        same_minute()
        c = d.client(unix=True)
        expect(c.request(**data_req("tiny@acme.example", instance="r.1")),
               DUNNO, "DATA")
        c.close()
        c = d.client(unix=True)
        expect(c.request(**data_req("tiny@acme.example",
                                    state="END-OF-MESSAGE", instance="r.1")),
               DUNNO, "END-OF-MESSAGE on a new connection")
        expect(c.request(**data_req("tiny@acme.example", instance="r.2")),
               defer_text("mailbox", "tiny@acme.example", 1, 1),
               "the next message: the first was charged once")
        c.close()
    with Daemon(tmp, config_text=CONFIG.replace(
            "default mailbox=100", "default max-recipients=2 mailbox=100"),
                name="cap") as d:
        c = d.client(unix=True)
        for i in range(2):
            expect(c.request(**rcpt_req("bulk@acme.example"), instance="k.1"),
                   DUNNO, f"RCPT {i + 1}")
        c.close()
        c = d.client(unix=True)
        expect(c.request(**rcpt_req("bulk@acme.example"), instance="k.1"),
               TOO_MANY, "the third RCPT on a new connection")
        c.close()
        c = d.client()
        expect(c.request(**rcpt_req("bulk@acme.example"), instance="k.2"),
               DUNNO, "TCP: RCPT 1")
        c.close()
        c = d.client()
        expect(c.request(**rcpt_req("bulk@acme.example"), instance="k.2"),
               DUNNO, "TCP: RCPT 2")
        c.close()
        c = d.client()
        expect(c.request(**rcpt_req("bulk@acme.example"), instance="k.2"),
               DUNNO, "TCP: RCPT 3 on a new connection, counted afresh")


def sc_idle(tmp):
    """--idle-timeout closes a silent connection, not a busy one."""
    with Daemon(tmp, args=["--idle-timeout", "1"]) as d:
        quiet = d.client()
        busy = d.client()
        start = time.monotonic()
        for i in range(8):
            expect(busy.request(**data_req("someone@elsewhere.example")),
                   DUNNO, f"busy #{i}")
            time.sleep(0.4)
        quiet.sock.settimeout(5)
        quiet.expect_closed("the idle connection")
        took = time.monotonic() - start
        if took > 4.5:
            raise Failure(f"idle connection closed after {took:.1f} s")
        d.wait_log(r"closing the connection from 127\.0\.0\.1:\d+: idle for "
                   r"1 s")
        expect(busy.request(**data_req("someone@elsewhere.example")), DUNNO,
               "busy after 3 s")


def sc_concurrent(tmp):
    """2,000 connections open at once, one request each: 1,000 accepted
    and 1,000 refused (limit 1000), all within a bounded time."""
    n = 2000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 200), hard))
    # One host, one client: as many connections as 2,000 smtpd processes.
    d = Daemon(tmp, args=["--max-connections-per-client", str(n)])
    socks = []
    try:
        same_minute(30)
        start = time.monotonic()
        for i in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(TIMEOUT)
            s.connect(("127.0.0.1", d.port))
            socks.append(s)
        req = encode(**data_req("crowd@acme.example"))
        for s in socks:
            s.sendall(req)
        bufs = read_answers(socks, 60)
        took = time.monotonic() - start
        if len(bufs) < n:
            raise Failure(f"{n - len(bufs)} connections got no answer in 60 s")
        answers = [bufs[s].decode()[:-2] for s in socks]
        refused = defer_text("mailbox", "crowd@acme.example", 1000, 1000)
        expect(answers.count(DUNNO), 1000, "accepted")
        expect(answers.count(refused), 1000, "refused")
        print(f"2000 connections answered in {took:.2f} s")
        m = re.findall(r"at most (\d+) connections", d.log())
        if not m or int(m[-1]) < n:
            raise Failure(f"the daemon allows {m} connections only")
    finally:
        for s in socks:
            s.close()
        d.stop()
        d.kill()


def read_answers(socks, timeout, settle=None):
    """The whole answers that come on socks within timeout, by socket in
    the order they came; with settle, also returns once some were answered
    and no other was for settle seconds."""
    sel = selectors.DefaultSelector()
    bufs = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = b""
    done = {}
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    while len(done) < len(socks) and time.monotonic() < deadline:
        if settle and done and time.monotonic() - last >= settle:
            break
        for key, _ in sel.select(min(0.2, max(0.0, deadline -
                                               time.monotonic()))):
            s = key.fileobj
            data = s.recv(4096)
            if not data:
                raise Failure("a waiting connection was closed")
            bufs[s] += data
            if bufs[s].endswith(b"\n\n"):
                sel.unregister(s)
                done[s] = bufs[s]
                last = time.monotonic()
    sel.close()
    for s in socks:
        s.setblocking(True)
    return done


def answered(socks, timeout, settle=None):
    """The sockets among socks that have a whole answer, DUNNO, within
    timeout (see read_answers)."""
    done = read_answers(socks, timeout, settle)
    for answer in done.values():
        expect(answer, b"action=DUNNO\n\n", "answer")
    return list(done)


def connect_and_ask(port, n):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), TIMEOUT)
        s.sendall(encode(**data_req("someone@elsewhere.example")))
        socks.append(s)
    return socks


def sc_limits(tmp):
    """At --max-connections, or out of descriptors, new connections wait
    in the kernel's queue (no spinning) and are served as others close."""
    with Daemon(tmp, args=["--max-connections", "5"]) as d:
        first = connect_and_ask(d.port, 5)
        expect(len(answered(first, TIMEOUT)), 5, "the first five")
        waiting = connect_and_ask(d.port, 3)
        expect(answered(waiting, 1.5), [], "answers beyond the limit")
        d.wait_log(r"not accepting policy connections for a while: at the "
                   r"limit of 5 connections \(5 open\)$")
        for s in first[:2]:
            s.close()
        got = answered(waiting, TIMEOUT, settle=1.5)
        expect(len(got), 2, "served after two closed")
        rest = [s for s in waiting if s not in got]
        expect(answered(rest, 1.5), [], "the third still waits")
        first[2].close()
        expect(len(answered(rest, TIMEOUT)), 1, "the third, after a close")
        for s in first[3:] + waiting:
            s.close()

    # Out of descriptors: 18 in all, and the daemon allows 16 connections
    # at least beside its own 8 or so, so accept() fails with EMFILE.
    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (18, 18))

    with Daemon(tmp, name="e", preexec=low_limit) as d:
        socks = connect_and_ask(d.port, 24)
        got = answered(socks, TIMEOUT, settle=1.5)
        if not 0 < len(got) < 24:
            raise Failure(f"{len(got)} of 24 answered with 18 descriptors")
        d.wait_log(r"not accepting policy connections for a while: Too many "
                   r"open files \(\d+ open\)$")
        # Each connection closed makes room for one that waits.
        rest = socks
        while got:
            for s in got:
                s.close()
            rest = [s for s in rest if s not in got]
            got = answered(rest, TIMEOUT, settle=1.5) if rest else []
        expect(len(rest), 0, "connections never answered")
        # The loop did not spin while it waited.
        with open(f"/proc/{d.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        if cpu > 1.0:
            raise Failure(f"the daemon used {cpu:.2f} s of CPU")
        for s in rest:
            s.close()
        expect(d.client().request(**data_req("x@elsewhere.example")), DUNNO,
               "serving again")


def sc_cli(tmp):
    """--help, --version, --check-config, usage errors, startup errors."""
    def run(*args):
        p = subprocess.run([DAEMON, *args], capture_output=True, text=True,
                           timeout=TIMEOUT)
        return p.returncode, p.stdout, p.stderr

    rc, out, err = run("--help")
    expect(rc, 0, "--help status")
    for opt in ("--config FILE", "--listen SPEC", "--state FILE",
                "--save-interval SECS", "--control unix:PATH",
                "--metrics inet:HOST:PORT", "--admin EMAIL",
                "--notify-command CMD", "--foreground", "--check-config",
                "--idle-timeout SECS", "--socket-mode MODE",
                "--max-connections N", "--user USER[:GROUP]",
                "--allow-user USER", "--log WHERE",
                "unix:/var/spool/postfix/private/obspam-policy"):
        if opt not in out:
            raise Failure(f"--help does not mention {opt}")
    rc, out, err = run("--version")
    expect((rc, bool(re.fullmatch(r"obspam-policyd \(libobspam \d+\.\d+\.\d+\)"
                                  r"\n", out))), (0, True), "--version")

    good = os.path.join(tmp, "good.conf")
    with open(good, "w") as f:
        f.write(CONFIG)
    expect(run("--config", good, "--check-config"),
           (0, f"{good}: configuration OK\n", ""), "--check-config good")
    bad = os.path.join(tmp, "bad.conf")
    with open(bad, "w") as f:
        f.write("plan basic\nplan Basic\n")
    expect(run("--config", bad, "--check-config"),
           (1, "", f"{bad}:2: duplicate plan 'basic'\n"),
           "--check-config bad")
    expect(run("--config", os.path.join(tmp, "none.conf"), "--check-config"),
           (1, "", f"{tmp}/none.conf: cannot open: No such file or "
                   "directory\n"), "--check-config missing")

    usage = "Try 'obspam-policyd --help'.\n"
    expect(run(), (2, "", "obspam-policyd: --config FILE is required\n"
                   + usage), "no --config")
    expect(run("--config"),
           (2, "", "obspam-policyd: option '--config' needs a value\n"
            + usage), "missing value")
    # Usage errors after a good --config: status 2, nothing on stdout, and
    # on stderr the reason (and the hint to --help where the command line
    # itself is wrong rather than a value).
    for args, what, said in [
        (("--bogus",), "unknown option",
         "unknown option '--bogus'\n" + usage),
        (("--foreground=yes",), "value for a flag",
         "option '--foreground=yes' takes no value\n" + usage),
        (("extra",), "extra argument",
         "unexpected argument 'extra'\n" + usage),
        (("--listen", "tcp:1.2.3.4:5"), "bad --listen",
         "--listen: bad value 'tcp:1.2.3.4:5': expected unix:PATH or "
         "inet:HOST:PORT\n"),
        (("--save-interval", "-1"), "bad --save-interval",
         "--save-interval: bad value '-1': expected a number 0..86400\n"),
        (("--socket-mode", "999"), "bad --socket-mode",
         "--socket-mode: bad value '999': expected an octal mode 0..511\n"),
        (("--control", "inet:1.2.3.4:5"), "bad --control",
         "--control: bad value 'inet:1.2.3.4:5': expected unix:PATH\n"),
        # Listeners and ports are checked as the options are read, so that
        # --check-config finds them too.
        *[((opt, "inet:127.0.0.1", "--check-config"), f"{opt} without a port",
           f"{opt}: bad socket address 'inet:127.0.0.1': no port: expected "
           "inet:HOST:PORT or inet:[IPV6]:PORT\n")
          for opt in ("--listen", "--metrics")],
        (("--listen", "inet:127.0.0.1:10040x", "--check-config"),
         "--listen with a bad port",
         "--listen: bad socket address 'inet:127.0.0.1:10040x': bad "
         "port '10040x': expected a number 0..65535\n"),
        (("--listen", "unix:", "--check-config"), "--listen without a path",
         "--listen: bad socket address 'unix:': the path is empty\n"),
        (("--user", "no-such-user-x", "--check-config"), "--user unknown",
         "--user: no such user 'no-such-user-x'\n"),
        (("--user", "nobody:no-such-group-x", "--check-config"),
         "--user with an unknown group",
         "--user: no such group 'no-such-group-x'\n"),
        (("--allow-user", "no-such-user-x"), "--allow-user unknown",
         "--allow-user: no such user 'no-such-user-x'\n"),
        (("--log", "file"), "--log unknown",
         "--log: bad value 'file': expected stderr, syslog or journal\n"),
        (("--metrics", "inet:127.0.0.1:99999", "--check-config"),
         "--metrics port out of range",
         "--metrics: bad socket address 'inet:127.0.0.1:99999': bad "
         "port '99999': expected a number 0..65535\n"),
    ]:
        expect(run("--config", good, *args),
               (2, "", "obspam-policyd: " + said), what)
    expect(run("--config", good, "--listen", "inet:127.0.0.1:10040",
               "--metrics", "inet:[::1]:9140", "--user", "nobody",
               "--allow-user", "nobody", "--allow-user", "65000",
               "--log", "journal", "--check-config"),
           (0, f"{good}: configuration OK\n", ""), "good options")

    # Startup errors: status 1 and the reason.
    rc, out, err = run("--foreground", "--config", bad)
    expect(rc, 1, "bad configuration at startup")
    if f"{bad}:2: duplicate plan 'basic'" not in err:
        raise Failure(f"startup with a bad file says: {err!r}")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    state = os.path.join(tmp, "busy.state")
    try:
        rc, out, err = run("--foreground", "--config", good, "--listen",
                           f"inet:127.0.0.1:{port}", "--state", state)
    finally:
        busy.close()
    expect(rc, 1, "address in use")
    if f"cannot listen on inet:127.0.0.1:{port}: " not in err:
        raise Failure(f"startup on a busy port says: {err!r}")
    # A daemon that did not start leaves the state file alone: it may
    # belong to the instance that holds the port.
    if os.path.exists(state):
        raise Failure("a daemon that failed to start wrote the state file")


def ask_once(where, request):
    """Sends one request and returns all the server sent until it closed
    (b"" for a connection closed unanswered), or the first answer."""
    family = socket.AF_UNIX if isinstance(where, str) else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.connect(where)
    data = b""
    try:
        s.sendall(request)
        while b"\n\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        pass
    s.close()
    return data


PEER_REFUSED = (r"warning: peer refused uid=65534 user=nobody pid=\d+ on "
                r"unix:{}: only root, postfix, the daemon's user and "
                r"--allow-user users may ask; its connections are closed "
                r"unanswered and not logged again until it stops for 60 s$")


def sc_peers(tmp):
    """Only root, postfix, the daemon's own user and --allow-user users are
    answered on a Unix socket: the user nobody, though the socket's mode
    lets it connect, gets its connections closed unanswered and charges
    nothing, logged once per episode; TCP answers anyone and says so."""
    os.chmod(tmp, 0o755)  # nobody may reach the socket file
    d = Daemon(tmp, args=["--socket-mode", "0666"])
    req = encode(**data_req("small@acme.example", 3))
    try:
        same_minute()
        for i in range(3):
            expect(as_nobody(lambda: ask_once(d.unix, req)), "b''",
                   f"nobody's connection #{i}")
        # The client saw the close, which comes after the log line.
        lines = re.findall(r"^.*peer refused.*$", d.log(), re.M)
        expect(len(lines), 1, f"one line for the episode: {lines}")
        if not re.search(PEER_REFUSED.format(re.escape(d.unix)), lines[0]):
            raise Failure(f"peer refused line: {lines[0]!r}")
        # Nothing was charged: root's three recipients still fit.
        expect(ask_once(d.unix, req), b"action=DUNNO\n\n", "root, unix")
        expect(ask_once(d.unix, req).decode().rstrip("\n"),
               defer_text("mailbox", "small@acme.example", 3, 3), "full")
        # Over TCP nobody is answered: that is the risk the warning names.
        expect(as_nobody(lambda: ask_once(("127.0.0.1", d.port), req)),
               repr((defer_text("mailbox", "small@acme.example", 3, 3)
                     + "\n\n").encode()), "nobody over TCP")
        warning = (f"warning: listening on inet:127.0.0.1:{d.port} over "
                   f"TCP: any local user (a customer's web script, say) can "
                   f"connect and spend any mailbox's limit; prefer a unix: "
                   f"socket, which only Postfix may use")
        expect(d.log().count(warning), 1, "the TCP warning")
    finally:
        d.stop()
        d.kill()
    with Daemon(tmp, name="a",
                args=["--socket-mode", "0666", "--allow-user", "nobody"]) as d:
        expect(as_nobody(lambda: ask_once(d.unix, req)),
               repr(b"action=DUNNO\n\n"), "nobody with --allow-user")
        expect("peer refused" in d.log(), False, "nothing refused")


def sc_user(tmp):
    """--user drops root after binding: a state directory the user cannot
    write stops the start with a clear error; otherwise the daemon runs as
    that user with no capability (bounding set empty), is answered on its
    own Unix socket, reloads, and saves its state as that user."""
    os.chmod(tmp, 0o755)  # the user reads the configuration
    with Daemon(tmp, args=["--user", "nobody"], wait=False) as d:
        expect(d.proc.wait(TIMEOUT), 1, "exit status")
        want = (f"error: cannot start: user nobody cannot write the state "
                f"directory {tmp} (Permission denied): the state is saved "
                f"there; make it belong to that user (chown nobody {tmp})")
        if want not in d.log():
            raise Failure(f"no {want!r} in:\n{d.log()}")
        expect(os.path.exists(d.unix), False, "the socket removed")
    sdir = os.path.join(tmp, "state")
    os.mkdir(sdir)
    os.chown(sdir, NOBODY.pw_uid, NOBODY.pw_gid)
    state = os.path.join(sdir, "u.state")
    with Daemon(tmp, name="u", state=False,
                args=["--user", "nobody", "--state", state, "--socket-mode",
                      "0666"]) as d:
        d.wait_log(r"running as user nobody \(uid 65534, gid "
                   f"{NOBODY.pw_gid}\\)")
        with open(f"/proc/{d.proc.pid}/status") as f:
            status = dict(l.split(":", 1) for l in f.read().splitlines())
        expect(status["Uid"].split(), ["65534"] * 4, "uids")
        expect(status["Gid"].split(), [str(NOBODY.pw_gid)] * 4, "gids")
        expect(status["Groups"].split(),
               [str(g) for g in os.getgrouplist("nobody", NOBODY.pw_gid)],
               "supplementary groups")
        expect(int(status["CapEff"], 16), 0, "effective capabilities")
        expect(int(status["CapBnd"], 16), 0, "bounding set")
        req = encode(**data_req("tiny@acme.example"))
        expect(as_nobody(lambda: ask_once(d.unix, req)),
               repr(b"action=DUNNO\n\n"), "the daemon's own user")
        d.send_signal(signal.SIGHUP)
        d.wait_log(r"reload ok path=")
        expect(d.stop(), 0, "exit status")
        st = os.stat(state)
        expect((st.st_uid, st.st_gid), (NOBODY.pw_uid, NOBODY.pw_gid),
               "the state file's owner")


def sc_logs(tmp):
    """--log journal: one line each with its <N> priority and no time or
    name; chosen by itself when JOURNAL_STREAM names the daemon's stderr
    (systemd), not when it names another stream; --log stderr."""
    def journal_lines(d):
        lines = d.log().splitlines()
        for line in lines:
            if not re.match(r"<[0-7]>\S", line):
                raise Failure(f"not a journal line: {line!r}")
        return lines

    def check_journal(d):
        same_minute()
        c = d.client()
        expect(c.request(**data_req("tiny@acme.example")), DUNNO, "1 of 1")
        expect(c.request(**data_req("tiny@acme.example")),
               defer_text("mailbox", "tiny@acme.example", 1, 1), "refused")
        d.wait_log(r"^<5>refuse kind=mailbox object=tiny@acme\.example ")
        lines = journal_lines(d)
        expect(lines[0], f"<6>config loaded path={d.config}", "first line")
        expect(sum(l.startswith(f"<4>warning: listening on inet:127.0.0.1:"
                                f"{d.port} over TCP: ") for l in lines), 1,
               "the TCP warning, priority 4")
        expect(sum(l.startswith("<6>ready: listening on ") for l in lines),
               1, "ready, priority 6")

    with Daemon(tmp, name="j", args=["--log", "journal"]) as d:
        check_journal(d)
    # Under systemd: JOURNAL_STREAM is "DEVICE:INODE" of the stream.
    log = os.path.join(tmp, "s.log")
    open(log, "ab").close()
    st = os.stat(log)
    env = dict(os.environ, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
    with Daemon(tmp, name="s", env=env) as d:
        check_journal(d)
    # Inherited by a program whose stderr goes elsewhere: not the journal.
    for name, args, js in (("o", [], f"{st.st_dev}:{st.st_ino + 1}"),
                           ("e", ["--log", "stderr"],
                            f"{st.st_dev}:{st.st_ino}")):
        with Daemon(tmp, name=name, args=args,
                    env=dict(os.environ, JOURNAL_STREAM=js)) as d:
            for line in d.log().splitlines():
                if not re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ "
                                r"obspam-policyd\[\d+\]: ", line):
                    raise Failure(f"{name}: not a stderr line: {line!r}")


def sc_socket_activation(tmp):
    """A socket handed over by systemd (sd_listen_fds: LISTEN_PID,
    LISTEN_FDS, descriptor 3, as obspam-policyd.socket does) replaces the
    default listener: the daemon answers on it, checks its peers, and
    leaves the socket file, which is systemd's, at exit.
    systemd-socket-activate plays systemd."""
    activate = "/usr/bin/systemd-socket-activate"
    if not os.access(activate, os.X_OK):
        raise Failure(f"no {activate} (Debian package systemd)")
    os.chmod(tmp, 0o755)
    conf = os.path.join(tmp, "a.conf")
    with open(conf, "w") as f:
        f.write(CONFIG)
    path = os.path.join(tmp, "act.sock")
    log_path = os.path.join(tmp, "a.log")
    logf = open(log_path, "ab")
    proc = subprocess.Popen([activate, "-l", path, DAEMON, "--foreground",
                             "--config", conf], stdout=logf, stderr=logf,
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not os.path.exists(path):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise Failure("systemd-socket-activate made no socket")
            time.sleep(0.02)
        os.chmod(path, 0o666)  # the peer check, not the mode, keeps nobody out
        # The first connection starts the daemon, which then answers it.
        req = encode(**data_req("tiny@acme.example"))
        expect(ask_once(path, req), b"action=DUNNO\n\n", "root's request")
        with open(log_path) as f:
            log = f.read()
        if not re.search(r"ready: listening on unix:" + re.escape(path)
                         + r" \(", log):
            raise Failure(f"ready line: {log}")
        expect("over TCP" in log, False, "no default TCP listener")
        expect(as_nobody(lambda: ask_once(path, req)), "b''",
               "nobody on the handed-over socket")
        proc.send_signal(signal.SIGTERM)
        expect(proc.wait(TIMEOUT), 0, "exit status")
        expect(os.path.exists(path), True, "systemd's socket file is kept")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        logf.close()


def peer_pid(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    pid, _, _ = struct.unpack("3i", s.getsockopt(
        socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    s.close()
    return pid


def sc_detach(tmp):
    """Without --foreground the command returns once the daemon is ready
    (status 0), or fails with status 1 and the reason on stderr."""
    conf = os.path.join(tmp, "d.conf")
    with open(conf, "w") as f:
        f.write(CONFIG)
    sock = os.path.join(tmp, "d.sock")
    p = subprocess.run([DAEMON, "--config", "d.conf", "--listen",
                        "unix:d.sock", "--state", "d.state"],
                       cwd=tmp, capture_output=True, text=True,
                       timeout=TIMEOUT)
    # The daemon is found by its socket before anything is asserted, so
    # that it is stopped whatever fails.
    pid = peer_pid(sock)
    try:
        # Until it is up, its log lines are copied to the terminal.
        expect((p.returncode, p.stdout), (0, ""), "detached start")
        if not re.search(r"ready: listening on unix:" + re.escape(sock),
                         p.stderr):
            raise Failure(f"detached start says: {p.stderr!r}")
        # A new session, of which it is not the leader: it can never get
        # a controlling terminal again.
        if os.getsid(pid) in (os.getsid(0), pid):
            raise Failure("the daemon did not leave our session properly")
        with open(f"/proc/{pid}/stat") as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid():
            raise Failure("the daemon is still our child")
        # Relative paths were made absolute before the daemon left tmp.
        expect(os.readlink(f"/proc/{pid}/cwd"), "/", "working directory")
        c = Client(sock)
        expect(c.request(**data_req("tiny@acme.example")), DUNNO, "served")
        c.close()
        with open(conf, "a") as f:
            f.write("mailbox extra@acme.example limit=0\n")
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + TIMEOUT
        answer = None
        while time.monotonic() < deadline:
            c = Client(sock)
            answer = c.request(**rcpt_req("extra@acme.example"))
            c.close()
            if answer != DUNNO:
                break
            time.sleep(0.05)
        expect(answer, "action=451 4.7.1 mailbox extra@acme.example cannot "
               "send this message: its limit is 0", "reloaded from /")
    finally:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + TIMEOUT
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.05)
    if os.path.exists(f"/proc/{pid}"):
        os.kill(pid, signal.SIGKILL)
        raise Failure("the detached daemon did not stop on SIGTERM")
    if not os.path.exists(os.path.join(tmp, "d.state")):
        raise Failure("the detached daemon saved no state in its start "
                      "directory")
    p = subprocess.run([DAEMON, "--config", "nothere.conf"], cwd=tmp,
                       capture_output=True, text=True, timeout=TIMEOUT)
    expect(p.returncode, 1, "detached start with a missing file")
    if "nothere.conf: cannot open: No such file or directory" not in p.stderr:
        raise Failure(f"detached startup error says: {p.stderr!r}")


def sc_ipv6(tmp):
    """inet:[::1]:PORT."""
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
    except OSError:
        print("no IPv6 loopback here: skipped")
        return
    with Daemon(tmp, args=["--listen", "inet:[::1]:0"]) as d:
        m = d.wait_log(r"ready: listening on .*inet:\[::1\]:(\d+)")
        c = Client(("::1", int(m[-1])))
        expect(c.request(**data_req("tiny@acme.example")), DUNNO, "over IPv6")


def sc_control_metrics(tmp):
    """The control socket and the metrics endpoint see the daemon's
    decisions and connections."""
    with Daemon(tmp, control=True, args=["--metrics", "inet:127.0.0.1:0"]) as d:
        same_minute()
        mode = stat.S_IMODE(os.stat(d.control).st_mode)
        expect(oct(mode), oct(0o600), "control socket mode")
        c = d.client()
        expect(c.request(**data_req("tiny@acme.example")), DUNNO, "accept")
        expect(c.request(**data_req("tiny@acme.example")),
               defer_text("mailbox", "tiny@acme.example", 1, 1), "refuse")
        expect(c.request(**rcpt_req("tiny@acme.example")),
               defer_text("mailbox", "tiny@acme.example", 1, 1), "RCPT")
        expect(c.request(**rcpt_req("small@acme.example")), DUNNO, "RCPT ok")
        expect(c.request(**data_req("x@elsewhere.example")), DUNNO, "unknown")
        expect(c.request(**data_req("x@acme.example", client="192.0.2.1")),
               DUNNO, "exempt")
        bad = d.client()
        bad.send(b"nonsense\n")
        bad.expect_closed("bad request")
        port = metrics_port(d)
        text = scenario.http_get(port, timeout=TIMEOUT).decode()
        want = {
            'obspam_decisions_total{action="accept"}': 1,
            'obspam_decisions_total{action="refuse"}': 2,
            'obspam_decisions_total{action="exempt"}': 1,
            'obspam_decisions_total{action="unknown"}': 1,
            'obspam_refusals_total{level="mailbox"}': 2,
            'obspam_refusal_windows_total{window="hour"}': 2,
            'obspam_refusal_windows_total{window="max-recipients"}': 0,
            "obspam_connections_open": 1,
            "obspam_connections_total": 2,
            "obspam_requests_bad_total": 1,
            "obspam_request_duration_seconds_count": 5,
        }
        for name, value in want.items():
            m = re.search("^" + re.escape(name) + r" (\S+)$", text, re.M)
            if not m:
                raise Failure(f"metric {name} missing:\n{text}")
            expect(float(m.group(1)), float(value), name)


def metrics_port(d):
    """The port of a daemon started with --metrics inet:127.0.0.1:0."""
    return int(d.wait_log(r"metrics listening on inet:127\.0\.0\.1:(\d+)")
               [-1])


# The bounds of the loop's histograms (obspamd_loop_bounds_us), in seconds.
LOOP_BOUNDS = [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
               0.05, 0.1, 0.25, 0.5, 1]


class Timing:
    """One of the loop's times on /metrics (NAME_seconds and
    NAME_max_seconds): the cumulative count of each bucket (the last
    +Inf), the sum, the count and the longest since the start. The
    histogram is checked on its own as it is read: its buckets are
    LOOP_BOUNDS, they never decrease, the last is the count."""

    def __init__(self, text, name):
        def value(sample):
            m = re.search("^" + re.escape(sample) + r" (\S+)$", text, re.M)
            if not m:
                raise Failure(f"metric {sample} missing:\n{text}")
            return float(m.group(1))

        self.name = name
        les = re.findall(rf'^{name}_seconds_bucket{{le="([^"]+)"}} ', text,
                         re.M)
        expect(les, [f"{b:g}" for b in LOOP_BOUNDS] + ["+Inf"],
               f"{name}: bucket bounds")
        self.buckets = [int(value(f'{name}_seconds_bucket{{le="{le}"}}'))
                        for le in les]
        self.sum = value(f"{name}_seconds_sum")
        self.count = int(value(f"{name}_seconds_count"))
        self.max = value(f"{name}_max_seconds")
        expect(self.buckets, sorted(self.buckets), f"{name}: cumulative")
        expect(self.buckets[-1], self.count, f"{name}: +Inf is the count")

    def since(self, before):
        """What was counted after `before` (a Timing read earlier): a
        Timing whose max is the bound of the highest bucket it counts
        (the longest time, to that bucket's precision; inf above 1 s,
        0 when nothing was counted)."""
        d = Timing.__new__(Timing)
        d.name = self.name
        d.buckets = [a - b for a, b in zip(self.buckets, before.buckets)]
        d.sum = self.sum - before.sum
        d.count = self.count - before.count
        d.max = next((b for b, n in zip(LOOP_BOUNDS + [float("inf")],
                                         d.buckets) if n == d.count), 0)
        return d

    def over(self, seconds):
        """How many took longer than `seconds`, one of LOOP_BOUNDS."""
        return self.count - self.buckets[LOOP_BOUNDS.index(seconds)]

    def check_max(self):
        """The longest since the start lies in the highest bucket counted
        (exact while nothing is counted meanwhile)."""
        top = next(i for i, n in enumerate(self.buckets) if n == self.count)
        low = LOOP_BOUNDS[top - 1] if top > 0 else 0
        high = LOOP_BOUNDS[top] if top < len(LOOP_BOUNDS) else float("inf")
        if self.count and not low < self.max <= high:
            raise Failure(f"{self.name}: the longest, {self.max} s, is not "
                          f"in the highest bucket counted, ({low}, {high}]")
        if not self.max <= self.sum + 1e-6 <= self.count * self.max + 2e-6:
            raise Failure(f"{self.name}: sum {self.sum} s for {self.count} "
                          f"times, the longest {self.max} s")


def sc_loop_metrics(tmp):
    """The loop's own times on /metrics: one wait per request answered
    (one at a time, without a decision, refused, pipelined past the
    output buffer, byte by byte), none for a request closed unanswered;
    at least one round per request asked alone; each longest time in the
    highest bucket its histogram counts."""
    with Daemon(tmp, args=["--metrics", "inet:127.0.0.1:0"]) as d:
        same_minute(10)
        port = metrics_port(d)
        c = d.client()
        for i in range(20):
            expect(c.request(**data_req("someone@elsewhere.example")), DUNNO,
                   f"request {i}")
        expect(c.request(**data_req("tiny@acme.example")), DUNNO, "accept")
        expect(c.request(**data_req("tiny@acme.example")),
               defer_text("mailbox", "tiny@acme.example", 1, 1), "refuse")
        expect(c.request(**rcpt_req("small@acme.example")), DUNNO, "RCPT")
        expect(c.request(**data_req("tiny@acme.example", state="CONNECT")),
               DUNNO, "no decision")
        # 1,000 answers do not fit the output buffer (8 KiB) at once.
        c.send(encode(**data_req("someone@elsewhere.example")) * 1000)
        expect([c.read_answer() for _ in range(1000)], [DUNNO] * 1000,
               "pipelined")
        for b in encode(**data_req("someone@elsewhere.example")):
            c.send(bytes([b]))
        expect(c.read_answer(), DUNNO, "byte by byte")
        bad = d.client()
        bad.send(b"nonsense\n")
        bad.expect_closed("bad request")
        text = scenario.http_get(port, timeout=TIMEOUT).decode()
        waits = Timing(text, "obspam_request_wait")
        rounds = Timing(text, "obspam_loop_round")
        expect(waits.count, 1025, "waits counted: the requests answered")
        if rounds.count < 25:
            raise Failure(f"{rounds.count} rounds for 25 requests asked "
                          f"one at a time")
        waits.check_max()
        rounds.check_max()
        if waits.max <= 0:
            raise Failure(f"no wait measured:\n{text}")


def sc_notices(tmp):
    """Notices are flushed on the timer and mailed through --notify-command
    to --admin and the subscription's contact (up to 75 s: a notify period
    of 60 s must end first)."""
    mails, command = scenario.mailer(tmp)
    with Daemon(tmp, "notify-period 60\n" + CONFIG, control=True,
                args=["--admin", "postmaster@example.net", "--notify-command",
                      command]) as d:
        c = d.client()
        expect(c.request(**data_req("tiny@acme.example")), DUNNO, "accept")
        refusal = c.request(**data_req("tiny@acme.example"))
        if not refusal.startswith("action=451 4.7.1 mailbox tiny@acme."
                                  "example has sent to 1 recipient in the "
                                  "last"):
            raise Failure(f"refusal: {refusal!r}")
        d.wait_log(r"notice kind=mailbox object=tiny@acme\.example "
                   r"subscription=acme limit=1 unit=recipients window=hour "
                   r"sent=1 "
                   r"refused=1 exceeded=1 ", timeout=75)
        # Only tiny went over its own limit (its domain and subscription
        # were refused with it, under theirs): one notice, mailed to the
        # admin and to acme's contact.
        deadline = time.monotonic() + TIMEOUT
        while len(os.listdir(mails)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # nothing more comes
        texts = scenario.mails_in(mails)
        to = sorted(re.search(r"^To: (.*)$", t, re.M).group(1) for t in texts)
        expect(to, ["ops@acme.example", "postmaster@example.net"],
               "mail recipients")
        if "notice kind=domain" in d.log() or "notice kind=subscription" in d.log():
            raise Failure(f"a notice for a level under its limit:\n{d.log()}")
        admin = [t for t in texts
                 if re.search(r"^To: postmaster@example\.net$", t, re.M) and
                 "Object:         mailbox tiny@acme.example" in t]
        expect(len(admin), 1, "the admin's mail about the mailbox")
        # The obspamctl commands it suggests reach this daemon, and its
        # grep command finds the refusal line in the daemon's real log.
        grep, line = scenario.expect_notice_commands(
            admin[0], d.control, "mailbox", "tiny@acme.example", d.log_path)
        if "refuse kind=mailbox object=tiny@acme.example " not in line:
            raise Failure(f"{grep} found {line!r}")


UID_CONFIG = CONFIG + """\
subscription web subscription=2 uid=10001
domain web.example subscription=web
"""


def sc_uid(tmp):
    """obspam_uid (an MTA's local submission, examples/exim) charges the
    subscription that owns the uid, with the script's path, on a Unix
    socket from an allowed peer; over TCP such a request is closed
    unanswered and charges nothing, and a peer that is not allowed never
    gets that far."""
    os.chmod(tmp, 0o755)
    d = Daemon(tmp, UID_CONFIG, args=["--socket-mode", "0666"], control=True)
    local = dict(protocol_state="END-OF-MESSAGE", sender="x@other.example",
                 recipient_count=1, obspam_uid=10001,
                 obspam_script="/var/www/web/contact.php")
    try:
        same_minute()
        expect(ask_once(("127.0.0.1", d.port), encode(**local)), b"",
               "obspam_uid over TCP")
        d.wait_log(r"warning: request from 127\.0\.0\.1:\d+ names a "
                   r"submitter's uid \(obspam_uid\), which only an allowed "
                   r"peer of a unix: socket may do; closing without an "
                   r"answer$")
        expect(as_nobody(lambda: ask_once(d.unix, encode(**local))), "b''",
               "obspam_uid from a peer that is not allowed")
        expect(control_status(d.control, "subscription", "web")["count"],
               "0", "nothing charged so far")
        for i in range(2):
            expect(ask_once(d.unix, encode(**local)), b"action=DUNNO\n\n",
                   f"script message {i + 1} of 2")
        expect(ask_once(d.unix, encode(**local)).decode().rstrip("\n"),
               defer_text("subscription", "web", 2, 2), "the third")
        d.wait_log(r"refuse kind=subscription object=web limit=2 count=2 "
                   r"unit=recipients retry=\d+ queue_id=- sasl=- "
                   r"sender=x@other\.example client=- recipients=1 "
                   r"window=hour "
                   r"uid=10001 script=/var/www/web/contact\.php$")
        # The same sender without the uid is nobody's mail.
        plain = dict(local)
        del plain["obspam_uid"]
        expect(ask_once(d.unix, encode(**plain)), b"action=DUNNO\n\n",
               "no uid: decided by the sender, not hosted")
        # A uid that no subscription owns is not counted.
        expect(ask_once(d.unix, encode(**dict(local, obspam_uid=10002))),
               b"action=DUNNO\n\n", "a uid nobody owns")
        expect(control_status(d.control, "subscription", "web")["count"],
               "2", "the subscription's count")
    finally:
        d.stop()
        d.kill()


SCENARIOS = scenario.scenarios_of(globals())


def main_of(doc, scenarios, prefix, argv=None):
    """The command line of a script of policy-server scenarios (this one,
    durable.py, slow_clients.py): BUILD_DIR then --list or scenario
    names. Returns the exit status."""
    global BUILD, DAEMON
    argv = sys.argv if argv is None else argv
    if len(argv) < 3:
        print(doc, file=sys.stderr)
        return 2
    BUILD = os.path.abspath(argv[1])
    DAEMON = os.path.join(BUILD, "examples", "obspam-policyd")
    if argv[2] == "--list":
        scenario.list_scenarios(scenarios)
        return 0
    if not os.access(DAEMON, os.X_OK):
        print(f"no {DAEMON}: build the project first", file=sys.stderr)
        return 2
    return scenario.run(scenarios, argv[2:], prefix)


def main():
    return main_of(__doc__, SCENARIOS, "policyd-")


if __name__ == "__main__":
    sys.exit(main())
