#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Integration tests of obspam-milter: the real daemon, driven over the
milter protocol by milter_client.py as Postfix drives it (no Postfix here;
tests/e2e runs it under a real Postfix).

    tests/daemons/milter_test.py BUILD_DIR SCENARIO...
    tests/daemons/milter_test.py BUILD_DIR --list

Each scenario starts its own daemon (BUILD_DIR/examples/obspam-milter) on
a free port of 127.0.0.1 or a socket in a temporary directory, asserts
exact replies and counters (through the control socket), and stops every
process it started. A sanitizer report in a daemon's log fails the
scenario. Exit status 0 when every scenario passed.
"""

import grp
import os
import re
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import milter_client as mc  # noqa: E402
from as_user import NOBODY, as_nobody  # noqa: E402
import scenario  # noqa: E402
from scenario import Failure, counted, expect, free_port  # noqa: E402,F401

BUILD = None
DAEMON = None
TIMEOUT = 10

CONFIG = """\
action defer
default mailbox=100 domain=1000 subscription=5000 scripts=yes
subscription acme uid=10001 subscription=6
subscription closed uid=10002 scripts=no
subscription bulk uid=10003 subscription=150
domain acme.example subscription=acme
domain shop.acme.example subscription=acme domain=2
domain closed.example subscription=closed
domain bulk.example subscription=bulk
mailbox info@acme.example limit=3
whitelist 127.0.0.0/8
local-network 198.51.100.0/24
"""

SMTP_CLIENT = "203.0.113.9"
# A host of the local networks (a webmail that submits without login).
LOCAL_NET_CLIENT = "198.51.100.25"


def refusal(kind, name, count, limit, code="451 4.7.1", minutes=60):
    """The text in recipients, the default unit; a permanent refusal
    (5.7.1) and a held message have no retry hint (minutes=None)."""
    text = (f"{code} {kind} {name} has sent to {counted(count)} in the last "
            f"60 minutes, its limit is {counted(limit)} per hour")
    if code.startswith("5") or minutes is None:
        return text
    return text + (f"; try again in {minutes} "
                   f"minute{'' if minutes == 1 else 's'}")


def same_minute(room=8):
    scenario.same_minute(room)


class Daemon:
    """One obspam-milter in the foreground, its log in a file."""

    def __init__(self, tmp, config=CONFIG, args=(), socket_spec=None,
                 state=False):
        self.tmp = tmp
        self.config = os.path.join(tmp, "obspam.conf")
        with open(self.config, "w") as f:
            f.write(config)
        self.port = free_port()
        self.spec = socket_spec or f"inet:{self.port}@127.0.0.1"
        self.control = os.path.join(tmp, "control.sock")
        self.state = os.path.join(tmp, "state") if state else None
        self.log_path = os.path.join(tmp, "milter.log")
        # Several daemons of a scenario share the log: each reads its own
        # part.
        self.log_start = (os.path.getsize(self.log_path)
                          if os.path.exists(self.log_path) else 0)
        cmd = [DAEMON, "--foreground", "--config", self.config, "--socket",
               self.spec, "--control", "unix:" + self.control]
        if self.state:
            cmd += ["--state", self.state]
        cmd += list(args)
        self.log = open(self.log_path, "a")
        self.proc = subprocess.Popen(cmd, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.wait_log("ready: listening on")

    def read_log(self):
        with open(self.log_path) as f:
            f.seek(self.log_start)
            return f.read()

    def wait_log(self, text, count=1, timeout=TIMEOUT):
        end = time.time() + timeout
        while time.time() < end:
            if self.read_log().count(text) >= count:
                return
            if self.proc.poll() is not None:
                raise Failure(f"the milter exited ({self.proc.returncode}) "
                              f"before logging {text!r}:\n{self.read_log()}")
            time.sleep(0.02)
        raise Failure(f"no {text!r} in the log:\n{self.read_log()}")

    def ctl(self, line):
        data = scenario.exchange(self.control, line.encode() + b"\n", TIMEOUT)
        lines = data.decode().splitlines()
        if not lines or lines[0] != "ok":
            raise Failure(f"control {line!r}: {lines!r}")
        return lines[1:-1]

    def status(self, kind, name):
        """(count, refused) of an object, from the control socket."""
        fields = dict(l.split("\t", 1) for l in self.ctl(f"status {kind} {name}"))
        return int(fields["count"]), int(fields["refused"])

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise Failure("the milter did not stop within 30 s")
        self.log.close()
        log = self.read_log()
        for bad in ("Sanitizer", "runtime error:"):
            if bad in log:
                raise Failure(f"sanitizer report in the log:\n{log}")
        return self.proc.returncode


def smtp_message(d, sender, rcpts=1, auth=None, client=SMTP_CLIENT, qid="Q1"):
    c = mc.smtp_session(d.spec, addr=client)
    r = c.message(sender, [f"<r{i}@example.org>" for i in range(rcpts)],
                  [("Subject", "test")], queue_id=qid, auth=auth)
    c.quit()
    return r


def local_message(d, uid=10001, qid="4TqR2d0K1Zz9sGh", marker=None,
                  headers=(), sender="web@host.example", rcpts=1):
    """A local submission as cleanup(8) sends it: the X-Obspam-Pickup:
    header of the header_checks rule first (marker overrides its value;
    False leaves it out), then the message's own headers."""
    c = mc.local_session(d.spec)
    hdrs = []
    if marker is not False:
        hdrs.append(("X-Obspam-Pickup",
                     marker if marker is not None else f"uid={uid} id={qid}"))
    hdrs += list(headers)
    hdrs.append(("Subject", "from a script"))
    r = c.message(sender, [f"r{i}@example.org" for i in range(rcpts)], hdrs,
                  queue_id=qid)
    c.quit()
    return r


def marker_removals(r):
    """The header deletions (SMFIR_CHGHEADER with an empty value) of a
    reply, as (index, name)."""
    out = []
    for code, data in r.actions:
        if code == mc.SMFIR_CHGHEADER:
            (index,) = struct.unpack(">I", data[:4])
            name, value = data[4:].split(b"\0")[:2]
            expect(value, b"", "a removal has no value")
            out.append((index, name.decode()))
    return out


