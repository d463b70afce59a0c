#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""obspam-policyd with its state file on a disk that fills up.

    tests/faults/diskfull.sh BUILD_DIR SCENARIO     (mounts the disk)
    tests/faults/diskfull.py BUILD_DIR --list

The state file, its journal and the snapshots are on a small tmpfs (the
directory in OBSPAM_DISKFULL_DIR, which tests/faults/diskfull.sh mounts in
a private mount namespace); the configuration, the logs and the sockets
are elsewhere. A test fills the disk with a file of its own and frees it
by deleting that file. Every count is checked exactly through the
control socket, with the log lines and the metrics.
"""

import errno
import glob
import hashlib
import os
import re
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "daemons"))
import policyd_test as pt  # noqa: E402
import scenario  # noqa: E402

expect = pt.expect
Failure = pt.Failure

CONFIG = """\
action defer
default mailbox=unlimited domain=unlimited subscription=unlimited
subscription acme
domain acme.example subscription=acme
mailbox a@acme.example
mailbox tiny@acme.example limit=5
"""

A, TINY = "a@acme.example", "tiny@acme.example"
OTHERS = 80  # implicit mailboxes m0@acme.example ... with one message each
HEADER = 32  # bytes of a journal's header (src/journal.c)
PAGE = 4096  # tmpfs gives a file its room a page at a time
BUF = 256 * 1024  # bytes of records that wait in memory (src/journal.c)


def ten_records(c, disk):
    """Sends 10 messages of A and returns the bytes of their records: the
    first, which defines the names of A, its domain and its subscription
    (journal format 3), and each of the others, which refer to them."""
    start = disk.journal_size()
    accepted = send(c, A, 1)["accepted"]
    first = disk.journal_size() - start
    accepted += send(c, A, 9)["accepted"]
    rec = (disk.journal_size() - start - first) // 9
    expect(disk.journal_size(), start + first + 9 * rec, "10 records")
    expect(accepted, 10, "A's answers")
    return first, rec


class Disk:
    """The tmpfs of the state file, and the file that fills it."""

    def __init__(self):
        self.dir = os.environ.get("OBSPAM_DISKFULL_DIR")
        if not self.dir or not os.path.ismount(self.dir):
            raise Failure("OBSPAM_DISKFULL_DIR is not a mount point: run "
                          "tests/faults/diskfull.sh")
        self.state = os.path.join(self.dir, "state")
        self.journal = self.state + ".journal"
        self.filler = os.path.join(self.dir, "filler")

    def fill(self, leave=0):
        """Fills the disk but for `leave` pages."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                     0o600)
        try:
            while True:
                try:
                    if os.write(fd, b"\0" * PAGE) < PAGE:
                        break
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
            pages = os.fstat(fd).st_size // PAGE
            os.ftruncate(fd, max(0, pages - leave) * PAGE)
        finally:
            os.close(fd)

    def free(self):
        os.unlink(self.filler)

    def journal_size(self):
        return os.path.getsize(self.journal)

    def state_hash(self):
        with open(self.state, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()

    def leftovers(self):
        """Files a save may leave while it runs, none after it."""
        return sorted(os.path.basename(p) for p in
                      glob.glob(self.state + ".tmp.*")
                      + glob.glob(self.journal + ".next"))


def daemon(tmp, disk, name="d", args=()):
    return pt.Daemon(tmp, CONFIG, name=name, state=False, control=True,
                     args=["--state", disk.state, "--save-interval", "3600",
                           "--metrics", "inet:127.0.0.1:0", *args])


def send(client, who, n, rcpt=1):
    """n requests, one round each; the answers, counted by kind."""
    got = {"accepted": 0, "refused": 0}
    for _ in range(n):
        answer = client.request(**pt.data_req(who, rcpt))
        if answer == pt.DUNNO:
            got["accepted"] += 1
        elif answer.startswith("action=451 4.7.1 "):
            got["refused"] += 1
        else:
            raise Failure(f"{who}: unexpected answer {answer!r}")
    return got


def status(d):
    """(count, refused) of each mailbox, and the domain's count."""
    out = {}
    for kind, name in (("mailbox", A), ("mailbox", TINY),
                       ("domain", "acme.example")):
        st = pt.control_status(d.control, kind, name)
        out[name] = (int(st["count"]), int(st["refused"]))
    return out


def want(a, tiny, tiny_refused, others=0):
    """others: messages of other mailboxes of the domain."""
    # A refusal is recorded on every charged object.
    return {A: (a, 0), TINY: (tiny, tiny_refused),
            "acme.example": (a + tiny + others, tiny_refused)}


def metrics(d):
    port = int(d.wait_log(r"metrics listening on inet:127\.0\.0\.1:(\d+)")
               [-1])
    text = scenario.http_get(port, timeout=pt.TIMEOUT).decode()
    out = {}
    for name in ("obspam_journal_writable",
                 "obspam_journal_write_failures_total",
                 "obspam_journal_failure_episodes_total",
                 "obspam_journal_dropped_decisions_total",
                 'obspam_snapshot_saves_total{result="ok"}',
                 'obspam_snapshot_saves_total{result="failed"}'):
        m = re.search("^" + re.escape(name) + r" (\d+)$", text, re.M)
        if not m:
            raise Failure(f"metric {name} missing:\n{text}")
        out[name] = int(m.group(1))
    return out


def expect_metrics(d, what, writable, failures, episodes, dropped, saves_ok,
                   saves_failed):
    expect(metrics(d), {
        "obspam_journal_writable": writable,
        "obspam_journal_write_failures_total": failures,
        "obspam_journal_failure_episodes_total": episodes,
        "obspam_journal_dropped_decisions_total": dropped,
        'obspam_snapshot_saves_total{result="ok"}': saves_ok,
        'obspam_snapshot_saves_total{result="failed"}': saves_failed}, what)


def lines(d, pattern):
    return re.findall(pattern, d.log(), re.M)


def save(d):
    return pt.control_ask(d.control, "save")


FULL_LINE = (r"journal: journal_flush: {}: No space left on device; "
             r"the decisions wait in memory$")
AGAIN_LINE = r"journal: written again after (\d+) failed writes$"


def sc_episode(tmp):
    """A full disk: every answer goes on, one log line when the journal
    fails and one with the count when it is written again, the metrics in
    between; failed saves keep the snapshot and the journal; kill -9 during
    the episode keeps what the disk holds and the daemon starts again on
    the full disk; kill -9 after it loses nothing."""
    disk = Disk()
    a = tiny = tiny_ref = 0
    d = daemon(tmp, disk)
    try:
        c = d.client()
        a += send(c, A, 20)["accepted"]
        got = send(c, TINY, 7)
        tiny, tiny_ref = got["accepted"], got["refused"]
        expect((tiny, tiny_ref), (5, 2), "tiny's answers")
        # Counters of more mailboxes: a snapshot of several pages.
        for i in range(OTHERS):
            expect(send(c, f"m{i}@acme.example", 1)["accepted"], 1, f"m{i}")
        expect(save(d), ["ok", f"message\tstate saved to {disk.state}",
                         "end"], "the first save")
        snapshot = disk.state_hash()
        expect(disk.journal_size(), HEADER, "the journal after the save")
        first, rec = ten_records(c, disk)
        a += 10
        print(f"    a record of {A}: {first} bytes with the names, {rec} "
              f"after")

        # Full: the journal's last page takes what fits, then nothing.
        disk.fill()
        # More decisions than the last page takes.
        full = PAGE // rec + 100
        expect(send(c, A, full), {"accepted": full, "refused": 0},
               "answers while the disk is full")
        a += full
        size = disk.journal_size()
        written = (size - HEADER - first) // rec - 9
        expect(size, HEADER + first + (9 + written) * rec,
               "the journal holds whole records only")
        if not 0 <= written < PAGE // rec:
            raise Failure(f"{written} records written on a full disk")
        print(f"    {written} of the {full} decisions fit in the journal's "
              f"last page")
        expect(status(d), want(a, tiny, tiny_ref, OTHERS), "counts in memory")
        expect(len(lines(d, FULL_LINE.format(re.escape(disk.journal)))), 1,
               "lines saying the journal fails")
        expect(lines(d, AGAIN_LINE), [], "lines saying it works again")
        expect_metrics(d, "metrics while full", 0, full - written, 1, 0, 1,
                       0)

        # A save on the full disk: refused, the snapshot and the journal
        # as they were, nothing left behind.
        expect(save(d), ["error save failed: state_save: "
                         f"{disk.journal}.next: No space left on device"],
               "a save on a full disk")
        expect(disk.state_hash(), snapshot, "the snapshot after it")
        expect(disk.journal_size(), size, "the journal after it")
        expect(disk.leftovers(), [], "files left by the failed save")

        # kill -9 now loses what the disk did not take (documented); the
        # daemon starts again on the full disk with what it holds.
        d.stop(signal.SIGKILL)
        a -= full - written
        d = daemon(tmp, disk, name="d2")
        d.wait_log(r"journal opened path=" + re.escape(disk.journal)
                   + rf" replayed={10 + written}$")
        expect(status(d), want(a, tiny, tiny_ref, OTHERS),
               "counts after kill -9 during the episode")
        c = d.client()

        # Saves with a few pages free: each fails somewhere else (the
        # journal's next file, the cut, the snapshot) or succeeds; a failed
        # one keeps the snapshot and the journal; requests go on between
        # them, the journal failing and catching up as room comes and goes.
        a += send(c, A, 1)["accepted"]
        saves_failed = saves_ok = 0
        for leave in range(0, 8):
            disk.fill(leave)
            before, records = disk.state_hash(), disk.journal_size()
            answer = save(d)
            if answer[0] == "ok":
                saves_ok += 1
                print(f"    {leave} pages free: saved")
                expect(disk.journal_size(), HEADER,
                       f"{leave} pages free: the journal after the save")
            else:
                saves_failed += 1
                print(f"    {leave} pages free: {answer[0]}")
                if "No space left on device" not in answer[0]:
                    raise Failure(f"save: {answer!r}")
                expect(disk.state_hash(), before, "the snapshot after a "
                       f"failed save with {leave} pages free")
                if disk.journal_size() < records:
                    raise Failure(f"{leave} pages free: the failed save cut "
                                  f"the journal from {records} bytes to "
                                  f"{disk.journal_size()}")
            expect(disk.leftovers(), [], f"{leave} pages free: files left")
            a += send(c, A, 3)["accepted"]
            expect(status(d), want(a, tiny, tiny_ref, OTHERS),
                   f"{leave} pages free: counts in memory")
        m = metrics(d)
        expect((m['obspam_snapshot_saves_total{result="ok"}'],
                m['obspam_snapshot_saves_total{result="failed"}']),
               (saves_ok, saves_failed), "saves counted")
        if saves_failed == 0 or saves_ok == 0:
            raise Failure("the saves with a few pages free all ended alike")

        # Space again: the journal catches up in one write and says so:
        # one line when each episode began, one with its count when it
        # ended, as the metrics count them.
        disk.free()
        a += send(c, A, 30)["accepted"]
        m = metrics(d)
        episodes = m["obspam_journal_failure_episodes_total"]
        failures = m["obspam_journal_write_failures_total"]
        if episodes < 1:
            raise Failure(f"the journal never failed in the second daemon: "
                          f"{m}")
        again = [int(n) for n in lines(d, AGAIN_LINE)]
        expect(len(again), episodes, "lines of the end of an episode")
        expect(sum(again), failures, "failed writes in those lines")
        expect(len(lines(d, FULL_LINE.format(re.escape(disk.journal)))),
               episodes, "lines of the start of an episode")
        expect_metrics(d, "metrics after the episode", 1, failures, episodes,
                       0, saves_ok, saves_failed)
        expect(status(d), want(a, tiny, tiny_ref, OTHERS),
               "counts after the episode")

        # kill -9 after the episode loses nothing.
        d.stop(signal.SIGKILL)
        d = daemon(tmp, disk, name="d3")
        expect(status(d), want(a, tiny, tiny_ref, OTHERS),
               "counts after kill -9 after the episode")
        # And the next save works, then a stop and a start keep it all.
        c = d.client()
        a += send(c, A, 5)["accepted"]
        expect(save(d), ["ok", f"message\tstate saved to {disk.state}",
                         "end"], "a save once the disk has room")
        expect(disk.journal_size(), HEADER, "the journal after that save")
        expect(d.stop(), 0, "exit status on SIGTERM")
        d = daemon(tmp, disk, name="d4")
        expect(status(d), want(a, tiny, tiny_ref, OTHERS),
               "counts after a restart")
        expect(d.stop(), 0, "exit status on SIGTERM")
    finally:
        d.kill()


def sc_dropped(tmp):
    """More decisions than the journal holds in memory (256 KiB) while the
    disk is full: the answers go on, the oldest records are dropped, the
    flush that writes again says how many in one line and a metric, a save
    starts at once, and a kill -9 after it loses nothing."""
    disk = Disk()
    d = daemon(tmp, disk)
    try:
        c = d.client()
        first, rec = ten_records(c, disk)
        a = 10
        # The records wait while they fit: those after the last record
        # written refer to its names, and the first after a drop defines
        # them again.
        cap = BUF // rec
        again = 1 + (BUF - first) // rec
        disk.fill()
        # Pipelined: many requests a round; the journal's last page takes
        # some, the others wait in memory.
        n = cap + 500
        answers = pt.Client(("127.0.0.1", d.port))
        got = []
        for i in range(0, n, 1000):
            part = min(1000, n - i)
            answers.send(pt.encode(**pt.data_req(A, 1)) * part)
            got += [answers.read_answer() for _ in range(part)]
        expect(got, [pt.DUNNO] * n, "answers while the disk is full")
        a += n
        written = (disk.journal_size() - HEADER - first) // rec - 9
        waiting = n - written
        dropped = 0 if waiting <= cap else \
            cap + again * ((waiting - cap - 1) // again)
        print(f"    {n} decisions: {written} written, {dropped} dropped")
        if dropped == 0:
            raise Failure("nothing was dropped")
        expect(status(d), want(a, 0, 0), "counts in memory")
        m = metrics(d)
        expect((m["obspam_journal_writable"],
                m["obspam_journal_failure_episodes_total"],
                m["obspam_journal_dropped_decisions_total"]), (0, 1, 0),
               "metrics while full")
        failures = m["obspam_journal_write_failures_total"]

        disk.free()
        expect(send(c, A, 1), {"accepted": 1, "refused": 0}, "one more")
        a += 1
        line = d.wait_log(r"journal: written again after (\d+) failed "
                          r"writes; (\d+) decisions it could not hold are in "
                          r"no file until the save that starts now$")
        expect(line, [(str(failures), str(dropped))], "the line of the end")
        scenario.wait_for("the save after the episode", lambda: metrics(d)[
            'obspam_snapshot_saves_total{result="ok"}'] == 1)
        expect_metrics(d, "metrics after the episode", 1, failures, 1,
                       dropped, 1, 0)
        expect(disk.journal_size(), HEADER, "the journal after the save")
        d.stop(signal.SIGKILL)
        d = daemon(tmp, disk, name="d2")
        expect(status(d), want(a, 0, 0), "counts after kill -9")
        expect(d.stop(), 0, "exit status on SIGTERM")
    finally:
        d.kill()


SCENARIOS = scenario.scenarios_of(globals())


def main():
    return pt.main_of(__doc__, SCENARIOS, "diskfull-")


if __name__ == "__main__":
    sys.exit(main())
