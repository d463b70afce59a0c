#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""obspam-policyd against clients that hold connections on purpose.

    tests/daemons/slow_clients.py BUILD_DIR SCENARIO...
    tests/daemons/slow_clients.py BUILD_DIR --list

Each scenario starts the real daemon on a free port of 127.0.0.1 (and a
Unix socket in a temporary directory), attacks it from other loopback
addresses (127.0.0.2 and up: each is another client to the daemon) or as
another user, and measures a good client from 127.0.0.1 meanwhile, in a
process of its own so that the attack's Python does not slow it down.
Figures are printed (they go into SECURITY.md); the bounds are asserted.

  slow      3,000 connections from 30 addresses: half send half a request
            and stop, half send a byte every 0.5 s (the idle timeout alone
            would never end them). Every one is closed within
            --request-timeout (2 s here) + 2 s; peak RSS grows by at most
            3,000 x 16 KiB + 16 MiB; the good client's requests take at
            most 250 ms each (99% within 50 ms).
  cap       one address opens 1,000 connections: 300 (the default per
            client) stay, the rest are closed at once and counted in one
            log line; a good client still gets in and is answered.
  uid       on the Unix socket, the uid is the client: user nobody opens
            60 connections with --max-connections-per-client 20 (20
            stay); root's are not affected.
  metrics   200 connections held open to the metrics endpoint, and opened
            again when dropped; 20 scrapes meanwhile each get the metrics
            within 1 s.
"""

import json
import os
import re
import resource
import selectors
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import policyd_test as pt  # noqa: E402
import scenario  # noqa: E402

KIB = 1024
MIB = 1024 * 1024


Failure = scenario.Failure
expect = scenario.expect


def status_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise Failure(f"no {field} for {pid}")


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n), hard))


def connect_from(src, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(pt.TIMEOUT)
    s.connect(("127.0.0.1", port))
    return s


# ---- the good client, in a process of its own ------------------------------

GOOD = "someone@elsewhere.example"


def good_client(port, seconds):
    """Asks for `seconds`, alternately on one kept connection and on a new
    one each time, and prints the latencies (seconds) as JSON."""
    req = pt.encode(**pt.data_req(GOOD))
    kept = socket.create_connection(("127.0.0.1", port), 10)
    lat, failures = [], 0
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        try:
            if i % 2 == 0:
                s, close = kept, False
            else:
                s, close = socket.create_connection(("127.0.0.1", port), 10), True
            t0 = time.monotonic()
            s.sendall(req)
            buf = b""
            while not buf.endswith(b"\n\n"):
                chunk = s.recv(4096)
                if not chunk:
                    raise OSError("closed")
                buf += chunk
            lat.append(time.monotonic() - t0)
            if buf != b"action=DUNNO\n\n":
                failures += 1
            if close:
                s.close()
        except OSError:
            failures += 1
            if i % 2 == 0:
                kept = socket.create_connection(("127.0.0.1", port), 10)
        i += 1
        time.sleep(0.01)
    print(json.dumps({"latencies": lat, "failures": failures}))


def logged_count(d, pattern, total, timeout=15):
    """The sum of the counts that the log lines matching pattern (one
    group: the count) give, once it reaches total or timeout passed."""
    end = time.monotonic() + timeout
    while True:
        got = sum(int(m) for m in re.findall(pattern, d.log(), re.M))
        if got >= total or time.monotonic() >= end:
            return got
        time.sleep(0.1)


def start_good(port, seconds):
    return subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--good-client",
         str(port), str(seconds)], stdout=subprocess.PIPE, text=True)


def good_figures(proc):
    out, _ = proc.communicate(timeout=120)
    r = json.loads(out)
    lat = sorted(r["latencies"])
    if not lat:
        raise Failure("the good client got no answer at all")
    p50 = lat[len(lat) // 2]
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    return len(lat), r["failures"], p50, p99, lat[-1]


# ---- scenarios -------------------------------------------------------------


def sc_slow(tmp):
    """3,000 slow and partial clients: all closed in time; memory and a good
    client's latency bounded."""
    n, addresses, timeout = 3000, 30, 2
    raise_nofile(n + 500)
    d = pt.Daemon(tmp, args=["--request-timeout", str(timeout)])
    socks = []
    try:
        pid = d.proc.pid
        # The daemon warmed up: a few requests of the good kind first.
        c = d.client()
        for _ in range(20):
            expect(c.request(**pt.data_req(GOOD)), pt.DUNNO, "warm-up")
        c.close()
        base = status_kib(pid, "VmRSS")
        good = start_good(d.port, 8)
        half = b"request=smtpd_access_policy\nprotocol_state=RCPT\nsender=a"
        t_open = time.monotonic()
        for i in range(n):
            s = connect_from(f"127.0.0.{2 + i % addresses}", d.port)
            s.sendall(half)
            s.setblocking(False)
            socks.append(s)
        opened = time.monotonic()
        sel = selectors.DefaultSelector()
        for s in socks:
            sel.register(s, selectors.EVENT_READ)
        closed_at = {}
        trickle = socks[::2]  # half of them go on, a byte every 0.5 s
        next_byte = time.monotonic() + 0.5
        deadline = opened + timeout + 10
        peak = 0
        while len(closed_at) < n and time.monotonic() < deadline:
            for key, _ in sel.select(0.05):
                s = key.fileobj
                data = scenario.recv_or_reset(s, 4096)
                if data:
                    raise Failure(f"a slow client got an answer: {data!r}")
                closed_at[s] = time.monotonic()
                sel.unregister(s)
            if time.monotonic() >= next_byte:
                for s in trickle:
                    if s not in closed_at:
                        try:
                            s.send(b"a")
                        except OSError:
                            pass
                next_byte += 0.5
            peak = max(peak, status_kib(pid, "VmRSS"))
        sel.close()
        hwm = status_kib(pid, "VmHWM")
        expect(len(closed_at), n, "connections closed by the daemon")
        last = max(closed_at.values()) - opened
        if last > timeout + 2:
            raise Failure(f"the last slow client was closed {last:.1f} s "
                          f"after the attack opened (timeout {timeout} s)")
        grown = (hwm - base) * KIB
        bound = n * 16 * KIB + 16 * MIB
        if grown > bound:
            raise Failure(f"peak RSS grew by {grown / MIB:.1f} MiB, more "
                          f"than {bound / MIB:.1f} MiB")
        after = status_kib(pid, "VmRSS")
        count, failures, p50, p99, worst = good_figures(good)
        expect(failures, 0, "the good client's failed requests")
        if worst > 0.25 or p99 > 0.05:
            raise Failure(f"good client: p50 {p50 * 1e3:.1f} ms, p99 "
                          f"{p99 * 1e3:.1f} ms, max {worst * 1e3:.1f} ms")
        expect(logged_count(d, r"warning: closed (\d+) connections? whose "
                            r"request was not complete within 2 s \(the "
                            r"last from 127\.0\.0\.\d+:\d+\)$", n),
               n, "closings logged")
        print(f"slow: {n} slow and partial clients from {addresses} "
              f"addresses, opened in {opened - t_open:.1f} s, all closed "
              f"{last:.1f} s after (request timeout {timeout} s); RSS "
              f"{base / 1024:.1f} MiB before, peak {hwm / 1024:.1f} MiB "
              f"(+{grown / MIB:.1f} MiB, {grown / n / KIB:.1f} KiB a "
              f"connection), {after / 1024:.1f} MiB after; good client: "
              f"{count} requests, p50 {p50 * 1e3:.2f} ms, p99 "
              f"{p99 * 1e3:.2f} ms, max {worst * 1e3:.2f} ms")
    finally:
        for s in socks:
            s.close()
        d.stop()
        d.kill()


