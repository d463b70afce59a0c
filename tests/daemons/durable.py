#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""obspam-policyd's counters across restarts, whatever they were fed.

    tests/daemons/durable.py BUILD_DIR SCENARIO...
    tests/daemons/durable.py BUILD_DIR --list

Each scenario starts the real daemon on a free port of 127.0.0.1 (see
policyd_test.py), feeds it requests, stops or kills it, starts it again on
the same state file and checks every counter exactly through the control
socket.
"""

import os
import re
import shutil
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import policyd_test as pt  # noqa: E402
import scenario  # noqa: E402

expect = pt.expect
Failure = pt.Failure

COUNT_MAX = 1 << 48  # where an object's minute, hour and period stop
RECIPIENTS_MAX = 1 << 31  # OBSPAM_RECIPIENTS_MAX

# The start of each configuration here: no limit but the mailboxes' own.
ACME = """\
action defer
default mailbox=unlimited domain=unlimited subscription=unlimited
subscription acme
domain acme.example subscription=acme
"""

EXTREMES_CONFIG = ACME + """\
mailbox big@acme.example
subscription shop
domain shop.example subscription=shop
mailbox small@shop.example limit=20
"""


def pipelined(client, reqs, chunk=4000):
    """Sends reqs (encoded requests) in writes of `chunk` requests and
    returns every answer, in order."""
    answers = []
    for i in range(0, len(reqs), chunk):
        part = reqs[i:i + chunk]
        client.send(b"".join(part))
        answers += [client.read_answer() for _ in part]
    return answers


def counts(d, objects):
    """The count of each (kind, name) in objects, from the control
    socket."""
    return {o: int(pt.control_status(d.control, *o)["count"])
            for o in objects}


def sc_extremes(tmp):
    """Counts at the bounds: recipient_count 2^31 is accepted, above it the
    request is malformed; 2^17 + 10 messages of 2^31 recipients saturate
    their objects' counters at 2^48; every counter is the same after a
    restart, and a mailbox at 15 of 20 still has 5 left."""
    big, small = ("mailbox", "big@acme.example"), ("mailbox",
                                                   "small@shop.example")
    objects = [big, ("domain", "acme.example"), ("subscription", "acme"),
               small, ("domain", "shop.example"), ("subscription", "shop")]
    want = {big: COUNT_MAX, ("domain", "acme.example"): COUNT_MAX,
            ("subscription", "acme"): COUNT_MAX, small: 15,
            ("domain", "shop.example"): 15, ("subscription", "shop"): 15}
    # --refusal-log-interval 0: each bad request is logged whole, the
    # last one with its count.
    with pt.Daemon(tmp, EXTREMES_CONFIG, control=True,
                   args=["--refusal-log-interval", "0"]) as d:
        # The counters saturate per minute: the burst stays in one.
        pt.same_minute(40)
        c = d.client()
        expect(c.request(**pt.data_req(small[1], 15)), pt.DUNNO, "small 15")
        for bad in (RECIPIENTS_MAX + 1, (1 << 32) - 1, 1 << 32):
            b = d.client()
            b.send(pt.encode(**pt.data_req(big[1], bad)))
            b.expect_closed(f"recipient_count={bad}")
            b.close()
        d.wait_log(r"bad recipient_count '4294967296': expected a number "
                   r"up to 2\^31")
        expect(counts(d, [big]), {big: 0}, "malformed requests charge nothing")
        n = (1 << 17) + 10
        start = time.monotonic()
        answers = pipelined(c, [pt.encode(**pt.data_req(big[1],
                                                        RECIPIENTS_MAX))] * n)
        elapsed = time.monotonic() - start
        expect(answers, [pt.DUNNO] * n, "every message of the burst")
        expect(c.request(**pt.data_req(big[1], 7)), pt.DUNNO, "one more")
        print(f"    {n} messages of 2^31 recipients in {elapsed:.1f} s")
        expect(counts(d, objects), want, "counters before the restart")
        expect(d.stop(), 0, "exit status on SIGTERM")
    if "state unusable" in d.log():
        raise Failure(f"the save was not usable:\n{d.log()}")
    with pt.Daemon(tmp, EXTREMES_CONFIG, control=True) as d:
        if "state unusable" in d.log() or "starting from zero" in d.log():
            raise Failure(f"the state did not load:\n{d.log()}")
        expect(counts(d, objects), want, "counters after the restart")
        c = d.client()
        # The retry hint depends on the clock: the text before it.
        refusal = pt.defer_text("mailbox", small[1], 15, 20)
        got = c.request(**pt.data_req(small[1], 6))
        expect(got.split("; try again")[0], refusal.split("; try again")[0],
               "6 more of 20 after 15")
        expect(c.request(**pt.data_req(small[1], 5)), pt.DUNNO,
               "5 more of 20 after 15")
        expect(d.stop(), 0, "exit status on SIGTERM")


KILL_CONFIG = ACME + """\
mailbox full@acme.example limit=50
"""


class Sender(threading.Thread):
    """One connection sending DATA requests for one mailbox, one at a
    time, until the daemon dies: it knows how many were accepted and
    refused, and whether one was still unanswered."""

    def __init__(self, port, mailbox, recipients):
        super().__init__(daemon=True)
        self.port, self.mailbox, self.rcpt = port, mailbox, recipients
        self.accepted = self.refused = 0
        self.outstanding = False
        self.error = None

    def run(self):
        req = pt.encode(**pt.data_req(self.mailbox, self.rcpt))
        try:
            c = pt.Client(("127.0.0.1", self.port))
            while True:
                self.outstanding = True
                c.send(req)
                answer = c.read_answer()
                if answer == pt.DUNNO:
                    self.accepted += 1
                elif answer.startswith("action=451 4.7.1 "):
                    self.refused += 1
                else:
                    self.error = f"unexpected answer {answer!r}"
                    return
                self.outstanding = False
        except (OSError, pt.Failure):
            return  # the daemon was killed


def sc_kill9(tmp):
    """kill -9 under load, saves every second: after the restart each
    mailbox's count is exactly the recipients of the answers DUNNO its
    client received (plus the one request unanswered, if its decision was
    made), and so are the refusals; three rounds."""
    mailboxes = [f"m{i}@acme.example" for i in range(7)] + ["full@acme.example"]
    total = {m: [0, 0, 0] for m in mailboxes}  # accepted, refused, in doubt
    for rnd in range(3):
        with pt.Daemon(tmp, KILL_CONFIG, control=True,
                       args=["--save-interval", "1"]) as d:
            if rnd > 0:
                check_counts(d, mailboxes, total, "after the restart")
            senders = [Sender(d.port, m, 3 if m != mailboxes[-1] else 1)
                       for m in mailboxes]
            for s in senders:
                s.start()
            # Long enough for saves to happen under load, and a kill at a
            # moment no save chose.
            time.sleep(1.5 + 0.37 * rnd)
            d.proc.send_signal(signal.SIGKILL)
            d.proc.wait(pt.TIMEOUT)
            for s in senders:
                s.join(pt.TIMEOUT)
                if s.error:
                    raise Failure(f"{s.mailbox}: {s.error}")
                t = total[s.mailbox]
                t[0] += s.accepted * s.rcpt
                t[1] += s.refused
                t[2] += s.rcpt if s.outstanding else 0
            n = sum(s.accepted + s.refused for s in senders)
            print(f"    round {rnd + 1}: {n} answers before kill -9; "
                  f"{sum(s.outstanding for s in senders)} requests in doubt")
    with pt.Daemon(tmp, KILL_CONFIG, control=True) as d:
        check_counts(d, mailboxes, total, "after the last restart")


def check_counts(d, mailboxes, total, what):
    """Each mailbox's count and refusals as its client saw them; a request
    in doubt may or may not have been decided. The doubt is then settled
    as the daemon says, for the next round."""
    for m in mailboxes:
        st = pt.control_status(d.control, "mailbox", m)
        count, refused = int(st["count"]), int(st["refused"])
        acc, ref, doubt = total[m]
        full = m.startswith("full@")
        if full:
            ok_count = count == min(acc, 50) or (doubt and count == acc + 1)
            ok_ref = refused in ((ref, ref + 1) if doubt else (ref,))
        else:
            ok_count = count in ((acc, acc + doubt) if doubt else (acc,))
            ok_ref = refused == ref == 0
        if not (ok_count and ok_ref):
            raise Failure(f"{what}: {m}: count {count}, refused {refused}; "
                          f"the client saw {acc} recipients accepted, {ref} "
                          f"refusals, {doubt} in doubt")
        total[m] = [count, refused, 0]


def big_config(path, mailboxes=1000000, domains=100000, subs=20000):
    """The configuration of tests/bench/bench_config.c (write_config), with
    its sizes: 20,000 subscriptions, 100,000 domains, 1,000,000
    mailboxes."""
    plans = ("basic", "pro", "unlimited")
    with open(path, "w") as f:
        f.write("# generated by durable.py, as bench_config does\n"
                "enabled yes\ncount recipients\naction defer\n"
                "retention 720\nnotify-period 3600\n"
                "default mailbox=100 domain=1000 subscription=5000 scripts=yes\n")
        for plan, mailbox, domain, sub in (("basic", 50, 500, 1000),
                                           ("pro", 200, 2000, 10000)):
            f.write(f"plan {plan} mailbox={mailbox} domain={domain} "
                    f"subscription={sub}\n")
        f.write("plan unlimited mailbox=unlimited domain=unlimited "
                "subscription=unlimited scripts=inherit\n")
        f.writelines(
            f"subscription customer{i:06d} plan={plans[i % 3]} uid={10000 + i} "
            f"scripts={'no' if i % 10 == 0 else 'inherit'} "
            f"contact=admin@customer{i:06d}.example"
            f"{' subscription=3000' if i % 7 == 0 else ''}\n"
            for i in range(subs))
        f.writelines(
            f"domain site{i:06d}.example subscription=customer{i % subs:06d}"
            f"{' mailbox=80 domain=800' if i % 5 == 0 else ''}\n"
            for i in range(domains))
        f.writelines(
            f"mailbox user{i:07d}@site{i % domains:06d}.example"
            f"{' limit=20' if i % 4 == 0 else ''}\n"
            for i in range(mailboxes))
        f.write("whitelist 192.0.2.0/24\nwhitelist 2001:db8::/32\n")


class Pinger(threading.Thread):
    """One request at a time, for ever: the longest time between two
    answers and the number of answers in each phase (set `phase`)."""

    def __init__(self, port, logins, phases):
        super().__init__(daemon=True)
        self.port, self.logins = port, logins
        self.phase = None  # an index of the lists below, or None
        self.max_gap = [0.0] * phases
        self.answers = [0] * phases
        self.total = 0
        self.stop = False
        self.error = None

    def run(self):
        reqs = [pt.encode(**pt.data_req(m, 1)) for m in self.logins]
        try:
            c = pt.Client(("127.0.0.1", self.port))
            last = time.monotonic()
            while not self.stop:
                c.send(reqs[self.total % len(reqs)])
                c.read_answer()
                now = time.monotonic()
                gap = now - last
                last = now
                self.total += 1
                k = self.phase
                if k is not None:
                    self.answers[k] += 1
                    self.max_gap[k] = max(self.max_gap[k], gap)
        except Exception as e:  # noqa: BLE001 - reported by the scenario
            self.error = repr(e)


class Saver(threading.Thread):
    """Asks the daemon for a save every second while `on` is set, as
    --save-interval 1 would (the daemon's own interval is an hour, so
    that a phase can have none)."""

    def __init__(self, control):
        super().__init__(daemon=True)
        self.control = control
        self.on = False
        self.stop = False
        self.error = None
        self.idle = threading.Event()  # set while no save is asked
        self.idle.set()

    def run(self):
        while not self.stop:
            if self.on:
                self.idle.clear()
                # A save waits for a reload that runs: long on a busy
                # machine.
                answer = scenario.exchange(self.control, b"save\n", 120)
                self.idle.set()
                if not answer.startswith(b"ok\n"):
                    self.error = f"save: {answer!r}"
                    return
            time.sleep(1)

    def pause(self):
        """No more saves; returns once the last one asked is done."""
        self.on = False
        if not self.idle.wait(120):
            raise Failure("a save did not end in 120 s")


# The client's bound in sc_stall. The library holds a lock against
# decisions for a few microseconds at the swap of a reload and for one
# slice of a save or of a reload's hand-over (at most a few hundred
# records: about a tenth of a millisecond); bench_config, in one process
# without a client, measures a longest decision of 8-9 ms during a reload
# of the 1M file. What this client sees on top is the scheduler of a
# shared 2-core machine: the reload thread parses a 47 MB file on one core
# while the loop, this client and other work share the rest. There the
# longest gap during the reload had a median of 7.4 ms with a load average
# of 1.5-3 and 23 ms at 3-5 (47 and 71 ms when the reload and the saves
# held their locks throughout), but single runs at busy moments reached
# 70 ms with saves alone and 103 ms during the reload (README "Known
# limits"). The bound is above that noise, so that the test does not fail
# on a busy machine; it fails when the loop waits for a whole save or
# reload (867 ms when a save waited for a reload), but the old hand-over
# under the write lock (about 40 ms here, 99 ms in bench_config) stays
# below it: bench_config's longest decision, and the server's own rounds
# below, are what show that one.
STALL_BOUND = 0.15

# The bound on the server's own longest round during the reload, one of
# the bounds of its histogram (policyd_test.LOOP_BOUNDS). A round does
# tens of microseconds of work (never more than 0.4 ms of CPU in rounds
# timed part by part), but its time also holds what the kernel gave
# others while it ran: answering its client wakes the client, which can
# take the loop's CPU at once, and the loop then waits for its turn. On
# the shared 2-core machine at a load average of 12 to 16, the phase with
# nothing due (no save, no reload) had rounds of up to 296 ms, and the
# median of its longest was in the bucket up to 250 ms (README "Known
# limits"): a bound under that fails on the machine, not on the server.
# What it is for is a loop that waits for a reload or a save: a save that
# waited in the loop for a reload stalled it 867 ms, a reload done in the
# loop or under the write lock throughout stalls it for the whole reload
# (seconds with this file). The 10 ms goal is what the test prints, with
# the number of rounds past it.
ROUND_BOUND = 0.5


def loop_times(port, pid):
    """The server's rounds and waits, and its saves, from /metrics; the
    time its loop's thread (the first) ran and waited for a CPU, in
    seconds, from the kernel's schedstat."""
    text = scenario.http_get(port, timeout=pt.TIMEOUT).decode()
    saves = re.search(r'^obspam_snapshot_saves_total\{result="ok"\} (\d+)$',
                      text, re.M)
    with open(f"/proc/{pid}/task/{pid}/schedstat") as f:
        ran, waited = (int(x) / 1e9 for x in f.read().split()[:2])
    return (pt.Timing(text, "obspam_loop_round"),
            pt.Timing(text, "obspam_request_wait"), int(saves.group(1)), ran,
            waited)


