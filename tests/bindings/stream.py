#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Replays a decision stream through the Python binding (see stream.c and
gen_stream.py): prints exactly what stream.c prints.

    PYTHONPATH=bindings/python OBSPAM_LIBRARY=build/libobspam.so.1 \\
        python3 tests/bindings/stream.py CONFIG STREAM
"""

from __future__ import annotations

import sys
from typing import Any, Callable, List, Optional, Sequence

import obspam

INT64_MAX = 2**63 - 1


def str_arg(word: str) -> Optional[str]:
    """'-' is None, '~' the empty string."""
    return None if word == "-" else "" if word == "~" else word


def time_arg(word: str) -> int:
    return INT64_MAX if word == "-" else int(word)


def or_dash(value: Optional[str]) -> str:
    return value if value else "-"


def print_rows(tag: str, rows: Sequence[Any], line: Callable[[Any], str]) -> None:
    """One line "TAG ..." a row, then "TAG end N"."""
    for r in rows:
        print(f"{tag} {line(r)}")
    print(f"{tag} end {len(rows)}")


def on_notice(n: obspam.Notice) -> None:
    print(
        f"notice {int(n.kind)} {n.name} {or_dash(n.subscription)} {or_dash(n.contact)} "
        f"{n.limit} {n.sent} {n.refused} {n.first_refused} {n.last_refused} "
        f"{n.period_start} {n.period_end} {n.exceeded} {int(n.window)}"
    )


def run(engine: obspam.Engine, w: List[str]) -> None:
    cmd = w[0]
    if cmd == "d" and len(w) == 10:
        v = engine.decide(
            time=int(w[1]),
            flags=int(w[2]),
            recipients=int(w[3]),
            uid=int(w[4]),
            sasl_username=str_arg(w[5]),
            sender=str_arg(w[6]),
            client_address=str_arg(w[7]),
            domain_hint=str_arg(w[8]),
            script=str_arg(w[9]),
        )
        print(
            f"verdict {int(v.action)} {int(v.kind)} {or_dash(v.object)} "
            f"{v.limit} {v.count} {v.retry_after} {v.window}"
        )
    elif cmd == "s" and len(w) == 4:
        s = engine.stats(int(w[1]), w[2], int(w[3]))
        print(
            f"stats {w[1]} {w[2]} {int(s.sending)} {s.limit} {s.count} "
            f"{s.refused} {s.refused_total} {s.last_refused} {s.exceeded} "
            f"{s.exceeded_total} {s.limit_minute} {s.count_minute} {s.limit_day} "
            f"{s.count_day} {int(s.blocked_kind)} {int(s.disabled)} {or_dash(s.blocked_by)}"
        )
    elif cmd == "h" and len(w) == 5:
        hours = engine.history(int(w[1]), w[2], time_arg(w[3]), time_arg(w[4]))
        print_rows("history", hours, lambda h: f"{h.hour_start} {h.sent} {h.refused}")
    elif cmd == "r" and len(w) == 3:
        rows = engine.report(time_arg(w[1]), time_arg(w[2]))
        print_rows("report", rows, lambda r: (
            f"{int(r.kind)} {r.name} {r.sent} {r.refused} "
            f"{r.first_refused} {r.last_refused} {r.exceeded} {int(r.window)}"))
    elif cmd == "n" and len(w) == 2:
        engine.notify_flush(int(w[1]))
        print("flush end")
    elif cmd == "w" and len(w) == 6:
        engine.set_window_limit(int(w[1]), str_arg(w[2]), int(w[3]), int(w[4]), int(w[5]))
        print(f"window {w[1]} {w[2]} {w[3]} {w[4]} {w[5]}")
    elif cmd == "x" and len(w) == 4:
        engine.set_max_recipients(int(w[1]), str_arg(w[2]), int(w[3]))
        print(f"cap {w[1]} {w[2]} {w[3]}")
    elif cmd == "e" and len(w) == 3:
        limits = engine.effective_limits(int(w[1]), w[2])
        cap = engine.effective_max_recipients(int(w[1]), w[2])
        print(
            f"effective {w[1]} {w[2]} {limits[obspam.WINDOW_MINUTE]} "
            f"{limits[obspam.WINDOW_HOUR]} {limits[obspam.WINDOW_DAY]} {cap}"
        )
    elif cmd == "l" and len(w) == 7:
        entries = list(engine.enumerate(int(w[1]), str_arg(w[2]), active=bool(int(w[3]) & obspam.ENUM_ACTIVE),
                                        after=str_arg(w[4]), limit=int(w[5]), now=int(w[6])))
        print_rows("list", entries, lambda x: (
            f"{int(x.kind)} {x.name} {int(x.stats.sending)} {x.stats.count} "
            f"{x.stats.limit} {x.stats.refused} {x.stats.last_reset}"))
    elif cmd == "t" and len(w) == 5:
        kind = int(w[1])
        rows = engine.top(time_arg(w[2]), time_arg(w[3]), int(w[4]), None if kind == -1 else kind)
        print_rows("top", rows, lambda r: (
            f"{int(r.kind)} {r.name} {r.sent} {r.refused} {r.exceeded} {int(r.window)} "
            f"{or_dash(r.subscription)} {r.uid}"))
    elif cmd == "z" and len(w) == 4:
        engine.reset(int(w[1]), w[2], int(w[3]))
        print(f"reset {w[1]} {w[2]}")
    elif cmd == "u" and len(w) == 2:
        engine.set_unknown_uid_subscription(str_arg(w[1]))
        print(f"unknown-uid {w[1]}")
    elif cmd == "o" and len(w) == 3:
        engine.set_option(int(w[1]), int(w[2]))
        print(f"option {w[1]} {w[2]}")
    else:
        sys.exit(f"stream.py: cannot read the command '{cmd}' ({len(w)} words)")


def main() -> int:
    if len(sys.argv) != 3:
        sys.exit("usage: stream.py CONFIG STREAM")
    with obspam.Engine() as engine:
        engine.load_config(sys.argv[1])
        engine.set_notify(on_notice)
        with open(sys.argv[2], encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\r\n")
                if not line or line.startswith("#"):
                    continue
                try:
                    run(engine, line.split(" "))
                except obspam.Error as exc:
                    print(f"error {exc.code} {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
