#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""obspam-milter on the Redis store with its pool busy: a pool of one
connection to Redis behind a proxy that adds 150 ms to each round trip,
store-timeout 1000 ms, and 16 messages decided at once. Each decision
holds the connection for a round trip, so the first few get it in turn
and the rest wait for longer than store-timeout and are decided without
Redis, which answers all along (no outage).

    milter_busy.py BUILD REDIS_PORT

An episode is logged once when it begins (the pool's size and the
timeout) and once when it ends, with the count of decisions made
without Redis, which is the metric's increase; with store-fallback
defer also the requests deferred, as many as the MTA got a 451 for.
Two episodes, the second after a reload to store-fallback defer, each
said by its own two lines. Every wait is bounded.
"""
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "daemons"))
import milter_client as mc  # noqa: E402
import scenario  # noqa: E402
from scenario import Failure, expect, free_port  # noqa: E402

TIMEOUT = 30
DELAY_MS = 150
BURST = 16

CONFIG = """\
default mailbox=unlimited domain=unlimited subscription=unlimited scripts=yes
subscription web uid=10001
domain web.example subscription=web
store redis://127.0.0.1:{port}/0?pool=1
store-prefix {prefix}
store-timeout 1000
store-fallback {fallback}
"""

BEGIN = ("store: the pool of 1 connection to the shared store was busy for "
         "longer than 1000 ms (store-timeout); deciding without it ({how}) "
         "while it is (busy episode {k})")
END = (r"store: the pool of the shared store has free connections again; "
       r"(\d+) decisions were made without it(?:; (\d+) requests were "
       r"deferred)? \(busy episode {k}\)$")


def metric(port, name):
    text = scenario.http_get(port, timeout=TIMEOUT).decode()
    m = re.search("^" + re.escape(name) + r" (\S+)$", text, re.M)
    if not m:
        raise Failure(f"no metric {name} in:\n{text}")
    return int(float(m.group(1)))


def burst(spec, first):
    """BURST local submissions of uid 10001, their ends of message sent
    at once; returns their reply codes."""
    ready = threading.Barrier(BURST)
    codes = [None] * BURST

    def one(i):
        qid = f"B{first + i}"
        c = mc.local_session(spec)
        try:
            c.mail("<web@web.example>", {"i": qid})
            c.rcpt("<r@example.org>", {"{rcpt_addr}": "r@example.org"})
            c.data({"i": qid})
            c.header("X-Obspam-Pickup", f"uid=10001 id={qid}", {"i": qid})
            c.eoh({"i": qid})
            c.body(b"hello\r\n")
            ready.wait(TIMEOUT)
            codes[i] = c.eom({"i": qid}).code
        finally:
            c.quit()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(BURST)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    if any(t.is_alive() for t in threads) or None in codes:
        raise Failure(f"the burst did not end: {codes}")
    return codes


def main(argv):
    if len(argv) != 3:
        print(__doc__)
        return 2
    build, redis_port = argv[1], int(argv[2])
    tmp = tempfile.mkdtemp(prefix="milter-busy.")
    proxy_port, mport = free_port(), free_port()
    spec = f"inet:{free_port()}@127.0.0.1"
    conf = os.path.join(tmp, "obspam.conf")
    log_path = os.path.join(tmp, "milter.log")
    prefix = f"obspam-busy-{os.getpid()}:"

    def configure(fallback):
        with open(conf, "w") as f:
            f.write(CONFIG.format(port=proxy_port, prefix=prefix,
                                  fallback=fallback))

    def log():
        with open(log_path) as f:
            return f.read()

    def lines(pattern):
        return re.findall(pattern, log(), re.M)

    proxy = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "delay_proxy.py"),
         str(proxy_port), str(redis_port), str(DELAY_MS)],
        stdout=subprocess.PIPE, text=True)
    milter = None
    try:
        expect(proxy.stdout.readline().strip(), "ready", "the proxy")
        configure("local")
        with open(log_path, "w") as out:
            milter = subprocess.Popen(
                [os.path.join(build, "examples", "obspam-milter"),
                 "--foreground", "--config", conf, "--socket", spec,
                 "--metrics", f"inet:127.0.0.1:{mport}"],
                stdout=out, stderr=subprocess.STDOUT)
        scenario.wait_for("the milter ready",
                          lambda: "ready: listening on" in log(), TIMEOUT)
        # One message makes the connection (its scripts loaded) first.
        c = mc.local_session(spec)
        r = c.message("<web@web.example>", ["<r@example.org>"],
                      [("X-Obspam-Pickup", "uid=10001 id=W1")],
                      queue_id="W1")
        c.quit()
        expect(r.code, mc.SMFIR_CONTINUE, "the first message")
        expect(metric(mport, "obspam_store_fallback_decisions_total"), 0,
               "no decision without Redis yet")

        # Episode 1, store-fallback local: every message accepted.
        codes = burst(spec, 0)
        expect(codes, [mc.SMFIR_CONTINUE] * BURST, "the burst's replies")
        made = metric(mport, "obspam_store_fallback_decisions_total")
        if not 0 < made < BURST:
            raise Failure(f"{made} of {BURST} decisions made without Redis")
        ended = scenario.wait_for(
            "the end of busy episode 1",
            lambda: lines(END.replace("{k}", "1")), TIMEOUT)
        expect(ended, [(str(made), "")], "the end line: the metric's count")
        expect(log().count(BEGIN.format(how="on this node's own counters",
                                        k=1)), 1, "one line when it began")

        # Episode 2, store-fallback defer: the decisions made without
        # Redis are deferred (451 at the end of the message).
        configure("defer")
        milter.send_signal(signal.SIGHUP)
        scenario.wait_for("the reload", lambda: "reload ok" in log(),
                          TIMEOUT)
        codes = burst(spec, BURST)
        deferred = codes.count(mc.SMFIR_REPLYCODE)
        expect(codes.count(mc.SMFIR_CONTINUE) + deferred, BURST,
               f"accepted or deferred: {codes}")
        more = metric(mport, "obspam_store_fallback_decisions_total") - made
        expect(deferred, more, "deferred: the decisions made without Redis")
        if more == 0:
            raise Failure("no decision made without Redis in episode 2")
        ended = scenario.wait_for(
            "the end of busy episode 2",
            lambda: lines(END.replace("{k}", "2")), TIMEOUT)
        expect(ended, [(str(more), str(deferred))],
               "the end line: the metric's count, the requests deferred")
        expect(log().count(BEGIN.format(how="deferring mail", k=2)), 1,
               "one line when it began")
        # Each episode said once, and no outage.
        expect(len(lines(r"store: the pool of 1 connection to the shared "
                         r"store was busy")), 2, "two episodes begun")
        expect(len(lines(r"store: the pool of the shared store has free "
                         r"connections again")), 2, "two ended")
        expect(lines(r"store: the shared store does not answer.*$"), [],
               "no outage")
        expect(lines(r"cannot decide.*$"), [], "no error line per message")
        expect(metric(mport, "obspam_store_fallback_episodes_total"), 0,
               "no outage counted")
    except Failure as e:
        print(f"FAIL: {e}\n--- milter.log:\n{log()}")
        return 1
    finally:
        if milter is not None and milter.poll() is None:
            milter.send_signal(signal.SIGTERM)
            try:
                milter.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                milter.kill()
                milter.wait()
        proxy.kill()
        proxy.wait()
    for bad in ("Sanitizer", "runtime error:"):
        if bad in log():
            print(f"FAIL: sanitizer report:\n{log()}")
            return 1
    print(f"ok: episode 1: {made} decisions made without Redis; "
          f"episode 2: {more}, deferred")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