def sc_stall(tmp):
    """Stalls as the client and the server see them: the 1M-mailbox
    configuration of bench_config (10,000 mailboxes with counters) and
    one client asking non-stop, in three phases of equal length: during a
    reload with a save asked every second (as long as the reload takes),
    then nothing (no save, no reload: the machine's baseline), then the
    saves alone. For each it prints the client's
    longest gap between two answers, and the server's own figures from
    /metrics: its rounds (the loop's work from epoll_wait to epoll_wait)
    and its requests' waits (from the read to the write of the answer),
    with the longest to the precision of their histogram. Fails above
    STALL_BOUND (150 ms) for the client in any phase, or when a round of
    the server during the reload took more than ROUND_BOUND (500 ms)."""
    names = ["nothing", "saves alone", "reload and saves"]
    conf = os.path.join(tmp, "d.conf")
    start = time.monotonic()
    big_config(conf)
    # Loading the file takes longer than a daemon's usual start on a busy
    # machine (over 10 s beside two spinning processes).
    with pt.Daemon(tmp, None, control=True, wait=False,
                   args=["--save-interval", "3600", "--metrics",
                         "inet:127.0.0.1:0"]) as d:
        d.port = int(d.wait_log(r"ready: listening on inet:127\.0\.0\.1:(\d+)",
                                timeout=120)[-1])
        port = pt.metrics_port(d)
        logins = [f"user{i:07d}@site{i % 100000:06d}.example"
                  for i in range(0, 1000000, 100)]
        warm = d.client()
        for m in logins:  # counters for the saves to copy
            warm.send(pt.encode(**pt.data_req(m, 1)))
            warm.read_answer()
        p = Pinger(d.port, logins, len(names))
        saver = Saver(d.control)
        p.start()
        saver.start()
        server = [None] * len(names)

        def phase(k, run):
            before = loop_times(port, d.proc.pid)
            t0 = time.monotonic()
            p.phase = k
            run()
            p.phase = None
            after = loop_times(port, d.proc.pid)
            server[k] = (after[0].since(before[0]), after[1].since(before[1]),
                         *(a - b for a, b in zip(after[2:], before[2:])))
            return time.monotonic() - t0

        def reload():
            saver.on = True
            d.send_signal(signal.SIGHUP)
            d.wait_log(r"reload ok path=", timeout=120)
            # With the save that waited for the reload.
            saver.pause()

        def saves():
            saver.on = True
            time.sleep(length)
            saver.pause()

        length = phase(2, reload)
        phase(0, lambda: time.sleep(length))
        phase(1, saves)
        p.stop = saver.stop = True
        p.join(pt.TIMEOUT)
        saver.join(120)
        if p.error or saver.error:
            raise Failure(f"the client failed: {p.error or saver.error}")
        rounds, waits = loop_times(port, d.proc.pid)[:2]
        rounds.check_max()
        waits.check_max()
        print(f"    three phases of {length:.1f} s; {p.total} answers; "
              f"load average {os.getloadavg()[0]:.1f}; the server's longest "
              f"since the start: round {rounds.max * 1000:.2f} ms, wait "
              f"{waits.max * 1000:.2f} ms; "
              f"{time.monotonic() - start:.0f} s in all")
        # One line per phase (tests/bench/reload_stall.sh reads them): the
        # client's longest gap; the server's longest round and wait, to
        # the bucket, and how many passed 10 ms; the time its loop thread
        # ran and waited for a CPU (what the machine adds).
        for k, name in enumerate(names):
            r, w, saved, ran, waited = server[k]
            print(f"    {name}: client gap {p.max_gap[k] * 1000:.1f} ms; "
                  f"server round <= {r.max * 1000:g} ms "
                  f"({r.over(0.01)} of {r.count} over 10 ms), wait <= "
                  f"{w.max * 1000:g} ms ({w.over(0.01)} of {w.count} over "
                  f"10 ms); loop thread ran {ran * 1000:.0f} ms, waited "
                  f"{waited * 1000:.0f} ms for a CPU; {saved} saves")
        expect(server[0][2], 0, "saves while nothing was due")
        if server[1][2] < 1 or server[2][2] < 1:
            raise Failure(f"no save in a phase with saves: {server}")
        worst = max(p.max_gap)
        if worst > STALL_BOUND:
            raise Failure(f"the client waited {worst * 1000:.0f} ms")
        if server[2][0].over(ROUND_BOUND):
            raise Failure(f"{server[2][0].over(ROUND_BOUND)} rounds of the "
                          f"loop took more than {ROUND_BOUND * 1000:g} ms "
                          f"during the reload")


