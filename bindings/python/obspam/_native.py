# SPDX-License-Identifier: MIT
"""The ctypes view of libobspam's public ABI (``include/obspam.h``, version 1).

Nothing here is public: :mod:`obspam` wraps it. This module declares the
structures with exactly the header's field order and types, gives every
exported function its prototype, and finds and checks the shared library.

The structures and prototypes must follow ``include/obspam.h`` to the letter;
``tests/bindings/test_python.py`` compares the sizes and offsets below with
those the C compiler gives.
"""

from __future__ import annotations

import ctypes
import os
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char,
    c_char_p,
    c_int,
    c_int32,
    c_int64,
    c_size_t,
    c_uint,
    c_uint32,
    c_void_p,
)
from typing import Dict, Optional, Tuple, Union

from ._errors import LibraryError

#: The major version this binding is written for. A library with another
#: major version has another ABI and is refused.
SUPPORTED_MAJOR = 1
#: The oldest minor version of that major that has every function and
#: structure field this binding uses (the 1.3 additions).
SUPPORTED_MINOR = 3

#: The environment variable that names the library to load.
LIBRARY_ENV = "OBSPAM_LIBRARY"

#: The names tried, in order, when OBSPAM_LIBRARY is not set. The dynamic
#: loader searches them as it does for any program (LD_LIBRARY_PATH, the
#: ld.so cache, the default directories).
DEFAULT_NAMES = ("libobspam.so.1", "libobspam.1.dylib")

# Error codes the binding itself uses (values of include/obspam.h).
_EINVAL = -2
_EIO = -6
_EVERSION = -8

StrPath = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


# ---- Structures (field order and types are the ABI) ----------------------


class Message(Structure):
    """``obspam_message``: one outgoing message."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("flags", c_uint32),
        ("sasl_username", c_char_p),
        ("sender", c_char_p),
        ("client_address", c_char_p),
        ("recipients", c_uint32),
        ("uid", c_int64),
        ("domain_hint", c_char_p),
        ("script", c_char_p),
        ("time", c_int64),
    ]


class Verdict(Structure):
    """``obspam_verdict``: the answer to one message."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("action", c_int32),
        ("kind", c_int32),
        ("limit", c_int64),
        ("count", c_int64),
        ("retry_after", c_int64),
        ("object", c_char * 328),
        # 1.3
        ("window", c_int64),
    ]


class Stats(Structure):
    """``obspam_stats``: live status of one object."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("sending", c_int32),
        ("limit", c_int64),
        ("count", c_int64),
        ("refused", c_int64),
        ("refused_total", c_int64),
        ("last_refused", c_int64),
        # 1.3
        ("exceeded", c_int64),
        ("exceeded_total", c_int64),
        ("limit_minute", c_int64),
        ("count_minute", c_int64),
        ("limit_day", c_int64),
        ("count_day", c_int64),
        ("blocked_kind", c_int32),
        ("disabled", c_int32),
        ("blocked_by", c_char * 328),
        # 1.3: panels
        ("last_reset", c_int64),
        # 1.4
        ("forwarded", c_int64),
        ("list_deliveries", c_int64),
    ]


class ReportRow(Structure):
    """``obspam_report_row``: one row of a report."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("kind", c_int32),
        ("name", c_char_p),
        ("sent", c_int64),
        ("refused", c_int64),
        ("first_refused", c_int64),
        ("last_refused", c_int64),
        # 1.3
        ("exceeded", c_int64),
        ("window", c_int64),
        # 1.3: panels
        ("subscription", c_char_p),
        ("uid", c_int64),
        # 1.4
        ("forwarded", c_int64),
        ("list_deliveries", c_int64),
    ]


class Notice(Structure):
    """``obspam_notice``: an object was refused during a period."""

    _fields_ = [
        ("struct_size", c_uint32),
        ("kind", c_int32),
        ("name", c_char_p),
        ("subscription", c_char_p),
        ("contact", c_char_p),
        ("limit", c_int64),
        ("sent", c_int64),
        ("refused", c_int64),
        ("first_refused", c_int64),
        ("last_refused", c_int64),
        ("period_start", c_int64),
        ("period_end", c_int64),
        # 1.3
        ("exceeded", c_int64),
        ("window", c_int64),
    ]


# ---- Callback types -------------------------------------------------------

#: void (*)(int64_t hour_start, int64_t sent, int64_t refused, void *ud)
HISTORY_FN = CFUNCTYPE(None, c_int64, c_int64, c_int64, c_void_p)
#: void (*)(const obspam_report_row *row, void *ud)
REPORT_FN = CFUNCTYPE(None, POINTER(ReportRow), c_void_p)
#: void (*)(const obspam_notice *n, void *ud)
NOTIFY_FN = CFUNCTYPE(None, POINTER(Notice), c_void_p)
#: int (*)(int kind, const char *name, const obspam_stats *st, void *ud)
ENUM_FN = CFUNCTYPE(c_int, c_int, c_char_p, POINTER(Stats), c_void_p)

