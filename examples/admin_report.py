#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The back end of a panel's "outgoing mail" page: overview, blocked, top, reset.

It reads either a running daemon (obspam-policyd or obspam-milter) through
its control socket, or an engine of its own through the Python binding of
libobspam (bindings/python), and answers the same either way:

    admin_report.py [SOURCE] overview [--json]
        what a home page shows: protection on or off, how many objects do
        not send now, refusals in the last hour and day, the top five
        senders (mailboxes and scripts) of the day
    admin_report.py [SOURCE] blocked [--json]
        every subscription, domain and mailbox that cannot send now, with
        what blocks it (itself or an ancestor, the window it is full in,
        that limit)
    admin_report.py [SOURCE] top [--hours N] [--kind KIND] [--limit N] [--json]
        the senders of the last N hours (24) that sent most, whether or
        not they hit a limit, of one kind or all (scripts included)
    admin_report.py [SOURCE] reset KIND NAME [--json]
        empties the windows of a subscription, domain or mailbox (after a
        password change): it may send its whole limit again

SOURCE is one of:

    --control unix:PATH   a running daemon's control socket (default:
                          $OBSPAM_CONTROL); only the daemon's user and root
                          may use it
    --config FILE [--state FILE]
                          an engine in this process, with that configuration
                          and a state saved by a server (default:
                          $OBSPAM_CONFIG and $OBSPAM_STATE); reset then
                          writes the state back, so give it the state of no
                          running daemon (ask that daemon through --control)
    neither               a small demo engine with made-up traffic

The control socket speaks the daemons' protocol (examples/common/control.c):
one request line ("overview", "blocked", "top FROM TO kind=KIND limit=N",
"reset KIND NAME"), answered by "ok", TAB-separated records and "end", or
by "error MESSAGE". In-process, the same answers are computed with
obspam_enumerate, obspam_top, obspam_stats_get and obspam_reset, as the
daemon computes them; --json prints the same JSON from both.

    OBSPAM_LIBRARY=build/libobspam.so.1 examples/admin_report.py overview
    examples/admin_report.py --control unix:/run/obspam/control.sock blocked
    examples/admin_report.py --config /etc/obspam/obspam.conf \\
        --state /var/lib/obspam/state top --hours 6 --kind script --json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

try:
    import obspam
except ImportError:  # run from the source tree without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings", "python"))
    import obspam

DEMO_CONFIG = """\
default mailbox=100 domain=1000 subscription=5000
plan starter mailbox=20 domain=200 subscription=300
subscription acme plan=starter uid=10001 contact=ops@acme.example
subscription bakery plan=starter uid=10002 contact=owner@bakery.example
domain acme.example subscription=acme
domain bakery.example subscription=bakery
mailbox info@acme.example limit=10
mailbox newsletter@bakery.example max-recipients=10
"""

KINDS = {"subscription": obspam.SUBSCRIPTION, "domain": obspam.DOMAIN, "mailbox": obspam.MAILBOX,
         "script": obspam.SCRIPT}
KIND_NAMES = {v: k for k, v in KINDS.items()}


def demo_engine() -> obspam.Engine:
    """A small engine with some made-up traffic, sent just now."""
    engine = obspam.Engine()
    engine.load_config_string(DEMO_CONFIG)
    for _ in range(14):  # a mailbox over its limit of 10 per hour
        engine.decide(sasl_username="info@acme.example", client_address="203.0.113.7")
    for _ in range(50):  # a hijacked plugin that fills its 200/hour domain
        engine.decide(flags=obspam.MSG_SCRIPT, uid=10002, domain_hint="bakery.example",
                      script="/var/www/bakery/wp-content/plugins/forms/mail.php", recipients=5)
    for _ in range(3):
        engine.decide(flags=obspam.MSG_SCRIPT, uid=10001, script="/var/www/acme/contact.php")
    # over the newsletter's cap of 10 recipients, then more than its
    # domain has room for
    engine.decide(sasl_username="newsletter@bakery.example", recipients=12)
    engine.decide(sasl_username="newsletter@bakery.example", recipients=8)
    return engine


class SourceError(Exception):
    """The daemon or the engine refused a request; the message says why."""