def sc_foreign_journal(tmp):
    """An older state file put back beside a journal that follows a newer
    one: the journal is not replayed (a warning says how many decisions),
    the counters are the old file's, and the daemon journals again from
    there."""
    small = "small@acme.example"
    with pt.Daemon(tmp, control=True) as d:
        pt.same_minute(20)
        c = d.client()
        expect(c.request(**pt.data_req(small)), pt.DUNNO, "small 1 of 3")
        expect(d.stop(), 0, "exit status")
    old = os.path.join(tmp, "old.state")
    shutil.copy(d.state, old)
    d = pt.Daemon(tmp, control=True)
    try:
        c = d.client()
        expect(c.request(**pt.data_req(small)), pt.DUNNO, "small 2 of 3")
        pt.control_ask(d.control, "save")
        expect(c.request(**pt.data_req(small)), pt.DUNNO, "small 3 of 3")
    finally:
        d.kill()  # kill -9: the last decision is in the journal only
    shutil.copy(old, d.state)
    d = pt.Daemon(tmp, control=True)
    try:
        d.wait_log(r"journal path=\S+: 1 decisions not replayed: they "
                   r"follow another state file")
        expect(int(pt.control_status(d.control, "mailbox", small)["count"]),
               1, "the old file's count")
        expect(d.client().request(**pt.data_req(small)), pt.DUNNO, "2 of 3")
    finally:
        d.kill()  # kill -9 again: "2 of 3" is in the journal only
    with pt.Daemon(tmp, control=True) as d:
        d.wait_log(r"journal opened path=\S+ replayed=1$")
        expect(int(pt.control_status(d.control, "mailbox", small)["count"]),
               2, "after a crash again")