# ---- scenarios --------------------------------------------------------------


def scenario_smtp(tmp):
    """SMTP: SASL login charged under its limit, then 451 4.7.1 with the
    shared text; the unauthenticated sender path (counted from a local
    network only); the client from
    {client_addr} (127.0.0.1 with a real port is SMTP, not local, and is
    whitelisted here)."""
    d = Daemon(tmp)
    try:
        same_minute()
        r = smtp_message(d, "<anything@example.org>", rcpts=2,
                         auth="info@acme.example")
        expect(r.code, mc.SMFIR_CONTINUE, "first message")
        r = smtp_message(d, "<>", rcpts=1, auth="info@acme.example")
        expect(r.code, mc.SMFIR_CONTINUE, "second message")
        expect(d.status("mailbox", "info@acme.example"), (3, 0), "mailbox")
        r = smtp_message(d, "<x@example.org>", auth="info@acme.example")
        expect(r.code, mc.SMFIR_REPLYCODE, "over the limit")
        expect(r.text, refusal("mailbox", "info@acme.example", 3, 3),
               "refusal text")
        expect(d.status("mailbox", "info@acme.example"), (3, 1), "refused")
        # Without login from a client on the Internet: mail arriving for
        # the hosted domains, not counted whatever sender it claims.
        r = smtp_message(d, "<news@shop.acme.example>", rcpts=2)
        expect(r.code, mc.SMFIR_CONTINUE, "inbound")
        expect(d.status("domain", "shop.acme.example"), (0, 0), "inbound")
        # Without login from a local network: the envelope sender.
        r = smtp_message(d, "<news@shop.acme.example>", rcpts=2,
                         client=LOCAL_NET_CLIENT)
        expect(r.code, mc.SMFIR_CONTINUE, "unauthenticated")
        expect(d.status("domain", "shop.acme.example"), (2, 0), "domain")
        r = smtp_message(d, "<news@shop.acme.example>",
                         client=LOCAL_NET_CLIENT)
        expect(r.text, refusal("domain", "shop.acme.example", 2, 2),
               "domain refusal")
        # A whitelisted SMTP client from 127.0.0.1 (a webmail) is exempt.
        r = smtp_message(d, "<news@shop.acme.example>", client="127.0.0.1")
        expect(r.code, mc.SMFIR_CONTINUE, "whitelisted webmail")
        expect(d.status("domain", "shop.acme.example"), (2, 1), "exempt")
    finally:
        expect(d.stop(), 0, "exit status")


CAP_CONFIG = CONFIG + """\
domain capped.example subscription=bulk max-recipients=10
mailbox three@capped.example max-recipients=3
subscription capsub uid=10009 max-recipients=5
"""


def rcpt_replies(c, sender, n, auth, qid):
    """MAIL then n RCPTs of one message: the code of each RCPT's reply
    ("c" continue, or the SMTP reply text), then the message is aborted."""
    c.mail(sender, {"i": qid, "{auth_authen}": auth, "{auth_type}": "PLAIN"})
    out = []
    for i in range(n):
        r = c.rcpt(f"<r{i}@example.org>", {"{rcpt_addr}": f"r{i}@example.org"})
        out.append("c" if r.code == mc.SMFIR_CONTINUE else r.text)
    return out


def scenario_rcpt_cap(tmp):
    """The recipients cap at envrcpt: the recipient past the cap of the
    charged mailbox (its own, or its domain's for an implicit one) gets
    452 4.5.3 and is not counted; the next message counts from 0; a local
    submission is decided whole at its end."""
    d = Daemon(tmp, config=CAP_CONFIG)
    too_many = "452 4.5.3 Too many recipients"
    try:
        same_minute()
        c = mc.smtp_session(d.spec, addr=SMTP_CLIENT)
        got = rcpt_replies(c, "<x@capped.example>", 12, "x@capped.example",
                           "Q1")
        expect(got, ["c"] * 10 + [too_many] * 2, "implicit mailbox, cap 10")
        r = c.data({"i": "Q1"})
        r = c.eom({"i": "Q1"})
        expect(r.code, mc.SMFIR_CONTINUE, "the 10 accepted")
        got = rcpt_replies(c, "<three@capped.example>", 4,
                           "three@capped.example", "Q2")
        expect(got, ["c"] * 3 + [too_many], "declared mailbox, cap 3")
        c.abort()
        got = rcpt_replies(c, "<three@capped.example>", 3,
                           "three@capped.example", "Q3")
        expect(got, ["c"] * 3, "the next message counts from 0")
        c.abort()
        c.quit()
        expect(d.status("mailbox", "x@capped.example"), (10, 0),
               "10 charged, no refusal")
        expect(d.status("mailbox", "three@capped.example"), (0, 0),
               "aborted messages charge nothing")
        # Without a cap (acme.example), any number.
        r = smtp_message(d, "<x@example.org>", rcpts=3,
                         auth="info@acme.example")
        expect(r.code, mc.SMFIR_CONTINUE, "no cap")
        # A local submission over its subscription's cap goes through
        # envrcpt untouched, and is refused whole (held) at its end.
        r = local_message(d, uid=10009, rcpts=12)
        expect(r.code, mc.SMFIR_ACCEPT, "held messages are accepted")
        expect(r.quarantine, "subscription capsub cannot send this message: "
               "it has 12 recipients, its limit is 5 recipients per message",
               "held for the cap")
        expect(d.status("subscription", "capsub"), (0, 1), "refused whole")
    finally:
        expect(d.stop(), 0, "exit status")