def sc_cap(tmp):
    """One address, 1,000 connections: 300 stay, the rest are closed at
    once; another client still gets in."""
    n, cap = 1000, 300
    raise_nofile(n + 500)
    d = pt.Daemon(tmp)
    socks = []
    try:
        good = start_good(d.port, 3)
        t0 = time.monotonic()
        for _ in range(n):
            socks.append(connect_from("127.0.0.2", d.port))
        # The daemon closes what is over the limit without a byte.
        sel = selectors.DefaultSelector()
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        closed = set()
        end = time.monotonic() + 3
        while time.monotonic() < end and len(closed) < n - cap:
            for key, _ in sel.select(0.2):
                s = key.fileobj
                data = scenario.recv_or_reset(s, 4096)
                expect(data, b"", "bytes to a connection over the limit")
                closed.add(s)
                sel.unregister(s)
        took = time.monotonic() - t0
        # Settled: nothing more is closed.
        for key, _ in sel.select(0.5):
            closed.add(key.fileobj)
        sel.close()
        expect(len(closed), n - cap, "connections closed over the limit")
        # The ones that stay are served.
        open_ones = [s for s in socks if s not in closed]
        for s in open_ones[:5]:
            s.setblocking(True)
            s.sendall(pt.encode(**pt.data_req(GOOD)))
            expect(s.recv(4096), b"action=DUNNO\n\n", "a connection within")
        count, failures, p50, p99, worst = good_figures(good)
        expect(failures, 0, "the good client's failed requests")
        # Logged at once, then as a count every 10 s: the counts add up.
        logged = logged_count(
            d, rf"warning: refused (\d+) connections? of clients at the "
            rf"limit of {cap} connections per client \(the last from "
            rf"127\.0\.0\.2\)$", n - cap)
        expect(logged, n - cap, "refusals logged")
        print(f"cap: 1 address opened {n} connections in {took:.2f} s: "
              f"{cap} kept, {n - cap} closed at once; good client: "
              f"{count} requests, p99 {p99 * 1e3:.2f} ms, max "
              f"{worst * 1e3:.2f} ms")
    finally:
        for s in socks:
            s.close()
        d.stop()
        d.kill()


