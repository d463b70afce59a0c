# SPDX-License-Identifier: MIT
"""Tests of the Python binding (bindings/python/obspam), standard library only.

    OBSPAM_LIBRARY=build/libobspam.so.1 PYTHONPATH=bindings/python \\
        python3 -m unittest tests/bindings/test_python.py

tests/bindings/run.sh runs it with OBSPAM_TEST_ABI (the output of abi.c:
the header's constants, structure sizes and field offsets as the C compiler
sees them) and OBSPAM_TEST_FAKE_V2 (a library that says it is 2.0.0); when
they are not set, this file builds them itself with $CC (default cc).
"""

from __future__ import annotations

import ctypes
import gc
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest
from types import MappingProxyType
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))
sys.path.insert(0, HERE)

import check_ffi_decls  # noqa: E402
import obspam  # noqa: E402
from obspam import _native  # noqa: E402

T0 = 1767268800  # 2026-01-01 12:00:00 UTC, the start of an hour
T = T0 + 30  # 30 seconds into that minute

# The tree of the tests (tree.conf, which test_php.php loads too).
with open(os.path.join(HERE, "tree.conf")) as _f:
    CONF = _f.read()

BATCH_CONF = """\
# decide_batch: a mailbox with a limit of 2 in a domain with the defaults.
default mailbox=100 domain=1000 subscription=5000
subscription shop
domain shop.example subscription=shop
mailbox orders@shop.example limit=2
"""

_tmp = tempfile.mkdtemp(prefix="obspam-pytest-")


def tearDownModule() -> None:  # noqa: N802 - unittest's name
    shutil.rmtree(_tmp, ignore_errors=True)


def _cc(*args: str) -> None:
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, *args], check=True)


def _abi_lines() -> List[str]:
    path = os.environ.get("OBSPAM_TEST_ABI")
    if not path:
        exe = os.path.join(_tmp, "abi")
        _cc("-std=c99", "-I", os.path.join(ROOT, "include"), os.path.join(HERE, "abi.c"), "-o", exe)
        path = os.path.join(_tmp, "abi.txt")
        with open(path, "w") as out:
            subprocess.run([exe], check=True, stdout=out)
    with open(path) as f:
        return f.read().splitlines()


def _fake_v2() -> str:
    path = os.environ.get("OBSPAM_TEST_FAKE_V2")
    if not path:
        path = os.path.join(_tmp, "libobspam_fake_v2.so")
        _cc("-shared", "-fPIC", os.path.join(HERE, "fake_v2.c"), "-o", path)
    return path


def _fake_v1_2() -> str:
    """A library that says it is 1.2.0: older than the binding needs."""
    path = os.environ.get("OBSPAM_TEST_FAKE_V1_2")
    if not path:
        path = os.path.join(_tmp, "libobspam_fake_v1_2.so")
        _cc("-shared", "-fPIC", "-DFAKE_MAJOR=1", "-DFAKE_MINOR=2", os.path.join(HERE, "fake_v2.c"),
            "-o", path)
    return path


class Abi:
    """What abi.c printed."""

    consts: Dict[str, int] = {}
    sizes: Dict[str, int] = {}
    offsets: Dict[str, List[Tuple[str, int]]] = {}

    @classmethod
    def load(cls) -> None:
        if cls.consts:
            return
        for line in _abi_lines():
            what, name, value = line.split()
            if what == "const":
                cls.consts[name] = int(value)
            elif what == "size":
                cls.sizes[name] = int(value)
            else:
                struct, fieldname = name.split(".")
                cls.offsets.setdefault(struct, []).append((fieldname, int(value)))


def verdict(action: int, kind: int, obj: str, limit: int, count: int, retry_after: int,
            window: int = -99) -> obspam.Verdict:
    """A Verdict whose window is the hour's (3600) when it names an object,
    else 0, unless given."""
    if window == -99:
        window = 0 if kind == -1 else 3600
    return obspam.Verdict(action, kind, obj, limit, count, retry_after, window)


def stats(sending: bool, limit: int, count: int, refused: int, refused_total: int, last_refused: int,
          **more: Any) -> obspam.Stats:
    """A Stats of an object with an hourly limit only, not blocked, protection
    on and nothing over its own limit, unless the keywords say otherwise."""
    fields: Dict[str, Any] = dict(
        exceeded=0, exceeded_total=0, limit_minute=-1, count_minute=0, limit_day=-1, count_day=0,
        blocked_kind=-1, disabled=False, blocked_by="",
    )
    fields.update(more)
    return obspam.Stats(sending, limit, count, refused, refused_total, last_refused, **fields)


def new_engine(config: str = CONF) -> obspam.Engine:
    engine = obspam.Engine()
    engine.load_config_string(config)
    return engine


class Case(unittest.TestCase):
    def assertError(self, code: int, call: Any, *args: Any, **kw: Any) -> obspam.Error:
        """call(*args, **kw) raises obspam.Error with that code."""
        with self.assertRaises(obspam.Error) as cm:
            call(*args, **kw)
        self.assertEqual(cm.exception.code, code)
        return cm.exception


class EngineCase(Case):
    """Each test with its own engine, self.e, loaded with the class's CONFIG."""

    CONFIG = CONF

    def setUp(self) -> None:
        self.e = new_engine(self.CONFIG)

    def tearDown(self) -> None:
        self.e.close()



class TestAbi(Case):
    """The binding's declarations against the header, as the compiler sees it."""

    # The header's structures and the binding's ctypes classes for them.
    STRUCTS = {
        "obspam_message": _native.Message,
        "obspam_verdict": _native.Verdict,
        "obspam_stats": _native.Stats,
        "obspam_report_row": _native.ReportRow,
        "obspam_notice": _native.Notice,
    }

    @classmethod
    def setUpClass(cls) -> None:
        Abi.load()
        with open(os.path.join(ROOT, "include", "obspam.h")) as f:
            cls.header_text = f.read()
        cls.header = check_ffi_decls.parse(cls.header_text, exported_only=True)

    def test_every_constant_has_the_c_value(self) -> None:
        enums = (("", obspam.ErrorCode), ("", obspam.Kind), ("", obspam.Action),
                 ("OPT_", obspam.Option), ("MSG_", obspam.MessageFlag),
                 ("WINDOW_", obspam.Window))
        names = {f"OBSPAM_{prefix}{m.name}": m for prefix, enum in enums for m in enum}
        for short in ("UNLIMITED", "INHERIT", "NAME_MAX", "VERSION_MAJOR"):
            names["OBSPAM_" + short] = getattr(obspam, short)
        for name, value in names.items():
            self.assertEqual(int(value), Abi.consts[name], name)
        # and the module-level names are the same values
        for name in Abi.consts:
            short = name[len("OBSPAM_"):]
            if short.startswith("VERSION_") and short != "VERSION_MAJOR":
                continue  # the library's own version: see TestLibrary
            self.assertEqual(int(getattr(obspam, short)), Abi.consts[name], short)

    def test_abi_c_prints_every_constant_of_the_header(self) -> None:
        """A constant added to the header must be added to abi.c (and to
        both bindings)."""
        import re

        text = self.header_text
        found = set(re.findall(r"^#define (OBSPAM_[A-Z0-9_]+)[ (]", text, re.M))
        found |= set(re.findall(r"^\s+(OBSPAM_[A-Z0-9_]+) = ", text, re.M))
        found |= {"OBSPAM_" + n for n in re.findall(r"^\s+XX\((\w+),", text, re.M)}
        private = {
            n for n in found
            if n.endswith("_") or n.endswith("_INIT") or n in ("OBSPAM_API", "OBSPAM_H", "OBSPAM_ERRNO_MAP")
        }
        self.assertEqual(sorted(found - private - set(Abi.consts)), [])

    def test_structures_have_the_c_layout(self) -> None:
        self.assertEqual(sorted(self.STRUCTS), sorted(self.header.structs))
        for cname, cls in self.STRUCTS.items():
            self.assertEqual(ctypes.sizeof(cls), Abi.sizes[cname], cname)
            layout = [(f[0], getattr(cls, f[0]).offset) for f in cls._fields_]
            self.assertEqual(layout, Abi.offsets[cname], cname)
            self.assertEqual(
                [f[0] for f in cls._fields_],
                [name for _, name in self.header.structs[cname]],
                cname,
            )

    def test_structure_field_types_match_the_header(self) -> None:
        ctypes_of = {
            "uint32_t": ctypes.c_uint32,
            "int32_t": ctypes.c_int32,
            "int64_t": ctypes.c_int64,
            "const char *": ctypes.c_char_p,
            "char[328]": ctypes.c_char * 328,
        }
        for cname, cls in self.STRUCTS.items():
            for (ctype, name), (pyname, pytype) in zip(self.header.structs[cname], cls._fields_):
                self.assertEqual(name, pyname)
                expected = ctypes_of[ctype]
                if ctype.startswith("char["):
                    self.assertEqual((pytype._type_, pytype._length_), (ctypes.c_char, 328))
                else:
                    self.assertIs(pytype, expected, f"{cname}.{name}")

    def test_every_function_has_a_prototype_and_a_method(self) -> None:
        self.assertEqual(sorted(_native.PROTOTYPES), sorted(self.header.functions))
        for name, tokens in self.header.functions.items():
            # the number of parameters (those of the callbacks excluded)
            depth, params = 0, 0
            start = tokens.index("(")
            for tok in tokens[start:]:
                if tok == "(":
                    depth += 1
                elif tok == ")":
                    depth -= 1
                elif tok == "," and depth == 1:
                    params += 1
            inner = tokens[start + 1 : start + 3]
            nparams = 0 if inner == ["void", ")"] else params + 1
            self.assertEqual(len(_native.PROTOTYPES[name][1]), nparams, name)
        methods = {
            "obspam_version": obspam.version,
            "obspam_version_string": obspam.version_string,
            "obspam_strerror": obspam.strerror,
            "obspam_kind_name": obspam.kind_name,
            "obspam_engine_new": obspam.Engine.__init__,
            "obspam_engine_free": obspam.Engine.close,
            "obspam_engine_errmsg": obspam.Engine.last_error,
            "obspam_engine_errmsg_r": obspam.Engine.last_error,
            "obspam_set_option": obspam.Engine.set_option,
            "obspam_get_option": obspam.Engine.get_option,
            "obspam_add": obspam.Engine.add,
            "obspam_remove": obspam.Engine.remove,
            "obspam_set_limit": obspam.Engine.set_limit,
            "obspam_effective_limit": obspam.Engine.effective_limit,
            "obspam_set_window_limit": obspam.Engine.set_window_limit,
            "obspam_effective_window_limit": obspam.Engine.effective_window_limit,
            "obspam_set_max_recipients": obspam.Engine.set_max_recipients,
            "obspam_effective_max_recipients": obspam.Engine.effective_max_recipients,
            "obspam_set_uid": obspam.Engine.set_uid,
            "obspam_set_scripts_allowed": obspam.Engine.set_scripts_allowed,
            "obspam_set_contact": obspam.Engine.set_contact,
            "obspam_whitelist_add": obspam.Engine.whitelist_add,
            "obspam_whitelist_remove": obspam.Engine.whitelist_remove,
            "obspam_local_network_add": obspam.Engine.local_network_add,
            "obspam_local_network_remove": obspam.Engine.local_network_remove,
            "obspam_forward_add": obspam.Engine.forward_add,
            "obspam_forward_remove": obspam.Engine.forward_remove,
            "obspam_forward_lookup": obspam.Engine.forward_lookup,
            "obspam_mailing_list_add": obspam.Engine.mailing_list_add,
            "obspam_mailing_list_remove": obspam.Engine.mailing_list_remove,
            "obspam_mailing_list_match": obspam.Engine.mailing_list_match,
            "obspam_load_config": obspam.Engine.load_config,
            "obspam_load_config_string": obspam.Engine.load_config_string,
            "obspam_decide": obspam.Engine.decide,
            "obspam_check": obspam.Engine.check,
            "obspam_decide_batch": obspam.Engine.decide_batch,
            "obspam_decide_start": obspam.Engine.decide_batch,
            "obspam_stats_get": obspam.Engine.stats,
            "obspam_history": obspam.Engine.history,
            "obspam_report": obspam.Engine.report,
            "obspam_enumerate": obspam.Engine.enumerate,
            "obspam_top": obspam.Engine.top,
            "obspam_reset": obspam.Engine.reset,
            "obspam_set_unknown_uid_subscription": obspam.Engine.set_unknown_uid_subscription,
            "obspam_set_notify": obspam.Engine.set_notify,
            "obspam_notify_flush": obspam.Engine.notify_flush,
            "obspam_state_save": obspam.Engine.save_state,
            "obspam_state_load": obspam.Engine.load_state,
            "obspam_set_store": obspam.Engine.set_store,
            "obspam_store_status": obspam.Engine.store_status,
            "obspam_store_backlog": obspam.Engine.store_backlog,
            "obspam_implicit_status": obspam.Engine.implicit_status,
            "obspam_journal_open": obspam.Engine.open_journal,
            "obspam_journal_flush": obspam.Engine.flush_journal,
            "obspam_journal_close": obspam.Engine.close_journal,
        }
        self.assertEqual(sorted(methods), sorted(self.header.functions))
        for name, method in methods.items():
            doc = getattr(method, "__doc__", None) or ""
            if name not in ("obspam_engine_new",):
                self.assertIn(name, doc, f"the docstring of the wrapper of {name}")

    def test_public_names(self) -> None:
        for name in obspam.__all__:
            self.assertTrue(hasattr(obspam, name), name)