def scenario_refusal_flood(tmp):
    """A flood of refusals of one mailbox: its first refusal logged whole
    at once, then one line with the count of the other 9 and the queue ID
    of the first of them when the interval ends (--refusal-log-interval
    4), written by the housekeeping thread."""
    d = Daemon(tmp, args=["--refusal-log-interval", "4"])
    name = "refuse kind=mailbox object=info@acme.example "
    try:
        same_minute()
        r = smtp_message(d, "<>", rcpts=3, auth="info@acme.example", qid="Q0")
        expect(r.code, mc.SMFIR_CONTINUE, "3 of 3")
        for i in range(1, 11):
            r = smtp_message(d, "<>", auth="info@acme.example", qid=f"Q{i}")
            expect(r.text, refusal("mailbox", "info@acme.example", 3, 3),
                   f"refusal {i}")
        d.wait_log(name + "limit=3 count=3 unit=recipients retry=")
        d.wait_log(name + "more=9 seconds=4 first_queue_id=Q2")
        lines = [l for l in d.read_log().splitlines() if name in l]
        expect(len(lines), 2, "refusal lines")
        if " queue_id=Q1 " not in lines[0]:
            raise Failure(f"the first line: {lines[0]!r}")
        expect(d.stop(), 0, "exit status")
    finally:
        d.stop()


def scenario_sendmail_addr(tmp):
    """Sendmail's forms of {client_addr} ("IPv6:2001:db8::1",
    "[203.0.113.7]", "[IPv6:...]") are read as the addresses they are:
    charged, or exempt by the whitelist, never deferred as unreadable."""
    d = Daemon(tmp, CONFIG + "whitelist 2001:db8:1::/48\n"
               "whitelist 198.51.100.0/24\n")
    try:
        cases = [
            # (connect packet address, {client_addr}, charged)
            ("2001:db8::1", "IPv6:2001:db8::1", 1),
            ("203.0.113.7", "[203.0.113.7]", 1),
            ("2001:db8::2", "[IPv6:2001:db8::2]", 1),
            ("2001:db8:1::5", "IPv6:2001:db8:1::5", 0),
            ("198.51.100.7", "[198.51.100.7]", 0),
        ]
        count = 0
        for i, (addr, macro, charged) in enumerate(cases):
            c = mc.smtp_session(d.spec, addr=addr, macro_addr=macro)
            r = c.message("<news@shop.acme.example>", ["<r@example.org>"],
                          [("Subject", "test")], queue_id=f"Q{i}",
                          auth="info@acme.example")
            c.quit()
            expect(r.code, mc.SMFIR_CONTINUE, f"{macro}: accepted")
            count += charged
            expect(d.status("mailbox", "info@acme.example"), (count, 0),
                   f"{macro}: charged {charged}")
    finally:
        expect(d.stop(), 0, "exit status")


def scenario_stop_save_failed(tmp):
    """SIGTERM whose last save fails exits 1, after logging why."""
    d = Daemon(tmp, state=True)
    try:
        os.mkdir(d.state)  # the rename of the save fails
    finally:
        expect(d.stop(), 1, "exit status after a failed save")
    if "error: save failed: state_save: " not in d.read_log():
        raise Failure(f"no save failure logged:\n{d.read_log()}")


def scenario_forwards_reload(tmp):
    """A configuration without forward or list lines has none to look up,
    and the milter does not ask; a reload that declares some recognises
    them from the next message (and from the next recipient of a message
    under way), and one that drops them forgets them again."""
    plain, forwards, lists, marked = scenario.forward_list_configs(
        CONFIG, "news@bulk.example")
    post_refused = scenario.over_recipients_limit(
        "mailbox", "news-bounces@bulk.example", 100)
    d = Daemon(tmp, config=plain)
    reloads = [0]

    def reload(text):
        with open(d.config, "w") as f:
            f.write(text)
        reloads[0] += 1
        d.proc.send_signal(signal.SIGHUP)
        d.wait_log("reload ok", count=reloads[0])

    def forward(qid):
        """Inbound mail from the Internet to the forwarding address."""
        c = mc.smtp_session(d.spec, addr=SMTP_CLIENT)
        r = c.message("<someone@outside.example>", ["<sales@fwd.example>"],
                      [("Subject", "inbound")], queue_id=qid)
        c.quit()
        return r

    def post(qid):
        """A list post: 101 recipients from a host of the local networks,
        more than the sender's mailbox limit of 100."""
        return smtp_message(d, "<news-bounces@bulk.example>", rcpts=101,
                            client=LOCAL_NET_CLIENT, qid=qid)

    def fwd_count():
        return d.status("domain", "fwd.example")[0]

    try:
        same_minute(room=20)
        expect(forward("F1").code, mc.SMFIR_CONTINUE, "no forward declared")
        expect(fwd_count(), 0, "inbound mail, not counted")
        expect(post("P1").text, post_refused, "no list declared")
        # A message under way when the reload declares the forward: its
        # recipient after the reload finds it.
        c = mc.smtp_session(d.spec, addr=SMTP_CLIENT)
        expect(c.mail("<someone@outside.example>", {"i": "F2"}).code,
               mc.SMFIR_CONTINUE, "MAIL before the reload")
        reload(forwards)
        expect(c.rcpt("<sales@fwd.example>",
                      {"{rcpt_addr}": "sales@fwd.example"}).code,
               mc.SMFIR_CONTINUE, "RCPT after the reload")
        c.data({"i": "F2"})
        c.header("Subject", "inbound", {"i": "F2"})
        c.eoh({"i": "F2"})
        c.body(b"hello\r\n")
        expect(c.eom({"i": "F2"}).code, mc.SMFIR_CONTINUE, "a forward now")
        c.quit()
        expect(fwd_count(), 1, "the forward charged to its domain")
        expect(forward("F3").code, mc.SMFIR_CONTINUE, "the next message")
        expect(fwd_count(), 2, "charged again")
        expect(post("P2").text, post_refused, "still no list declared")
        reload(lists)
        expect(post("P3").code, mc.SMFIR_CONTINUE, "a list post now, exempt")
        expect(forward("F4").code, mc.SMFIR_CONTINUE, "no forward any more")
        expect(fwd_count(), 2, "not charged again")
        reload(marked)
        expect(post("P4").code, mc.SMFIR_CONTINUE, "still a list post")
        expect(forward("F5").code, mc.SMFIR_CONTINUE, "a forward again")
        expect(fwd_count(), 3, "charged again")
        reload(plain)
        expect(forward("F6").code, mc.SMFIR_CONTINUE, "no forward any more")
        expect(fwd_count(), 3, "not charged again")
        expect(post("P5").text, post_refused, "no list any more")
    finally:
        expect(d.stop(), 0, "exit status")