def _num(word: str) -> Optional[int]:
    """A number of a record, None for "-" (a script has no live limit)."""
    return None if word == "-" else int(word)


# ---- a running daemon: the control socket -----------------------------------


class ControlSource:
    """A daemon's control socket: one request line per connection."""

    def __init__(self, spec: str, timeout: float = 10.0) -> None:
        self.path = spec[len("unix:"):] if spec.startswith("unix:") else spec
        self.timeout = timeout

    def request(self, line: str) -> List[List[str]]:
        """Sends one request and returns the records of its answer, each
        split at its TABs; an "error" answer raises SourceError."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(self.timeout)
            try:
                s.connect(self.path)
                s.sendall(line.encode() + b"\n")
                chunks = []
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
            except OSError as exc:
                raise SourceError(f"unix:{self.path}: {exc.strerror or exc}") from None
        lines = b"".join(chunks).decode("utf-8", "replace").split("\n")
        if lines and lines[0].startswith("error "):
            raise SourceError(lines[0][len("error "):])
        # "ok", the records, "end", and the empty string after the last LF.
        if len(lines) < 3 or lines[0] != "ok" or lines[-2:] != ["end", ""]:
            raise SourceError(f"unix:{self.path}: incomplete answer to '{line.split(' ')[0]}'")
        return [rec.split("\t") for rec in lines[1:-2]]

    @staticmethod
    def _top_row(f: List[str]) -> Dict[str, Any]:
        # row KIND SENT REFUSED EXCEEDED LIMIT COUNT SENDING UID SUBSCRIPTION NAME
        sending = _num(f[7])
        return {"kind": f[1], "name": f[10], "sent": int(f[2]), "refused": int(f[3]), "exceeded": int(f[4]),
                "limit": _num(f[5]), "count": _num(f[6]), "sending": None if sending is None else bool(sending),
                "uid": int(f[8]), "subscription": f[9] or None}

    def top(self, start: int, end: int, kind: Optional[str], limit: int) -> List[Dict[str, Any]]:
        words = [f"top {start} {end}"] + ([f"kind={kind}"] if kind else []) + ([f"limit={limit}"] if limit else [])
        return [self._top_row(f) for f in self.request(" ".join(words)) if f[0] == "row"]

    def blocked(self) -> List[Dict[str, Any]]:
        # row KIND NAME BLOCKED_KIND BLOCKED_BY WINDOW LIMIT
        return [{"kind": f[1], "name": f[2], "blocked_kind": None if f[3] == "-" else f[3],
                 "blocked_by": f[4], "window": None if f[5] == "-" else f[5], "limit": int(f[6])}
                for f in self.request("blocked") if f[0] == "row"]

    def overview(self) -> Dict[str, Any]:
        records = self.request("overview")
        v = {f[0]: f[1] for f in records if f[0] != "row"}
        return {"enabled": v["enabled"] == "1",
                "not_sending": {"subscription": int(v["not_sending_subscriptions"]),
                                "domain": int(v["not_sending_domains"]),
                                "mailbox": int(v["not_sending_mailboxes"])},
                "refused_hour": int(v["refused_hour"]), "refused_day": int(v["refused_day"]),
                "day_from": int(v["day_from"]),
                "top": [self._top_row(f) for f in records if f[0] == "row"]}

    def reset(self, kind: str, name: str) -> str:
        return dict((f[0], f[1]) for f in self.request(f"reset {kind} {name}"))["message"]


# ---- an engine in this process -------------------------------------------------


def full_window(st: obspam.Stats) -> Dict[str, Any]:
    """Of the windows an object would not fit one more recipient in, the
    longest (the one that keeps its mail out longest), with its limit; as
    the daemon's status says it."""
    for window, limit, count in (("day", st.limit_day, st.count_day), ("hour", st.limit, st.count),
                                 ("minute", st.limit_minute, st.count_minute)):
        if limit >= 0 and count + 1 > limit:
            return {"window": window, "limit": limit}
    return {"window": None, "limit": -1}