class TestLibrary(Case):
    def test_version(self) -> None:
        Abi.load()
        self.assertEqual(obspam.version(), Abi.consts["OBSPAM_VERSION_NUMBER"])
        self.assertEqual(obspam.version() >> 16, 1)
        major, minor, patch = (Abi.consts[f"OBSPAM_VERSION_{p}"] for p in ("MAJOR", "MINOR", "PATCH"))
        self.assertEqual(obspam.version_string(), f"{major}.{minor}.{patch}")

    def test_strerror(self) -> None:
        texts = {
            obspam.OK: "success",
            obspam.ENOMEM: "out of memory",
            obspam.EINVAL: "invalid argument",
            obspam.ENOTFOUND: "no such object",
            obspam.EEXIST: "object already exists",
            obspam.ESYNTAX: "syntax error in configuration",
            obspam.EIO: "input/output error",
            obspam.ECORRUPT: "corrupt or foreign state file",
            obspam.EVERSION: "state file from a newer version",
        }
        for code, text in texts.items():
            self.assertEqual(obspam.strerror(code), text)
        self.assertTrue(obspam.strerror(-1000))  # described, never empty

    def load_error(self, load, path: str, code: int) -> obspam.LibraryError:
        """The LibraryError that load(path) raises, its code checked."""
        with self.assertRaises(obspam.LibraryError) as cm:
            load(path)
        self.assertEqual(cm.exception.code, code)
        return cm.exception

    def test_missing_library(self) -> None:
        path = os.path.join(_tmp, "no-such-libobspam.so.1")
        error = self.load_error(obspam.Engine, path, obspam.EIO)
        self.assertIsInstance(error, ImportError)
        self.assertIsInstance(error, obspam.Error)
        self.assertTrue(str(error).startswith(f"cannot load libobspam from {path}: "))

    def test_missing_library_from_the_environment(self) -> None:
        path = os.path.join(_tmp, "elsewhere.so")
        saved = os.environ.get("OBSPAM_LIBRARY")
        os.environ["OBSPAM_LIBRARY"] = path
        try:
            with self.assertRaises(obspam.LibraryError) as cm:
                obspam.load_library()
            self.assertIn(f"OBSPAM_LIBRARY={path}", str(cm.exception))
        finally:
            if saved is None:
                del os.environ["OBSPAM_LIBRARY"]
            else:
                os.environ["OBSPAM_LIBRARY"] = saved

    def test_other_major_version_is_refused(self) -> None:
        path = _fake_v2()
        self.assertEqual(
            str(self.load_error(obspam.Engine, path, obspam.EVERSION)),
            f"{path}: libobspam 2.0.0 has major version 2; this binding needs 1.x",
        )

    def test_older_minor_version_is_refused(self) -> None:
        path = _fake_v1_2()
        self.assertEqual(
            str(self.load_error(obspam.Engine, path, obspam.EVERSION)),
            f"{path}: libobspam 1.2.0 is older than 1.3; this binding needs 1.3 or a later 1.x",
        )

    def test_kind_name(self) -> None:
        self.assertEqual(
            [obspam.kind_name(k) for k in obspam.Kind],
            ["server", "plan", "subscription", "domain", "mailbox", "script"],
        )
        self.assertEqual(obspam.kind_name(6), "unknown kind")
        self.assertEqual(obspam.kind_name(-1), "unknown kind")

    def test_not_libobspam(self) -> None:
        error = self.load_error(obspam.load_library, "libc.so.6", obspam.EVERSION)
        self.assertEqual(str(error), "libc.so.6: no obspam_version(): this is not libobspam")

    def test_library_is_loaded_once(self) -> None:
        self.assertIs(obspam.load_library(), obspam.load_library())
        lib = os.environ.get("OBSPAM_LIBRARY")
        if lib:
            self.assertIs(obspam.load_library(lib), obspam.load_library(lib))


class TestEngineLife(Case):
    def test_context_manager_closes(self) -> None:
        with obspam.Engine() as engine:
            self.assertFalse(engine.closed)
            self.assertIn("open", repr(engine))
        self.assertTrue(engine.closed)
        self.assertIn("closed", repr(engine))

    def test_close_is_idempotent_and_later_calls_fail(self) -> None:
        engine = obspam.Engine()
        engine.close()
        engine.close()
        calls = {
            "set_option": lambda: engine.set_option(obspam.OPT_ENABLED, 1),
            "get_option": lambda: engine.get_option(obspam.OPT_ENABLED),
            "add": lambda: engine.add(obspam.PLAN, "p"),
            "remove": lambda: engine.remove(obspam.PLAN, "p"),
            "set_limit": lambda: engine.set_limit(obspam.SERVER, None, obspam.MAILBOX, 1),
            "effective_limit": lambda: engine.effective_limit(obspam.MAILBOX, "a@b"),
            "set_uid": lambda: engine.set_uid("s", 1),
            "set_scripts_allowed": lambda: engine.set_scripts_allowed(obspam.SERVER, None, 1),
            "set_contact": lambda: engine.set_contact("s", None),
            "whitelist_add": lambda: engine.whitelist_add("192.0.2.1"),
            "whitelist_remove": lambda: engine.whitelist_remove("192.0.2.1"),
            "load_config": lambda: engine.load_config("/dev/null"),
            "load_config_string": lambda: engine.load_config_string(""),
            "decide": lambda: engine.decide(),
            "decide_batch": lambda: engine.decide_batch([]),
            "stats": lambda: engine.stats(obspam.MAILBOX, "a@b"),
            "history": lambda: engine.history(obspam.MAILBOX, "a@b"),
            "report": lambda: engine.report(),
            "set_notify": lambda: engine.set_notify(None),
            "notify_flush": lambda: engine.notify_flush(),
            "save_state": lambda: engine.save_state(os.path.join(_tmp, "x")),
            "load_state": lambda: engine.load_state(os.path.join(_tmp, "x")),
            "open_journal": lambda: engine.open_journal(os.path.join(_tmp, "x")),
            "flush_journal": lambda: engine.flush_journal(),
            "close_journal": lambda: engine.close_journal(),
            "last_error": lambda: engine.last_error,
        }
        for name, call in calls.items():
            with self.assertRaises(obspam.Error, msg=name) as cm:
                call()
            self.assertEqual(cm.exception.code, obspam.EINVAL)
            self.assertEqual(str(cm.exception), f"{name}: the engine is closed")

    def test_collected_engine_is_freed(self) -> None:
        engine = new_engine()
        engine.set_notify(lambda n: None)
        del engine
        gc.collect()  # nothing to see, but nothing may crash either

    def test_last_error(self) -> None:
        with new_engine() as engine:
            self.assertEqual(engine.last_error, "")
            with self.assertRaises(obspam.Error) as cm:
                engine.add(obspam.PLAN, "basic")
            self.assertEqual(engine.last_error, str(cm.exception))
            self.assertEqual(cm.exception.message, str(cm.exception))


class TestOptions(Case):
    def test_defaults(self) -> None:
        with obspam.Engine() as engine:
            got = {o: engine.get_option(o) for o in obspam.Option}
        self.assertEqual(
            got,
            {
                obspam.OPT_ENABLED: 1,
                obspam.OPT_COUNT_UNIT: 0,
                obspam.OPT_ACTION: 0,
                obspam.OPT_COUNT_UNAUTHENTICATED: 2,
                obspam.OPT_COUNT_FORWARD_LOCAL: 0,
                obspam.OPT_COUNT_FORWARD_REMOTE: 1,
                obspam.OPT_COUNT_MAILING_LISTS: 0,
                obspam.OPT_RETENTION_HOURS: 720,
                obspam.OPT_NOTIFY_PERIOD: 3600,
                obspam.OPT_NOTIFY_IMMEDIATE: 0,
                obspam.OPT_STORE_TIMEOUT_MS: 200,
                obspam.OPT_STORE_FALLBACK: 0,
                obspam.OPT_IMPLICIT_MAILBOXES: 100000,
            },
        )

    def test_set_and_get(self) -> None:
        with obspam.Engine() as engine:
            engine.set_option(obspam.OPT_RETENTION_HOURS, 48)
            engine.set_option(obspam.OPT_ACTION, 1)
            engine.set_option(obspam.Option.NOTIFY_PERIOD, 60)
            self.assertEqual(engine.get_option(obspam.OPT_RETENTION_HOURS), 48)
            self.assertEqual(engine.get_option(obspam.OPT_ACTION), 1)
            self.assertEqual(engine.get_option(obspam.OPT_NOTIFY_PERIOD), 60)

    def test_bad_values_raise_and_change_nothing(self) -> None:
        with obspam.Engine() as engine:
            for option, value in [
                (obspam.OPT_ENABLED, 2),
                (obspam.OPT_RETENTION_HOURS, 0),
                (obspam.OPT_RETENTION_HOURS, 87601),
                (obspam.OPT_NOTIFY_PERIOD, 59),
                (obspam.OPT_NOTIFY_PERIOD, 2678401),
            ]:
                with self.assertRaises(obspam.Error) as cm:
                    engine.set_option(option, value)
                self.assertEqual(cm.exception.code, obspam.EINVAL)
                self.assertEqual(str(cm.exception), engine.last_error)
                self.assertNotEqual(str(cm.exception), "")
            self.assertEqual(engine.get_option(obspam.OPT_RETENTION_HOURS), 720)
            for call in (lambda: engine.set_option(99, 1), lambda: engine.get_option(0)):
                self.assertError(obspam.EINVAL, call)