def scenario_address_forms(tmp):
    """Envelope addresses in the forms Postfix takes and rewrites before
    it uses them (quotes, a source route, a trailing dot, a bang path, a
    comment): a recipient so written is still the forward it names (each
    of these was forwarded by Postfix and charged to nothing), and a
    sender so written is charged as the mailbox Postfix sends it as. So
    is a recipient with an extension (sales+x@, forwarded by Postfix with
    recipient_delimiter = +)."""
    # acme's subscription limit of 6 would refuse the last of them.
    _, forwards, _, _ = scenario.forward_list_configs(
        CONFIG.replace("uid=10001 subscription=6", "uid=10001"), "-")
    d = Daemon(tmp, config=forwards)
    rcpts = ['<"sales"@fwd.example>', "<s\\ales@fwd.example>",
             "<@a.example,@b.example:sales@fwd.example>",
             "<sales@fwd.example.>", "<fwd.example!sales>",
             "<sales%fwd.example>", "<sales(c)@fwd.example>",
             '<"sales@fwd.example">', "<sales+x@fwd.example>"]
    senders = ['<"info"@acme.example>', "<@a.example:info@acme.example>",
               "<info@acme.example.>", "<acme.example!info>"]
    try:
        same_minute(room=20)
        for i, rcpt in enumerate(rcpts):
            c = mc.smtp_session(d.spec, addr=SMTP_CLIENT)
            r = c.message("<someone@outside.example>", [rcpt],
                          [("Subject", "inbound")], queue_id=f"F{i}")
            c.quit()
            expect(r.code, mc.SMFIR_CONTINUE, f"{rcpt}: accepted")
            expect(d.status("mailbox", "sales@fwd.example"), (i + 1, 0),
                   f"{rcpt}: charged as a forward of sales@fwd.example")
        # From a host of the local networks, without a login: charged to
        # the sender, whose limit is 3.
        for i, sender in enumerate(senders):
            r = smtp_message(d, sender, client=LOCAL_NET_CLIENT,
                             qid=f"S{i}")
            if i < 3:
                expect(r.code, mc.SMFIR_CONTINUE, f"{sender}: accepted")
            else:
                expect(r.text, refusal("mailbox", "info@acme.example", 3, 3),
                       f"{sender}: over the limit of info@acme.example")
            expect(d.status("mailbox", "info@acme.example"),
                   (min(i + 1, 3), 1 if i == 3 else 0),
                   f"{sender}: charged to info@acme.example")
        lines = d.ctl("list mailbox")
        expect([l for l in lines if '"' in l or "!" in l], [],
               "no mailbox named by a quoted or routed form")
    finally:
        expect(d.stop(), 0, "exit status")


def scenario_local_forwards(tmp):
    """A local submission to more forwarding mailboxes than a message
    keeps (8): Postfix cannot refuse one recipient of it ("milter
    configuration error: can't reject recipient in non-smtpd(8)
    submission"; it was left in the maildrop and tried again every
    minute, for ever). Every recipient is taken, the submitter's
    subscription charged for all, the first 8 forwards charged too, and
    the others said in one line."""
    config = CONFIG + "domain fwd.example subscription=bulk\n" + "".join(
        f"forward f{i}@fwd.example remote\n" for i in range(1, 11))
    d = Daemon(tmp, config=config)
    qid = "4TqR2d0K1Zz9sGh"
    try:
        same_minute()
        c = mc.local_session(d.spec)
        r = c.message("web@host.example",
                      [f"f{i}@fwd.example" for i in range(1, 11)],
                      [("X-Obspam-Pickup", f"uid=10003 id={qid}"),
                       ("Subject", "to ten forwards")], queue_id=qid)
        c.quit()
        expect(r.code, mc.SMFIR_CONTINUE, "the local submission")
        expect(d.status("subscription", "bulk"), (10 + 8, 0),
               "bulk: the message's 10 recipients and 8 forwards")
        for i in range(1, 9):
            expect(d.status("mailbox", f"f{i}@fwd.example"), (1, 0),
                   f"forward f{i}@fwd.example charged")
        d.wait_log(f"warning: {qid}: a local submission to more than 8 "
                   "forwarding mailboxes: the forwards of the others "
                   "(f9@fwd.example, ...) are not counted (said once "
                   "every 10 minutes)")
    finally:
        expect(d.stop(), 0, "exit status")


def scenario_reject(tmp):
    """Action reject: 550 5.7.1 and the same text."""
    d = Daemon(tmp, CONFIG.replace("action defer", "action reject"))
    try:
        same_minute()
        for _ in range(3):
            r = smtp_message(d, "<a@b>", auth="info@acme.example")
            expect(r.code, mc.SMFIR_CONTINUE, "under the limit")
        r = smtp_message(d, "<a@b>", auth="info@acme.example")
        expect(r.code, mc.SMFIR_REPLYCODE, "over")
        expect(r.text, refusal("mailbox", "info@acme.example", 3, 3,
                               code="550 5.7.1"), "reject text")
    finally:
        expect(d.stop(), 0, "exit status")


def scenario_local(tmp):
    """A local submission is charged to the subscription of the uid in
    X-Obspam-Pickup:, which is removed; the sender is not what counts."""
    d = Daemon(tmp)
    try:
        r = local_message(d, uid=10001, sender="someone@bulk.example",
                          rcpts=2)
        expect(r.code, mc.SMFIR_CONTINUE, "accepted")
        expect(marker_removals(r), [(1, "X-Obspam-Pickup")], "marker removed")
        expect(d.status("subscription", "acme"), (2, 0), "acme charged")
        expect(d.status("subscription", "bulk"), (0, 0), "not the sender")
        # The whitelist (127.0.0.0/8) does not exempt scripts.
        r = local_message(d, uid=10001, qid="QID2")
        expect(d.status("subscription", "acme"), (3, 0), "not whitelisted")
        # A uid that no subscription owns: nothing counted, accepted.
        r = local_message(d, uid=4242, qid="QID3")
        expect(r.code, mc.SMFIR_CONTINUE, "unknown uid")
        expect(d.status("subscription", "acme"), (3, 0), "unchanged")
    finally:
        expect(d.stop(), 0, "exit status")


