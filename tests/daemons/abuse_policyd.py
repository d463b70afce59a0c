#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""obspam-policyd under abuse: thousands of hostile and clumsy clients at once.

    tests/daemons/abuse_policyd.py BUILD_DIR [--connections N] [--rounds R]

Starts the real daemon (BUILD_DIR/examples/obspam-policyd) on a free port of
127.0.0.1 and, in each round, opens N connections (default 2,000) at once.
Each connection plays one part, chosen by a seeded random generator:

  valid      three requests, one after the other: an unhosted sender
             (DUNNO), the connection's own mailbox of limit 1 (DUNNO), the
             same mailbox again (refused: "has sent to 1 recipient ... try again
             in M minutes"); some of these clients send byte by byte, some
             send all three at once (pipelining), some send a legal but
             long value (cut by the server, decided as unhosted)
  zero       a mailbox of limit 0: refused, "its limit is 0"
  malformed  a line without '=', a NUL byte, no request= attribute, a
             recipient_count that is not a number, after a valid request or
             alone: the server answers what came before and closes
  overlong   a 3,000-byte line, a 70,000-byte request, 150 attributes: the
             server closes without a byte
  abort      half a request, then the client vanishes (FIN or RST)

Every valid request must get exactly its answer (the minutes of a retry are
checked against the client's own clock: 60 when the message and its retry
fall in the same minute, 60 minus the minutes between them otherwise);
every bad one must be closed without an answer; the daemon must stay alive
and answer a fresh client at the end; and its memory must stay bounded:

  - peak RSS (VmHWM) <= RSS before the first round + N x 16 KiB + 32 MiB.
    A connection costs the daemon one struct conn of about 15.5 KiB (4 KiB
    read buffer, 8 KiB of answers, a 3 KiB request of fixed-size fields:
    examples/policyd/main.c, policy.h), so N connections open at once may
    take N x 16 KiB; 32 MiB is room for malloc's arenas and the engine.
  - RSS after the last round <= RSS after the first + 8 MiB: the memory of
    closed connections is used again, not lost (what does grow is the
    engine's counters for the mailboxes charged in each new round, about
    2 KiB for each of at most N/3 of them).

Bounded: each round must finish within 120 s. Exit status 0 on success.
"""

import os
import random
import re
import resource
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

KIB = 1024
MIB = 1024 * 1024
ROUND_TIMEOUT = 120
START_TIMEOUT = 10

DOMAIN = "abuse.example"
MAILBOXES_PER_ROUND = 4000


class Failure(Exception):
    pass


def config(rounds):
    lines = [
        "action defer",
        "subscription abuse subscription=unlimited domain=unlimited",
        f"domain {DOMAIN} subscription=abuse mailbox=1",
        f"mailbox zero@{DOMAIN} limit=0",
    ]
    for i in range(rounds * MAILBOXES_PER_ROUND):
        lines.append(f"mailbox v{i}@{DOMAIN}")
    return "\n".join(lines) + "\n"


def encode(**attrs):
    attrs.setdefault("request", "smtpd_access_policy")
    return ("".join(f"{k}={v}\n" for k, v in attrs.items()) + "\n").encode()


def data_req(who, count=1, sender=None):
    return encode(protocol_state="DATA", protocol_name="ESMTP",
                  client_address="203.0.113.9", sasl_username=who,
                  sender=sender if sender is not None else who,
                  recipient_count=count, instance=f"i{random.random()}")


DUNNO = "action=DUNNO"


def limit0_text(name):
    return (f"action=451 4.7.1 mailbox {name} cannot send this message: "
            f"its limit is 0")


def refused_re(name):
    return re.compile(
        rf"action=451 4\.7\.1 mailbox {re.escape(name)} has sent to 1 "
        rf"recipient in the last 60 minutes, its limit is 1 recipient per "
        rf"hour; try again in (\d+) minutes")


def minute(t):
    return int(t // 60)


class Conn:
    """One client: steps to send, answers to expect, how it ends."""

    def __init__(self, kind, steps, end="close", slow=False, pipelined=False,
                 rst=False):
        self.kind = kind
        self.steps = steps  # [(bytes, expected answer or None)]
        self.end = end      # close | server_closes | abort
        self.slow = slow
        self.pipelined = pipelined
        self.rst = rst
        self.sock = None
        self.sel = None
        self.out = b""
        self.step = 0       # next step to queue
        self.waiting = []   # expected answers not received yet
        self.buf = b""
        self.done = False
        self.error = None
        self.times = {}     # step index -> (sent, answered) times

    def queue_next(self):
        """Queues what may be sent now."""
        while self.step < len(self.steps):
            data, want = self.steps[self.step]
            self.out += data
            self.times[self.step] = [time.time(), None]
            if want is not None:
                self.waiting.append((self.step, want))
            self.step += 1
            if not self.pipelined and want is not None:
                break

    def fail(self, why):
        if self.error is None:
            self.error = f"{self.kind} connection: {why}"
        self.finish()

    def finish(self):
        if self.sock is not None:
            try:
                self.sel.unregister(self.sock)
            except (KeyError, ValueError):
                pass
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
        self.done = True

    def check_answer(self, index, want, got):
        if isinstance(want, str):
            if got != want:
                self.fail(f"answer {index}: got {got!r}, expected {want!r}")
            return
        # A refusal whose minutes depend on when the message and the retry
        # were decided: by the client's clock, between sending and reading.
        m = want[0].fullmatch(got)
        if m is None:
            self.fail(f"answer {index}: got {got!r}, expected "
                      f"/{want[0].pattern}/")
            return
        first = self.times[want[1]]
        retry = self.times[index]
        possible = {60 - (m1 - m0)
                    for m0 in range(minute(first[0]), minute(first[1]) + 1)
                    for m1 in range(minute(retry[0]), minute(time.time()) + 1)
                    if m1 >= m0}
        if int(m.group(1)) not in possible:
            self.fail(f"answer {index}: try again in {m.group(1)} minutes, "
                      f"expected one of {sorted(possible)}")

    def on_data(self, data):
        self.buf += data
        while b"\n\n" in self.buf and self.waiting:
            answer, self.buf = self.buf.split(b"\n\n", 1)
            index, want = self.waiting.pop(0)
            self.times[index][1] = time.time()
            self.check_answer(index, want, answer.decode(errors="replace"))
            if self.done:
                return
            if not self.pipelined:
                self.queue_next()
        if self.buf and not self.waiting:
            self.fail(f"bytes beyond the expected answers: {self.buf[:80]!r}")
            return
        if not self.waiting and self.step == len(self.steps) and \
                self.end == "close":
            self.finish()

    def on_eof(self):
        if self.waiting:
            self.fail(f"closed by the server with {len(self.waiting)} "
                      f"answer(s) missing; unread {self.buf[:80]!r}")
        elif self.buf:
            self.fail(f"closed after bytes nobody asked for: {self.buf[:80]!r}")
        elif self.end != "server_closes":
            self.fail("closed by the server")
        else:
            self.finish()


def make_conn(rng, serial):
    """One client's part; serial picks its own mailbox."""
    own = f"v{serial}@{DOMAIN}"
    unhosted = f"someone{serial}@elsewhere.example"
    r = rng.random()
    valid = [(data_req(unhosted), DUNNO), (data_req(own), DUNNO),
             (data_req(own, 1), (refused_re(own), 1))]
    if r < 0.20:
        return Conn("valid", valid)
    if r < 0.30:
        return Conn("valid/pipelined", valid, pipelined=True)
    if r < 0.42:
        return Conn("valid/byte-by-byte", valid, slow=True)
    if r < 0.47:
        # A legal line with a long value: cut to 400 bytes, not hosted.
        long_sender = "x" * 1500 + "@" + DOMAIN
        return Conn("valid/long-value",
                    [(data_req(long_sender, sender=long_sender), DUNNO)])
    if r < 0.55:
        return Conn("zero", [(data_req(f"zero@{DOMAIN}"),
                              limit0_text(f"zero@{DOMAIN}"))])
    if r < 0.70:
        bad = rng.choice([
            b"request=smtpd_access_policy\nno equals sign here\n\n",
            b"request=smtpd_access_policy\nsender=a\x00b@x\n\n",
            b"protocol_state=DATA\nsender=a@b\n\n",
            b"request=smtpd_access_policy\nrecipient_count=12x\n\n",
            b"request=smtpd_access_policy\nrecipient_count=99999999999\n\n",
            b"=value without a name\n\n",
        ])
        steps = [(bad, None)]
        if rng.random() < 0.5:
            steps.insert(0, (data_req(unhosted), DUNNO))
        return Conn("malformed", steps, end="server_closes",
                    slow=rng.random() < 0.2)
    if r < 0.85:
        bad = rng.choice([
            b"request=smtpd_access_policy\nsender=" + b"y" * 5000 + b"\n\n",
            b"request=smtpd_access_policy\n" +
            b"".join(b"a%d=%s\n" % (i, b"z" * 60) for i in range(1100)) +
            b"\n",
            b"request=smtpd_access_policy\n" +
            b"".join(b"k%d=v\n" % i for i in range(150)) + b"\n",
        ])
        return Conn("overlong", [(bad, None)], end="server_closes")
    req = data_req(own)
    return Conn("abort", [(req[:rng.randrange(1, len(req) - 2)], None)],
                end="abort", rst=rng.random() < 0.5)


def rss(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * KIB
    raise Failure(f"no {field} for process {pid}")


def run_round(port, pid, rng, n, first_serial):
    sel = selectors.DefaultSelector()
    conns = []
    for i in range(n):
        c = make_conn(rng, first_serial + i)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        c.sock = s
        c.sel = sel
        c.queue_next()
        conns.append(c)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, c)

    deadline = time.monotonic() + ROUND_TIMEOUT
    held = 0  # descriptors the daemon holds, at most (a sample)
    samples = []
    next_sample = 0
    while True:
        live = [c for c in conns if not c.done]
        if not live:
            break
        if time.monotonic() > deadline:
            kinds = {}
            for c in live:
                kinds[c.kind] = kinds.get(c.kind, 0) + 1
            raise Failure(f"round not finished after {ROUND_TIMEOUT} s: "
                          f"{len(live)} clients left: {kinds}")
        if time.monotonic() >= next_sample:
            samples.append(rss(pid))
            held = max(held, len(os.listdir(f"/proc/{pid}/fd")))
            next_sample = time.monotonic() + 0.1
        for key, events in sel.select(timeout=0.05):
            c = key.data
            if c.done:
                continue
            if events & selectors.EVENT_READ:
                try:
                    data = c.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    data = None
                except (ConnectionResetError, BrokenPipeError):
                    data = b""
                if data == b"":
                    c.on_eof()
                elif data:
                    c.on_data(data)
            if c.done or not (events & selectors.EVENT_WRITE) or not c.out:
                continue
            chunk = c.out[:1] if c.slow else c.out
            try:
                sent = c.sock.send(chunk)
                c.out = c.out[sent:]
            except (BlockingIOError, InterruptedError):
                pass
            except (ConnectionResetError, BrokenPipeError):
                # The server closed a connection that was still sending
                # (an over-long request): what it sent before counts.
                c.out = b""
                if c.end != "server_closes":
                    c.fail("the server closed while the client was sending")
        for c in live:
            if c.done:
                continue
            if c.end == "abort" and not c.out:
                if c.rst:
                    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                      struct.pack("ii", 1, 0))
                c.finish()
                continue
            # Writes are wanted only while there is something to write.
            want = selectors.EVENT_READ | (
                selectors.EVENT_WRITE if c.out else 0)
            if sel.get_key(c.sock).events != want:
                sel.modify(c.sock, want, c)
    sel.close()
    errors = [c.error for c in conns if c.error]
    kinds = {}
    for c in conns:
        kinds[c.kind] = kinds.get(c.kind, 0) + 1
    return errors, kinds, samples, held


