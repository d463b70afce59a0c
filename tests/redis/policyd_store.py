#!/usr/bin/env python3
"""obspam-policyd on the Redis store: Redis killed, then restarted.

    policyd_store.py BUILD SERVERS_SH REDIS_PORT

While Redis is down the daemon keeps answering from its own counters, logs
the episode once and counts it in the metrics; when Redis is back it logs
that once too. Every wait is bounded.
"""
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

TIMEOUT = 15


def wait_for(what, probe, timeout=TIMEOUT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = probe()
        if got:
            return got
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def ask(port, login):
    """One DATA request; returns the action line."""
    attrs = {"request": "smtpd_access_policy", "protocol_state": "DATA",
             "protocol_name": "ESMTP", "client_address": "203.0.113.5",
             "sasl_username": login, "sender": login, "recipient_count": "1",
             "instance": f"i{time.monotonic_ns()}"}
    with socket.create_connection(("127.0.0.1", port), TIMEOUT) as s:
        s.sendall("".join(f"{k}={v}\n" for k, v in attrs.items()).encode()
                  + b"\n")
        data = b""
        while not data.endswith(b"\n\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.decode().strip()


def metrics(port):
    with socket.create_connection(("127.0.0.1", port), TIMEOUT) as s:
        s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.decode()


def metric(text, name):
    m = re.search("^" + re.escape(name) + r" (\S+)$", text, re.M)
    if not m:
        raise SystemExit(f"no metric {name} in:\n{text}")
    return float(m.group(1))


def expect(got, want, what):
    if got != want:
        raise SystemExit(f"{what}: got {got!r}, expected {want!r}")


def main():
    build, servers, redis_port = sys.argv[1], sys.argv[2], sys.argv[3]
    daemon = os.path.join(build, "examples", "obspam-policyd")
    with tempfile.TemporaryDirectory(prefix="policyd-store-") as tmp:
        conf = os.path.join(tmp, "obspam.conf")
        with open(conf, "w") as f:
            f.write(f"store redis://127.0.0.1:{redis_port}\n"
                    "store-prefix policyd-test:\n"
                    "store-timeout 200\n"
                    "subscription acme\n"
                    "domain acme.example subscription=acme mailbox=100\n"
                    "mailbox info@acme.example\n")
        log_path = os.path.join(tmp, "policyd.log")
        log = open(log_path, "w")
        proc = subprocess.Popen(
            [daemon, "--config", conf, "--foreground",
             "--listen", "inet:127.0.0.1:0",
             "--metrics", "inet:127.0.0.1:0"],
            stdout=log, stderr=subprocess.STDOUT)

        def logged(pattern):
            with open(log_path, errors="replace") as f:
                return re.findall(pattern, f.read(), re.M)

        try:
            port = int(wait_for("the policy listener", lambda: logged(
                r"ready: listening on inet:127\.0\.0\.1:(\d+)"))[-1])
            mport = int(wait_for("the metrics listener", lambda: logged(
                r"metrics listening on inet:127\.0\.0\.1:(\d+)"))[-1])
            expect(ask(port, "info@acme.example"), "action=DUNNO",
                   "on Redis")
            expect(metric(metrics(mport), "obspam_store_up"), 1.0,
                   "store up")

            subprocess.run([servers, "kill", "main"], check=True)
            # Mail keeps flowing on the daemon's own counters.
            for i in range(3):
                expect(ask(port, "info@acme.example"), "action=DUNNO",
                       f"without Redis, message {i}")
            wait_for("the episode in the log", lambda: logged(
                r"store: the shared store does not answer; deciding without "
                r"it \(on this node's own counters\) until it does "
                r"\(episode 1\)"))
            text = metrics(mport)
            expect(metric(text, "obspam_store_up"), 0.0, "store down")
            expect(metric(text, "obspam_store_fallback_episodes_total"), 1.0,
                   "episodes")
            expect(metric(text, "obspam_store_fallback_decisions_total"), 3.0,
                   "decisions without Redis")

            subprocess.run([servers, "restart", "main"], check=True)
            # Redis is retried at most once a second.
            wait_for("a decision on Redis again", lambda: ask(
                port, "info@acme.example") == "action=DUNNO" and metric(
                    metrics(mport), "obspam_store_up") == 1.0)
            wait_for("the recovery in the log", lambda: logged(
                r"store: the shared store answers again; \d+ decisions were "
                r"made without it"))
            expect(len(logged(r"store: the shared store does not answer")),
                   1, "episodes logged")
        finally:
            proc.terminate()
            try:
                proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
    print("ok")


if __name__ == "__main__":
    main()