def over_the_limit(d, qid, code, what):
    """Fills subscription acme's limit of 6 with a local submission of
    uid 10001, then submits one more message (queue ID qid) over it, whose
    reply must have the code: returns that reply."""
    r = local_message(d, uid=10001, rcpts=6)
    expect(r.code, mc.SMFIR_CONTINUE, "at the limit")
    r = local_message(d, uid=10001, qid=qid)
    expect(r.code, code, what)
    return r


def scenario_local_hold(tmp):
    """A refused local submission is held (quarantine) by default."""
    d = Daemon(tmp)
    try:
        same_minute()
        r = over_the_limit(d, "HELDQID", mc.SMFIR_ACCEPT, "held messages are accepted")
        # Held, not deferred: the reason has no retry hint.
        expect(r.quarantine, refusal("subscription", "acme", 6, 6, code="4.7.1",
                                     minutes=None)[len("4.7.1 "):],
               "hold reason")
        expect(marker_removals(r), [(1, "X-Obspam-Pickup")], "marker removed")
        expect(d.status("subscription", "acme"), (6, 1), "refusal recorded")
        d.wait_log("HELDQID: held: the refused local submission is kept in "
                   "the hold queue (release: postsuper -H HELDQID; delete: "
                   "postsuper -d HELDQID)")
        # The refusal line carries the queue ID (the "i" macro).
        d.wait_log("refuse kind=subscription object=acme limit=6 "
                   "count=6 unit=recipients retry=")
        if not re.search(r"refuse kind=subscription object=acme limit=6 "
                         r"count=6 unit=recipients retry=\d+ "
                         r"queue_id=HELDQID ", d.read_log()):
            raise Failure(f"no queue_id=HELDQID in the refusal line:\n"
                          f"{d.read_log()}")
    finally:
        expect(d.stop(), 0, "exit status")


def scenario_local_notice(tmp):
    """The notice mail of a held local submission says it was held (not
    deferred), names the milter's own control socket, and its grep command
    finds the refusal line in the milter's log."""
    mails, command = scenario.mailer(tmp)
    d = Daemon(tmp, "notify-immediate yes\n" + CONFIG,
               args=["--admin", "postmaster@example.net",
                     "--notify-command", command])
    try:
        same_minute()
        r = over_the_limit(d, "NQID", mc.SMFIR_ACCEPT, "held")
        d.wait_log("mail sent to=postmaster@example.net kind=subscription "
                   "object=acme")
        texts = scenario.mails_in(mails)
        mail = [t for t in texts
                if re.search(r"^To: postmaster@example\.net$", t, re.M) and
                "Object:         subscription acme\n" in t]
        expect(len(mail), 1, "the admin's mail about acme")
        if ("  Refused mail:   deferred over SMTP (the sending server "
                "retries);\n                  held when submitted locally "
                "(postsuper -H releases it)\n") not in mail[0]:
            raise Failure(f"no 'held' in the notice:\n{mail[0]}")
        grep, line = scenario.expect_notice_commands(
            mail[0], d.control, "subscription", "acme", d.log_path)
        if "queue_id=NQID " not in line:
            raise Failure(f"{grep} found {line!r}")
    finally:
        expect(d.stop(), 0, "exit status")


def scenario_local_bounce(tmp):
    """--local-action bounce: 550 5.7.1, which Postfix bounces."""
    d = Daemon(tmp, args=["--local-action", "bounce"])
    try:
        same_minute()
        r = over_the_limit(d, "BQID", mc.SMFIR_REPLYCODE, "bounced")
        expect(r.text, refusal("subscription", "acme", 6, 6,
                               code="550 5.7.1"), "bounce text")
        expect(r.quarantine, None, "not held")
        d.wait_log("BQID: rejected: Postfix returns the local submission to "
                   "its sender <web@host.example>")
    finally:
        expect(d.stop(), 0, "exit status")


def scenario_scripts_forbidden(tmp):
    """A subscription whose scripts may not send: held with its reason."""
    d = Daemon(tmp)
    try:
        r = local_message(d, uid=10002, qid="FQID")
        expect(r.code, mc.SMFIR_ACCEPT, "held")
        expect(r.quarantine, "scripts of subscription closed may not send "
               "mail", "reason")
        expect(d.status("subscription", "closed"), (0, 1), "refused")
    finally:
        expect(d.stop(), 0, "exit status")
    # Bounce mode says the same in a 550.
    d2 = Daemon(tmp, args=["--local-action", "bounce"])
    try:
        r = local_message(d2, uid=10002, qid="FQID2")
        expect(r.text, "550 5.7.1 scripts of subscription closed may not "
               "send mail", "bounce text")
    finally:
        expect(d2.stop(), 0, "exit status")


def scenario_forged(tmp):
    """What a script can write is never trusted: an X-Obspam-Pickup: that
    names another queue ID, one below the real one, a Received: header in
    pickup's form, an X-PHP-Originating-Script: of another uid."""
    d = Daemon(tmp, args=["--vhost-pattern", "/var/www/vhosts/%d/"])
    try:
        # No rule in Postfix: the script's own marker comes first but names
        # another queue ID. Decided by its sender (not hosted): nothing.
        r = local_message(d, qid="REALQID", marker="uid=10001 id=GUESSED",
                          sender="x@nowhere.example")
        expect(r.code, mc.SMFIR_CONTINUE, "accepted")
        expect(marker_removals(r), [(1, "X-Obspam-Pickup")], "removed too")
        expect(d.status("subscription", "acme"), (0, 0), "forged id")
        d.wait_log("REALQID: a local submission whose first X-Obspam-Pickup: "
                   "header is not the one Postfix wrote for it (it names "
                   "queue ID GUESSED)")
        # The real marker first (uid 10003), forged ones below it.
        r = local_message(d, uid=10003, qid="Q2", headers=[
            ("X-Obspam-Pickup", "uid=10001 id=Q2"),
            ("Received", "by host (Postfix, from userid 10001)\n\tid Q2; x"),
            ("X-PHP-Originating-Script",
             "10001:/var/www/vhosts/shop.acme.example/httpdocs/x.php")])
        expect(marker_removals(r), [(2, "X-Obspam-Pickup"),
                                    (1, "X-Obspam-Pickup")], "both removed")
        expect(d.status("subscription", "bulk"), (1, 0), "the real uid")
        expect(d.status("subscription", "acme"), (0, 0), "not the forged")
        expect(d.status("domain", "shop.acme.example"), (0, 0),
               "no domain from a foreign script header")
        # The script header of another uid is not recorded either.
        r = local_message(d, uid=10001, qid="Q3", headers=[
            ("X-PHP-Originating-Script", "10003:/var/www/vhosts/bulk.example/"
             "httpdocs/y.php")])
        now = int(time.time())
        lines = d.ctl(f"report {now - 7200} {now + 3600}")
        expect([l for l in lines if "y.php" in l or "x.php" in l], [],
               "no script path recorded")
        expect(d.status("subscription", "acme"), (1, 0), "acme by its uid")
        # A malformed marker is no marker.
        r = local_message(d, qid="Q4", marker="uid=10001",
                          sender="x@nowhere.example")
        expect(d.status("subscription", "acme"), (1, 0), "malformed marker")
    finally:
        expect(d.stop(), 0, "exit status")