class Daemon:
    def __init__(self, binary, tmp, text):
        self.conf = os.path.join(tmp, "abuse.conf")
        with open(self.conf, "w") as f:
            f.write(text)
        self.log_path = os.path.join(tmp, "abuse.log")
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "--foreground", "--config", self.conf,
             "--listen", "inet:127.0.0.1:0", "--idle-timeout", "300",
             # Every client here is 127.0.0.1; the cap per client has
             # tests of its own (slow_clients.py).
             "--max-connections-per-client", "1000000"],
            stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf)
        self.port = None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            m = re.search(r"ready: listening on inet:127\.0\.0\.1:(\d+)",
                          self.log())
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise Failure(f"the daemon did not start; log:\n{self.log()}")

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise Failure("the daemon did not stop on SIGTERM")
        self.logf.close()
        if re.search(r"Sanitizer|runtime error: ", self.log()):
            raise Failure(f"sanitizer report in the daemon's log:\n"
                          f"{self.log()[-4000:]}")
        return self.proc.returncode


def fresh_client_check(port, serial):
    """A well-behaved client after the storm: exact answers."""
    own = f"v{serial}@{DOMAIN}"
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    buf = b""
    answers = []
    for req in (data_req(own), data_req(f"zero@{DOMAIN}")):
        s.sendall(req)
        while b"\n\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise Failure("the fresh client was closed")
            buf += chunk
        answer, buf = buf.split(b"\n\n", 1)
        answers.append(answer.decode())
    s.close()
    if answers != [DUNNO, limit0_text(f"zero@{DOMAIN}")]:
        raise Failure(f"the fresh client got {answers!r}")