class TestTree(Case):
    def setUp(self) -> None:
        self.engine = obspam.Engine()

    def tearDown(self) -> None:
        self.engine.close()

    def test_build_and_inherit(self) -> None:
        e = self.engine
        e.set_limit(obspam.SERVER, None, obspam.MAILBOX, 100)
        e.set_limit(obspam.SERVER, None, obspam.DOMAIN, 1000)
        e.set_limit(obspam.SERVER, None, obspam.SUBSCRIPTION, 5000)
        e.add(obspam.PLAN, "Basic")
        e.set_limit(obspam.PLAN, "basic", obspam.MAILBOX, 50)
        e.add(obspam.SUBSCRIPTION, "acme", "basic")
        e.add(obspam.DOMAIN, "Example.COM", "acme")
        e.add(obspam.MAILBOX, "info@example.com")
        e.add(obspam.MAILBOX, "sales@example.com", "example.com")
        self.assertEqual(e.effective_limit(obspam.MAILBOX, "info@example.com"), 50)
        self.assertEqual(e.effective_limit(obspam.DOMAIN, "example.com"), 1000)
        self.assertEqual(e.effective_limit(obspam.SUBSCRIPTION, "acme"), 5000)
        e.set_limit(obspam.SUBSCRIPTION, "acme", obspam.MAILBOX, 40)
        self.assertEqual(e.effective_limit(obspam.MAILBOX, "INFO@example.com"), 40)
        e.set_limit(obspam.DOMAIN, "example.com", obspam.MAILBOX, 30)
        self.assertEqual(e.effective_limit(obspam.MAILBOX, "info@example.com"), 30)
        e.set_limit(obspam.MAILBOX, "info@example.com", obspam.MAILBOX, 5)
        self.assertEqual(e.effective_limit(obspam.MAILBOX, "info@example.com"), 5)
        self.assertEqual(e.effective_limit(obspam.MAILBOX, "sales@example.com"), 30)
        e.set_limit(obspam.MAILBOX, "info@example.com", obspam.MAILBOX, obspam.UNLIMITED)
        self.assertEqual(e.effective_limit(obspam.MAILBOX, "info@example.com"), obspam.UNLIMITED)
        e.set_limit(obspam.MAILBOX, "info@example.com", obspam.MAILBOX, obspam.INHERIT)
        self.assertEqual(e.effective_limit(obspam.MAILBOX, "info@example.com"), 30)
        e.set_limit(obspam.PLAN, "basic", obspam.SUBSCRIPTION, 700)
        self.assertEqual(e.effective_limit(obspam.SUBSCRIPTION, "acme"), 700)
        e.remove(obspam.DOMAIN, "example.com")  # and its mailboxes
        for kind, name in [(obspam.DOMAIN, "example.com"), (obspam.MAILBOX, "info@example.com")]:
            self.assertError(obspam.ENOTFOUND, e.effective_limit, kind, name)

    def test_errors(self) -> None:
        e = self.engine
        e.add(obspam.PLAN, "basic")
        cases = [
            (lambda: e.add(obspam.PLAN, "basic"), obspam.EEXIST),
            (lambda: e.add(obspam.SUBSCRIPTION, "s", "nope"), obspam.ENOTFOUND),
            (lambda: e.add(obspam.DOMAIN, "d.example"), obspam.EINVAL),
            (lambda: e.add(obspam.MAILBOX, "no-at-sign"), obspam.EINVAL),
            (lambda: e.add(obspam.SERVER, "x"), obspam.EINVAL),
            (lambda: e.add(obspam.PLAN, "with blank"), obspam.EINVAL),
            (lambda: e.add(obspam.PLAN, "x" * 321), obspam.EINVAL),
            (lambda: e.remove(obspam.PLAN, "nope"), obspam.ENOTFOUND),
            (lambda: e.set_limit(obspam.SERVER, None, obspam.MAILBOX, obspam.INHERIT), obspam.EINVAL),
            (lambda: e.set_limit(obspam.PLAN, "basic", obspam.MAILBOX, -3), obspam.EINVAL),
            (lambda: e.effective_limit(obspam.PLAN, "basic"), obspam.EINVAL),
            (lambda: e.set_uid("nope", 5), obspam.ENOTFOUND),
            (lambda: e.set_scripts_allowed(obspam.SERVER, None, obspam.INHERIT), obspam.EINVAL),
            (lambda: e.set_contact("nope", "a@b.example"), obspam.ENOTFOUND),
        ]
        for call, code in cases:
            with self.assertRaises(obspam.Error) as cm:
                call()
            self.assertEqual(cm.exception.code, code, str(cm.exception))
            self.assertIsInstance(cm.exception.code, obspam.ErrorCode)
            self.assertEqual(str(cm.exception), e.last_error)

    def test_nul_bytes_and_types_are_refused_before_c(self) -> None:
        with self.assertRaises(obspam.Error) as cm:
            self.engine.add(obspam.PLAN, "ba\0sic")
        self.assertEqual(cm.exception.code, obspam.EINVAL)
        self.assertEqual(str(cm.exception), "add: 'ba\\x00sic' holds a NUL byte")
        with self.assertRaises(TypeError):
            self.engine.add(obspam.PLAN, 42)  # type: ignore[arg-type]
        self.engine.add(obspam.PLAN, b"bytes-ok")  # type: ignore[arg-type]  # bytes work too
        self.assertEqual(self.engine.last_error, "")

    def test_uid_scripts_contact(self) -> None:
        e = self.engine
        e.add(obspam.PLAN, "p")
        e.add(obspam.SUBSCRIPTION, "a", "p")
        e.add(obspam.SUBSCRIPTION, "b")
        e.add(obspam.DOMAIN, "a.example", "a")
        e.set_uid("a", 1001)
        self.assertError(obspam.EEXIST, e.set_uid, "b", 1001)
        v = e.decide(flags=obspam.MSG_SCRIPT, uid=1001, domain_hint="a.example", time=T)
        self.assertEqual((v.action, v.kind, v.object), (obspam.ACCEPT, obspam.DOMAIN, "a.example"))
        e.set_scripts_allowed(obspam.PLAN, "p", False)
        v = e.decide(flags=obspam.MSG_SCRIPT, uid=1001, time=T)
        # forbidden scripts name no window
        self.assertEqual(v, verdict(obspam.REFUSE, obspam.SUBSCRIPTION, "a", -1, 1, -1, window=0))
        e.set_scripts_allowed(obspam.SUBSCRIPTION, "a", True)
        self.assertEqual(e.decide(flags=obspam.MSG_SCRIPT, uid=1001, time=T).action, obspam.ACCEPT)
        e.set_scripts_allowed(obspam.SUBSCRIPTION, "a", obspam.INHERIT)
        e.set_scripts_allowed(obspam.PLAN, "p", obspam.INHERIT)
        e.set_scripts_allowed(obspam.SERVER, None, 0)
        self.assertEqual(e.decide(flags=obspam.MSG_SCRIPT, uid=1001, time=T).action, obspam.REFUSE)
        e.set_uid("a", -1)
        e.set_uid("b", 1001)
        v = e.decide(flags=obspam.MSG_SCRIPT, uid=1001, time=T)
        self.assertEqual((v.action, v.object), (obspam.REFUSE, "b"))
        e.set_contact("a", "ops@a.example")
        e.set_contact("a", None)
        e.set_contact("a", "")
        self.assertError(obspam.EINVAL, e.set_contact, "a", "not-an-address")


class TestWhitelist(Case):
    def test_add_remove(self) -> None:
        with new_engine() as e:
            login = "sales@example.com"
            self.assertEqual(e.decide(sasl_username=login, client_address="192.0.2.7", time=T).action, obspam.ACCEPT)
            e.whitelist_add("192.0.2.0/24")
            e.whitelist_add("2001:db8::/32")
            for client in ("192.0.2.7", "::ffff:192.0.2.9", "2001:db8::1"):
                v = e.decide(sasl_username=login, client_address=client, time=T)
                self.assertEqual(v, verdict(obspam.EXEMPT, -1, "", 0, 0, 0), client)
            self.assertError(obspam.EEXIST, e.whitelist_add, "192.0.2.0/24")
            self.assertError(obspam.EINVAL, e.whitelist_add, "10.0.0.1/8")
            e.whitelist_remove("192.0.2.0/24")
            self.assertEqual(e.decide(sasl_username=login, client_address="192.0.2.7", time=T).action, obspam.ACCEPT)
            self.assertError(obspam.ENOTFOUND, e.whitelist_remove, "192.0.2.0/24")
            self.assertEqual(e.stats(obspam.MAILBOX, login, T).count, 2)


class TestForwardsAndLists(Case):
    """Forwards and mailing lists declared, looked up and decided."""

    def test_forwards(self) -> None:
        with new_engine() as e:
            self.assertIsNone(e.forward_lookup("desk@example.com"))
            e.forward_add("Desk@Example.com", remote=True)
            e.forward_add("@example.com", remote=False)
            self.assertEqual(
                e.forward_lookup("DESK@example.com"),
                (obspam.MSG_FORWARD_REMOTE, "desk@example.com"),
            )
            # the catch-all: addresses that are no mailbox, charging the domain
            self.assertEqual(
                e.forward_lookup("ghost@example.com"), (obspam.MSG_FORWARD_LOCAL, "example.com")
            )
            self.assertIsNone(e.forward_lookup("info@example.com"))
            self.assertIsNone(e.forward_lookup("not an address"))
            flag, mailbox = e.forward_lookup("desk@example.com")
            for i in range(3):
                v = e.decide(flags=flag, sender=mailbox, client_address="192.0.2.1", time=T)
                self.assertEqual(v, verdict(obspam.ACCEPT, obspam.MAILBOX, mailbox, 80, i, 0))
            self.assertEqual(e.stats(obspam.MAILBOX, mailbox, T).count, 3)
            # the forwards counted apart (1.4): the clock hour's
            st = e.stats(obspam.DOMAIN, "example.com", T)
            self.assertEqual((st.forwarded, st.list_deliveries), (3, 0))
            # an exempt list delivery charges nothing but is counted
            e.mailing_list_add("news@example.com")
            v = e.decide(flags=obspam.MSG_MAILING_LIST, sender="news@example.com", recipients=40, time=T)
            self.assertEqual(v.action, obspam.EXEMPT)
            st = e.stats(obspam.DOMAIN, "example.com", T)
            self.assertEqual((st.count, st.forwarded, st.list_deliveries), (3, 3, 40))
            # local forwards are not counted by default
            v = e.decide(flags=obspam.MSG_FORWARD_LOCAL, sender="example.com", time=T)
            self.assertEqual(v.action, obspam.EXEMPT)
            error = self.assertError(obspam.EEXIST, e.forward_add, "desk@example.com", remote=False)
            self.assertEqual(str(error), "forward_add: 'desk@example.com' is a forward already")
            self.assertError(obspam.ENOTFOUND, e.forward_add, "x@elsewhere.example", remote=True)
            self.assertError(obspam.EINVAL, e.forward_add, "no-at-sign", remote=True)
            e.forward_remove("desk@example.com")
            self.assertEqual(
                e.forward_lookup("desk@example.com"), (obspam.MSG_FORWARD_LOCAL, "example.com")
            )
            self.assertError(obspam.ENOTFOUND, e.forward_remove, "desk@example.com")

    def test_lists(self) -> None:
        with new_engine() as e:
            e.load_config_string(CONF + "list news@example.com\n")
            self.assertTrue(e.mailing_list_match("news-bounces+a=b@example.com"))
            self.assertTrue(e.mailing_list_match("news@example.com", "127.0.0.1"))
            self.assertFalse(e.mailing_list_match("news@example.com", "192.0.2.1"))
            self.assertFalse(e.mailing_list_match("info@example.com", None))
            self.assertError(obspam.EINVAL, e.mailing_list_match, "news@example.com", "not-an-ip")
            v = e.decide(
                flags=obspam.MSG_MAILING_LIST,
                sender="news-bounces@example.com",
                client_address="127.0.0.1",
                recipients=500,
                time=T,
            )
            self.assertEqual(v.action, obspam.EXEMPT)
            e.mailing_list_add("other@example.com")
            self.assertTrue(e.mailing_list_match("other-bounces@example.com", ""))
            self.assertError(obspam.EEXIST, e.mailing_list_add, "other@example.com")
            e.mailing_list_remove("other@example.com")
            self.assertFalse(e.mailing_list_match("other-bounces@example.com", ""))
            self.assertError(obspam.ENOTFOUND, e.mailing_list_remove, "other@example.com")


class TestLocalNetworks(Case):
    """OPT_COUNT_UNAUTHENTICATED 2 (the default): unauthenticated mail is
    charged to its sender only from a local network or a local submission."""

    def test_add_remove(self) -> None:
        with new_engine() as e:
            sales = "sales@example.com"

            def action(client: Optional[str]) -> int:
                return e.decide(sender=sales, client_address=client, time=T).action

            self.assertEqual(action("203.0.113.9"), obspam.UNKNOWN)  # not local
            v = e.decide(sender=sales, client_address="127.0.0.1", time=T)
            self.assertEqual(v, verdict(obspam.ACCEPT, obspam.MAILBOX, sales, 80, 0, 0))
            self.assertEqual(action("::1"), obspam.ACCEPT)
            self.assertEqual(action(None), obspam.ACCEPT)  # a local submission
            e.local_network_add("203.0.113.0/24")
            self.assertEqual(action("203.0.113.9"), obspam.ACCEPT)
            self.assertEqual(action("::ffff:203.0.113.10"), obspam.ACCEPT)
            # configured networks replace 127.0.0.0/8 and ::1
            self.assertEqual(action("127.0.0.1"), obspam.UNKNOWN)
            self.assertEqual(action(None), obspam.ACCEPT)
            self.assertError(obspam.EEXIST, e.local_network_add, "203.0.113.0/24")
            with self.assertRaises(obspam.Error) as cm:
                e.local_network_add("10.0.0.1/8")
            self.assertEqual(cm.exception.code, obspam.EINVAL)
            self.assertEqual(str(cm.exception), e.last_error)
            e.local_network_remove("203.0.113.0/24")
            self.assertError(obspam.ENOTFOUND, e.local_network_remove, "203.0.113.0/24")
            self.assertEqual(action("203.0.113.9"), obspam.UNKNOWN)
            self.assertEqual(action("127.0.0.1"), obspam.ACCEPT)
            self.assertEqual(e.stats(obspam.MAILBOX, sales, T).count, 7)
            e.set_option(obspam.OPT_COUNT_UNAUTHENTICATED, 1)  # from anywhere
            self.assertEqual(action("198.51.100.1"), obspam.ACCEPT)
            e.set_option(obspam.OPT_COUNT_UNAUTHENTICATED, 0)  # never
            self.assertEqual(action(None), obspam.UNKNOWN)
            self.assertError(obspam.EINVAL, e.local_network_add, "a\0b")


