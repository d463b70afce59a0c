#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Admin report: who is over the limit, and the top scripts.

Uses the Python binding of libobspam (bindings/python). Give it the
configuration and a state snapshot of a running server, as arguments or in
the environment variables OBSPAM_CONFIG and OBSPAM_STATE (OBSPAM_LIBRARY
names the library, as for every use of the binding); with neither, it shows
a small demo engine with some made-up traffic:

    OBSPAM_LIBRARY=build/libobspam.so.1 examples/admin_report.py
    examples/admin_report.py /etc/obspam.conf /var/lib/obspam/state --hours 24
    OBSPAM_CONFIG=/etc/obspam.conf examples/admin_report.py --json

"Over the limit" is every subscription, domain and mailbox that went over
its own limit in the period (obspam_report), with the window of its last
such attempt (per minute, per hour, per day, or its cap on recipients per
message), shown with its live status (obspam_stats_get): its limits in each
window and its count in the last hour.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import List, Optional, Sequence

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
mailbox newsletter@bakery.example
"""


def demo_engine() -> obspam.Engine:
    """A small engine with an hour of made-up traffic, sent just now."""
    engine = obspam.Engine()
    engine.load_config_string(DEMO_CONFIG)
    # A burst cap on the mailbox, and a cap on the recipients of one
    # message on the newsletter's.
    engine.set_window_limit(obspam.MAILBOX, "info@acme.example", obspam.MAILBOX, obspam.WINDOW_MINUTE, 5)
    engine.set_max_recipients(obspam.MAILBOX, "newsletter@bakery.example", 10)
    for _ in range(14):  # a mailbox over its limit of 10
        engine.decide(sasl_username="info@acme.example", client_address="203.0.113.7")
    for _ in range(50):  # a hijacked plugin on a 200/hour domain
        engine.decide(flags=obspam.MSG_SCRIPT, uid=10002, domain_hint="bakery.example",
                      script="/var/www/bakery/wp-content/plugins/forms/mail.php", recipients=5)
    for _ in range(3):
        engine.decide(flags=obspam.MSG_SCRIPT, uid=10001, script="/var/www/acme/contact.php")
    engine.decide(sasl_username="newsletter@bakery.example", recipients=12)
    return engine


#: The short names of the windows, as obspamctl and the configuration write
#: them.
WINDOW_SUFFIX = {obspam.WINDOW_MINUTE: "m", obspam.WINDOW_HOUR: "h", obspam.WINDOW_DAY: "d"}


def over_what(row: obspam.ReportRow) -> str:
    """What the last attempt over the object's own limit went over: a window,
    or (window 0) the cap on recipients, or for a subscription possibly its
    forbidden scripts."""
    if row.window in WINDOW_SUFFIX:
        return {obspam.WINDOW_MINUTE: "per minute", obspam.WINDOW_HOUR: "per hour",
                obspam.WINDOW_DAY: "per day"}[row.window]
    return "recipients or scripts" if row.kind == obspam.SUBSCRIPTION else "recipients"


def limits_text(live: obspam.Stats) -> str:
    """The limits of every window that has one, as "5/m 10/h"."""
    parts = [f"{v}/{WINDOW_SUFFIX[w]}" for w, v in (
        (obspam.WINDOW_MINUTE, live.limit_minute), (obspam.WINDOW_HOUR, live.limit),
        (obspam.WINDOW_DAY, live.limit_day)) if v >= 0]
    return " ".join(parts) or "unlimited"


def when(t: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"


def table(headers: Sequence[str], rows: List[Sequence[object]]) -> str:
    """An aligned text table; numbers to the right."""
    cells = [list(headers)] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(str(r[i]).lstrip("-").isdigit() or r[i] == "-" for r in rows) if rows else False
               for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        parts = [c.rjust(w) if numeric[i] and n else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="libobspam admin report")
    parser.add_argument("config", nargs="?", default=os.environ.get("OBSPAM_CONFIG") or None,
                        help="configuration file (default: $OBSPAM_CONFIG, else a demo engine)")
    parser.add_argument("state", nargs="?", default=os.environ.get("OBSPAM_STATE") or None,
                        help="state snapshot saved by the server (default: $OBSPAM_STATE)")
    parser.add_argument("--hours", type=int, default=24, help="period of the report (default 24)")
    parser.add_argument("--top", type=int, default=10, help="how many scripts to show (default 10)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)

    try:
        if args.config:
            engine = obspam.Engine()
            engine.load_config(args.config)
            if args.state:
                engine.load_state(args.state)
        else:
            engine = demo_engine()
    except obspam.Error as exc:
        print(f"admin_report: {exc}", file=sys.stderr)
        return 1

    with engine:
        now = int(time.time())
        rows = engine.report(now - args.hours * 3600, now + 1)
        over = []
        for row in rows:
            if row.kind == obspam.SCRIPT or row.exceeded == 0:
                continue
            try:
                live: Optional[obspam.Stats] = engine.stats(row.kind, row.name)
            except obspam.Error:  # no longer in the configuration
                live = None
            over.append({"level": row.kind.name.lower(), "name": row.name,
                         "limit": "-" if live is None else "unlimited" if live.limit < 0 else live.limit,
                         "limits": None if live is None else {
                             "minute": None if live.limit_minute < 0 else live.limit_minute,
                             "hour": None if live.limit < 0 else live.limit,
                             "day": None if live.limit_day < 0 else live.limit_day},
                         "last_hour": "-" if live is None else live.count,
                         "status": "removed" if live is None else "sending" if live.sending else "BLOCKED",
                         "sent": row.sent, "refused": row.refused, "last_refused": row.last_refused,
                         "window": int(row.window), "over": over_what(row),
                         "limits_text": "-" if live is None else limits_text(live)})
        scripts = sorted((r for r in rows if r.kind == obspam.SCRIPT), key=lambda r: (-r.sent, r.name))[: args.top]

    if args.json:
        for o in over:
            del o["limits_text"]
        json.dump({"hours": args.hours, "over_limit": over,
                   "top_scripts": [dataclasses.asdict(s) | {"kind": "script"} for s in scripts]},
                  sys.stdout, indent=2)
        print()
        return 0
    print(f"Over the limit in the last {args.hours} hours (most refusals first)\n")
    print(table(["LEVEL", "NAME", "LIMITS", "LAST HOUR", "STATUS", "SENT", "REFUSED", "LAST OVER", "LAST REFUSAL"],
                [[o["level"], o["name"], o["limits_text"], o["last_hour"], o["status"], o["sent"], o["refused"],
                  o["over"], when(o["last_refused"])] for o in over]) if over else "Nobody.")
    print(f"\nTop scripts in the last {args.hours} hours\n")
    print(table(["SCRIPT", "SENT", "REFUSED"], [[s.name, s.sent, s.refused] for s in scripts])
          if scripts else "No script sent mail.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
