# SPDX-License-Identifier: MIT
"""What the scenario tests of the daemons share (policyd_test.py,
milter_test.py, slow_clients.py): the failure of a check, an exact
comparison, the plural of a count, and the runner of named scenarios.

A scenario is a function sc_NAME(tmp) (scenario_NAME in milter_test.py) whose first docstring line says what
it checks; it runs in a temporary directory of its own, where the daemons
it starts write their logs (*.log), and raises on the first check that
does not hold."""

import os
import tempfile
import time
import traceback


class Failure(Exception):
    """A check that did not hold."""


def expect(got, want, what=""):
    if got != want:
        raise Failure(f"{what}: got {got!r}, expected {want!r}")


def counted(n, unit="recipient"):
    return f"{n} {unit}{'' if n == 1 else 's'}"


def scenarios_of(namespace, prefix="sc_"):
    """The scenarios of a module, by name: its functions PREFIX + NAME."""
    return {name[len(prefix):]: fn for name, fn in namespace.items()
            if name.startswith(prefix)}


def list_scenarios(scenarios):
    for name, fn in scenarios.items():
        print(f"{name:16} {fn.__doc__.splitlines()[0]}")


def run(scenarios, names, prefix):
    """Runs the named scenarios, each in a fresh temporary directory whose
    name starts with prefix, and prints "ok" or "FAIL" for each; a failure
    also prints its traceback and the end of each log the scenario left.
    Returns 2 for an unknown name, 1 when any failed, else 0."""
    failed = 0
    for name in names:
        if name not in scenarios:
            print(f"unknown scenario {name!r}; see --list", flush=True)
            return 2
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            start = time.monotonic()
            try:
                scenarios[name](tmp)
                print(f"ok   {name} ({time.monotonic() - start:.1f} s)",
                      flush=True)
            except Exception:  # noqa: BLE001 - reported, then the next one
                failed += 1
                print(f"FAIL {name}")
                traceback.print_exc()
                for log in sorted(os.listdir(tmp)):
                    if log.endswith(".log"):
                        print(f"--- {log}:")
                        with open(os.path.join(tmp, log),
                                  errors="replace") as f:
                            print(f.read()[-4000:])
    return 1 if failed else 0