class TestStoreBacklog(Case):
    def test_nothing_owed_without_a_shared_store(self) -> None:
        with new_engine() as e:
            self.assertEqual(
                e.store_backlog(),
                {"ledger_pending": 0, "ledger_added": 0, "ledger_dropped": 0, "keys_pending": 0, "keys_deleted": 0},
            )


class TestImplicitMailboxes(Case):
    def test_counted_and_capped(self) -> None:
        with new_engine() as e:
            self.assertEqual(e.implicit_status(), {"count": 0, "overflow": 0, "episodes": 0})
            v = e.decide(sasl_username="someone@example.com", recipients=2, time=T)
            # an undeclared login of a hosted domain: the domain's mailbox default
            self.assertEqual(v, verdict(obspam.ACCEPT, obspam.MAILBOX, "someone@example.com", 80, 0, 0))
            self.assertEqual(e.stats(obspam.MAILBOX, "someone@example.com", T).count, 2)
            self.assertEqual(e.implicit_status(), {"count": 1, "overflow": 0, "episodes": 0})
            e.set_option(obspam.OPT_IMPLICIT_MAILBOXES, 1)
            self.assertEqual(e.get_option(obspam.OPT_IMPLICIT_MAILBOXES), 1)
            v = e.decide(sasl_username="other@example.com", time=T)
            # past the cap: the domain and subscription are charged, no mailbox
            self.assertEqual(v, verdict(obspam.ACCEPT, obspam.DOMAIN, "example.com", 500, 2, 0))
            self.assertEqual(e.implicit_status(), {"count": 1, "overflow": 1, "episodes": 1})
            self.assertError(obspam.ENOTFOUND, e.stats, obspam.MAILBOX, "other@example.com", T)
            for bad in (-1, 100000001):
                self.assertError(obspam.EINVAL, e.set_option, obspam.OPT_IMPLICIT_MAILBOXES, bad)


class TestConfig(Case):
    def test_load_file_and_string(self) -> None:
        path = os.path.join(_tmp, "obspam.conf")
        with open(path, "w") as f:
            f.write(CONF)
        with obspam.Engine() as e:
            e.load_config(path)
            self.assertEqual(e.effective_limit(obspam.MAILBOX, "info@example.com"), 5)
            self.assertEqual(e.effective_limit(obspam.MAILBOX, "sales@example.com"), 80)
            self.assertEqual(e.effective_limit(obspam.DOMAIN, "example.com"), 500)
            self.assertEqual(e.effective_limit(obspam.SUBSCRIPTION, "acme"), 1000)
            e.load_config_string("count messages\nretention 24\n")
            self.assertEqual(e.get_option(obspam.OPT_COUNT_UNIT), 1)
            self.assertEqual(e.get_option(obspam.OPT_RETENTION_HOURS), 24)
            with self.assertRaises(obspam.Error):
                e.effective_limit(obspam.MAILBOX, "info@example.com")  # the file is the whole truth

    def test_errors_name_the_file_and_line(self) -> None:
        path = os.path.join(_tmp, "bad.conf")
        with open(path, "w") as f:
            f.write("enabled yes\nplan basic\nsubscription acme plan=Basik\n")
        with new_engine() as e:
            cases = [
                (lambda: e.load_config(path), obspam.ESYNTAX, f"{path}:3: unknown plan 'Basik'"),
                (lambda: e.load_config_string("enabled yes\n\nenabeld no\n"), obspam.ESYNTAX,
                 "<string>:3: unknown keyword 'enabeld'"),
                (lambda: e.load_config_string("action bounce"), obspam.ESYNTAX,
                 "<string>:1: bad value 'bounce' for 'action': expected defer or reject"),
                (lambda: e.load_config_string("retention 0"), obspam.ESYNTAX,
                 "<string>:1: bad value '0' for 'retention': out of range 1..87600"),
                (lambda: e.load_config_string("mailbox info"), obspam.ESYNTAX,
                 "<string>:1: bad mailbox name 'info': a mailbox needs one '@'"),
                (lambda: e.load_config_string("plan a\nx\0y\n"), obspam.ESYNTAX,
                 "<string>:2: line holds a NUL byte"),
                (lambda: e.load_config(os.path.join(_tmp, "missing.conf")), obspam.EIO,
                 f"{os.path.join(_tmp, 'missing.conf')}: cannot open: No such file or directory"),
            ]
            for call, code, message in cases:
                with self.assertRaises(obspam.Error) as cm:
                    call()
                self.assertEqual((cm.exception.code, str(cm.exception)), (code, message))
            # nothing changed
            self.assertEqual(e.effective_limit(obspam.MAILBOX, "info@example.com"), 5)

    def test_reload_keeps_counters(self) -> None:
        with new_engine() as e:
            e.decide(sasl_username="info@example.com", recipients=4, time=T)
            e.load_config_string(CONF.replace("limit=5", "limit=3"))
            v = e.decide(sasl_username="info@example.com", time=T + 1)
            self.assertEqual(v, verdict(obspam.REFUSE, obspam.MAILBOX, "info@example.com", 3, 4, 3569))