def scenario_vhost(tmp):
    """The domain from the script path (--vhost-pattern) is charged with
    the subscription; the path is kept for reports."""
    d = Daemon(tmp, args=["--vhost-pattern", "/home/*/domains/%d/",
                          "--vhost-pattern", "/var/www/vhosts/%d/"])
    try:
        same_minute()
        path = "/var/www/vhosts/shop.acme.example/httpdocs/contact.php"
        for i in range(2):
            r = local_message(d, uid=10001, qid=f"V{i}", headers=[
                ("X-PHP-Originating-Script", f"10001:{path}")])
            expect(r.code, mc.SMFIR_CONTINUE, f"message {i}")
        expect(d.status("domain", "shop.acme.example"), (2, 0), "domain")
        expect(d.status("subscription", "acme"), (2, 0), "subscription")
        r = local_message(d, uid=10001, qid="V3", headers=[
            ("X-PHP-Originating-Script", f"10001:{path}")])
        expect(r.quarantine, refusal("domain", "shop.acme.example", 2, 2,
                                     code="4.7.1", minutes=None)[len("4.7.1 "):],
               "the domain's limit")
        # The second pattern; a domain of another subscription is ignored.
        r = local_message(d, uid=10001, qid="V4", headers=[
            ("X-PHP-Originating-Script",
             "10001:/home/u/domains/acme.example/public_html/a.php")])
        expect(d.status("domain", "acme.example"), (1, 0), "second pattern")
        r = local_message(d, uid=10001, qid="V5", headers=[
            ("X-PHP-Originating-Script",
             "10001:/var/www/vhosts/bulk.example/httpdocs/a.php")])
        expect(d.status("domain", "bulk.example"), (0, 0), "not acme's")
        expect(d.status("subscription", "acme"), (4, 1), "all four")
        now = int(time.time())
        rows = d.ctl(f"report {now - 7200} {now + 3600}")
        expect(any(r.endswith("\t" + path) and r.startswith("row\tscript\t2\t1")
                   for r in rows), True, f"script row in {rows!r}")
    finally:
        expect(d.stop(), 0, "exit status")


def scenario_abort(tmp):
    """Messages aborted at every stage and connections dropped mid-message
    charge nothing and leak nothing (run it on an ASan build)."""
    d = Daemon(tmp)
    try:
        for i in range(1000):
            c = mc.local_session(d.spec) if i % 2 else mc.smtp_session(d.spec)
            c.mail("<info@acme.example>", {"{auth_authen}": "info@acme.example"}
                   if i % 2 == 0 else {})
            if i % 3 >= 1:
                c.rcpt("<a@example.org>")
            if i % 3 == 2:
                c.header("X-Obspam-Pickup", f"uid=10001 id=A{i}")
                c.header("X-PHP-Originating-Script", "10001:/x/y.php")
            if i % 5 == 0:
                c.sock.close()  # the MTA went away
                continue
            c.abort()
            # Another message on the same connection after the abort.
            if i % 7 == 0:
                r = c.message("<x@nowhere.example>", ["<a@b.example>"], [])
                expect(r.code, mc.SMFIR_CONTINUE, "after abort")
            c.quit()
        expect(d.status("subscription", "acme"), (0, 0), "nothing charged")
        expect(d.status("mailbox", "info@acme.example"), (0, 0), "mailbox")
        r = smtp_message(d, "<a@b>", auth="info@acme.example")
        expect(r.code, mc.SMFIR_CONTINUE, "still serving")
    finally:
        expect(d.stop(), 0, "exit status")