def sc_shared_state(tmp):
    """A second daemon given the running one's --state by mistake does not
    start: it names the process that holds the state file, and writes
    nothing; the first one's journal keeps every decision, exactly, through
    a kill -9."""
    small = "small@acme.example"
    d = pt.Daemon(tmp, control=True)
    try:
        pt.same_minute(20)
        c = d.client()
        expect(c.request(**pt.data_req(small)), pt.DUNNO, "small 1 of 3")
        with open(d.state + ".journal", "rb") as f:
            before = f.read()
        e = pt.Daemon(tmp, name="e", state=False, wait=False,
                      args=["--state", d.state])
        try:
            rc = e.proc.wait(pt.TIMEOUT)
        finally:
            e.kill()
        expect(rc, 1, "exit status of the second daemon")
        expect(len(re.findall(
            r"cannot start: journal_open: " + re.escape(d.state)
            + r" is in use by process " + str(d.proc.pid) + r" \(it holds "
            + re.escape(d.state) + r"\.lock\): two processes cannot share a "
            r"state file$", e.log(), re.M)), 1, "the second daemon's line")
        with open(d.state + ".journal", "rb") as f:
            expect(f.read() == before, True, "the journal is as it was")
        expect(c.request(**pt.data_req(small)), pt.DUNNO, "small 2 of 3")
    finally:
        d.kill()  # kill -9: both decisions are in the journal only
    with pt.Daemon(tmp, control=True) as d:
        d.wait_log(r"journal opened path=\S+ replayed=2$")
        expect(int(pt.control_status(d.control, "mailbox", small)["count"]),
               2, "after the crash")