_E = c_void_p  # obspam_engine *, opaque
_I64P = POINTER(c_int64)

#: name: (return type, argument types), in the order of include/obspam.h.
PROTOTYPES = {
    "obspam_version": (c_uint, []),
    "obspam_version_string": (c_char_p, []),
    "obspam_strerror": (c_char_p, [c_int]),
    "obspam_kind_name": (c_char_p, [c_int]),
    "obspam_engine_new": (c_int, [POINTER(c_void_p)]),
    "obspam_engine_free": (None, [_E]),
    "obspam_engine_errmsg": (c_char_p, [_E]),
    "obspam_engine_errmsg_r": (c_int, [_E, c_char_p, c_size_t]),
    "obspam_set_option": (c_int, [_E, c_int, c_int64]),
    "obspam_get_option": (c_int, [_E, c_int, _I64P]),
    "obspam_add": (c_int, [_E, c_int, c_char_p, c_char_p]),
    "obspam_remove": (c_int, [_E, c_int, c_char_p]),
    "obspam_set_limit": (c_int, [_E, c_int, c_char_p, c_int, c_int64]),
    "obspam_effective_limit": (c_int, [_E, c_int, c_char_p, _I64P]),
    "obspam_set_window_limit": (c_int, [_E, c_int, c_char_p, c_int, c_int64, c_int64]),
    "obspam_effective_window_limit": (c_int, [_E, c_int, c_char_p, c_int64, _I64P]),
    "obspam_set_max_recipients": (c_int, [_E, c_int, c_char_p, c_int64]),
    "obspam_effective_max_recipients": (c_int, [_E, c_int, c_char_p, _I64P]),
    "obspam_set_uid": (c_int, [_E, c_char_p, c_int64]),
    "obspam_set_scripts_allowed": (c_int, [_E, c_int, c_char_p, c_int]),
    "obspam_set_contact": (c_int, [_E, c_char_p, c_char_p]),
    "obspam_whitelist_add": (c_int, [_E, c_char_p]),
    "obspam_whitelist_remove": (c_int, [_E, c_char_p]),
    "obspam_local_network_add": (c_int, [_E, c_char_p]),
    "obspam_local_network_remove": (c_int, [_E, c_char_p]),
    "obspam_forward_add": (c_int, [_E, c_char_p, c_int]),
    "obspam_forward_remove": (c_int, [_E, c_char_p]),
    "obspam_forward_lookup": (
        c_int,
        [_E, c_char_p, POINTER(c_uint32), c_char_p, c_size_t],
    ),
    "obspam_mailing_list_add": (c_int, [_E, c_char_p]),
    "obspam_mailing_list_remove": (c_int, [_E, c_char_p]),
    "obspam_mailing_list_match": (c_int, [_E, c_char_p, c_char_p, POINTER(c_int)]),
    "obspam_load_config": (c_int, [_E, c_char_p]),
    "obspam_load_config_string": (c_int, [_E, c_char_p]),
    "obspam_decide": (c_int, [_E, POINTER(Message), POINTER(Verdict)]),
    "obspam_check": (c_int, [_E, POINTER(Message), POINTER(Verdict)]),
    "obspam_decide_start": (
        c_int,
        [
            _E,
            POINTER(POINTER(Message)),
            POINTER(POINTER(Verdict)),
            POINTER(c_int),
            POINTER(c_uint32),
            c_size_t,
            c_void_p,
            c_void_p,
        ],
    ),
    "obspam_decide_batch": (
        c_int,
        [
            _E,
            POINTER(POINTER(Message)),
            POINTER(POINTER(Verdict)),
            POINTER(c_int),
            c_size_t,
        ],
    ),
    "obspam_stats_get": (c_int, [_E, c_int, c_char_p, c_int64, POINTER(Stats)]),
    "obspam_history": (
        c_int,
        [_E, c_int, c_char_p, c_int64, c_int64, HISTORY_FN, c_void_p],
    ),
    "obspam_report": (c_int, [_E, c_int64, c_int64, REPORT_FN, c_void_p]),
    "obspam_enumerate": (
        c_int,
        [_E, c_int, c_char_p, c_uint32, c_char_p, c_size_t, c_int64, ENUM_FN, c_void_p],
    ),
    "obspam_top": (c_int, [_E, c_int, c_int64, c_int64, c_size_t, REPORT_FN, c_void_p]),
    "obspam_reset": (c_int, [_E, c_int, c_char_p, c_int64]),
    "obspam_set_unknown_uid_subscription": (c_int, [_E, c_char_p]),
    "obspam_set_notify": (c_int, [_E, NOTIFY_FN, c_void_p]),
    "obspam_notify_flush": (c_int, [_E, c_int64]),
    "obspam_state_save": (c_int, [_E, c_char_p]),
    "obspam_state_load": (c_int, [_E, c_char_p]),
    "obspam_set_store": (c_int, [_E, c_char_p, c_char_p]),
    "obspam_store_status": (c_int, [_E, _I64P, _I64P, _I64P, _I64P]),
    "obspam_store_backlog": (c_int, [_E, _I64P, _I64P, _I64P, _I64P, _I64P]),
    "obspam_implicit_status": (c_int, [_E, _I64P, _I64P, _I64P]),
    "obspam_journal_open": (c_int, [_E, c_char_p, c_uint, _I64P, _I64P]),
    "obspam_journal_flush": (c_int, [_E]),
    "obspam_journal_close": (c_int, [_E]),
}


