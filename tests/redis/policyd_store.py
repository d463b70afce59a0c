#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""obspam-policyd on the Redis store: Redis killed, then restarted.

    policyd_store.py BUILD SERVERS_SH REDIS_PORT [SCENARIO]

Scenarios:
  episode  (the default) While Redis is down the daemon keeps answering
           from its own counters, logs the episode once and counts it in
           the metrics; when Redis is back it logs that once too, with the
           metric's count of decisions made without it.
  load     The same under load: Redis is killed while requests stream in
           on several connections, and started again; the recovery line's
           count is the metric's exactly (the decisions made between the
           kill and the daemon's next look at the store included).
  defer    store-fallback defer under load: the requests that come while
           Redis is down are closed unanswered (Postfix defers them), the
           outage is logged once when it begins, with no line per request,
           and once when it ends, with the count of decisions made without
           it (the metric's) and of requests deferred (as many as the
           clients saw closed).
  outages  store-fallback defer under load on many connections, Redis
           frozen (SIGSTOP) and thawed again and again: each recovery
           comes while requests are failing at once on other connections,
           whose answers come back after Redis answers again. Every
           outage is logged when it begins and said in a recovery line,
           and the lines' counts add up to the metric's count of
           decisions made without Redis and to the requests the clients
           saw closed, exactly.

