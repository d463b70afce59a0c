#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""obspam-milter on Redis: its threads (one per SMTP connection) decide
synchronously; with the engine's pool of Redis connections they no longer
wait for each other's round trip. Measures messages a second through the
milter with its counters in memory, in Redis on loopback and in Redis
1 ms away (bench_delay_proxy), CONNS milter connections at once, each
sending one authenticated message after another (MAIL, RCPT, DATA,
headers, body, end of message, as Postfix does).

    tests/bench/milter_redis.py [BUILD_DIR]      (default: build)

Each Redis case runs with ?pool=1 (one connection for the whole milter,
as 1.3 had: every thread waits for the others' round trips) and with
?pool=CONNS (a connection for each thread).

Environment: DURATION=5  CONNS=16  DELAY_US=500  STORE_TIMEOUT=200 (ms). Prints figures, never
fails on a time. A client in Python: the figures are a floor, the serial
bound (one round trip at a time for the whole milter) is the point.
"""
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "daemons"))
import milter_client as mc  # noqa: E402
import scenario  # noqa: E402
from scenario import free_port  # noqa: E402

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
DURATION = float(os.environ.get("DURATION", "5"))
CONNS = int(os.environ.get("CONNS", "16"))
DELAY_US = int(os.environ.get("DELAY_US", "500"))
STORE_TIMEOUT = int(os.environ.get("STORE_TIMEOUT", "200"))


def wait_for(what, probe, timeout=20):
    return scenario.wait_for(what, probe, timeout)


def run_load(spec):
    stop = threading.Event()
    counts = [0] * CONNS
    errors = []

    def client(i):
        try:
            c = mc.smtp_session(spec)
            login = f"m{i}@acme.example"
            while not stop.is_set():
                r = c.message(f"<{login}>", ["<someone@example.org>"],
                              [("Subject", "bench")], auth=login)
                if r is None or r.code not in (mc.SMFIR_CONTINUE,
                                               mc.SMFIR_ACCEPT):
                    raise SystemExit(f"message {counts[i]}: {r!r}")
                counts[i] += 1
        except BaseException as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(i,))
               for i in range(CONNS)]
    for t in threads:
        t.start()
    time.sleep(1)  # warm-up: connections negotiated, first decisions made
    start = sum(counts)
    t0 = time.monotonic()
    time.sleep(DURATION)
    done = sum(counts) - start
    elapsed = time.monotonic() - t0
    stop.set()
    for t in threads:
        t.join(20)
    if errors:
        raise SystemExit(f"load: {errors[0]}")
    return done / elapsed


def main():
    milter = os.path.join(BUILD, "examples", "obspam-milter")
    proxy = os.path.join(BUILD, "bench", "bench_delay_proxy")
    procs = []
    with tempfile.TemporaryDirectory(prefix="milter-redis-") as tmp:
        try:
            rport = free_port()
            procs.append(subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(rport),
                 "--dir", tmp, "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            out = os.path.join(tmp, "proxy.out")
            with open(out, "w") as f:
                procs.append(subprocess.Popen(
                    [proxy, "-d", str(DELAY_US), f"127.0.0.1:{rport}"],
                    stdout=f))
            dport = int(wait_for("the proxy", lambda: re.findall(
                r"listening 127\.0\.0\.1:(\d+)", open(out).read()))[0])
            tree = ("subscription acme subscription=100000000\n"
                    "domain acme.example subscription=acme "
                    "mailbox=10000000 domain=100000000\n")
            results = []
            cases = [("memory", "")]
            for pool in (1, CONNS):
                cases += [(f"redis pool={pool}",
                           f"127.0.0.1:{rport}?pool={pool}"),
                          (f"redis-delay pool={pool}",
                           f"127.0.0.1:{dport}?pool={pool}")]
            for name, store in cases:
                conf = os.path.join(tmp, f"{name.replace(' ', '-')}.conf")
                with open(conf, "w") as f:
                    if store:
                        f.write(f"store redis://{store}\n"
                                "store-prefix milter:\n"
                                f"store-timeout {STORE_TIMEOUT}\n")
                    f.write(tree)
                port = free_port()
                log = os.path.join(tmp, f"{name.replace(' ', '-')}.log")
                with open(log, "w") as f:
                    p = subprocess.Popen(
                        [milter, "--foreground", "--config", conf,
                         "--socket", f"inet:{port}@127.0.0.1"],
                        stdout=f, stderr=subprocess.STDOUT)
                try:
                    wait_for("the milter", lambda: "ready: listening on"
                             in open(log).read())
                    rate = run_load(f"inet:{port}@127.0.0.1")
                finally:
                    p.terminate()
                    p.wait(20)
                # A figure made partly without Redis is not Redis's.
                down = len(re.findall(
                    r"store: the shared store does not answer", open(log).read()))
                results.append((name, rate, down))
                print(f"{name}: {rate:.0f} messages/s, {down} fallback "
                      "episodes", flush=True)
        finally:
            for p in procs:
                p.kill()
                p.wait()
    print(f"\nobspam-milter, {CONNS} connections, {DURATION:.0f} s each, "
          f"{os.cpu_count()} CPU, load average "
          f"{open('/proc/loadavg').read().split()[0]}")
    for name, rate, down in results:
        print(f"{name:20s} {rate:8.0f} messages/s"
              + (f"  (NOT Redis's: {down} fallback episodes)" if down else ""))


if __name__ == "__main__":
    main()