def nobody_connections(path, n):
    """Runs a process as user nobody that opens n connections to the
    Unix socket path and reports how many the daemon closed at once."""
    code = f"""
import selectors, socket, sys, time
socks = []
for _ in range({n}):
    s = socket.socket(socket.AF_UNIX)
    s.connect({path!r})
    s.setblocking(False)
    socks.append(s)
sel = selectors.DefaultSelector()
for s in socks:
    sel.register(s, selectors.EVENT_READ)
closed = 0
end = time.monotonic() + 2
while time.monotonic() < end:
    for key, _ in sel.select(0.2):
        try:
            data = key.fileobj.recv(10)
        except ConnectionResetError:
            data = b""
        if data:
            sys.exit("bytes to a connection over the limit")
        closed += 1
        sel.unregister(key.fileobj)
print(closed, flush=True)
sys.stdin.read()
"""

    def as_nobody():
        os.setgid(65534)
        os.setuid(65534)

    # The system Python: the one running this may live where nobody may
    # not read (a pyenv under /root).
    python = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) \
        else sys.executable
    return subprocess.Popen([python, "-c", code], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            preexec_fn=as_nobody)


def sc_uid(tmp):
    """On the Unix socket a client is a uid: nobody's 60 connections are
    cut to 20; root's still get in."""
    os.chmod(tmp, 0o755)
    d = pt.Daemon(tmp, args=["--max-connections-per-client", "20",
                             "--socket-mode", "0666",
                             "--allow-user", "nobody"])
    try:
        p = nobody_connections(d.unix, 60)
        closed = int(p.stdout.readline())
        expect(closed, 40, "nobody's connections closed")
        root = [pt.Client(d.unix) for _ in range(20)]
        for c in root:
            expect(c.request(**pt.data_req(GOOD)), pt.DUNNO, "root's")
        expect(logged_count(d, r"warning: refused (\d+) connections? of "
                            r"clients at the limit of 20 connections per "
                            r"client \(the last from uid 65534\)$", 40),
               40, "refusals logged")
        p.stdin.close()
        p.wait(pt.TIMEOUT)
        print("uid: user nobody opened 60 connections: 20 kept, 40 closed; "
              "root's 20 answered")
    finally:
        d.stop()
        d.kill()


def scrape(port):
    t0 = time.monotonic()
    data = scenario.http_get(port, timeout=5)
    if not data.startswith(b"HTTP/1.0 200 OK\r\n") or \
            b"\nobspam_connections_open " not in data:
        raise Failure(f"scrape: {data[:200]!r}")
    return time.monotonic() - t0


def sc_metrics(tmp):
    """200 idle connections held to the metrics port (reopened when
    dropped): 20 scrapes meanwhile, each within 1 s."""
    d = pt.Daemon(tmp, args=["--metrics", "inet:127.0.0.1:0"])
    held = []
    try:
        port = int(d.wait_log(r"metrics listening on inet:127\.0\.0\.1:(\d+)")
                   [-1])
        for _ in range(200):
            held.append(connect_from("127.0.0.2", port))
        times = []
        dropped = 0
        for _ in range(20):
            # The abuser opens again what was dropped.
            for i, s in enumerate(held):
                s.setblocking(False)
                try:
                    gone = s.recv(1) == b""
                except BlockingIOError:
                    gone = False
                except OSError:
                    gone = True
                if gone:
                    s.close()
                    dropped += 1
                    held[i] = connect_from("127.0.0.2", port)
            times.append(scrape(port))
            time.sleep(0.05)
        worst = max(times)
        if worst > 1.0:
            raise Failure(f"a scrape took {worst:.2f} s")
        print(f"metrics: 200 idle connections held (reopened {dropped} "
              f"times): 20 scrapes, slowest {worst * 1e3:.1f} ms")
    finally:
        for s in held:
            s.close()
        d.stop()
        d.kill()


SCENARIOS = scenario.scenarios_of(globals())


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--good-client":
        good_client(int(sys.argv[2]), float(sys.argv[3]))
        return 0
    return pt.main_of(__doc__, SCENARIOS, "slow-")


if __name__ == "__main__":
    sys.exit(main())