class TestDecide(EngineCase):
    def test_accept_then_refuse_exactly(self) -> None:
        e = self.e
        v = e.decide(sasl_username="info@example.com", recipients=3, time=T)
        self.assertEqual(v, verdict(obspam.ACCEPT, obspam.MAILBOX, "info@example.com", 5, 0, 0))
        self.assertIs(type(v.action), obspam.Action)
        self.assertIs(type(v.kind), obspam.Kind)
        v = e.decide(sasl_username="INFO@example.com", recipients=2, time=T + 10)
        self.assertEqual(v, verdict(obspam.ACCEPT, obspam.MAILBOX, "info@example.com", 5, 3, 0))
        v = e.decide(sasl_username="info@example.com", recipients=1, time=T + 20)
        self.assertEqual(v, verdict(obspam.REFUSE, obspam.MAILBOX, "info@example.com", 5, 5, 3550))
        v = e.decide(sasl_username="info@example.com", recipients=6, time=T + 20)
        self.assertEqual(v.retry_after, -1)  # 6 never fits a limit of 5
        # an hour later the window is empty again
        v = e.decide(sasl_username="info@example.com", recipients=5, time=T + 3600)
        self.assertEqual(v, verdict(obspam.ACCEPT, obspam.MAILBOX, "info@example.com", 5, 0, 0))

    def test_check_charges_nothing(self) -> None:
        e = self.e
        e.decide(sasl_username="info@example.com", recipients=5, time=T)
        v = e.check(sasl_username="info@example.com", time=T)
        self.assertEqual(v, verdict(obspam.REFUSE, obspam.MAILBOX, "info@example.com", 5, 5, 3570))  # T is 30 s into its minute
        self.assertEqual(e.stats(obspam.MAILBOX, "info@example.com", T).refused, 0)
        v = e.check(sasl_username="info@example.com", time=T + 3600)
        self.assertEqual(v, verdict(obspam.ACCEPT, obspam.MAILBOX, "info@example.com", 5, 0, 0))
        # the check moved no clock: at T the window still holds the 5
        self.assertEqual(e.stats(obspam.MAILBOX, "info@example.com", T).count, 5)
        self.assertError(obspam.EINVAL, e.check, recipients=0)

    def test_parent_limit_wins(self) -> None:
        e = self.e
        e.set_limit(obspam.SUBSCRIPTION, "acme", obspam.SUBSCRIPTION, 4)
        self.assertEqual(e.decide(sasl_username="sales@example.com", recipients=4, time=T).action, obspam.ACCEPT)
        v = e.decide(sasl_username="info@example.com", time=T)
        self.assertEqual(v, verdict(obspam.REFUSE, obspam.SUBSCRIPTION, "acme", 4, 4, 3570))

    def test_domain_login_unknown_and_sender(self) -> None:
        e = self.e
        v = e.decide(sasl_username="someone@example.com", time=T)
        self.assertEqual(v, verdict(obspam.ACCEPT, obspam.MAILBOX, "someone@example.com", 80, 0, 0))
        v = e.decide(sasl_username="who@elsewhere.example", time=T)
        self.assertEqual(v, verdict(obspam.UNKNOWN, -1, "", 0, 0, 0))
        v = e.decide(sender="sales@example.com", client_address="203.0.113.9", time=T)
        self.assertEqual(v, verdict(obspam.UNKNOWN, -1, "", 0, 0, 0))  # not a local network
        v = e.decide(sender="sales@example.com", client_address="127.0.0.1", time=T)
        self.assertEqual(v, verdict(obspam.ACCEPT, obspam.MAILBOX, "sales@example.com", 80, 0, 0))
        self.assertEqual(e.decide(sender="", time=T).action, obspam.UNKNOWN)
        e.set_option(obspam.OPT_COUNT_UNAUTHENTICATED, 0)
        self.assertEqual(e.decide(sender="sales@example.com", time=T).action, obspam.UNKNOWN)

    def test_flags(self) -> None:
        e = self.e
        self.assertEqual(e.decide(sender="sales@example.com", flags=obspam.MSG_FORWARD_LOCAL, time=T).action,
                         obspam.EXEMPT)
        v = e.decide(sender="sales@example.com", flags=obspam.MSG_FORWARD_REMOTE, recipients=2, time=T)
        self.assertEqual(v, verdict(obspam.ACCEPT, obspam.MAILBOX, "sales@example.com", 80, 0, 0))
        self.assertEqual(e.decide(sender="sales@example.com", flags=obspam.MSG_MAILING_LIST, time=T).action,
                         obspam.EXEMPT)
        v = e.decide(flags=obspam.MSG_SCRIPT, uid=10001, domain_hint="example.com",
                     script="/var/www/contact.php", time=T)
        self.assertEqual(v, verdict(obspam.ACCEPT, obspam.DOMAIN, "example.com", 500, 2, 0))
        v = e.decide(flags=obspam.MSG_SCRIPT, uid=4242, time=T)
        self.assertEqual(v.action, obspam.UNKNOWN)

    def test_count_unit_and_disabled(self) -> None:
        e = self.e
        e.set_option(obspam.OPT_COUNT_UNIT, 1)
        e.decide(sasl_username="info@example.com", recipients=50, time=T)
        self.assertEqual(e.stats(obspam.MAILBOX, "info@example.com", T).count, 1)
        e.set_option(obspam.OPT_ENABLED, 0)
        v = e.decide(sasl_username="info@example.com", recipients=50, time=T)
        self.assertEqual(v, verdict(obspam.ACCEPT, -1, "", 0, 0, 0, window=3600))  # 3600 on accept
        self.assertEqual(e.stats(obspam.MAILBOX, "info@example.com", T),
                         stats(True, 5, 1, 0, 0, 0, count_minute=1, count_day=1, disabled=True))

    def test_errors(self) -> None:
        e = self.e
        for kwargs in (
            {"recipients": 0},
            {"time": -1},
            {"sasl_username": "info@example.com", "client_address": "not-an-ip"},
        ):
            with self.assertRaises(obspam.Error, msg=str(kwargs)) as cm:
                e.decide(**kwargs)
            self.assertEqual(cm.exception.code, obspam.EINVAL)
            self.assertEqual(str(cm.exception), e.last_error)
        with self.assertRaises(obspam.Error) as cm:
            e.decide(sender="a\0b@example.com")
        self.assertEqual(str(cm.exception), "decide: sender: 'a\\x00b@example.com' holds a NUL byte")
        with self.assertRaises(TypeError):
            e.decide(sender=3)  # type: ignore[arg-type]

    def test_time_zero_is_now(self) -> None:
        import time as _time

        v = self.e.decide(sasl_username="sales@example.com")
        self.assertEqual(v.action, obspam.ACCEPT)
        s = self.e.stats(obspam.MAILBOX, "sales@example.com")
        self.assertEqual(s.count, 1)
        self.assertLessEqual(abs(self.e.history(obspam.MAILBOX, "sales@example.com")[0].hour_start
                                 - (int(_time.time()) // 3600 * 3600)), 3600)


class TestWindows(EngineCase):
    """The minute and day windows and the recipients cap (1.3)."""

    def test_each_window_is_set_and_inherited_on_its_own(self) -> None:
        e = self.e
        mb, box = obspam.MAILBOX, "info@example.com"
        # a new engine's minute and day windows are unlimited everywhere
        self.assertEqual(e.effective_limits(mb, box),
                         {obspam.WINDOW_MINUTE: -1, obspam.WINDOW_HOUR: 5, obspam.WINDOW_DAY: -1})
        e.set_window_limit(obspam.SERVER, None, obspam.MAILBOX, obspam.WINDOW_MINUTE, 10)
        e.set_window_limit(obspam.PLAN, "basic", obspam.MAILBOX, obspam.WINDOW_DAY, 500)
        e.set_window_limit(obspam.PLAN, "basic", obspam.SUBSCRIPTION, obspam.WINDOW_DAY, 9000)
        self.assertEqual(e.effective_window_limit(mb, box, obspam.WINDOW_MINUTE), 10)
        self.assertEqual(e.effective_window_limit(mb, box, obspam.WINDOW_DAY), 500)
        self.assertEqual(e.effective_window_limit(obspam.SUBSCRIPTION, "acme", 86400), 9000)
        self.assertEqual(e.effective_window_limit(obspam.DOMAIN, "example.com", obspam.WINDOW_DAY), -1)
        # a domain's default for its mailboxes, then the mailbox's own value
        e.set_window_limit(obspam.DOMAIN, "example.com", obspam.MAILBOX, obspam.WINDOW_MINUTE, 3)
        self.assertEqual(e.effective_window_limit(mb, "sales@example.com", 60), 3)
        e.set_window_limit(obspam.MAILBOX, box, obspam.MAILBOX, obspam.WINDOW_DAY, 50)
        self.assertEqual(e.effective_limits(mb, box),
                         {obspam.WINDOW_MINUTE: 3, obspam.WINDOW_HOUR: 5, obspam.WINDOW_DAY: 50})
        self.assertEqual(e.effective_window_limit(mb, "sales@example.com", obspam.WINDOW_DAY), 500)
        # the hour window is the 1.0 limit, through either function
        e.set_window_limit(obspam.MAILBOX, box, obspam.MAILBOX, obspam.WINDOW_HOUR, 7)
        self.assertEqual(e.effective_limit(mb, box), 7)
        e.set_limit(obspam.MAILBOX, box, obspam.MAILBOX, 8)
        self.assertEqual(e.effective_window_limit(mb, box, obspam.WINDOW_HOUR), 8)
        # unlimited and inherit per window, the others untouched
        e.set_window_limit(obspam.MAILBOX, box, obspam.MAILBOX, obspam.WINDOW_MINUTE, obspam.UNLIMITED)
        e.set_window_limit(obspam.MAILBOX, box, obspam.MAILBOX, obspam.WINDOW_DAY, obspam.INHERIT)
        self.assertEqual(e.effective_limits(mb, box),
                         {obspam.WINDOW_MINUTE: -1, obspam.WINDOW_HOUR: 8, obspam.WINDOW_DAY: 500})
        # an implicit mailbox inherits every window from its domain
        self.assertEqual(e.decide(sasl_username="new@example.com", time=T).action, obspam.ACCEPT)
        self.assertEqual(e.effective_limits(mb, "new@example.com"),
                         {obspam.WINDOW_MINUTE: 3, obspam.WINDOW_HOUR: 80, obspam.WINDOW_DAY: 500})

    def test_window_errors_change_nothing(self) -> None:
        e = self.e
        e.set_window_limit(obspam.MAILBOX, "info@example.com", obspam.MAILBOX, obspam.WINDOW_MINUTE, 4)
        cases = [
            (lambda: e.set_window_limit(obspam.MAILBOX, "info@example.com", obspam.MAILBOX, 120, 1),
             obspam.EINVAL, "set_window_limit: 120 is not a window (60, 3600 or 86400 seconds)"),
            (lambda: e.set_window_limit(obspam.MAILBOX, "info@example.com", obspam.MAILBOX, 60, -3),
             obspam.EINVAL, "set_window_limit: -3 is not a count, unlimited or inherit"),
            (lambda: e.set_window_limit(obspam.SERVER, None, obspam.MAILBOX, 60, obspam.INHERIT),
             obspam.EINVAL, "set_window_limit: -2 is not a count or unlimited"),
            (lambda: e.set_window_limit(obspam.MAILBOX, "info@example.com", obspam.DOMAIN, 60, 1),
             obspam.EINVAL, "set_window_limit: a mailbox has no domain limit"),
            (lambda: e.set_window_limit(obspam.MAILBOX, "nobody@example.com", obspam.MAILBOX, 60, 1),
             obspam.ENOTFOUND, None),
            (lambda: e.effective_window_limit(obspam.MAILBOX, "info@example.com", 0),
             obspam.EINVAL, "effective_window_limit: 0 is not a window (60, 3600 or 86400 seconds)"),
            (lambda: e.effective_window_limit(obspam.PLAN, "basic", 60), obspam.EINVAL, None),
            (lambda: e.effective_window_limit(obspam.DOMAIN, "nowhere.example", 60), obspam.ENOTFOUND, None),
        ]
        for call, code, message in cases:
            with self.assertRaises(obspam.Error) as cm:
                call()
            self.assertEqual(cm.exception.code, code, str(cm.exception))
            self.assertEqual(str(cm.exception), e.last_error)
            if message is not None:
                self.assertEqual(str(cm.exception), message)
        self.assertEqual(e.effective_limits(obspam.MAILBOX, "info@example.com"),
                         {obspam.WINDOW_MINUTE: 4, obspam.WINDOW_HOUR: 5, obspam.WINDOW_DAY: -1})

    def test_max_recipients_is_inherited(self) -> None:
        e = self.e
        mb, box = obspam.MAILBOX, "info@example.com"
        self.assertEqual(e.effective_max_recipients(mb, box), obspam.UNLIMITED)
        e.set_max_recipients(obspam.SERVER, None, 50)
        self.assertEqual(e.effective_max_recipients(obspam.SUBSCRIPTION, "acme"), 50)
        e.set_max_recipients(obspam.PLAN, "basic", 40)
        self.assertEqual(e.effective_max_recipients(mb, box), 40)
        e.set_max_recipients(obspam.SUBSCRIPTION, "acme", 30)
        e.set_max_recipients(obspam.DOMAIN, "example.com", 20)
        self.assertEqual(e.effective_max_recipients(obspam.SUBSCRIPTION, "acme"), 30)
        self.assertEqual(e.effective_max_recipients(obspam.DOMAIN, "example.com"), 20)
        self.assertEqual(e.effective_max_recipients(mb, "sales@example.com"), 20)
        e.set_max_recipients(mb, box, 0)
        self.assertEqual(e.effective_max_recipients(mb, box), 0)
        e.set_max_recipients(mb, box, obspam.UNLIMITED)
        self.assertEqual(e.effective_max_recipients(mb, box), -1)
        e.set_max_recipients(mb, box, obspam.INHERIT)
        self.assertEqual(e.effective_max_recipients(mb, box), 20)
        cases = [
            (lambda: e.set_max_recipients(obspam.SERVER, None, obspam.INHERIT), obspam.EINVAL),
            (lambda: e.set_max_recipients(obspam.SCRIPT, "/srv/a.php", 5), obspam.EINVAL),
            (lambda: e.set_max_recipients(mb, box, -3), obspam.EINVAL),
            (lambda: e.set_max_recipients(mb, "nobody@example.com", 5), obspam.ENOTFOUND),
            (lambda: e.effective_max_recipients(obspam.PLAN, "basic"), obspam.EINVAL),
            (lambda: e.effective_max_recipients(mb, "nobody@elsewhere.example"), obspam.ENOTFOUND),
        ]
        for call, code in cases:
            with self.assertRaises(obspam.Error) as cm:
                call()
            self.assertEqual(cm.exception.code, code, str(cm.exception))
            self.assertEqual(str(cm.exception), e.last_error)
        self.assertEqual(e.effective_max_recipients(mb, box), 20)

    def test_the_cap_refuses_the_whole_message(self) -> None:
        e = self.e
        e.set_max_recipients(obspam.DOMAIN, "example.com", 3)
        e.set_max_recipients(obspam.SUBSCRIPTION, "acme", 2)
        # the lowest charged object's cap: the mailbox inherits 3 from its
        # domain, whatever its subscription's is; window 0, limit the cap,
        # count the recipients, never fits
        v = e.decide(sasl_username="info@example.com", recipients=4, time=T)
        self.assertEqual(v, verdict(obspam.REFUSE, obspam.MAILBOX, "info@example.com", 3, 4, -1, window=0))
        v = e.decide(sasl_username="info@example.com", recipients=3, time=T)
        self.assertEqual(v, verdict(obspam.ACCEPT, obspam.MAILBOX, "info@example.com", 5, 0, 0))
        # whatever the count unit
        e.set_option(obspam.OPT_COUNT_UNIT, 1)
        v = e.decide(sasl_username="sales@example.com", recipients=4, time=T)
        self.assertEqual(v, verdict(obspam.REFUSE, obspam.MAILBOX, "sales@example.com", 3, 4, -1, window=0))
        e.set_option(obspam.OPT_COUNT_UNIT, 0)
        # a script's mail: its domain's cap, or its subscription's without one
        v = e.decide(flags=obspam.MSG_SCRIPT, uid=10001, domain_hint="example.com", recipients=4, time=T)
        self.assertEqual(v, verdict(obspam.REFUSE, obspam.DOMAIN, "example.com", 3, 4, -1, window=0))
        v = e.decide(flags=obspam.MSG_SCRIPT, uid=10001, recipients=3, time=T)
        self.assertEqual(v, verdict(obspam.REFUSE, obspam.SUBSCRIPTION, "acme", 2, 3, -1, window=0))
        # refused on every charged object, over the limit on the capped one
        s = e.stats(obspam.MAILBOX, "info@example.com", T)
        self.assertEqual((s.count, s.refused, s.exceeded), (3, 1, 1))
        s = e.stats(obspam.DOMAIN, "example.com", T)
        self.assertEqual((s.count, s.refused, s.exceeded), (3, 3, 1))
        s = e.stats(obspam.SUBSCRIPTION, "acme", T)
        self.assertEqual((s.count, s.refused, s.exceeded), (3, 4, 1))

    def test_minute_window(self) -> None:
        e = self.e
        e.set_window_limit(obspam.MAILBOX, "info@example.com", obspam.MAILBOX, obspam.WINDOW_MINUTE, 2)
        v = e.decide(sasl_username="info@example.com", recipients=2, time=T)
        self.assertEqual(v, verdict(obspam.ACCEPT, obspam.MAILBOX, "info@example.com", 5, 0, 0))
        # T's 5-second bucket leaves the twelve of the minute at T + 60
        v = e.decide(sasl_username="info@example.com", time=T + 1)
        self.assertEqual(v, verdict(obspam.REFUSE, obspam.MAILBOX, "info@example.com", 2, 2, 59,
                                    window=obspam.WINDOW_MINUTE))
        self.assertIs(type(v.window), obspam.Window)
        self.assertEqual(e.stats(obspam.MAILBOX, "info@example.com", T + 59),
                         stats(False, 5, 2, 1, 1, T + 1, exceeded=1, exceeded_total=1, limit_minute=2,
                               count_minute=2, count_day=2, blocked_kind=obspam.MAILBOX,
                               blocked_by="info@example.com"))
        v = e.decide(sasl_username="info@example.com", recipients=2, time=T + 60)
        self.assertEqual(v, verdict(obspam.ACCEPT, obspam.MAILBOX, "info@example.com", 5, 2, 0))
        # the hour window is next: 4 of 5 charged, 2 more fit when T's minute
        # leaves it, at T0 + 3600
        v = e.decide(sasl_username="info@example.com", recipients=2, time=T + 120)
        self.assertEqual(v, verdict(obspam.REFUSE, obspam.MAILBOX, "info@example.com", 5, 4, 3600 - 150))

    def test_day_window(self) -> None:
        e = self.e
        e.set_window_limit(obspam.SUBSCRIPTION, "acme", obspam.SUBSCRIPTION, obspam.WINDOW_DAY, 10)
        e.decide(sasl_username="sales@example.com", recipients=6, time=T)
        e.decide(sasl_username="sales@example.com", recipients=4, time=T + 3600)
        # the clock hour of T leaves the day at T0 + 86400
        v = e.decide(sasl_username="sales@example.com", time=T + 7200)
        self.assertEqual(v, verdict(obspam.REFUSE, obspam.SUBSCRIPTION, "acme", 10, 10, 86400 - 7230,
                                    window=obspam.WINDOW_DAY))
        self.assertEqual(e.stats(obspam.SUBSCRIPTION, "acme", T + 7200),
                         stats(False, 1000, 0, 1, 1, T + 7200, exceeded=1, exceeded_total=1, limit_day=10,
                               count_day=10, blocked_kind=obspam.SUBSCRIPTION, blocked_by="acme"))
        v = e.decide(sasl_username="sales@example.com", recipients=6, time=T0 + 86400)
        self.assertEqual(v, verdict(obspam.ACCEPT, obspam.MAILBOX, "sales@example.com", 80, 0, 0))

    def test_who_is_named(self) -> None:
        e = self.e
        box = "info@example.com"
        # equal waits (never) in two windows of one object: the longer window
        e.set_window_limit(obspam.MAILBOX, box, obspam.MAILBOX, obspam.WINDOW_MINUTE, 5)
        v = e.decide(sasl_username=box, recipients=6, time=T)
        self.assertEqual(v, verdict(obspam.REFUSE, obspam.MAILBOX, box, 5, 0, -1, window=3600))
        # equal waits on two levels: the higher level, even in a shorter window
        e.set_window_limit(obspam.SUBSCRIPTION, "acme", obspam.SUBSCRIPTION, obspam.WINDOW_MINUTE, 5)
        v = e.decide(sasl_username=box, recipients=6, time=T)
        self.assertEqual(v, verdict(obspam.REFUSE, obspam.SUBSCRIPTION, "acme", 5, 0, -1, window=60))
        # the cap is the lowest object's shortest window
        e.set_window_limit(obspam.SUBSCRIPTION, "acme", obspam.SUBSCRIPTION, obspam.WINDOW_MINUTE, obspam.INHERIT)
        e.set_limit(obspam.MAILBOX, box, obspam.MAILBOX, 100)
        e.set_max_recipients(obspam.MAILBOX, box, 5)
        v = e.decide(sasl_username=box, recipients=6, time=T)
        self.assertEqual(v, verdict(obspam.REFUSE, obspam.MAILBOX, box, 5, 0, -1, window=60))
        e.set_window_limit(obspam.MAILBOX, box, obspam.MAILBOX, obspam.WINDOW_MINUTE, obspam.INHERIT)
        v = e.decide(sasl_username=box, recipients=6, time=T)
        self.assertEqual(v, verdict(obspam.REFUSE, obspam.MAILBOX, box, 5, 6, -1, window=0))
        # the longest wait first: the day's over the minute's
        e.set_max_recipients(obspam.MAILBOX, box, obspam.INHERIT)
        e.set_window_limit(obspam.MAILBOX, box, obspam.MAILBOX, obspam.WINDOW_MINUTE, 3)
        e.set_window_limit(obspam.MAILBOX, box, obspam.MAILBOX, obspam.WINDOW_DAY, 3)
        e.decide(sasl_username=box, recipients=3, time=T)
        v = e.decide(sasl_username=box, time=T + 10)
        self.assertEqual(v, verdict(obspam.REFUSE, obspam.MAILBOX, box, 3, 3, 86400 - 40, window=86400))

    def test_report_and_notice_name_the_window(self) -> None:
        e = self.e
        got: List[obspam.Notice] = []
        e.set_notify(got.append)
        e.set_window_limit(obspam.MAILBOX, "info@example.com", obspam.MAILBOX, obspam.WINDOW_MINUTE, 2)
        e.set_max_recipients(obspam.DOMAIN, "example.com", 3)
        e.decide(sasl_username="info@example.com", recipients=2, time=T)
        e.decide(sasl_username="info@example.com", time=T + 1)  # over the minute's 2
        e.decide(sasl_username="sales@example.com", recipients=4, time=T + 2)  # over the cap
        self.assertEqual(
            e.report(),
            [
                obspam.ReportRow(obspam.MAILBOX, "info@example.com", 2, 1, T + 1, T + 1, 1, 60),
                obspam.ReportRow(obspam.MAILBOX, "sales@example.com", 0, 1, T + 2, T + 2, 1, 0),
            ],
        )
        e.notify_flush(T0 + 3600)
        self.assertEqual(
            got,
            [
                obspam.Notice(obspam.MAILBOX, "info@example.com", "acme", "ops@acme.example", 2, 2, 1, T + 1,
                              T + 1, T0, T0 + 3600, 1, 60),
                obspam.Notice(obspam.MAILBOX, "sales@example.com", "acme", "ops@acme.example", 3, 0, 1, T + 2,
                              T + 2, T0, T0 + 3600, 1, 0),
            ],
        )


class TestDecideBatch(EngineCase):
    CONFIG = BATCH_CONF

    def test_verdicts_exactly(self) -> None:
        orders = "orders@shop.example"
        got = self.e.decide_batch([
            {"sasl_username": orders, "time": T},
            {"sasl_username": orders, "time": T + 10},
            {"sasl_username": orders, "time": T + 20},
            {"sasl_username": "someone@shop.example", "recipients": 3, "time": T + 20},
            {"sasl_username": "who@elsewhere.example", "time": T + 20},
        ])
        self.assertEqual(len(got), 5)
        self.assertEqual(
            (got[0].action, got[0].kind, got[0].object, got[0].limit, got[0].count, got[0].retry_after),
            (obspam.ACCEPT, obspam.MAILBOX, orders, 2, 0, 0),
        )
        self.assertEqual(
            (got[1].action, got[1].kind, got[1].object, got[1].limit, got[1].count, got[1].retry_after),
            (obspam.ACCEPT, obspam.MAILBOX, orders, 2, 1, 0),
        )
        self.assertEqual(
            (got[2].action, got[2].kind, got[2].object, got[2].limit, got[2].count, got[2].retry_after),
            (obspam.REFUSE, obspam.MAILBOX, orders, 2, 2, 3550),
        )
        self.assertEqual(got[3], verdict(obspam.ACCEPT, obspam.MAILBOX, "someone@shop.example", 100, 0, 0))
        self.assertEqual(got[4], verdict(obspam.UNKNOWN, -1, "", 0, 0, 0))
        self.assertIs(type(got[0].action), obspam.Action)
        self.assertIs(type(got[0].kind), obspam.Kind)
        self.assertEqual(
            self.e.stats(obspam.MAILBOX, orders, T + 20),
            stats(False, 2, 2, 1, 1, T + 20, exceeded=1, exceeded_total=1, count_minute=2, count_day=2,
                  blocked_kind=obspam.MAILBOX, blocked_by=orders),
        )
        self.assertEqual(self.e.stats(obspam.SUBSCRIPTION, "shop", T + 20).count, 5)

    def test_same_verdicts_as_decide(self) -> None:
        kinds: List[Dict[str, Any]] = [
            {"sasl_username": "info@example.com", "recipients": 2},
            {"sender": "sales@example.com", "client_address": "203.0.113.9"},
            {"flags": obspam.MSG_SCRIPT, "uid": 10001, "script": "/srv/www/Send.php", "recipients": 2},
            {"sasl_username": "who@elsewhere.example"},
            {"sender": "sales@example.com", "flags": obspam.MSG_FORWARD_LOCAL},
            {"sasl_username": "someone@example.com", "recipients": 80},
        ]
        messages = [dict(kinds[i % len(kinds)], time=T + 7 * i) for i in range(48)]
        with new_engine() as a, new_engine() as b:
            got = a.decide_batch(messages)
            want = [b.decide(**m) for m in messages]
            self.assertEqual(got, want)
            self.assertEqual({v.action for v in got}, set(obspam.Action))  # every kind of verdict
            self.assertEqual(a.report(), b.report())
            for kind, name in [(obspam.MAILBOX, "info@example.com"), (obspam.DOMAIN, "example.com"),
                               (obspam.SUBSCRIPTION, "acme")]:
                self.assertEqual(a.stats(kind, name, T + 400), b.stats(kind, name, T + 400), name)
        # any sequence of mappings will do
        with new_engine() as a, new_engine() as b:
            got = a.decide_batch(tuple(MappingProxyType(m) for m in messages[:6]))
            self.assertEqual(got, [b.decide(**m) for m in messages[:6]])

    def test_empty(self) -> None:
        self.assertEqual(self.e.decide_batch([]), [])
        self.assertEqual(self.e.decide_batch(()), [])
        self.assertEqual(self.e.stats(obspam.MAILBOX, "orders@shop.example", T).count, 0)
        self.assertEqual(self.e.last_error, "")

    def test_a_failing_message(self) -> None:
        """Every message gets its own verdict: a failing one its status and
        message, the others their verdicts (1.3)."""
        e = self.e
        orders = {"sasl_username": "orders@shop.example"}
        got = e.decide_batch([dict(orders, time=T), {"recipients": 0}, dict(orders, time=T + 1),
                              {"sasl_username": "someone@shop.example", "client_address": "not-an-address",
                               "time": T + 1}])
        self.assertEqual(got, [
            verdict(obspam.ACCEPT, obspam.MAILBOX, "orders@shop.example", 2, 0, 0),
            obspam.Verdict(-1, -1, "", 0, 0, 0, 0, obspam.EINVAL, "decide: no recipients"),
            verdict(obspam.ACCEPT, obspam.MAILBOX, "orders@shop.example", 2, 1, 0),
            obspam.Verdict(-1, -1, "", 0, 0, 0, 0, obspam.EINVAL,
                           "decide: client address 'not-an-address' is not an IPv4 or IPv6 address"),
        ])
        self.assertIsInstance(got[1].status, obspam.ErrorCode)
        self.assertEqual([v.ok for v in got], [True, False, True, False])
        # the messages before and after the failing ones were decided and
        # charged; checking a failed message again charged nothing
        self.assertEqual(e.stats(obspam.MAILBOX, "orders@shop.example", T + 1).count, 2)
        self.assertEqual(e.stats(obspam.DOMAIN, "shop.example", T + 1).count, 2)
        got = e.decide_batch([dict(orders, time=T + 2), dict(orders, time=-1)])
        self.assertEqual(got, [
            verdict(obspam.REFUSE, obspam.MAILBOX, "orders@shop.example", 2, 2, 3568),
            obspam.Verdict(-1, -1, "", 0, 0, 0, 0, obspam.EINVAL, "decide: time is negative"),
        ])
        s = e.stats(obspam.MAILBOX, "orders@shop.example", T + 2)
        self.assertEqual((s.count, s.refused), (2, 1))  # the first was decided (refused)

    def test_bad_values_are_refused_before_c(self) -> None:
        e = self.e
        orders = {"sasl_username": "orders@shop.example", "time": T}
        with self.assertRaises(obspam.Error) as cm:
            e.decide_batch([orders, {"sender": "a\0b@shop.example"}])
        self.assertEqual(cm.exception.code, obspam.EINVAL)
        self.assertEqual(str(cm.exception), "decide_batch: message 1: sender: 'a\\x00b@shop.example' holds a NUL byte")
        for bad, text in [
            ([orders, {"sendr": "x@shop.example"}], "decide_batch: message 1: unknown field 'sendr'"),
            ([orders, ("sender", "x@shop.example")], "decide_batch: message 1 must be a mapping, not tuple"),
            ([{"sender": 3}], "decide_batch: message 0: sender must be str, not int"),
        ]:
            with self.assertRaises(TypeError, msg=text) as tm:
                e.decide_batch(bad)  # type: ignore[arg-type]
            self.assertEqual(str(tm.exception), text)
        self.assertEqual(e.stats(obspam.MAILBOX, "orders@shop.example", T).count, 0)  # nothing decided

    def test_exception_from_the_callback_after_every_message(self) -> None:
        def bad(n: obspam.Notice) -> None:
            raise KeyError(n.name)

        e = self.e
        e.set_option(obspam.OPT_NOTIFY_IMMEDIATE, 1)
        e.set_notify(bad)
        orders = {"sasl_username": "orders@shop.example", "recipients": 2}
        with self.assertRaises(KeyError):
            e.decide_batch([dict(orders, time=T), dict(orders, time=T + 5),
                            {"sasl_username": "someone@shop.example", "time": T + 6}])
        s = e.stats(obspam.MAILBOX, "orders@shop.example", T + 6)
        self.assertEqual((s.count, s.refused), (2, 1))
        self.assertEqual(e.stats(obspam.DOMAIN, "shop.example", T + 6).count, 3)


# The panel tests' tree, which test_php.php loads too.
with open(os.path.join(HERE, "panel.conf")) as _f:
    PANEL_CONF = _f.read()


class TestPanels(EngineCase):
    """enumerate, top, reset and the unknown-uid subscription (1.3)."""

    CONFIG = PANEL_CONF

    def names(self, *args: Any, **kw: Any) -> List[str]:
        return [x.name for x in self.e.enumerate(*args, **kw)]

    def test_enumerate_in_name_order(self) -> None:
        e = self.e
        e.decide(sasl_username="a@a.test", recipients=2, time=T)
        self.assertEqual(self.names(obspam.MAILBOX, now=T), ["a@a.test", "b@b.test", "c@a.test", "y@z.test"])
        self.assertEqual(self.names(obspam.DOMAIN, now=T), ["a.test", "b.test", "z.test"])
        self.assertEqual(self.names(obspam.SUBSCRIPTION, now=T), ["acme", "spare", "zeta"])
        got = list(e.enumerate(obspam.MAILBOX, now=T))
        self.assertEqual(got[0], obspam.Entry(obspam.MAILBOX, "a@a.test", e.stats(obspam.MAILBOX, "a@a.test", T)))
        self.assertEqual(got[0].stats.count, 2)
        self.assertEqual(got[0].stats.limit, 5)
        self.assertIs(type(got[0].kind), obspam.Kind)
        self.assertEqual([x.stats.count for x in got], [2, 0, 0, 0])

    def test_enumerate_under_a_parent_and_active(self) -> None:
        e = self.e
        e.decide(sasl_username="c@a.test", time=T)
        self.assertEqual(self.names(obspam.MAILBOX, parent="A.test"), ["a@a.test", "c@a.test"])
        self.assertEqual(self.names(obspam.MAILBOX, parent="acme"), ["a@a.test", "b@b.test", "c@a.test"])
        self.assertEqual(self.names(obspam.DOMAIN, parent="basic"), ["a.test", "b.test"])
        self.assertEqual(self.names(obspam.MAILBOX, active=True, now=T), ["c@a.test"])
        self.assertEqual(self.names(obspam.SUBSCRIPTION, active=True, now=T), ["acme"])
        self.assertEqual(self.names(obspam.DOMAIN, parent="zeta", active=True, now=T), [])

    def test_enumerate_pages(self) -> None:
        e = self.e
        want = ["a@a.test", "b@b.test", "c@a.test", "y@z.test"]
        for page in (1, 2, 3, 4, 5, 1000):
            self.assertEqual(self.names(obspam.MAILBOX, page=page), want, page)
            self.assertEqual(self.names(obspam.MAILBOX, page=page, limit=3), want[:3], page)
            self.assertEqual(self.names(obspam.MAILBOX, page=page, after="b@b.test"), want[2:], page)
            self.assertEqual(self.names(obspam.MAILBOX, page=page, after="b@b.test", limit=1), want[2:3], page)
        self.assertEqual(self.names(obspam.MAILBOX, after="y@z.test"), [])
        self.assertEqual(self.names(obspam.MAILBOX, after="c"), ["c@a.test", "y@z.test"])  # any string
        # A panel's pages: 50 at a time, the next starting after the last.
        for i in range(120):
            e.add(obspam.MAILBOX, f"m{i:03d}@b.test")
        pages: List[List[str]] = []
        last: Optional[str] = None
        while True:
            got = self.names(obspam.MAILBOX, parent="b.test", after=last, limit=50)
            if not got:
                break
            pages.append(got)
            last = got[-1]
        self.assertEqual([len(p) for p in pages], [50, 50, 21])
        self.assertEqual(sum(pages, []), ["b@b.test"] + [f"m{i:03d}@b.test" for i in range(120)])
        # Objects are fetched a page at a time, between which the engine may change.
        it = e.enumerate(obspam.MAILBOX, parent="b.test", page=2)
        self.assertEqual([next(it).name, next(it).name], ["b@b.test", "m000@b.test"])
        e.remove(obspam.MAILBOX, "m001@b.test")
        e.add(obspam.MAILBOX, "m0015@b.test")  # sorts after m000@ and before m002@
        self.assertEqual([next(it).name, next(it).name], ["m0015@b.test", "m002@b.test"])

    def test_enumerate_while_deciding(self) -> None:
        """Pages are fetched while other threads decide: every object is
        seen once, in order, and the decisions all count."""
        e = self.e
        names = sorted(f"u{i:04d}@b.test" for i in range(600))
        for name in names:
            e.add(obspam.MAILBOX, name)
        stop = threading.Event()
        decided = [0, 0]
        accepted = [0, 0]

        def decide(k: int) -> None:
            while not stop.is_set():
                v = e.decide(sasl_username=names[(decided[k] * 7 + k) % len(names)], time=T)
                decided[k] += 1
                accepted[k] += v.action == obspam.ACCEPT

        threads = [threading.Thread(target=decide, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        try:
            for _ in range(5):
                got = self.names(obspam.MAILBOX, parent="b.test", page=7)
                self.assertEqual(got, ["b@b.test"] + names)
        finally:
            stop.set()
            for t in threads:
                t.join()
        # each mailbox takes its limit of 5 at most, and the domain what they took
        self.assertGreater(sum(decided), 0)
        self.assertEqual(e.stats(obspam.DOMAIN, "b.test", T).count, sum(accepted))
        self.assertLessEqual(sum(accepted), 5 * len(names))

    def test_enumerate_errors_at_the_call(self) -> None:
        e = self.e
        self.assertError(obspam.ENOTFOUND, e.enumerate, obspam.MAILBOX, parent="nowhere.test")
        self.assertError(obspam.EINVAL, e.enumerate, obspam.PLAN)
        for kw, text in [({"page": 0}, "enumerate: page must be 1 or more, not 0"),
                         ({"limit": -1}, "enumerate: limit must be 0 (no bound) or more, not -1")]:
            with self.assertRaises(obspam.Error) as cm:
                e.enumerate(obspam.MAILBOX, **kw)
            self.assertEqual((cm.exception.code, str(cm.exception)), (obspam.EINVAL, text))
        self.assertError(obspam.EINVAL, e.enumerate, obspam.MAILBOX, after="a\0b")

    def test_top(self) -> None:
        e = self.e
        e.decide(sasl_username="a@a.test", recipients=4, time=T)
        e.decide(sasl_username="a@a.test", recipients=4, time=T + 1)  # refused: 5 per hour
        e.decide(sasl_username="y@z.test", recipients=3, time=T + 2)
        e.decide(flags=obspam.MSG_SCRIPT, uid=1002, script="/srv/z/send.php", recipients=6, time=T + 3)
        row = obspam.ReportRow
        self.assertEqual(e.top(T0, T0 + 3600), [
            row(obspam.SUBSCRIPTION, "zeta", 9, 0, 0, 0, 0, 0),
            row(obspam.SCRIPT, "/srv/z/send.php", 6, 0, 0, 0, 0, 0, "zeta", 1002),
            row(obspam.SUBSCRIPTION, "acme", 4, 1, 0, 0, 0, 0),
            row(obspam.DOMAIN, "a.test", 4, 1, 0, 0, 0, 0),
            row(obspam.MAILBOX, "a@a.test", 4, 1, T + 1, T + 1, 1, 3600),
            row(obspam.DOMAIN, "z.test", 3, 0, 0, 0, 0, 0),
            row(obspam.MAILBOX, "y@z.test", 3, 0, 0, 0, 0, 0),
        ])
        self.assertEqual([(r.name, r.sent) for r in e.top(T0, T0 + 3600, n=2, kind=obspam.MAILBOX)],
                         [("a@a.test", 4), ("y@z.test", 3)])
        self.assertEqual([r.name for r in e.top(T0, T0 + 3600, 1)], ["zeta"])
        self.assertEqual(e.top(T0 + 3600, T0 + 7200), [])
        self.assertError(obspam.EINVAL, e.top, n=-1)
        self.assertError(obspam.EINVAL, e.top, kind=obspam.PLAN)

    def test_reset(self) -> None:
        e = self.e
        for i in range(5):
            e.decide(sasl_username="a@a.test", time=T + i)
        self.assertEqual(e.decide(sasl_username="a@a.test", time=T + 10).action, obspam.REFUSE)
        e.reset(obspam.MAILBOX, "A@a.test", T + 20)
        s = e.stats(obspam.MAILBOX, "a@a.test", T + 20)
        self.assertEqual((s.count, s.count_minute, s.count_day, s.sending, s.last_reset), (0, 0, 0, True, T + 20))
        self.assertEqual(e.stats(obspam.DOMAIN, "a.test", T + 20).count, 5)  # only that object
        self.assertEqual(e.stats(obspam.DOMAIN, "a.test", T + 20).last_reset, 0)
        self.assertEqual(e.decide(sasl_username="a@a.test", time=T + 21).action, obspam.ACCEPT)
        # the history keeps what happened
        self.assertEqual(e.history(obspam.MAILBOX, "a@a.test"), [obspam.HistoryEntry(T0, 6, 1)])
        self.assertError(obspam.ENOTFOUND, e.reset, obspam.MAILBOX, "nobody@a.test")
        self.assertError(obspam.EINVAL, e.reset, obspam.PLAN, "basic")

    def test_unknown_uid_subscription(self) -> None:
        e = self.e
        script = {"flags": obspam.MSG_SCRIPT, "uid": 4242, "script": "/tmp/x.pl", "time": T}
        self.assertEqual(e.decide(**script), verdict(obspam.UNKNOWN, -1, "", 0, 0, 0))
        e.set_unknown_uid_subscription("Spare")
        v = e.decide(**script)
        self.assertEqual((v.action, v.kind, v.object), (obspam.ACCEPT, obspam.SUBSCRIPTION, "spare"))
        self.assertEqual(e.stats(obspam.SUBSCRIPTION, "spare", T).count, 1)
        rows = [r for r in e.report(T0, T0 + 3600) if r.kind == obspam.SCRIPT]
        self.assertEqual([(r.name, r.subscription, r.uid) for r in rows], [("/tmp/x.pl", "spare", 4242)])
        e.set_unknown_uid_subscription(None)
        self.assertEqual(e.decide(**script).action, obspam.UNKNOWN)
        self.assertError(obspam.ENOTFOUND, e.set_unknown_uid_subscription, "nobody")


class TestStatistics(EngineCase):
    def setUp(self) -> None:
        super().setUp()
        e = self.e
        e.decide(sasl_username="info@example.com", recipients=3, time=T)
        e.decide(sasl_username="info@example.com", recipients=3, time=T + 60)  # refused
        e.decide(sasl_username="sales@example.com", recipients=2, time=T + 3600)
        e.decide(sasl_username="info@example.com", recipients=9, time=T + 3700)  # refused
        e.decide(flags=obspam.MSG_SCRIPT, uid=10001, script="/srv/www/Send.php", recipients=4, time=T + 3700)
        e.decide(flags=obspam.MSG_SCRIPT, uid=10001, script="/srv/www/other.php", time=T + 3701)

    def test_stats(self) -> None:
        e = self.e
        self.assertEqual(
            e.stats(obspam.MAILBOX, "info@example.com", T + 3700),
            stats(True, 5, 0, 1, 2, T + 3700, exceeded=1, exceeded_total=2, count_day=3),
        )
        # refused on its way through, never over its own limit
        self.assertEqual(
            e.stats(obspam.SUBSCRIPTION, "acme", T + 3700),
            # the script's 4 and 1 are within the minute (the 1 at T + 3701 in
            # the same 5-second bucket as T + 3700)
            stats(True, 1000, 7, 1, 2, T + 3700, count_minute=5, count_day=10),
        )
        e.decide(sasl_username="info@example.com", recipients=5, time=T + 3700)
        self.assertEqual(
            e.stats(obspam.MAILBOX, "info@example.com", T + 3700),
            stats(False, 5, 5, 1, 2, T + 3700, exceeded=1, exceeded_total=2, count_minute=5, count_day=8,
                  blocked_kind=obspam.MAILBOX, blocked_by="info@example.com"),
        )
        # the mailbox's ancestor blocks it: named by the mailbox's status
        e.set_limit(obspam.SUBSCRIPTION, "acme", obspam.SUBSCRIPTION, 12)
        s = e.stats(obspam.MAILBOX, "sales@example.com", T + 3700)
        self.assertEqual((s.sending, s.blocked_kind, s.blocked_by), (False, obspam.SUBSCRIPTION, "acme"))
        self.assertIs(type(s.blocked_kind), obspam.Kind)
        for kind, name, code in [
            (obspam.MAILBOX, "nobody@example.com", obspam.ENOTFOUND),
            (obspam.PLAN, "basic", obspam.EINVAL),
        ]:
            self.assertError(code, e.stats, kind, name)

    def test_history(self) -> None:
        e = self.e
        self.assertEqual(
            e.history(obspam.MAILBOX, "info@example.com"),
            [obspam.HistoryEntry(T0, 3, 1), obspam.HistoryEntry(T0 + 3600, 0, 1)],
        )
        self.assertEqual(
            e.history(obspam.SUBSCRIPTION, "acme", T0 + 3600, T0 + 7200),
            [obspam.HistoryEntry(T0 + 3600, 7, 1)],
        )
        self.assertEqual(e.history(obspam.SUBSCRIPTION, "acme", 0, T0), [])
        self.assertEqual(e.history(obspam.SCRIPT, "/srv/www/Send.php"), [obspam.HistoryEntry(T0 + 3600, 4, 0)])
        for kind, name, code in [
            (obspam.MAILBOX, "nobody@example.com", obspam.ENOTFOUND),
            (obspam.SCRIPT, "/never/seen.php", obspam.ENOTFOUND),
            (obspam.PLAN, "basic", obspam.EINVAL),
        ]:
            self.assertError(code, e.history, kind, name)

    def test_report(self) -> None:
        rows = self.e.report()
        self.assertEqual(
            rows,
            [
                # only the mailbox went over its own limit: the subscription
                # and the domain refused it on its way, and are not reported;
                # its last attempt went over its hourly limit
                obspam.ReportRow(obspam.MAILBOX, "info@example.com", 3, 2, T + 60, T + 3700, 2, 3600),
                # a script's row: the subscription and uid behind it (1.3)
                obspam.ReportRow(obspam.SCRIPT, "/srv/www/Send.php", 4, 0, 0, 0, 0, 0, "acme", 10001),
                obspam.ReportRow(obspam.SCRIPT, "/srv/www/other.php", 1, 0, 0, 0, 0, 0, "acme", 10001),
            ],
        )
        self.assertIs(type(rows[0].window), obspam.Window)
        self.assertEqual(
            self.e.report(T0 + 3600, T0 + 7200)[:1],
            [obspam.ReportRow(obspam.MAILBOX, "info@example.com", 0, 1, T + 3700, T + 3700, 1, 3600)],
        )
        self.assertEqual(self.e.report(0, T0), [])


class TestNotify(EngineCase):
    def setUp(self) -> None:
        super().setUp()
        self.got: List[obspam.Notice] = []

    def refuse(self, t: int = T) -> None:
        self.e.decide(sasl_username="info@example.com", recipients=4, time=t)
        v = self.e.decide(sasl_username="info@example.com", recipients=4, time=t + 5)
        self.assertEqual(v.action, obspam.REFUSE)

    def test_flush_delivers_notices(self) -> None:
        self.e.set_notify(self.got.append)
        self.refuse()
        self.e.notify_flush(T0 + 3599)
        self.assertEqual(self.got, [])
        self.e.notify_flush(T0 + 3600)
        # only about the mailbox, the one over its own limit
        expected = [
            obspam.Notice(obspam.MAILBOX, "info@example.com", "acme", "ops@acme.example", 5, 4, 1, T + 5, T + 5,
                          T0, T0 + 3600, 1, 3600),
        ]
        self.assertEqual(self.got, expected)
        self.e.notify_flush(T0 + 7200)
        self.assertEqual(len(self.got), 1)  # nothing twice

    def test_contact_none(self) -> None:
        self.e.set_contact("acme", None)
        self.e.set_notify(self.got.append)
        self.refuse()
        self.e.notify_flush(T0 + 3600)
        self.assertEqual([(n.subscription, n.contact) for n in self.got], [("acme", None)])

    def test_immediate(self) -> None:
        self.e.set_option(obspam.OPT_NOTIFY_IMMEDIATE, 1)
        self.e.set_notify(self.got.append)
        self.refuse()
        self.assertEqual(
            [(n.kind, n.name, n.refused, n.sent, n.first_refused, n.exceeded) for n in self.got],
            [(obspam.MAILBOX, "info@example.com", 1, 4, T + 5, 1)],
        )

    def test_none_drops_notices(self) -> None:
        self.e.set_notify(self.got.append)
        self.e.set_notify(None)
        self.refuse()
        self.e.notify_flush(T0 + 3600)
        self.e.set_notify(self.got.append)
        self.e.notify_flush(T0 + 7200)
        self.assertEqual(self.got, [])

    def test_callback_survives_garbage_collection(self) -> None:
        got = self.got
        self.e.set_notify(lambda n: got.append(n))  # the only reference
        gc.collect()
        self.refuse()
        self.e.notify_flush(T0 + 3600)
        self.assertEqual(len(got), 1)

    def test_exception_is_reraised_after_every_notice(self) -> None:
        calls: List[str] = []

        def bad(n: obspam.Notice) -> None:
            calls.append(n.name)
            raise ValueError(f"cannot mail {n.name}")

        self.e.set_notify(bad)
        self.refuse()
        with self.assertRaises(ValueError) as cm:
            self.e.notify_flush(T0 + 3600)
        self.assertEqual(str(cm.exception), "cannot mail info@example.com")
        self.assertEqual(calls, ["info@example.com"])
        self.e.notify_flush(T0 + 3600)  # the notices count as delivered
        self.assertEqual(len(calls), 1)

    def test_exception_from_decide_after_the_decision(self) -> None:
        def bad(n: obspam.Notice) -> None:
            raise KeyError(n.name)

        self.e.set_option(obspam.OPT_NOTIFY_IMMEDIATE, 1)
        self.e.set_notify(bad)
        self.e.decide(sasl_username="info@example.com", recipients=4, time=T)
        with self.assertRaises(KeyError):
            self.e.decide(sasl_username="info@example.com", recipients=4, time=T + 5)
        self.assertEqual(self.e.stats(obspam.MAILBOX, "info@example.com", T + 5).refused, 1)
        self.e.set_notify(None)
        self.assertEqual(self.e.decide(sasl_username="sales@example.com", time=T + 6).action, obspam.ACCEPT)

    def test_callback_may_not_use_its_engine(self) -> None:
        errors: List[obspam.Error] = []

        def reentrant(n: obspam.Notice) -> None:
            try:
                self.e.stats(n.kind, n.name)
            except obspam.Error as exc:
                errors.append(exc)

        self.e.set_notify(reentrant)
        self.refuse()
        self.e.notify_flush(T0 + 3600)
        self.assertEqual(len(errors), 1)
        self.assertEqual(errors[0].code, obspam.EINVAL)
        self.assertEqual(str(errors[0]), "stats: an engine cannot be used from its own callback")

    def test_callback_may_use_another_engine(self) -> None:
        other = new_engine()
        limits: List[int] = []
        self.e.set_notify(lambda n: limits.append(other.effective_limit(n.kind, n.name)))
        self.refuse()
        self.e.notify_flush(T0 + 3600)
        other.close()
        self.assertEqual(limits, [5])

    def test_not_callable(self) -> None:
        with self.assertRaises(TypeError):
            self.e.set_notify(42)  # type: ignore[arg-type]

    def test_flush_errors(self) -> None:
        self.assertError(obspam.EINVAL, self.e.notify_flush, -1)
        self.e.notify_flush()  # 0: now


class TestSnapshot(Case):
    def test_round_trip(self) -> None:
        path = os.path.join(_tmp, "state.bin")
        with new_engine() as a:
            a.decide(sasl_username="info@example.com", recipients=4, time=T)
            a.decide(sasl_username="info@example.com", recipients=4, time=T + 5)
            a.decide(flags=obspam.MSG_SCRIPT, uid=10001, script="/srv/a.php", time=T + 6)
            a.save_state(path)
            before = (a.stats(obspam.MAILBOX, "info@example.com", T + 10),
                      a.stats(obspam.SUBSCRIPTION, "acme", T + 10), a.report(),
                      a.history(obspam.SCRIPT, "/srv/a.php"))
        with new_engine() as b:
            self.assertEqual(b.stats(obspam.MAILBOX, "info@example.com", T + 10).count, 0)
            b.load_state(path)
            after = (b.stats(obspam.MAILBOX, "info@example.com", T + 10),
                     b.stats(obspam.SUBSCRIPTION, "acme", T + 10), b.report(),
                     b.history(obspam.SCRIPT, "/srv/a.php"))
            self.assertEqual(after, before)
            self.assertEqual(after[0], stats(True, 5, 4, 1, 1, T + 5, exceeded=1, exceeded_total=1, count_minute=4,
                                             count_day=4))
            # the counters go on where they were
            v = b.decide(sasl_username="info@example.com", recipients=2, time=T + 11)
            self.assertEqual(v, verdict(obspam.REFUSE, obspam.MAILBOX, "info@example.com", 5, 4, 3559))
            b.save_state(path.encode())  # bytes paths work too

    def test_bad_files(self) -> None:
        good = os.path.join(_tmp, "good.bin")
        with new_engine() as e:
            e.decide(sasl_username="info@example.com", recipients=2, time=T)
            e.save_state(good)
            with open(good, "rb") as f:
                data = f.read()
            cases = {
                "empty.bin": (b"", obspam.ECORRUPT),
                "truncated.bin": (data[:-3], obspam.ECORRUPT),
                "flipped.bin": (data[:-1] + bytes([data[-1] ^ 1]), obspam.ECORRUPT),
                "foreign.bin": (b"NOTOBSPAM" * 8, obspam.ECORRUPT),
                # the format version (bytes 8..11) one above the library's
                "newer.bin": (data[:8] + (int.from_bytes(data[8:12], "little") + 1).to_bytes(4, "little")
                              + data[12:], obspam.EVERSION),
            }
            for name, (content, code) in cases.items():
                path = os.path.join(_tmp, name)
                with open(path, "wb") as f:
                    f.write(content)
                with self.assertRaises(obspam.Error, msg=name) as cm:
                    e.load_state(path)
                self.assertEqual(cm.exception.code, code, name)
                self.assertEqual(str(cm.exception), e.last_error)
            self.assertError(obspam.EIO, e.load_state, os.path.join(_tmp, "absent.bin"))
            self.assertError(obspam.EIO, e.save_state, os.path.join(_tmp, "no", "such", "dir", "s.bin"))
            self.assertEqual(e.stats(obspam.MAILBOX, "info@example.com", T).count, 2)  # unchanged


class TestJournal(Case):
    def test_replayed_after_a_crash(self) -> None:
        d = tempfile.mkdtemp(dir=_tmp)
        state = os.path.join(d, "state")
        a = new_engine()
        self.assertEqual(a.open_journal(state), {"replayed": 0, "ignored": 0})
        a.decide(sasl_username="info@example.com", recipients=3, time=T)
        a.save_state(state)
        a.decide(sasl_username="info@example.com", recipients=1, time=T + 1)
        a.decide(sasl_username="info@example.com", recipients=4, time=T + 2)  # refused
        a.flush_journal()
        # a is never closed: as if the process had been killed
        with new_engine() as b:
            b.load_state(state)
            self.assertEqual(b.open_journal(state, fsync=True), {"replayed": 2, "ignored": 0})
            self.assertEqual(b.stats(obspam.MAILBOX, "info@example.com", T + 3),
                             a.stats(obspam.MAILBOX, "info@example.com", T + 3))
            self.assertEqual(b.stats(obspam.MAILBOX, "info@example.com", T + 3).count, 4)
            with self.assertRaises(obspam.Error) as cm:
                b.open_journal(state)
            self.assertEqual(cm.exception.code, obspam.EINVAL)
            self.assertEqual(str(cm.exception), "journal_open: a journal is open already")
            b.close_journal()
            b.close_journal()  # none open: nothing to do
            b.flush_journal()
        a.close()
        with open(os.path.join(d, "x.journal"), "wb") as f:
            f.write(b"not a journal, whatever it is, 32+ bytes")
        with new_engine() as c:
            self.assertError(obspam.ECORRUPT, c.open_journal, os.path.join(d, "x"))
        self.assertEqual(obspam.RECIPIENTS_MAX, 2**31)


class TestThreads(Case):
    def test_concurrent_decisions_take_exactly_the_limit(self) -> None:
        with new_engine() as e:
            e.set_limit(obspam.MAILBOX, "sales@example.com", obspam.MAILBOX, 1000)
            e.set_limit(obspam.DOMAIN, "example.com", obspam.DOMAIN, obspam.UNLIMITED)
            results: List[int] = []
            lock = threading.Lock()

            def work() -> None:
                mine = [int(e.decide(sasl_username="sales@example.com", time=T).action) for _ in range(600)]
                with lock:
                    results.extend(mine)

            threads = [threading.Thread(target=work) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(results.count(obspam.ACCEPT), 1000)
            self.assertEqual(results.count(obspam.REFUSE), 1400)
            self.assertEqual(e.stats(obspam.MAILBOX, "sales@example.com", T).count, 1000)

    def test_close_waits_for_calls_in_progress(self) -> None:
        e = new_engine()
        started = threading.Event()
        outcomes: List[str] = []

        def work() -> None:
            started.set()
            try:
                while True:
                    e.decide(sasl_username="sales@example.com", time=T)
                    e.report()
            except obspam.Error as exc:
                outcomes.append(str(exc))

        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        started.wait()
        e.close()
        for t in threads:
            t.join()
        self.assertEqual(len(outcomes), 3)
        for text in outcomes:
            self.assertIn(text, ("decide: the engine is closed", "report: the engine is closed"))


if __name__ == "__main__":
    unittest.main()