class EngineSource:
    """An engine of this process, answering as the control socket does."""

    def __init__(self, engine: obspam.Engine, state: Optional[str] = None) -> None:
        self.engine = engine
        self.state = state

    def _live(self, row: obspam.ReportRow) -> Dict[str, Any]:
        out: Dict[str, Any] = {"kind": KIND_NAMES[row.kind], "name": row.name, "sent": row.sent,
                               "refused": row.refused, "exceeded": row.exceeded,
                               "limit": None, "count": None, "sending": None,
                               "uid": row.uid if row.kind == obspam.SCRIPT else -1,
                               "subscription": row.subscription if row.kind == obspam.SCRIPT else None}
        if row.kind != obspam.SCRIPT:
            try:
                st = self.engine.stats(row.kind, row.name)
            except obspam.Error:  # no longer in the configuration
                return out
            out.update(limit=max(st.limit, -1), count=st.count, sending=st.sending)
        return out

    def top(self, start: int, end: int, kind: Optional[str], limit: int) -> List[Dict[str, Any]]:
        if kind is not None and kind not in KINDS:
            raise SourceError(f"bad kind '{kind}': expected subscription, domain, mailbox or script")
        return [self._live(r) for r in self.engine.top(start, end, limit, None if kind is None else KINDS[kind])]

    def blocked(self) -> List[Dict[str, Any]]:
        rows = []
        for kind in (obspam.SUBSCRIPTION, obspam.DOMAIN, obspam.MAILBOX):
            for entry in self.engine.enumerate(kind):
                st = entry.stats
                if st.sending:
                    continue
                row: Dict[str, Any] = {"kind": KIND_NAMES[kind], "name": entry.name, "blocked_kind": None,
                                       "blocked_by": "", "window": None, "limit": -1}
                if st.blocked_kind >= 0:
                    row.update(blocked_kind=KIND_NAMES[st.blocked_kind], blocked_by=st.blocked_by)
                    if (st.blocked_kind, st.blocked_by) == (kind, entry.name):
                        row.update(full_window(st))
                    else:
                        try:
                            row.update(full_window(self.engine.stats(st.blocked_kind, st.blocked_by)))
                        except obspam.Error:  # removed in between
                            pass
                rows.append(row)
        return rows

    def overview(self) -> Dict[str, Any]:
        e = self.engine
        now = int(time.time())
        day_from = now - now % 3600 - 23 * 3600
        not_sending = {k: 0 for k in ("subscription", "domain", "mailbox")}
        for row in self.blocked():
            not_sending[row["kind"]] += 1
        # Every refusal is recorded on the subscription it was charged to,
        # once: the subscriptions' refusals are the server's.
        refused_hour = sum(x.stats.refused for x in e.enumerate(obspam.SUBSCRIPTION, active=True))
        refused_day = sum(r.refused for r in e.top(day_from, now + 1, 0, obspam.SUBSCRIPTION))
        # The senders: mailboxes and scripts (domains and subscriptions add
        # them up), most sent, then most refused; a mailbox first on a tie.
        senders = e.top(day_from, now + 1, 5, obspam.MAILBOX) + e.top(day_from, now + 1, 5, obspam.SCRIPT)
        senders.sort(key=lambda r: (-r.sent, -r.refused, r.kind == obspam.SCRIPT))
        return {"enabled": e.get_option(obspam.OPT_ENABLED) == 1, "not_sending": not_sending,
                "refused_hour": refused_hour, "refused_day": refused_day, "day_from": day_from,
                "top": [self._live(r) for r in senders[:5]]}

    def reset(self, kind: str, name: str) -> str:
        if kind not in ("subscription", "domain", "mailbox"):
            raise SourceError(f"bad kind '{kind}': expected subscription, domain or mailbox")
        try:
            self.engine.reset(KINDS[kind], name)
            if self.state:
                self.engine.save_state(self.state)
        except obspam.Error as exc:
            raise SourceError(str(exc)) from None
        return f"{kind} {name.lower()}: counters reset"


# ---- output -------------------------------------------------------------------------