_cache: Dict[str, ctypes.CDLL] = {}
_cache_lock = threading.Lock()


def _open(name: str) -> ctypes.CDLL:
    """Loads one library file and checks its version, then its symbols."""
    lib = ctypes.CDLL(name)
    # The version first: a library of another major version is refused
    # for that reason, whatever functions it has.
    try:
        get_version = lib.obspam_version
    except AttributeError:
        raise LibraryError(
            _EVERSION, f"{name}: no obspam_version(): this is not libobspam"
        ) from None
    get_version.restype, get_version.argtypes = c_uint, []
    version = get_version()
    if version >> 16 != SUPPORTED_MAJOR:
        try:
            get_text = lib.obspam_version_string
            get_text.restype, get_text.argtypes = c_char_p, []
            text = (get_text() or b"?").decode("ascii", "replace")
        except AttributeError:
            text = f"{version >> 16}.{(version >> 8) & 0xFF}.{version & 0xFF}"
        raise LibraryError(
            _EVERSION,
            f"{name}: libobspam {text} has major version {version >> 16}; "
            f"this binding needs {SUPPORTED_MAJOR}.x",
        )
    if (version >> 8) & 0xFF < SUPPORTED_MINOR:
        # Its structures are shorter and functions are missing: refused by
        # its version rather than by the first missing symbol.
        text = f"{version >> 16}.{(version >> 8) & 0xFF}.{version & 0xFF}"
        raise LibraryError(
            _EVERSION,
            f"{name}: libobspam {text} is older than "
            f"{SUPPORTED_MAJOR}.{SUPPORTED_MINOR}; this binding needs "
            f"{SUPPORTED_MAJOR}.{SUPPORTED_MINOR} or a later {SUPPORTED_MAJOR}.x",
        )
    for fname, (restype, argtypes) in PROTOTYPES.items():
        try:
            fn = getattr(lib, fname)
        except AttributeError:
            raise LibraryError(
                _EVERSION,
                f"{name}: the library does not export {fname}(); "
                f"it is not a complete libobspam {SUPPORTED_MAJOR}.x",
            ) from None
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


def load(path: Optional[StrPath] = None) -> ctypes.CDLL:
    """Returns the libobspam to use, loading and checking it the first time.

    ``path`` names the library file; when it is None, the environment
    variable ``OBSPAM_LIBRARY`` does; when that is unset or empty, the
    system's ``libobspam.so.1`` is used. A library that cannot be loaded, or
    whose version is not 1.3 or a later 1.x, raises
    :class:`obspam.LibraryError`.
    Each library is loaded once per process.
    """
    names: Tuple[str, ...]
    if path is not None:
        names = (os.fsdecode(path),)
        where = names[0]
    elif os.environ.get(LIBRARY_ENV):
        names = (os.environ[LIBRARY_ENV],)
        where = f"{LIBRARY_ENV}={names[0]}"
    else:
        names = DEFAULT_NAMES
        where = "the system's " + " or ".join(names)
    key = names[0]
    lib = _cache.get(key)
    if lib is not None:
        return lib
    with _cache_lock:
        lib = _cache.get(key)
        if lib is not None:
            return lib
        errors = []
        for name in names:
            try:
                lib = _open(name)
                break
            except OSError as exc:
                errors.append(str(exc))
        if lib is None:
            hint = (
                f" (set {LIBRARY_ENV} to the library's path, or install"
                " libobspam where the dynamic loader finds it)"
                if names is DEFAULT_NAMES
                else ""
            )
            raise LibraryError(
                _EIO,
                f"cannot load libobspam from {where}: {'; '.join(errors)}{hint}",
            )
        _cache[key] = lib
        return lib