def scenario_concurrent(tmp):
    """64 connections at once, 4 messages each, to a subscription with
    room for 150: exactly 150 are accepted, whatever the interleaving."""
    d = Daemon(tmp)
    results = []
    lock = threading.Lock()

    def worker(n):
        out = []
        try:
            for k in range(4):
                r = local_message(d, uid=10003, qid=f"C{n}x{k}")
                out.append(r.code)
        except Exception as e:  # noqa: BLE001
            out.append(repr(e))
        with lock:
            results.extend(out)

    try:
        threads = [threading.Thread(target=worker, args=(n,))
                   for n in range(64)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        expect(len(results), 256, "replies")
        expect(results.count(mc.SMFIR_CONTINUE), 150, "accepted")
        expect(results.count(mc.SMFIR_ACCEPT), 106, "held")
        expect(d.status("subscription", "bulk"), (150, 106), "counters")
    finally:
        expect(d.stop(), 0, "exit status")


def scenario_unix(tmp):
    """A unix: socket of mode 0660 and group postfix (when that group
    exists) by default, or the mode asked for; no TCP warning; removed at
    exit."""
    path = os.path.join(tmp, "milter.sock")
    d = Daemon(tmp, socket_spec="unix:" + path)
    try:
        st = os.stat(path)
        expect(stat.S_IMODE(st.st_mode), 0o660, "mode")
        try:
            expect(st.st_gid, grp.getgrnam("postfix").gr_gid, "group")
        except KeyError:
            pass  # no Postfix here: the group is the daemon's
        expect("over TCP" in d.read_log(), False, "no TCP warning")
        r = local_message(d, uid=10001)
        expect(r.code, mc.SMFIR_CONTINUE, "over a unix socket")
    finally:
        expect(d.stop(), 0, "exit status")
    expect(os.path.exists(path), False, "socket removed")
    d = Daemon(tmp, socket_spec="unix:" + path, args=["--socket-mode", "0600"])
    try:
        expect(stat.S_IMODE(os.stat(path).st_mode), 0o600, "--socket-mode")
    finally:
        expect(d.stop(), 0, "exit status")


def negotiated(spec):
    """Whether the milter answers an option negotiation on spec."""
    c = mc.MilterClient(spec)
    try:
        c.negotiate()
        return "answered"
    except (mc.ProtocolError, ConnectionResetError, BrokenPipeError):
        return "closed"
    finally:
        c.sock.close()


def scenario_peers(tmp):
    """On a unix: socket only root, postfix, the daemon's user and
    --allow-user users are answered: nobody, though the mode lets it
    connect, is closed on before its first byte is read, logged once per
    episode, and neither stops nor slows the filter; TCP answers anyone
    and says so at start."""
    os.chmod(tmp, 0o755)  # nobody may reach the socket file
    path = os.path.join(tmp, "milter.sock")
    spec = "unix:" + path
    d = Daemon(tmp, socket_spec=spec, args=["--socket-mode", "0666"])
    try:
        # More than libmilter's 16 accept failures, which would stop it.
        for i in range(20):
            expect(as_nobody(lambda: negotiated(spec)), "'closed'",
                   f"nobody #{i}")
        lines = re.findall(r"^.*peer refused.*$", d.read_log(), re.M)
        expect(len(lines), 1, f"one line for the episode: {lines}")
        want = (r"warning: peer refused uid=65534 user=nobody pid=\d+ on "
                + re.escape(spec) + r": only root, postfix, the daemon's "
                r"user and --allow-user users may ask; its connections are "
                r"closed unanswered and not logged again until it stops for "
                r"60 s$")
        if not re.search(want, lines[0]):
            raise Failure(f"peer refused line: {lines[0]!r}")
        r = local_message(d, uid=10001)
        expect(r.code, mc.SMFIR_CONTINUE, "root is answered")
        expect("accept() returned invalid socket" in d.read_log(), False,
               "libmilter saw no failure")
    finally:
        expect(d.stop(), 0, "exit status")
    d = Daemon(tmp, socket_spec=spec,
               args=["--socket-mode", "0666", "--allow-user", "nobody"])
    try:
        expect(as_nobody(lambda: negotiated(spec)), "'answered'",
               "nobody with --allow-user")
    finally:
        expect(d.stop(), 0, "exit status")
    d = Daemon(tmp)
    try:
        expect(as_nobody(lambda: negotiated(d.spec)), "'answered'",
               "nobody over TCP")
        d.wait_log(f"warning: listening on {d.spec} over TCP: any local "
                   "user (a customer's web script, say) can connect and "
                   "spend any mailbox's limit; prefer a unix: socket, which "
                   "only Postfix may use")
    finally:
        expect(d.stop(), 0, "exit status")


def scenario_user(tmp):
    """--user drops root once the socket is open: the milter runs as
    nobody with no capability, answers, and saves its state as nobody."""
    os.chmod(tmp, 0o755)
    sdir = os.path.join(tmp, "state")
    os.mkdir(sdir)
    os.chown(sdir, NOBODY.pw_uid, NOBODY.pw_gid)
    path = os.path.join(tmp, "milter.sock")
    d = Daemon(tmp, socket_spec="unix:" + path,
               args=["--user", "nobody", "--state",
                     os.path.join(sdir, "m.state")])
    try:
        d.wait_log("running as user nobody (uid 65534, gid "
                   f"{NOBODY.pw_gid})")
        with open(f"/proc/{d.proc.pid}/status") as f:
            status = dict(l.split(":", 1) for l in f.read().splitlines())
        expect(status["Uid"].split(), ["65534"] * 4, "uids")
        expect(int(status["CapBnd"], 16), 0, "bounding set")
        expect(local_message(d, uid=10001).code, mc.SMFIR_CONTINUE,
               "answers")
    finally:
        expect(d.stop(), 0, "exit status")
    st = os.stat(os.path.join(sdir, "m.state"))
    expect(st.st_uid, NOBODY.pw_uid, "the state file's owner")


def scenario_signals(tmp):
    """SIGHUP reloads (a bad file keeps the running configuration), many
    SIGHUPs in a row never stop the milter (libmilter's own signal thread
    would), SIGTERM saves the state, and a restart loads it."""
    d = Daemon(tmp, state=True)
    try:
        r = local_message(d, uid=10001, rcpts=2)
        with open(d.config, "w") as f:
            f.write(CONFIG + "bogus line\n")
        d.proc.send_signal(signal.SIGHUP)
        d.wait_log("reload failed")
        expect(d.status("subscription", "acme"), (2, 0), "kept on failure")
        with open(d.config, "w") as f:
            f.write(CONFIG.replace("subscription=6", "subscription=7"))
        for _ in range(20):
            d.proc.send_signal(signal.SIGHUP)
            time.sleep(0.01)
        d.wait_log("reload ok", count=1)
        time.sleep(0.5)
        expect(d.proc.poll(), None, "still running after 20 SIGHUPs")
        fields = dict(l.split("\t", 1)
                      for l in d.ctl("status subscription acme"))
        expect(fields["limit"], "7", "new limit")
        expect(fields["count"], "2", "counters kept")
    finally:
        expect(d.stop(), 0, "exit status")
    expect(os.path.exists(d.state), True, "state saved at exit")
    d2 = Daemon(tmp, config=CONFIG, state=True)
    try:
        expect(d2.status("subscription", "acme"), (2, 0), "state loaded")
        d2.proc.send_signal(signal.SIGINT)
        d2.proc.wait(timeout=30)
        expect(d2.proc.returncode, 0, "SIGINT")
    finally:
        d2.stop()
    log = d2.read_log()
    expect("stopping on signal 2" in log, True, "SIGINT logged")


def scenario_cli(tmp):
    """Usage errors exit 2 with one clear line; --help and --check-config."""
    def run(*args):
        p = subprocess.run([DAEMON, *args], capture_output=True, text=True,
                           timeout=TIMEOUT)
        return p.returncode, p.stdout, p.stderr

    conf = os.path.join(tmp, "c.conf")
    with open(conf, "w") as f:
        f.write(CONFIG)
    code, out, _ = run("--help")
    expect(code, 0, "--help")
    expect("--vhost-pattern PAT" in out and "--local-action" in out, True,
           "help text")
    expect("(default unix:/var/spool/postfix/obspam-milter/milter.sock)"
           in out and "--user USER[:GROUP]" in out and "--log WHERE" in out
           and "--allow-user USER" in out, True, "help text, new options")
    for spec, port in (("inet:99999@127.0.0.1", "99999"),
                       ("inet:1000000@127.0.0.1", "1000000")):
        code, _, err = run("--config", conf, "--socket", spec,
                           "--check-config")
        expect((code, err), (2, f"obspam-milter: --socket: bad value "
                             f"'{spec}': bad port '{port}': expected a "
                             f"number 0..65535\n"), f"--socket {spec}")
    code, _, err = run("--config", conf, "--metrics", "inet:127.0.0.1:99999",
                       "--check-config")
    expect((code, err), (2, "obspam-milter: --metrics: bad socket address "
                         "'inet:127.0.0.1:99999': bad port '99999': "
                         "expected a number 0..65535\n"), "--metrics")
    code, _, err = run("--config", conf, "--socket", "inet:127.0.0.1:10041")
    expect(code, 2, "Postfix's form")
    expect(err.startswith("obspam-milter: --socket: bad value "
                          "'inet:127.0.0.1:10041': expected unix:PATH, "
                          "inet:PORT@HOST"), True, err)
    code, _, err = run("--config", conf, "--socket", "inet:1@h",
                       "--vhost-pattern", "/var/www/")
    expect((code, err), (2, "obspam-milter: --vhost-pattern: bad value "
                         "'/var/www/': the pattern must hold %d exactly once "
                         "(it has 0)\n"), "pattern")
    code, _, err = run("--config", conf, "--socket", "inet:1@h",
                       "--local-action", "defer")
    expect((code, err), (2, "obspam-milter: --local-action: bad value "
                         "'defer': expected hold or bounce\n"), "action")
    code, out, _ = run("--config", conf, "--check-config")
    expect((code, out), (0, f"{conf}: configuration OK\n"), "check")
    with open(conf, "a") as f:
        f.write("plan\n")
    code, _, err = run("--config", conf, "--check-config")
    expect(code, 1, "bad config")
    expect(err.startswith(f"{conf}:{CONFIG.count(chr(10)) + 1}: "), True, err)
    # A bad configuration stops the start, with the line at fault.
    code, _, err = run("--config", conf, "--socket",
                       f"inet:{free_port()}@127.0.0.1", "--foreground")
    expect(code, 1, "start on a bad file")
    expect("cannot start" in err, True, err)
    # A port in use.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    busy = s.getsockname()[1]
    with open(conf, "w") as f:
        f.write(CONFIG)
    code, _, err = run("--config", conf, "--socket",
                       f"inet:{busy}@127.0.0.1", "--foreground")
    s.close()
    expect(code, 1, "port in use")
    expect(f"cannot start: cannot listen on inet:{busy}@127.0.0.1: Address "
           "already in use" in err, True, err)


def scenario_detach(tmp):
    """Without --foreground: the starter exits 0 once the milter listens;
    the daemon answers and stops on SIGTERM."""
    conf = os.path.join(tmp, "c.conf")
    with open(conf, "w") as f:
        f.write(CONFIG)
    port = free_port()
    ctl = os.path.join(tmp, "ctl.sock")
    p = subprocess.run([DAEMON, "--config", conf, "--socket",
                        f"inet:{port}@127.0.0.1", "--control", "unix:" + ctl],
                       capture_output=True, text=True, timeout=TIMEOUT)
    expect(p.returncode, 0, f"starter: {p.stderr}")
    s = socket.socket(socket.AF_UNIX)
    s.connect(ctl)
    s.sendall(b"ping\n")
    data = s.makefile().read()
    pid = int([l for l in data.splitlines() if l.startswith("pid\t")][0][4:])
    try:
        # Until it is up, the daemon logs to the terminal that started it,
        # the ready line included (as obspam-policyd does).
        expect(p.stderr.count("\n"), 4, f"four lines before detaching: "
               f"{p.stderr}")
        expect(f"ready: listening on inet:{port}@127.0.0.1 " in p.stderr,
               True, p.stderr)
        expect(f"warning: listening on inet:{port}@127.0.0.1 over TCP: "
               in p.stderr, True, p.stderr)
        expect("control listening on unix:" + ctl in p.stderr, True,
               p.stderr)
        c = mc.local_session(f"inet:{port}@127.0.0.1")
        r = c.message("a@b", ["c@d"], [("X-Obspam-Pickup", "uid=10001 id=D")],
                      queue_id="D")
        expect(r.code, mc.SMFIR_CONTINUE, "detached daemon answers")
        c.quit()
    finally:
        os.kill(pid, signal.SIGTERM)
    # The daemon is nobody's child here: once it exits it may stay a
    # zombie until init reaps it, which counts as stopped.
    end = time.time() + 30
    while time.time() < end:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        raise Failure("the detached milter did not stop")


SCENARIOS = scenario.scenarios_of(globals(), "scenario_")


def main(argv):
    global BUILD, DAEMON
    if len(argv) < 3:
        print(__doc__)
        return 2
    BUILD = argv[1]
    DAEMON = os.path.join(BUILD, "examples", "obspam-milter")
    if argv[2] == "--list":
        scenario.list_scenarios(SCENARIOS)
        return 0
    return scenario.run(SCENARIOS, argv[2:], "milter-test.")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