def table(headers: Sequence[str], rows: List[Sequence[object]]) -> str:
    """An aligned text table; numbers to the right."""
    cells = [list(headers)] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [bool(rows) and all(r[i].lstrip("-").isdigit() or r[i] == "-" for r in cells[1:])
               for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        parts = [c.rjust(w) if numeric[i] and n else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def state_text(row: Dict[str, Any]) -> str:
    return "-" if row["sending"] is None else "sending" if row["sending"] else "BLOCKED"


def top_table(rows: List[Dict[str, Any]]) -> str:
    return table(["KIND", "NAME", "SENT", "REFUSED", "OVER", "LIMIT/H", "LAST HOUR", "STATE", "SUBSCRIPTION"],
                 [[r["kind"], r["name"], r["sent"], r["refused"], r["exceeded"],
                   "unlimited" if r["limit"] == -1 else r["limit"], r["count"], state_text(r),
                   r["subscription"] if r["kind"] == "script" else None] for r in rows])


def show(command: str, result: Any, args: argparse.Namespace) -> None:
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return
    if command == "overview":
        ns = result["not_sending"]
        print(f"Protection: {'on' if result['enabled'] else 'OFF'}")
        print(f"Not sending now: {ns['subscription']} subscriptions, {ns['domain']} domains, "
              f"{ns['mailbox']} mailboxes")
        print(f"Refused: {result['refused_hour']} in the last hour, {result['refused_day']} in the last day")
        print("\nTop senders of the day\n")
        print(top_table(result["top"]) if result["top"] else "Nobody sent mail.")
    elif command == "blocked":
        print(table(["KIND", "NAME", "BLOCKED BY", "WINDOW", "LIMIT"],
                    [[r["kind"], r["name"], "-" if r["blocked_kind"] is None else
                      f"{r['blocked_kind']} {r['blocked_by']}", r["window"], r["limit"]]
                     for r in result["rows"]]) if result["rows"] else "Every object can send.")
    elif command == "top":
        print(f"Top senders of the last {args.hours} hours\n")
        print(top_table(result["rows"]) if result["rows"] else "Nobody sent mail.")
    else:
        print(result["message"])


def main(argv: Optional[Sequence[str]] = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser = argparse.ArgumentParser(description="the back end of a panel's outgoing-mail page")
    parser.add_argument("--control", default=os.environ.get("OBSPAM_CONTROL") or None,
                        help="a running daemon's control socket, unix:PATH (default: $OBSPAM_CONTROL)")
    parser.add_argument("--config", default=os.environ.get("OBSPAM_CONFIG") or None,
                        help="configuration of an engine in this process (default: $OBSPAM_CONFIG)")
    parser.add_argument("--state", default=os.environ.get("OBSPAM_STATE") or None,
                        help="its state, saved by a server (default: $OBSPAM_STATE)")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("overview", parents=[common], help="what a home page shows")
    sub.add_parser("blocked", parents=[common], help="the objects that cannot send now")
    top = sub.add_parser("top", parents=[common], help="the top senders of a period")
    top.add_argument("--hours", type=int, default=24, help="the period (default 24)")
    top.add_argument("--kind", choices=sorted(KINDS), help="only this kind (default: every kind)")
    top.add_argument("--limit", type=int, default=10, help="how many (default 10; 0: all)")
    reset = sub.add_parser("reset", parents=[common], help="empty the windows of an object")
    reset.add_argument("kind", choices=["subscription", "domain", "mailbox"])
    reset.add_argument("name")
    args = parser.parse_args(argv)
    command = args.command or "overview"
    if args.command is None:
        args.json = False
    if command == "top" and (args.hours < 1 or args.limit < 0):
        parser.error("--hours must be 1 or more and --limit 0 or more")

    engine: Optional[obspam.Engine] = None
    try:
        source: Any
        if args.control:
            source = ControlSource(args.control)
        else:
            if args.config:
                engine = obspam.Engine()
                engine.load_config(args.config)
                if args.state:
                    engine.load_state(args.state)
            else:
                engine = demo_engine()
            source = EngineSource(engine, args.state if args.config else None)
        if command == "overview":
            result: Any = source.overview()
        elif command == "blocked":
            result = {"rows": source.blocked()}
        elif command == "top":
            end = int(time.time()) + 1
            start = end - 1 - args.hours * 3600
            result = {"from": start, "to": end, "rows": source.top(start, end, args.kind, args.limit)}
        else:
            result = {"message": source.reset(args.kind, args.name)}
    except (SourceError, obspam.Error) as exc:
        print(f"admin_report: {exc}", file=sys.stderr)
        return 1
    finally:
        if engine is not None:
            engine.close()
    show(command, result, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