MILTER_CONFIG = ACME + """\
mailbox big@acme.example
mailbox small@acme.example limit=3
"""


def sc_milter_kill9(tmp):
    """obspam-milter: messages answered, then kill -9 (no save since the
    start): after the restart the counts and refusals are exactly what was
    answered."""
    import milter_test as mt

    mt.BUILD = pt.BUILD
    mt.DAEMON = os.path.join(pt.BUILD, "examples", "obspam-milter")
    mc = mt.mc
    d = mt.Daemon(tmp, MILTER_CONFIG, state=True,
                  args=["--save-interval", "0"])
    try:
        pt.same_minute(20)
        for i in range(20):
            r = mt.smtp_message(d, "<x@example.org>", rcpts=2,
                                auth="big@acme.example", qid=f"B{i}")
            expect(r.code, mc.SMFIR_CONTINUE, f"big #{i}")
        for i in range(5):
            r = mt.smtp_message(d, "<x@example.org>", rcpts=1,
                                auth="small@acme.example", qid=f"S{i}")
            expect(r.code, mc.SMFIR_CONTINUE if i < 3 else mc.SMFIR_REPLYCODE,
                   f"small #{i}")
        expect(d.status("mailbox", "big@acme.example"), (40, 0), "before")
        d.proc.kill()
        d.proc.wait()
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
        d.log.close()
    d = mt.Daemon(tmp, MILTER_CONFIG, state=True)
    try:
        d.wait_log("journal opened")
        expect(d.status("mailbox", "big@acme.example"), (40, 0), "big after")
        expect(d.status("mailbox", "small@acme.example"), (3, 2),
               "small after")
        expect(d.status("subscription", "acme"), (43, 2), "acme after")
    finally:
        expect(d.stop(), 0, "exit status")


SCENARIOS = scenario.scenarios_of(globals())


def main():
    return pt.main_of(__doc__, SCENARIOS, "durable-")


if __name__ == "__main__":
    sys.exit(main())
