#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes tests/bindings/stream.txt, the cross-language decision stream.

The stream is replayed against tests/bindings/stream.conf by stream.c (C),
stream.py (Python) and stream.php (PHP); run.sh checks that the three print
the same lines. It is generated once and kept in the tree, so every run
replays the same messages; run this again only to change it:

    python3 tests/bindings/gen_stream.py > tests/bindings/stream.txt

Format: one command per line, words separated by single spaces; '#' starts
a comment line. A word '-' is NULL (or "no end" for a time), '~' the empty
string.

    d TIME FLAGS RECIPIENTS UID SASL SENDER CLIENT DOMAIN_HINT SCRIPT
                             decide; prints "verdict ACTION KIND OBJECT LIMIT
                             COUNT RETRY_AFTER WINDOW" (OBJECT '-' when empty)
                             or "error CODE MESSAGE"
    s KIND NAME NOW          stats; "stats KIND NAME SENDING LIMIT COUNT
                             REFUSED REFUSED_TOTAL LAST_REFUSED EXCEEDED
                             EXCEEDED_TOTAL LIMIT_MINUTE COUNT_MINUTE
                             LIMIT_DAY COUNT_DAY BLOCKED_KIND DISABLED
                             BLOCKED_BY"
    h KIND NAME FROM TO      history; "history HOUR SENT REFUSED" per hour
                             then "history end N"
    r FROM TO                report; "report KIND NAME SENT REFUSED FIRST LAST
                             EXCEEDED WINDOW" per row then "report end N"
    n NOW                    notify_flush; "notice KIND NAME SUBSCRIPTION
                             CONTACT LIMIT SENT REFUSED FIRST LAST START END
                             EXCEEDED WINDOW" per notice (also printed when
                             decide notifies at once), then "flush end"
    o OPTION VALUE           set_option; prints "option OPTION VALUE"
    w KIND NAME WHICH WINDOW LIMIT
                             set_window_limit (NAME '-': the server); prints
                             "window KIND NAME WHICH WINDOW LIMIT"
    x KIND NAME MAX          set_max_recipients; prints "cap KIND NAME MAX"
    e KIND NAME              effective_window_limit of each window and
                             effective_max_recipients; prints "effective KIND
                             NAME MINUTE HOUR DAY CAP"
    l KIND PARENT FLAGS AFTER MAX NOW
                             enumerate (1.3); "list KIND NAME SENDING COUNT
                             LIMIT REFUSED LAST_RESET" per object, then "list
                             end N"
    t KIND FROM TO N         top (1.3; KIND -1: every kind); "top KIND NAME
                             SENT REFUSED EXCEEDED WINDOW SUBSCRIPTION UID"
                             per row, then "top end N"
    z KIND NAME NOW          reset (1.3); prints "reset KIND NAME"
    u NAME                   set_unknown_uid_subscription (1.3); prints
                             "unknown-uid NAME"