Every wait is bounded.
"""
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "daemons"))
import scenario  # noqa: E402
from scenario import PolicyLoad  # noqa: E402

TIMEOUT = 15


def wait_for(what, probe, timeout=TIMEOUT):
    return scenario.wait_for(what, probe, timeout)


def ask(port, login):
    return scenario.ask_policy(port, login, TIMEOUT)


def metrics(port):
    return scenario.http_get(port, timeout=TIMEOUT).decode()


def metric(text, name):
    m = re.search("^" + re.escape(name) + r" (\S+)$", text, re.M)
    if not m:
        raise SystemExit(f"no metric {name} in:\n{text}")
    return float(m.group(1))


def expect(got, want, what):
    if got != want:
        raise SystemExit(f"{what}: got {got!r}, expected {want!r}")


def only_dunno(answer):
    if answer != "action=DUNNO":
        raise scenario.Failure(f"unexpected answer {answer!r}")


OUTAGES = 6
CONNECTIONS = 16

# The recovery lines: "... N decisions were made without it; D requests
# were deferred (episode K)", or "(episodes J to K)" for outages said
# together.
RECOVERY = (r"store: the shared store answers again; (\d+) decisions were "
            r"made without it(?:; (\d+) requests were deferred)? "
            r"\(episodes? (?:(\d+) to )?(\d+)\)$")


def recovered(mport, logged):
    """The count of episodes when Redis answers and a recovery line
    covers the last of them; else None."""
    text = metrics(mport)
    episodes = int(metric(text, "obspam_store_fallback_episodes_total"))
    if metric(text, "obspam_store_up") != 1.0 or not any(
            int(m[3]) == episodes for m in logged(RECOVERY)):
        return None
    return episodes


def outages(servers, port, mport, logged):
    """The outages scenario (see the top)."""
    load = PolicyLoad(port, CONNECTIONS,
                      login=lambda i: f"info{i}@acme.example",
                      check=only_dunno, timeout=TIMEOUT)
    try:
        wait_for("answers on Redis", lambda: load.answered() >= 200)
        for k in range(1, OUTAGES + 1):
            seen = metric(metrics(mport),
                          "obspam_store_fallback_episodes_total")
            subprocess.run([servers, "freeze", "main"], check=True)
            try:
                # A request times out (store-timeout) and opens the
                # episode; then requests fail at once until Redis is
                # probed again, at most once a second.
                wait_for(f"outage {k}", lambda: metric(
                    metrics(mport),
                    "obspam_store_fallback_episodes_total") > seen)
                base = load.unanswered
                wait_for(f"requests deferred in outage {k}",
                         lambda: load.unanswered >= base + 20)
            finally:
                subprocess.run([servers, "thaw", "main"], check=True)
            # Redis answering and the recovery line (the daemon looks
            # once a second), then decisions on Redis again before the
            # next outage: each outage ends in a line of its own, while
            # requests that failed at once still come back.
            wait_for(f"the recovery line of outage {k}",
                     lambda: recovered(mport, logged))
            base = load.answered()
            wait_for(f"answers after outage {k}",
                     lambda: load.answered() >= base + 50)
    finally:
        load.finish()
    episodes = wait_for("the last recovery line",
                        lambda: recovered(mport, logged))
    text = metrics(mport)
    made = int(metric(text, "obspam_store_fallback_decisions_total"))
    # Each freeze is an episode; a machine too slow for store-timeout
    # may add some.
    if episodes < OUTAGES:
        raise SystemExit(f"{episodes} episodes for {OUTAGES} outages")
    lines = logged(RECOVERY)
    said, deferred, covered = 0, 0, []
    for m in lines:
        # Every request here makes one decision: each one made without
        # Redis is a request deferred, in the same line.
        expect(int(m[1] or 0), int(m[0]),
               f"requests deferred in the line of episode {m[3]}")
        said += int(m[0])
        deferred += int(m[1] or 0)
        covered += list(range(int(m[2] or m[3]), int(m[3]) + 1))
    expect(covered, list(range(1, episodes + 1)),
           "the episodes the recovery lines cover, each once")
    expect(len(logged(r"store: the shared store does not answer")), episodes,
           "outages logged when they begin")
    expect(said, made, "decisions made without Redis, the lines' sum")
    expect(deferred, load.unanswered, "requests deferred, the lines' sum")
    expect(load.unanswered, made, "requests closed unanswered")
    expect(logged(r"^.*cannot decide.*$"), [],
           "a line per request that could not be decided")
    print(f"outages: {OUTAGES} outages, {episodes} episodes, {len(lines)} "
          f"recovery lines, {load.answered()} answered, {made} decided "
          f"without Redis, {load.unanswered} closed unanswered")
    print("ok")


def main():
    build, servers, redis_port = sys.argv[1], sys.argv[2], sys.argv[3]
    scenario = sys.argv[4] if len(sys.argv) > 4 else "episode"
    if scenario not in ("episode", "load", "defer", "outages"):
        raise SystemExit(f"unknown scenario {scenario!r}")
    daemon = os.path.join(build, "examples", "obspam-policyd")
    with tempfile.TemporaryDirectory(prefix="policyd-store-") as tmp:
        conf = os.path.join(tmp, "obspam.conf")
        with open(conf, "w") as f:
            f.write(f"store redis://127.0.0.1:{redis_port}\n"
                    f"store-prefix policyd-test-{scenario}:\n"
                    "store-timeout 200\n"
                    + ("store-fallback defer\n"
                       if scenario in ("defer", "outages") else "")
                    + "subscription acme\n"
                    "domain acme.example subscription=acme "
                    "mailbox=1000000 domain=10000000\n"
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
            if scenario == "outages":
                try:
                    outages(servers, port, mport, logged)
                finally:
                    # The store's lines, to tell what went wrong when a
                    # check fails.
                    for line in logged(r"^.*store: .*$"):
                        print(line)
                return
            mode = ("deferring mail" if scenario == "defer"
                    else "on this node's own counters")
            load = None
            if scenario == "episode":
                subprocess.run([servers, "kill", "main"], check=True)
                # Mail keeps flowing on the daemon's own counters.
                for i in range(3):
                    expect(ask(port, "info@acme.example"), "action=DUNNO",
                           f"without Redis, message {i}")
                text = metrics(mport)
                expect(metric(text, "obspam_store_up"), 0.0, "store down")
                expect(metric(text, "obspam_store_fallback_episodes_total"),
                       1.0, "episodes")
                expect(metric(text, "obspam_store_fallback_decisions_total"),
                       3.0, "decisions without Redis")
            else:
                load = PolicyLoad(port, 4,
                                  login=lambda i: f"info{i}@acme.example",
                                  check=only_dunno, timeout=TIMEOUT)
                wait_for("answers on Redis", lambda: load.answered() >= 200)
                subprocess.run([servers, "kill", "main"], check=True)
                # Decisions without Redis, many of them before the daemon's
                # next look at the store (once a second).
                wait_for("decisions without Redis", lambda: metric(
                    metrics(mport),
                    "obspam_store_fallback_decisions_total") >= 300)
            wait_for("the episode in the log", lambda: logged(
                r"store: the shared store does not answer; deciding without "
                r"it \(" + re.escape(mode) + r"\) until it does "
                r"\(episode 1\)"))

            subprocess.run([servers, "restart", "main"], check=True)
            # Redis is retried at most once a second.
            if load is None:
                wait_for("a decision on Redis again", lambda: ask(
                    port, "info@acme.example") == "action=DUNNO" and metric(
                        metrics(mport), "obspam_store_up") == 1.0)
            else:
                wait_for("Redis answering again", lambda: metric(
                    metrics(mport), "obspam_store_up") == 1.0)
            lines = wait_for("the recovery in the log", lambda: logged(
                r"^.*store: the shared store answers again; .*$"))
            answered, unanswered = 0, 0
            if load:
                load.finish()
                answered, unanswered = load.answered(), load.unanswered
            text = metrics(mport)
            made = int(metric(text, "obspam_store_fallback_decisions_total"))
            expect(metric(text, "obspam_store_fallback_episodes_total"), 1.0,
                   "episodes")
            # Exactly the metric's count, and for defer the requests the
            # clients saw closed unanswered.
            if scenario == "defer":
                expect(unanswered, made, "requests closed unanswered")
                want = (f"store: the shared store answers again; {made} "
                        f"decisions were made without it; {unanswered} "
                        "requests were deferred (episode 1)")
            else:
                expect(unanswered, 0, "requests closed unanswered")
                want = (f"store: the shared store answers again; {made} "
                        "decisions were made without it (episode 1)")
            expect(lines[0][lines[0].index("store: "):], want,
                   "the recovery line")
            expect(len(logged(r"store: the shared store does not answer")),
                   1, "episodes logged")
            expect(len(logged(r"store: the shared store answers again")), 1,
                   "recoveries logged")
            expect(logged(r"^.*cannot decide.*$"), [],
                   "a line per request that could not be decided")
            if load:
                print(f"{scenario}: {answered} answered, {made} decided "
                      f"without Redis, {unanswered} closed unanswered")
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
