# SPDX-License-Identifier: MIT
"""Tests of examples/admin_report.py and examples/admin_report.php.

    OBSPAM_LIBRARY=build/libobspam.so.1 OBSPAM_TEST_BUILD=build \\
        python3 -m unittest tests/bindings/test_examples.py

Both back ends answer overview, blocked, top and reset from an engine in
their own process and from a running daemon's control socket; the test
serves the socket with ctl_testd (tests/daemons/ctl_testd.c, in
OBSPAM_TEST_BUILD, built when missing) on the demo server's configuration
and state, and checks:

- the exact answers of the demo server, in-process;
- the same JSON from Python and PHP, in-process and through the socket;
- a reset through the socket and in-process (which writes the state back);
- the PHP page (HTML, a POST that resets, ?format=json) served by php -S
  with FFI preloaded, as on php-fpm;
- the errors: no source, a socket that is not there, an unknown object.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EXAMPLES = os.path.join(ROOT, "examples")
BUILD = os.path.abspath(os.environ.get("OBSPAM_TEST_BUILD", os.path.join(ROOT, "build")))
PY = [sys.executable, os.path.join(EXAMPLES, "admin_report.py")]
PHP = ["php", os.path.join(EXAMPLES, "admin_report.php")]
TIMEOUT = 30

sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
sys.path.insert(0, EXAMPLES)

import admin_report  # noqa: E402

# The demo traffic of admin_report.py, as the demo server's state holds it.
# info@acme.example: 14 messages against its limit of 10 per hour; the
# bakery plugin: 50 messages of 5 recipients against its domain's 200 per
# hour; acme's contact form: 3; the newsletter: 12 recipients over its cap
# of 10 (and its full domain), then 8 that its domain has no room for. Only
# hourly limits: the answers hold for an hour after the traffic.
BLOCKED = [
    {"kind": "domain", "name": "bakery.example", "blocked_kind": "domain", "blocked_by": "bakery.example",
     "window": "hour", "limit": 200},
    {"kind": "mailbox", "name": "info@acme.example", "blocked_kind": "mailbox", "blocked_by": "info@acme.example",
     "window": "hour", "limit": 10},
    {"kind": "mailbox", "name": "newsletter@bakery.example", "blocked_kind": "domain",
     "blocked_by": "bakery.example", "window": "hour", "limit": 200},
]


def top_row(kind: str, name: str, sent: int, refused: int, exceeded: int, limit: Optional[int],
            count: Optional[int], sending: Optional[bool], uid: int = -1,
            subscription: Optional[str] = None) -> Dict[str, Any]:
    return {"kind": kind, "name": name, "sent": sent, "refused": refused, "exceeded": exceeded, "limit": limit,
            "count": count, "sending": sending, "uid": uid, "subscription": subscription}


PLUGIN = "/var/www/bakery/wp-content/plugins/forms/mail.php"
# Most sent first, then most refused, ties by kind (subscription, domain,
# mailbox, script) and name.
TOP = [
    top_row("subscription", "bakery", 200, 12, 0, 300, 200, True),
    top_row("domain", "bakery.example", 200, 12, 12, 200, 200, False),
    top_row("script", PLUGIN, 200, 10, 0, None, None, None, 10002, "bakery"),
    top_row("subscription", "acme", 13, 4, 0, 300, 13, True),
    top_row("domain", "acme.example", 10, 4, 0, 200, 10, True),
    top_row("mailbox", "info@acme.example", 10, 4, 4, 10, 10, False),
    top_row("script", "/var/www/acme/contact.php", 3, 0, 0, None, None, None, 10001, "acme"),
    top_row("mailbox", "newsletter@bakery.example", 0, 2, 1, 20, 0, False),
]
# The senders of a home page: mailboxes and scripts.
OVERVIEW_TOP = [TOP[2], TOP[5], TOP[6], TOP[7]]


def run(cmd: List[str], env: Optional[Dict[str, str]] = None, ok: bool = True) -> subprocess.CompletedProcess:
    got = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT,
                         env=dict(os.environ, **(env or {})), cwd=ROOT)
    if ok and got.returncode != 0:
        raise AssertionError(f"{cmd} exited with {got.returncode}:\n{got.stdout}\n{got.stderr}")
    return got


def as_json(cmd: List[str]) -> Any:
    return json.loads(run(cmd).stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """ctl_testd on the demo server's configuration and a copy of its state."""

    def __init__(self, tmp: str, conf: str, state: str) -> None:
        testd = os.path.join(BUILD, "tests", "daemons", "ctl_testd")
        if not os.access(testd, os.X_OK):
            subprocess.run(["cmake", "--build", BUILD, "--target", "ctl_testd"], check=True,
                           capture_output=True, timeout=600)
        self.sock = os.path.join(tmp, "control.sock")
        self.state = os.path.join(tmp, "daemon.state")
        shutil.copy(state, self.state)
        self.log = open(os.path.join(tmp, "ctl_testd.log"), "w")
        self.proc = subprocess.Popen([testd, "--config", conf, "--state", self.state,
                                      "--control", "unix:" + self.sock],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.spec = "unix:" + self.sock
        source = admin_report.ControlSource(self.spec, timeout=2)
        deadline = time.monotonic() + 10
        while True:  # ready when it answers a ping
            try:
                source.request("ping")
                return
            except admin_report.SourceError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"ctl_testd did not answer within 10 s: {self.logtext()}")
                time.sleep(0.05)

    def logtext(self) -> str:
        with open(self.log.name) as f:
            return f.read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class TestExamples(unittest.TestCase):
    tmp: str
    conf: str
    state: str

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = tempfile.mkdtemp(prefix="obspam-examples-")
        cls.conf = os.path.join(cls.tmp, "obspam.conf")
        cls.state = os.path.join(cls.tmp, "state")
        with open(cls.conf, "w") as f:
            f.write(admin_report.DEMO_CONFIG)
        with admin_report.demo_engine() as engine:
            engine.save_state(cls.state)

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def local(self, state: Optional[str] = None) -> List[str]:
        return ["--config", self.conf, "--state", state or self.state]

    def check_answers(self, py: List[str], php: List[str]) -> None:
        """The demo server's answers, from Python and from PHP."""
        overview = as_json(PY + py + ["overview", "--json"])
        self.assertEqual(overview.pop("day_from") % 3600, 0)
        self.assertEqual(overview, {"enabled": True,
                                    "not_sending": {"subscription": 0, "domain": 1, "mailbox": 2},
                                    "refused_hour": 16, "refused_day": 16, "top": OVERVIEW_TOP})
        php_overview = as_json(PHP + php + ["--json", "overview"])
        php_overview.pop("day_from")
        self.assertEqual(php_overview, overview)
        self.assertEqual(as_json(PY + py + ["blocked", "--json"]), {"rows": BLOCKED})
        self.assertEqual(as_json(PHP + php + ["--json", "blocked"]), {"rows": BLOCKED})
        top = as_json(PY + py + ["top", "--limit", "0", "--json"])
        self.assertEqual(top["to"] - top["from"], 24 * 3600 + 1)
        self.assertEqual(top["rows"], TOP)
        self.assertEqual(as_json(PHP + php + ["--json", "top", "--limit", "0"])["rows"], TOP)
        scripts = as_json(PY + py + ["top", "--kind", "script", "--limit", "1", "--hours", "2", "--json"])
        self.assertEqual(scripts["rows"], [TOP[2]])
        self.assertEqual(scripts["to"] - scripts["from"], 2 * 3600 + 1)
        self.assertEqual(as_json(PHP + php + ["--json", "top", "--kind", "script", "--limit", "1"])["rows"], [TOP[2]])

    def test_in_process(self) -> None:
        self.check_answers(self.local(), self.local())
        text = run(PY + self.local() + ["blocked"]).stdout
        self.assertEqual(text.splitlines(), [
            "KIND     NAME                       BLOCKED BY                 WINDOW  LIMIT",
            "-------  -------------------------  -------------------------  ------  -----",
            "domain   bakery.example             domain bakery.example      hour      200",
            "mailbox  info@acme.example          mailbox info@acme.example  hour       10",
            "mailbox  newsletter@bakery.example  domain bakery.example      hour      200",
        ])
        text = run(PY + self.local() + ["overview"]).stdout
        self.assertIn("Not sending now: 0 subscriptions, 1 domains, 2 mailboxes\n"
                      "Refused: 16 in the last hour, 16 in the last day\n", text)
        self.assertIn(f"\nscript   {PLUGIN}   200       10     0        -          -  -        bakery\n"
                      "mailbox  info@acme.example                                    10        4     4       10"
                      "         10  BLOCKED  -\n", text)
        # the demo engine, without files, is the same server
        self.assertEqual(as_json(PY + ["blocked", "--json"]), {"rows": BLOCKED})

    def test_in_process_reset_writes_the_state(self) -> None:
        state = os.path.join(self.tmp, "reset.state")
        shutil.copy(self.state, state)
        got = run(PY + self.local(state) + ["reset", "mailbox", "INFO@acme.example"]).stdout
        self.assertEqual(got, "mailbox info@acme.example: counters reset\n")
        self.assertEqual(as_json(PY + self.local(state) + ["blocked", "--json"]), {"rows": [BLOCKED[0], BLOCKED[2]]})
        got = run(PHP + self.local(state) + ["--reset", "domain", "bakery.example", "--json", "blocked"]).stdout
        self.assertEqual(json.loads(got), {"rows": []})
        self.assertEqual(as_json(PY + self.local(state) + ["blocked", "--json"]), {"rows": []})
        # the history keeps what happened
        self.assertEqual(as_json(PY + self.local(state) + ["top", "--json", "--kind", "domain"])["rows"][0],
                         dict(TOP[1], count=0, sending=True))

    def test_control_socket(self) -> None:
        server = Server(self.tmp, self.conf, self.state)
        try:
            spec = ["--control", server.spec]
            self.check_answers(spec, spec)
            # the environment names the socket too
            got = run(PY + ["blocked", "--json"], {"OBSPAM_CONTROL": server.spec}).stdout
            self.assertEqual(json.loads(got), {"rows": BLOCKED})
            got = run(PY + spec + ["reset", "mailbox", "info@acme.example"]).stdout
            self.assertEqual(got, "mailbox info@acme.example: counters reset\n")
            self.assertEqual(as_json(PY + spec + ["blocked", "--json"]), {"rows": [BLOCKED[0], BLOCKED[2]]})
            page = run(PHP + spec + ["--reset", "domain", "bakery.example"]).stdout
            self.assertIn('<p class="message">domain bakery.example: counters reset</p>', page)
            self.assertIn("<p>Every object can send.</p>", page)
            self.assertEqual(as_json(PHP + spec + ["--json", "blocked"]), {"rows": []})
            bad = run(PY + spec + ["reset", "mailbox", "nobody@acme.example"], ok=False)
            self.assertEqual((bad.returncode, bad.stdout), (1, ""))
            self.assertRegex(bad.stderr, r"^admin_report: reset: .*nobody@acme\.example")
            bad = run(PHP + spec + ["--reset", "mailbox", "nobody@acme.example"], ok=False)
            self.assertEqual(bad.returncode, 1)
            self.assertRegex(bad.stderr, r"^admin_report\.php: reset: .*nobody@acme\.example")
        finally:
            server.stop()
        # the daemon's state was not the demo's files: those are unchanged
        self.assertEqual(as_json(PY + self.local() + ["blocked", "--json"]), {"rows": BLOCKED})

    def test_errors(self) -> None:
        missing = "unix:" + os.path.join(self.tmp, "none.sock")
        for cmd, text in [
            (PY + ["--control", missing, "overview"],
             f"admin_report: {missing}: No such file or directory\n"),
            (PY + ["--config", os.path.join(self.tmp, "none.conf"), "blocked"],
             f"admin_report: {self.tmp}/none.conf: cannot open: No such file or directory\n"),
            (PY + self.local() + ["reset", "mailbox", "nobody@acme.example"],
             "admin_report: reset: no mailbox 'nobody@acme.example'\n"),
        ]:
            got = run(cmd, ok=False)
            self.assertEqual((got.returncode, got.stdout, got.stderr), (1, "", text), cmd)
        env = {k: "" for k in ("OBSPAM_CONTROL", "OBSPAM_CONFIG", "OBSPAM_STATE")}
        got = run(PHP, env, ok=False)
        self.assertEqual(got.returncode, 1)
        self.assertEqual(got.stderr, "admin_report.php: no source: give a control socket (--control or "
                                     "OBSPAM_CONTROL) or a configuration (--config or OBSPAM_CONFIG)\n")
        got = run(PHP + ["--control", missing], ok=False)
        self.assertEqual(got.returncode, 1)
        self.assertRegex(got.stderr, rf"^admin_report\.php: {missing}: ")

    def test_php_page_on_the_web(self) -> None:
        """The page served by php -S with FFI preloaded (as on php-fpm)."""
        scope = os.path.join(self.tmp, "obspam_scope.h")
        header = run(["php", "-r", 'require "bindings/php/obspam.php"; '
                      'echo Obspam\\Engine::scopeHeader(getenv("OBSPAM_LIBRARY"));']).stdout
        with open(scope, "w") as f:
            f.write(header)
        state = os.path.join(self.tmp, "web.state")
        shutil.copy(self.state, state)
        port = free_port()
        env = dict(os.environ, OBSPAM_CONFIG=self.conf, OBSPAM_STATE=state)
        env.pop("OBSPAM_LIBRARY", None)
        env.pop("OBSPAM_CONTROL", None)
        log = open(os.path.join(self.tmp, "web.log"), "w")
        web = subprocess.Popen(["php", "-d", "ffi.enable=preload", "-d", f"ffi.preload={scope}",
                                "-d", "opcache.enable=1", "-d", "opcache.enable_cli=1",
                                "-d", f"opcache.preload={ROOT}/bindings/php/obspam.php",
                                "-d", f"opcache.preload_user={os.environ.get('USER') or 'root'}",
                                "-S", f"127.0.0.1:{port}", "-t", EXAMPLES],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}/admin_report.php"

        def fetch(query: str = "", data: Optional[Dict[str, str]] = None) -> Tuple[int, str]:
            body = urllib.parse.urlencode(data).encode() if data is not None else None
            deadline = time.monotonic() + 10
            while True:
                try:
                    with urllib.request.urlopen(url + query, body, timeout=10) as r:
                        return r.status, r.read().decode()
                except urllib.error.HTTPError as e:
                    return e.code, e.read().decode()
                except OSError:
                    if web.poll() is not None or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)  # not listening yet

        try:
            status, page = fetch("?hours=6&kind=script")
            self.assertEqual(status, 200, page)
            self.assertIn("<h2>Top senders of the last 6 hours (scripts)</h2>", page)
            self.assertIn(f"<td><code>{PLUGIN}</code></td>", page)
            self.assertIn("Not sending now: 0 subscriptions, 1 domains,\n  2 mailboxes", page)
            self.assertEqual(page.count('<tr class="blocked-row">'), 3)
            status, text = fetch("?format=json&view=blocked")
            self.assertEqual((status, json.loads(text)), (200, {"rows": BLOCKED}))
            status, page = fetch("", {"kind": "mailbox", "name": "info@acme.example"})
            self.assertEqual(status, 200, page)
            self.assertIn('<p class="message">mailbox info@acme.example: counters reset</p>', page)
            self.assertEqual(page.count('<tr class="blocked-row">'), 2)
            status, page = fetch("", {"kind": "plan", "name": "starter"})
            self.assertEqual(status, 500)
            self.assertIn("Error: bad kind &#039;plan&#039;: expected subscription, domain or mailbox", page)
        finally:
            web.terminate()
            web.wait(10)
            log.close()


if __name__ == "__main__":
    unittest.main()