Notices print '-' for a NULL subscription or contact. Every command that
fails prints "error CODE MESSAGE" instead of its normal output.
"""

from __future__ import annotations

import random
import sys

T0 = 1767268800  # 2026-01-01 12:00:00 UTC

LOGINS = [
    "info@acme.example",
    "sales@acme.example",
    "other@acme.example",
    "orders@shop.acme.example",
    "x@shop.acme.example",
    "demo@bakery.example",
    "blocked@bakery.example",
    "anyone@bakery.example",
    "ceo@corp.example",
    "joe@corp.example",
    "ci@dev.example",
    "Info@ACME.Example",
    "ghost@nowhere.example",
    "corp.example",
]
CLIENTS = ["203.0.113.5", "198.51.100.7", "2001:db8:99::5", "-", "-"]
WHITELISTED = ["192.0.2.10", "2001:db8:25::1", "::ffff:192.0.2.7"]
SCRIPTS = [
    ("1001", "acme.example", "/var/www/acme/contact.php"),
    ("1001", "shop.acme.example", "/var/www/acme/shop/order-mail.php"),
    ("1001", "bakery.example", "/var/www/acme/contact.php"),
    ("1002", "bakery.example", "/home/bakery/cron/newsletter.sh"),
    ("1003", "corp.example", "/srv/corp/app/Mailer.php"),
    ("1003", "-", "/srv/corp/app/Mailer.php"),
    ("1004", "dev.example", "/home/dev/ci/notify.py"),
    ("1005", "-", "/tmp/unknown-user.pl"),
    ("1003", "corp.example", "-"),
]
STATS = [
    ("2", "acme"),
    ("3", "shop.acme.example"),
    ("4", "info@acme.example"),
    ("2", "bakery"),
    ("4", "demo@bakery.example"),
    ("2", "corp"),
    ("3", "corp.example"),
    ("4", "ceo@corp.example"),
    ("2", "dev"),
]


def message(rng: random.Random, t: int) -> str:
    roll = rng.random()
    rcpt = rng.choice([1, 1, 1, 2, 2, 3, 5])
    if rng.random() < 0.02:
        rcpt = rng.choice([30, 0])  # one over every limit; one invalid
    client = rng.choice(CLIENTS)
    if roll < 0.42:  # authenticated submission
        return f"d {t} 0 {rcpt} -1 {rng.choice(LOGINS)} {rng.choice(LOGINS)} {client} - -"
    if roll < 0.62:  # a local script
        uid, hint, script = rng.choice(SCRIPTS)
        return f"d {t} 1 {rcpt} {uid} - - - {hint} {script}"
    if roll < 0.72:  # unauthenticated, hosted envelope sender (or the null sender)
        sender = rng.choice(LOGINS + ["~"])
        return f"d {t} 0 {rcpt} -1 - {sender} {client} - -"
    if roll < 0.80:  # forwards: local ones are exempt, remote ones counted
        flag = rng.choice([2, 4, 4])
        return f"d {t} {flag} {rcpt} -1 - {rng.choice(LOGINS)} - - -"
    if roll < 0.85:  # mailing-list deliveries: exempt
        return f"d {t} 8 {rcpt} -1 - {rng.choice(LOGINS)} - - -"
    if roll < 0.93:  # from a whitelisted relay
        return f"d {t} 0 {rcpt} -1 {rng.choice(LOGINS)} - {rng.choice(WHITELISTED)} - -"
    if roll < 0.95:  # a bad client address: an error, the same everywhere
        return f"d {t} 0 1 -1 {rng.choice(LOGINS)} - not-an-address - -"
    # the empty login and sender: nothing resolves
    return f"d {t} 0 {rcpt} -1 ~ ~ {client} - -"


def main() -> None:
    rng = random.Random(20260101)
    out = [
        "# Generated by tests/bindings/gen_stream.py; see it for the format.",
        "# Replayed against stream.conf by stream.c, stream.py and stream.php.",
        "o 9 3600",
        # Windows and caps beside the configuration's hourly limits: a
        # burst cap on one mailbox and on a plan's mailboxes, a daily cap
        # on one subscription, recipients caps on a domain and the server,
        # and two calls that fail.
        "w 4 demo@bakery.example 4 60 2",
        "w 1 large 4 60 4",
        "w 2 corp 2 86400 60",
        "x 3 acme.example 4",
        "x 0 - 12",
        "w 4 info@acme.example 4 120 1",
        "x 5 /tmp/unknown-user.pl 3",
    ]
    for kind, name in STATS:
        out.append(f"e {kind} {name}")
    t = T0 + 5
    for i in range(1, 421):
        if rng.random() < 0.05:
            out.append(message(rng, t - rng.randint(1, 900)))  # late: clamped
        else:
            t += rng.randint(0, 45)
            out.append(message(rng, t))
        if i == 120:
            out.append("o 10 1")  # notify at an object's first refusal
        if i == 200:
            out.append("o 10 0")
            out.append("o 2 1")  # count messages, not recipients
        if i == 260:
            out.append("o 2 0")
        if i == 300:
            out.append("o 1 0")  # protection off: everything accepted
        if i == 310:
            out.append("o 1 1")
        if i == 330:
            out.append("o 99 1")  # an unknown option: an error
        if i == 150:
            out.append("u corp")  # uid 1005 is nobody's: charged to corp
        if i == 250:
            out.append("u -")
        if i == 280:
            out.append(f"z 4 demo@bakery.example {t}")  # its windows emptied
            out.append(f"s 4 demo@bakery.example {t}")
            out.append(f"z 2 corp {t}")
        if i % 60 == 0:
            for kind, name in STATS:
                out.append(f"s {kind} {name} {t}")
            out.append(f"n {t}")
            out.append(f"r {T0} -")
        if i % 140 == 0:
            out.append(f"h 2 acme {T0} -")
            out.append(f"h 4 demo@bakery.example {T0} {t}")
            out.append(f"h 5 /var/www/acme/contact.php {T0} -")
            out.append("h 4 nobody@acme.example 0 -")  # ENOTFOUND
            out.append(f"l 4 - 0 - 0 {t}")
            out.append(f"l 4 acme 1 - 0 {t}")
            out.append(f"l 4 - 0 demo@bakery.example 3 {t}")
            out.append(f"l 3 small 0 - 0 {t}")
            out.append(f"l 2 - 1 - 0 {t}")
            out.append(f"t -1 {T0} - 0")
            out.append(f"t 5 {T0} - 3")
            out.append(f"t 4 {T0} {t} 2")
    out.append(f"n {t + 7200}")
    out.append(f"r {T0 + 3600} {t}")
    out.append("r 0 -")
    out.append("s 1 small 0")  # a plan has no stats: EINVAL
    out.append("e 4 nobody@nowhere.example")  # ENOTFOUND
    out.append("l 4 nowhere.example 0 - 0 0")  # ENOTFOUND
    out.append("l 1 - 0 - 0 0")  # plans are not listed: EINVAL
    out.append("t 1 0 - 0")  # nor ranked
    out.append("z 1 small 0")  # nor reset
    out.append("u nobody")  # ENOTFOUND
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