def main():
    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        sys.exit(__doc__)
    build = args[0]
    n, rounds = 2000, 2
    i = 1
    while i < len(args):
        if args[i] == "--connections":
            n = int(args[i + 1])
        elif args[i] == "--rounds":
            rounds = int(args[i + 1])
        else:
            sys.exit(f"unknown argument {args[i]}")
        i += 2
    if n > MAILBOXES_PER_ROUND:
        sys.exit(f"at most {MAILBOXES_PER_ROUND} connections")
    binary = os.path.join(build, "examples", "obspam-policyd")
    if not os.access(binary, os.X_OK):
        sys.exit(f"no {binary}: build the project first")

    # The client side needs a descriptor per connection too; the daemon
    # inherits the limit (and raises its own soft limit to the hard one).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 256
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            sys.exit(f"RLIMIT_NOFILE hard limit {hard} < {want}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    rng = random.Random(20240501)
    random.seed(20240501)
    with tempfile.TemporaryDirectory() as tmp:
        d = Daemon(binary, tmp, config(rounds + 1))
        try:
            base = rss(d.proc.pid)
            print(f"daemon pid {d.proc.pid} on port {d.port}; RSS at start "
                  f"{base / MIB:.1f} MiB")
            after = []
            for r in range(rounds):
                t0 = time.monotonic()
                errors, kinds, samples, held = run_round(
                    d.port, d.proc.pid, rng, n, r * MAILBOXES_PER_ROUND)
                if not d.alive():
                    raise Failure(f"the daemon died in round {r + 1}; log:\n"
                                  f"{d.log()[-4000:]}")
                after.append(rss(d.proc.pid))
                print(f"round {r + 1}: {n} connections in "
                      f"{time.monotonic() - t0:.1f} s "
                      f"({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}); "
                      f"up to {held} descriptors open in the daemon; "
                      f"RSS max {max(samples) / MIB:.1f} MiB, after "
                      f"{after[-1] / MIB:.1f} MiB")
                if errors:
                    for e in errors[:10]:
                        print("  " + e)
                    raise Failure(f"round {r + 1}: {len(errors)} clients "
                                  f"did not get what they should")
            fresh_client_check(d.port, rounds * MAILBOXES_PER_ROUND)
            peak = rss(d.proc.pid, "VmHWM")
            bound = base + n * 16 * KIB + 32 * MIB
            print(f"peak RSS {peak / MIB:.1f} MiB (bound {bound / MIB:.1f}); "
                  f"after the last round {after[-1] / MIB:.1f} MiB (bound "
                  f"{(after[0] + 8 * MIB) / MIB:.1f})")
            if peak > bound:
                raise Failure(f"peak RSS {peak} over the bound {bound}")
            if after[-1] > after[0] + 8 * MIB:
                raise Failure(f"RSS grows from round to round: {after}")
            bad = len(re.findall(r"bad policy request", d.log()))
            print(f"the daemon logged {bad} bad requests and is alive")
            rc = d.stop()
            if rc != 0:
                raise Failure(f"the daemon exited with {rc}")
        except Failure as e:
            print(f"FAIL: {e}")
            return 1
        finally:
            if d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
