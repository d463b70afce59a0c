# SPDX-License-Identifier: MIT
"""Python binding of libobspam, outbound spam rate limiting for mail servers.

The binding calls the library's stable C ABI (``libobspam.so.1``) through
:mod:`ctypes`; nothing is compiled. Every ``obspam_*`` function has a method
or a function here::

    import obspam

    with obspam.Engine() as engine:
        engine.load_config("/etc/obspam.conf")
        verdict = engine.decide(sasl_username="info@example.com", recipients=3)
        if verdict.action == obspam.REFUSE:
            print(f"{verdict.object} is over its limit of {verdict.limit}, "
                  f"retry in {verdict.retry_after} s")

The library is the one named by the environment variable ``OBSPAM_LIBRARY``,
else the system's ``libobspam.so.1``; it is loaded when the first
:class:`Engine` is made (or by :func:`load_library`), and a library whose
version is not 1.3 or a later 1.x is refused with :class:`LibraryError`.

Every failure raises :class:`Error`, whose ``code`` is the library's
``OBSPAM_E*`` code and whose message is the engine's own
(``FILE:LINE: what is wrong`` for a configuration error).

An :class:`Engine` may be shared by threads, as the C engine may: calls run
without the GIL, at the same time. :meth:`Engine.close` waits for the calls
in progress.
"""

from __future__ import annotations

import ctypes
import enum
import inspect
import os
import threading
from collections.abc import Mapping as _Mapping
from ctypes import POINTER, byref, c_int, c_int64, c_void_p, pointer
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from . import _native
from ._errors import Error, LibraryError
from ._native import StrPath

__all__ = [
    "Error",
    "LibraryError",
    "Engine",
    "Verdict",
    "Stats",
    "HistoryEntry",
    "ReportRow",
    "Notice",
    "Entry",
    "ErrorCode",
    "Kind",
    "Action",
    "Option",
    "MessageFlag",
    "Window",
    "load_library",
    "version",
    "version_string",
    "strerror",
    "kind_name",
    # constants, with the values of include/obspam.h
    "VERSION_MAJOR",
    "NAME_MAX",
    "OK",
    "ENOMEM",
    "EINVAL",
    "ENOTFOUND",
    "EEXIST",
    "ESYNTAX",
    "EIO",
    "ECORRUPT",
    "EVERSION",
    "EUNAVAIL",
    "SERVER",
    "PLAN",
    "SUBSCRIPTION",
    "DOMAIN",
    "MAILBOX",
    "SCRIPT",
    "UNLIMITED",
    "INHERIT",
    "ACCEPT",
    "REFUSE",
    "EXEMPT",
    "UNKNOWN",
    "MSG_SCRIPT",
    "MSG_FORWARD_LOCAL",
    "MSG_FORWARD_REMOTE",
    "MSG_MAILING_LIST",
    "MSG_PROBE",
    "DECIDE_DRY",
    "OPT_ENABLED",
    "OPT_COUNT_UNIT",
    "OPT_ACTION",
    "OPT_COUNT_UNAUTHENTICATED",
    "OPT_COUNT_FORWARD_LOCAL",
    "OPT_COUNT_FORWARD_REMOTE",
    "OPT_COUNT_MAILING_LISTS",
    "OPT_RETENTION_HOURS",
    "OPT_NOTIFY_PERIOD",
    "OPT_NOTIFY_IMMEDIATE",
    "OPT_STORE_TIMEOUT_MS",
    "OPT_STORE_FALLBACK",
    "OPT_IMPLICIT_MAILBOXES",
    "WINDOW_MINUTE",
    "WINDOW_HOUR",
    "WINDOW_DAY",
    "RECIPIENTS_MAX",
    "JOURNAL_FSYNC",
    "ENUM_ACTIVE",
]

#: The version of this binding (it follows the library it was written for).
__version__ = "1.4.6"

# ---- Constants (values are part of the ABI) --------------------------------

#: The major version of libobspam this binding accepts.
VERSION_MAJOR = _native.SUPPORTED_MAJOR
#: The longest name (domain, mailbox, plan, subscription), in bytes.
NAME_MAX = 320
# Room for any engine message (obspam_engine_errmsg_r: shorter than 512).
_ERRMSG_SIZE = 512


class ErrorCode(enum.IntEnum):
    """``enum obspam_errno``: what :attr:`Error.code` holds."""

    OK = 0
    ENOMEM = -1
    EINVAL = -2
    ENOTFOUND = -3
    EEXIST = -4
    ESYNTAX = -5
    EIO = -6
    ECORRUPT = -7
    EVERSION = -8
    EUNAVAIL = -9  #: the shared counter store does not answer (1.1)


class Kind(enum.IntEnum):
    """``enum obspam_kind``: levels of the limit tree (SCRIPT: reports only)."""

    SERVER = 0
    PLAN = 1
    SUBSCRIPTION = 2
    DOMAIN = 3
    MAILBOX = 4
    SCRIPT = 5


class Action(enum.IntEnum):
    """``enum obspam_action``: what a verdict says."""

    ACCEPT = 0  #: counted and within every limit
    REFUSE = 1  #: over a limit, or scripts forbidden: nothing charged
    EXEMPT = 2  #: whitelisted client, or an exempt kind of mail
    UNKNOWN = 3  #: the sender belongs to no hosted object


class Option(enum.IntEnum):
    """``enum obspam_option``: for :meth:`Engine.set_option`."""

    ENABLED = 1  #: 0 or 1; default 1
    COUNT_UNIT = 2  #: 0 recipients (default), 1 messages
    ACTION = 3  #: 0 defer (default), 1 reject
    COUNT_UNAUTHENTICATED = 4  #: 0 never, 1 from anywhere, 2 local (default, 1.3)
    COUNT_FORWARD_LOCAL = 5  #: 0 or 1; default 0
    COUNT_FORWARD_REMOTE = 6  #: 0 or 1; default 1
    COUNT_MAILING_LISTS = 7  #: 0 or 1; default 0
    RETENTION_HOURS = 8  #: 1 .. 87600; default 720
    NOTIFY_PERIOD = 9  #: seconds, 60 .. 2678400; default 3600
    NOTIFY_IMMEDIATE = 10  #: 0 or 1; default 0
    STORE_TIMEOUT_MS = 11  #: 1 .. 60000; default 200 (1.1)
    STORE_FALLBACK = 12  #: 0 local (default), 1 defer (1.1)
    IMPLICIT_MAILBOXES = 13  #: 0 .. 100000000; default 100000 (1.3)


class Window(enum.IntEnum):
    """``OBSPAM_WINDOW_*``: the window of a limit, in seconds (1.3)."""

    MINUTE = 60
    HOUR = 3600
    DAY = 86400


class MessageFlag(enum.IntFlag):
    """``OBSPAM_MSG_*``: the ``flags`` of :meth:`Engine.decide`."""

    SCRIPT = 1  #: submitted by a local script (uid)
    FORWARD_LOCAL = 2  #: a forward to a local address
    FORWARD_REMOTE = 4  #: a forward to a remote address
    MAILING_LIST = 8  #: a mailing-list delivery
    PROBE = 16  #: charge nothing; a refusal is recorded (an early answer)


OK = ErrorCode.OK
ENOMEM = ErrorCode.ENOMEM
EINVAL = ErrorCode.EINVAL
ENOTFOUND = ErrorCode.ENOTFOUND
EEXIST = ErrorCode.EEXIST
ESYNTAX = ErrorCode.ESYNTAX
EIO = ErrorCode.EIO
ECORRUPT = ErrorCode.ECORRUPT
EVERSION = ErrorCode.EVERSION
EUNAVAIL = ErrorCode.EUNAVAIL

SERVER = Kind.SERVER
PLAN = Kind.PLAN
SUBSCRIPTION = Kind.SUBSCRIPTION
DOMAIN = Kind.DOMAIN
MAILBOX = Kind.MAILBOX
SCRIPT = Kind.SCRIPT

#: A limit value: no limit.
UNLIMITED = -1
#: A limit value: take it from the level above.
INHERIT = -2

ACCEPT = Action.ACCEPT
REFUSE = Action.REFUSE
EXEMPT = Action.EXEMPT
UNKNOWN = Action.UNKNOWN

MSG_SCRIPT = MessageFlag.SCRIPT
MSG_FORWARD_LOCAL = MessageFlag.FORWARD_LOCAL
MSG_FORWARD_REMOTE = MessageFlag.FORWARD_REMOTE
MSG_MAILING_LIST = MessageFlag.MAILING_LIST
MSG_PROBE = MessageFlag.PROBE
#: obspam_decide_start's per-message flag (1.4); the binding decides with
#: decide_batch() and check() instead.
DECIDE_DRY = 1

OPT_ENABLED = Option.ENABLED
OPT_COUNT_UNIT = Option.COUNT_UNIT
OPT_ACTION = Option.ACTION
OPT_COUNT_UNAUTHENTICATED = Option.COUNT_UNAUTHENTICATED
OPT_COUNT_FORWARD_LOCAL = Option.COUNT_FORWARD_LOCAL
OPT_COUNT_FORWARD_REMOTE = Option.COUNT_FORWARD_REMOTE
OPT_COUNT_MAILING_LISTS = Option.COUNT_MAILING_LISTS
OPT_RETENTION_HOURS = Option.RETENTION_HOURS
OPT_NOTIFY_PERIOD = Option.NOTIFY_PERIOD
OPT_NOTIFY_IMMEDIATE = Option.NOTIFY_IMMEDIATE
OPT_STORE_TIMEOUT_MS = Option.STORE_TIMEOUT_MS
OPT_STORE_FALLBACK = Option.STORE_FALLBACK
OPT_IMPLICIT_MAILBOXES = Option.IMPLICIT_MAILBOXES

WINDOW_MINUTE = Window.MINUTE
WINDOW_HOUR = Window.HOUR
WINDOW_DAY = Window.DAY

#: The most recipients one message counts for (1.3): more count as this many.
RECIPIENTS_MAX = 2**31
#: :meth:`Engine.open_journal` flag: each flush waits for the disk (1.3).
JOURNAL_FSYNC = 1
#: ``obspam_enumerate`` flag (1.3): only objects with activity, a count in
#: their day window or a refusal in the last 60 minutes
#: (:meth:`Engine.enumerate` sets it for ``active=True``).
ENUM_ACTIVE = 1

_INT64_MAX = 2**63 - 1

# ---- Result objects ---------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """The answer to one message (``obspam_verdict``).

    On REFUSE, ``kind`` and ``object`` name the refusing object, ``limit`` is
    its effective limit, ``count`` its count in the window before this
    message, and ``retry_after`` the seconds until the message would fit
    (-1: never). On ACCEPT they describe the lowest charged object and
    ``retry_after`` is 0. On EXEMPT and UNKNOWN (and ACCEPT while protection
    is disabled) ``kind`` is -1, ``object`` is "" and the numbers are 0.
    ``window`` (1.3) is the window named, in seconds (a :class:`Window`), and
    ``limit`` and ``count`` are that window's; on ACCEPT it is the hour. For
    the recipients cap ``window`` is 0, ``limit`` the cap and ``count`` the
    message's recipients; for forbidden scripts ``window`` is 0 too.

    ``status`` and ``error`` tell a message of :meth:`Engine.decide_batch`
    that could not be decided: its ``OBSPAM_E*`` code (an
    :class:`ErrorCode`) and why, while the other fields say nothing
    (``action`` and ``kind`` -1, ``object`` "", the numbers 0). A verdict
    that was given has ``status`` 0 (``OK``) and ``error`` "".
    """

    action: int
    kind: int
    object: str
    limit: int
    count: int
    retry_after: int
    window: int
    status: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        """Whether the message was decided (``status`` is 0)."""
        return self.status == 0


@dataclass(frozen=True)
class Stats:
    """Live status of a subscription, domain or mailbox (``obspam_stats``)."""

    sending: bool  #: False while it or an ancestor is blocked (blocked_kind != -1)
    limit: int  #: effective hourly limit (-1: unlimited)
    count: int  #: charged in the last 60 minutes
    refused: int  #: attempts refused in the last 60 minutes
    refused_total: int  #: attempts refused within the retention period
    last_refused: int  #: time of the last refusal; 0: never
    exceeded: int  #: attempts over its own limit in the last 60 minutes (1.3)
    exceeded_total: int  #: the same within the retention period (1.3)
    #: the effective limit of the minute window (-1: unlimited) (1.3)
    limit_minute: int
    #: charged in the last 60 seconds (twelve 5-second buckets) (1.3)
    count_minute: int
    #: the effective limit of the day window (-1: unlimited) (1.3)
    limit_day: int
    #: charged in the current clock hour and the 23 before it (1.3)
    count_day: int
    #: -1 while a one-recipient message through it would fit every window of
    #: it and of its ancestors; else the kind of the highest object (itself
    #: or an ancestor) it would not fit (1.3)
    blocked_kind: int
    disabled: bool  #: True while protection is off (1.3)
    blocked_by: str  #: the name of that object; "" when none (1.3)
    last_reset: int = 0  #: time of the last :meth:`Engine.reset`; 0: never (1.3)
    #: of the current clock hour's sent, the forwards (1.4)
    forwarded: int = 0
    #: the current clock hour's mailing-list deliveries through it, exempt
    #: or charged (1.4)
    list_deliveries: int = 0


@dataclass(frozen=True)
class HistoryEntry:
    """One clock hour of an object's history."""

    hour_start: int  #: Unix time of the hour's start
    sent: int  #: charged in that hour
    refused: int  #: attempts refused in that hour


@dataclass(frozen=True)
class ReportRow:
    """One row of :meth:`Engine.report` (``obspam_report_row``)."""

    kind: int  #: SUBSCRIPTION, DOMAIN, MAILBOX or SCRIPT
    name: str  #: lower case; a script's path as it was given
    sent: int  #: charged in the period
    refused: int  #: attempts refused in the period
    first_refused: int  #: time; 0 when none
    last_refused: int  #: time; 0 when none
    exceeded: int  #: attempts over its own limit in the period (1.3)
    #: the window (:class:`Window`, seconds) of the last attempt over its own
    #: limit in the period; 0 for the recipients cap, forbidden scripts, and
    #: when there was none (1.3)
    window: int
    #: a script's row: the subscription of the last message from that
    #: path, None when no subscription owns its uid; None in other rows (1.3)
    subscription: Optional[str] = None
    #: a script's row: the uid of the last message from that path, -1 when
    #: unknown; -1 in other rows (1.3)
    uid: int = -1
    #: of sent, the messages charged as forwards in the period (1.4)
    forwarded: int = 0
    #: the mailing-list deliveries through it in the period, exempt or
    #: charged (those charged are part of sent too) (1.4)
    list_deliveries: int = 0


@dataclass(frozen=True)
class Entry:
    """One object of :meth:`Engine.enumerate`: a subscription, domain or
    mailbox with its live status."""

    kind: int  #: SUBSCRIPTION, DOMAIN or MAILBOX
    name: str  #: lower case
    stats: Stats  #: as :meth:`Engine.stats` gives it


@dataclass(frozen=True)
class Notice:
    """An object was refused during a notification period (``obspam_notice``)."""

    kind: int  #: SUBSCRIPTION, DOMAIN or MAILBOX
    name: str  #: the object, lower case
    subscription: Optional[str]  #: its owning subscription, None if none
    contact: Optional[str]  #: that subscription's contact, None if none
    limit: int  #: its effective limit at its last refusal, in ``window``
    sent: int  #: charged in the period
    refused: int  #: refused in the period
    first_refused: int
    last_refused: int
    period_start: int  #: the period is [period_start, period_end)
    period_end: int
    exceeded: int  #: attempts over its own limit in the period (1.3)
    #: the window (:class:`Window`, seconds) of ``limit``; 0 when ``limit`` is
    #: the recipients cap or the attempt was a forbidden script's (1.3)
    window: int


NotifyCallback = Callable[[Notice], Any]

# ---- Helpers -----------------------------------------------------------------


def _dec(raw: Optional[bytes]) -> str:
    """Library bytes to str; bytes that are not UTF-8 survive a round trip."""
    return raw.decode("utf-8", "surrogateescape") if raw else ""


def _opt_dec(raw: Optional[bytes]) -> Optional[str]:
    return raw.decode("utf-8", "surrogateescape") if raw is not None else None


def _enc(value: Union[str, bytes, None], what: str) -> Optional[bytes]:
    """str to the bytes the library takes; None stays NULL.

    C strings end at the first NUL byte, so a value holding one would be cut
    silently: it is refused instead.
    """
    if value is None:
        return None
    if isinstance(value, str):
        raw = value.encode("utf-8", "surrogateescape")
    elif isinstance(value, bytes):
        raw = value
    else:
        raise TypeError(f"{what} must be str, not {type(value).__name__}")
    if b"\0" in raw:
        raise Error(EINVAL, f"{what}: {value!r} holds a NUL byte")
    return raw


def _path(path: StrPath, what: str) -> bytes:
    raw = os.fsencode(path)
    if b"\0" in raw:
        raise Error(EINVAL, f"{what}: path {path!r} holds a NUL byte")
    return raw


def _kind(value: int) -> int:
    try:
        return Kind(value)
    except ValueError:
        return value


def _window(value: int) -> int:
    """A window in seconds as a :class:`Window` when it is one (0, "none",
    stays a plain 0)."""
    try:
        return Window(value)
    except ValueError:
        return value


def _message(
    what: str,
    sasl_username: Optional[str] = None,
    sender: Optional[str] = None,
    client_address: Optional[str] = None,
    recipients: int = 1,
    flags: int = 0,
    uid: int = -1,
    domain_hint: Optional[str] = None,
    script: Optional[str] = None,
    time: int = 0,
) -> _native.Message:
    """The ``obspam_message`` of :meth:`Engine.decide`'s arguments (the same
    names and defaults); ``what`` starts the message of a bad value."""
    return _native.Message(
        ctypes.sizeof(_native.Message),
        int(flags),
        _enc(sasl_username, f"{what}: sasl_username"),
        _enc(sender, f"{what}: sender"),
        _enc(client_address, f"{what}: client_address"),
        int(recipients),
        int(uid),
        _enc(domain_hint, f"{what}: domain_hint"),
        _enc(script, f"{what}: script"),
        int(time),
    )


#: The keys of a message of :meth:`Engine.decide_batch`: those of decide().
_MESSAGE_FIELDS = tuple(inspect.signature(_message).parameters)[1:]


def _new_verdict() -> _native.Verdict:
    out = _native.Verdict()
    out.struct_size = ctypes.sizeof(_native.Verdict)
    return out


def _read_verdict(out: _native.Verdict) -> Verdict:
    try:
        action: int = Action(out.action)
    except ValueError:
        action = out.action
    return Verdict(
        action=action,
        kind=_kind(out.kind),
        object=_dec(out.object),
        limit=out.limit,
        count=out.count,
        retry_after=out.retry_after,
        window=_window(out.window),
    )


def _read_stats(out: _native.Stats) -> Stats:
    return Stats(
        sending=bool(out.sending),
        limit=out.limit,
        count=out.count,
        refused=out.refused,
        refused_total=out.refused_total,
        last_refused=out.last_refused,
        exceeded=out.exceeded,
        exceeded_total=out.exceeded_total,
        limit_minute=out.limit_minute,
        count_minute=out.count_minute,
        limit_day=out.limit_day,
        count_day=out.count_day,
        blocked_kind=_kind(out.blocked_kind),
        disabled=bool(out.disabled),
        blocked_by=_dec(out.blocked_by),
        last_reset=out.last_reset,
        forwarded=out.forwarded,
        list_deliveries=out.list_deliveries,
    )


#: Where a report row's panel fields (1.3) end: a library row that is
#: shorter (its struct_size) does not hold them.
_ROW_SUBSCRIPTION_END = _native.ReportRow.subscription.offset + ctypes.sizeof(ctypes.c_char_p)
_ROW_UID_END = _native.ReportRow.uid.offset + ctypes.sizeof(c_int64)
_ROW_LISTS_END = _native.ReportRow.list_deliveries.offset + ctypes.sizeof(c_int64)


def _read_row(r: _native.ReportRow) -> ReportRow:
    """A report row, read as far as the library's struct_size says it
    wrote it: a 1.3 library built before the panel fields passes rows
    without them."""
    return ReportRow(
        kind=_kind(r.kind),
        name=_dec(r.name),
        sent=r.sent,
        refused=r.refused,
        first_refused=r.first_refused,
        last_refused=r.last_refused,
        exceeded=r.exceeded,
        window=_window(r.window),
        subscription=_opt_dec(r.subscription) if r.struct_size >= _ROW_SUBSCRIPTION_END else None,
        uid=r.uid if r.struct_size >= _ROW_UID_END else -1,
        forwarded=r.forwarded if r.struct_size >= _ROW_LISTS_END else 0,
        list_deliveries=r.list_deliveries if r.struct_size >= _ROW_LISTS_END else 0,
    )


def load_library(path: Optional[StrPath] = None) -> ctypes.CDLL:
    """Loads and checks libobspam without making an engine.

    ``path`` is the library file; None means ``$OBSPAM_LIBRARY``, else the
    system's ``libobspam.so.1``. Raises :class:`LibraryError` when it cannot
    be loaded or is not 1.3 or a later 1.x. Returns the ctypes handle (for
    diagnostics only: use :class:`Engine` to call it).
    """
    return _native.load(path)


def version(library: Optional[StrPath] = None) -> int:
    """``obspam_version()``: (MAJOR << 16) | (MINOR << 8) | PATCH of the library."""
    return int(_native.load(library).obspam_version())


def version_string(library: Optional[StrPath] = None) -> str:
    """``obspam_version_string()``: "MAJOR.MINOR.PATCH" of the library."""
    return _dec(_native.load(library).obspam_version_string())


def strerror(code: int, library: Optional[StrPath] = None) -> str:
    """``obspam_strerror()``: a static description of an ``OBSPAM_E*`` code."""
    return _dec(_native.load(library).obspam_strerror(int(code)))


def kind_name(kind: int, library: Optional[StrPath] = None) -> str:
    """``obspam_kind_name()``: "server", "plan", "subscription", "domain",
    "mailbox" or "script" for a :class:`Kind`; "unknown kind" otherwise."""
    return _dec(_native.load(library).obspam_kind_name(int(kind)))


class _Callbacks:
    """What the C callbacks of one engine share with it.

    It holds no reference to the Engine, so the Engine can be collected
    while the C library still has a pointer to ``notify_thunk``. The thunk
    is made once and registered for the engine's whole life: changing the
    Python callable never frees a function pointer that a concurrent
    ``obspam_notify_flush`` may be about to call.
    """

    def __init__(self) -> None:
        self.notify: Optional[NotifyCallback] = None
        # Per thread: how deep this thread is inside this engine's
        # callbacks, and the exceptions its callbacks raised.
        self.local = threading.local()
        self.notify_thunk = _native.NOTIFY_FN(self._on_notice)

    def inside(self) -> bool:
        return getattr(self.local, "depth", 0) > 0

    def _on_notice(self, ptr: Any, _ud: Any) -> None:
        fn = self.notify
        if fn is None:
            return
        local = self.local
        local.depth = getattr(local, "depth", 0) + 1
        try:
            n = ptr.contents
            fn(
                Notice(
                    kind=_kind(n.kind),
                    name=_dec(n.name),
                    subscription=_opt_dec(n.subscription),
                    contact=_opt_dec(n.contact),
                    limit=n.limit,
                    sent=n.sent,
                    refused=n.refused,
                    first_refused=n.first_refused,
                    last_refused=n.last_refused,
                    period_start=n.period_start,
                    period_end=n.period_end,
                    exceeded=n.exceeded,
                    window=_window(n.window),
                )
            )
        except BaseException as exc:  # noqa: BLE001 - re-raised later
            # Raising through C is impossible; keep it for the caller.
            self.store(exc)
        finally:
            local.depth -= 1

    def store(self, exc: BaseException) -> None:
        errors = getattr(self.local, "errors", None)
        if errors is None:
            errors = self.local.errors = []
        errors.append(exc)

    def raise_pending(self, during: str) -> None:
        """Re-raises the first exception a callback raised on this thread."""
        errors = getattr(self.local, "errors", None)
        if not errors:
            return
        self.local.errors = None
        first = errors[0]
        if hasattr(first, "add_note"):
            note = f"raised by an obspam callback during Engine.{during}()"
            if len(errors) > 1:
                note += f"; {len(errors) - 1} more callback exception(s) dropped"
            first.add_note(note)
        raise first


# ---- The engine ---------------------------------------------------------------


class Engine:
    """An ``obspam_engine``: the limit tree, the counters and the statistics.

    A new engine limits nothing until a configuration is loaded or objects
    and limits are added. ``library`` is the path of libobspam to use (None:
    ``$OBSPAM_LIBRARY``, else the system's ``libobspam.so.1``).

    The engine is a context manager that closes it on exit. Methods raise
    :class:`Error` on failure, and on an engine that is closed.

    Threads may share an engine. Callbacks run on the thread that made the
    call, and may not call the same engine (that raises :class:`Error`).
    """

    def __init__(self, library: Optional[StrPath] = None) -> None:
        self._ptr: Optional[c_void_p] = None
        self._cond = threading.Condition(threading.Lock())
        self._users = 0  # calls in progress, which close() waits for
        self._closed = False
        self._callbacks = _Callbacks()
        self._lib = _native.load(library)
        ptr = c_void_p()
        rc = self._lib.obspam_engine_new(byref(ptr))
        if rc < 0:
            raise Error(ErrorCode(rc), f"engine_new: {_dec(self._lib.obspam_strerror(rc))}")
        self._ptr = ptr

    # -- life cycle and plumbing --

    def close(self) -> None:
        """``obspam_engine_free()``: frees the engine; closing twice is fine.

        Waits until the calls that other threads are making on this engine
        return. Later calls raise :class:`Error`.
        """
        if self._ptr is None:
            return
        if self._callbacks.inside():
            raise Error(EINVAL, "close: an engine cannot be closed from its own callback")
        with self._cond:
            if self._closed:
                return
            self._closed = True
            while self._users:
                self._cond.wait()
            ptr, self._ptr = self._ptr, None
        self._lib.obspam_engine_free(ptr)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._ptr is None or self._closed

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if getattr(self, "_ptr", None) is not None and not self._closed:
                self._closed = True
                self._lib.obspam_engine_free(self._ptr)
                self._ptr = None
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<obspam.Engine {state} at {id(self):#x}>"

    def _enter(self, what: str) -> c_void_p:
        """Marks a call in progress (close() waits for it); returns the handle."""
        if self._callbacks.inside():
            raise Error(
                EINVAL,
                f"{what}: an engine cannot be used from its own callback",
            )
        with self._cond:
            if self._closed or self._ptr is None:
                raise Error(EINVAL, f"{what}: the engine is closed")
            self._users += 1
            return self._ptr

    def _leave(self) -> None:
        with self._cond:
            self._users -= 1
            if self._users == 0 and self._closed:
                self._cond.notify_all()

    def _error(self, ptr: c_void_p, rc: int) -> Error:
        """The Error for a failed call, with the engine's message.

        When threads fail on one engine at the same moment, the message may
        be the other thread's (the C API keeps one message per engine); the
        code is always this call's.
        """
        message = self._errmsg(ptr)
        if not message:
            message = _dec(self._lib.obspam_strerror(rc))
        try:
            code: int = ErrorCode(rc)
        except ValueError:
            code = rc
        return Error(code, message)

    def _call(self, what: str, fn: Callable[..., int], *args: Any) -> None:
        ptr = self._enter(what)
        try:
            rc = fn(ptr, *args)
            if rc < 0:
                raise self._error(ptr, rc)
        finally:
            self._leave()

    def _errmsg(self, ptr: c_void_p) -> str:
        # A copy taken under the engine's lock: obspam_engine_errmsg()'s
        # buffer may be rewritten by another thread while it is read.
        buf = ctypes.create_string_buffer(_ERRMSG_SIZE)
        self._lib.obspam_engine_errmsg_r(ptr, buf, _ERRMSG_SIZE)
        return _dec(buf.value)

    @property
    def last_error(self) -> str:
        """``obspam_engine_errmsg_r()`` (the thread-safe copy of
        ``obspam_engine_errmsg()``): the last failure on this engine ("" if
        none)."""
        ptr = self._enter("last_error")
        try:
            return self._errmsg(ptr)
        finally:
            self._leave()

    # -- options --

    def set_option(self, option: int, value: int) -> None:
        """``obspam_set_option()``: sets an :class:`Option` (see its ranges)."""
        self._call("set_option", self._lib.obspam_set_option, int(option), int(value))

    def get_option(self, option: int) -> int:
        """``obspam_get_option()``: the current value of an :class:`Option`."""
        value = c_int64()
        self._call("get_option", self._lib.obspam_get_option, int(option), byref(value))
        return value.value

    # -- the limit tree --

    def add(self, kind: int, name: str, parent: Optional[str] = None) -> None:
        """``obspam_add()``: adds a plan, subscription, domain or mailbox.

        ``parent``: None for a plan; a plan or None for a subscription; the
        owning subscription for a domain (required); None or its own domain
        for a mailbox. The new object inherits every limit.
        """
        self._call(
            "add",
            self._lib.obspam_add,
            int(kind),
            _enc(name, "add"),
            _enc(parent, "add"),
        )

    def remove(self, kind: int, name: str) -> None:
        """``obspam_remove()``: removes an object, its subtree and their counters."""
        self._call("remove", self._lib.obspam_remove, int(kind), _enc(name, "remove"))

    def set_limit(
        self, kind: int, name: Optional[str], which: int, per_hour: int
    ) -> None:
        """``obspam_set_limit()``: sets the hour window of one limit of an
        object (:meth:`set_window_limit` sets any window).

        ``which`` is MAILBOX, DOMAIN or SUBSCRIPTION (the limit to set);
        ``kind`` SERVER with ``name`` None sets a server default.
        ``per_hour`` is a count >= 0, :data:`UNLIMITED` or :data:`INHERIT`.
        """
        self._call(
            "set_limit",
            self._lib.obspam_set_limit,
            int(kind),
            _enc(name, "set_limit"),
            int(which),
            int(per_hour),
        )

    def effective_limit(self, kind: int, name: str) -> int:
        """``obspam_effective_limit()``: the hourly limit that applies (-1:
        unlimited); :meth:`effective_window_limit` reads any window."""
        value = c_int64()
        self._call(
            "effective_limit",
            self._lib.obspam_effective_limit,
            int(kind),
            _enc(name, "effective_limit"),
            byref(value),
        )
        return value.value

    def set_window_limit(
        self, kind: int, name: Optional[str], which: int, window: int, limit: int
    ) -> None:
        """``obspam_set_window_limit()`` (1.3): sets one window of one limit
        of an object.

        ``window`` is a :class:`Window` (``WINDOW_MINUTE``, ``WINDOW_HOUR``
        or ``WINDOW_DAY``; anything else raises :class:`Error` EINVAL);
        ``kind``, ``name``, ``which`` and ``limit`` are as for
        :meth:`set_limit`, which is the hour window. Each window is
        inherited on its own.
        """
        self._call(
            "set_window_limit",
            self._lib.obspam_set_window_limit,
            int(kind),
            _enc(name, "set_window_limit"),
            int(which),
            int(window),
            int(limit),
        )

    def effective_window_limit(self, kind: int, name: str, window: int) -> int:
        """``obspam_effective_window_limit()`` (1.3): the limit that applies
        to a subscription, domain or mailbox in one :class:`Window` (-1:
        unlimited)."""
        value = c_int64()
        self._call(
            "effective_window_limit",
            self._lib.obspam_effective_window_limit,
            int(kind),
            _enc(name, "effective_window_limit"),
            int(window),
            byref(value),
        )
        return value.value

    def effective_limits(self, kind: int, name: str) -> Dict[Window, int]:
        """The effective limit of a subscription, domain or mailbox in each
        window, ``{Window.MINUTE: ..., Window.HOUR: ..., Window.DAY: ...}``
        (-1: unlimited), by :meth:`effective_window_limit`."""
        return {w: self.effective_window_limit(kind, name, w) for w in Window}

    def set_max_recipients(
        self, kind: int, name: Optional[str], max_recipients: int
    ) -> None:
        """``obspam_set_max_recipients()`` (1.3): the cap on the recipients of
        one message.

        ``kind`` is SERVER (``name`` None), PLAN, SUBSCRIPTION, DOMAIN or
        MAILBOX; ``max_recipients`` a count >= 0, :data:`UNLIMITED` (the
        server's default) or :data:`INHERIT` (not for the server). It is
        inherited down the tree as a limit is, and the cap of the lowest
        charged object applies: a message with more recipients is refused
        whole, naming that object with window 0, whatever the count unit.
        """
        self._call(
            "set_max_recipients",
            self._lib.obspam_set_max_recipients,
            int(kind),
            _enc(name, "set_max_recipients"),
            int(max_recipients),
        )

    def effective_max_recipients(self, kind: int, name: str) -> int:
        """``obspam_effective_max_recipients()`` (1.3): the recipients cap that
        applies to a subscription, domain or mailbox (-1: unlimited)."""
        value = c_int64()
        self._call(
            "effective_max_recipients",
            self._lib.obspam_effective_max_recipients,
            int(kind),
            _enc(name, "effective_max_recipients"),
            byref(value),
        )
        return value.value

    def set_uid(self, subscription: str, uid: int) -> None:
        """``obspam_set_uid()``: the system user whose scripts are charged to
        ``subscription``; -1 removes it."""
        self._call(
            "set_uid",
            self._lib.obspam_set_uid,
            _enc(subscription, "set_uid"),
            int(uid),
        )

    def set_scripts_allowed(
        self, kind: int, name: Optional[str], allowed: Union[bool, int]
    ) -> None:
        """``obspam_set_scripts_allowed()``: whether local scripts may send.

        ``allowed`` is True/1, False/0 or :data:`INHERIT`; ``kind`` is SERVER
        (``name`` None; not INHERIT), PLAN or SUBSCRIPTION.
        """
        self._call(
            "set_scripts_allowed",
            self._lib.obspam_set_scripts_allowed,
            int(kind),
            _enc(name, "set_scripts_allowed"),
            int(allowed),
        )

    def set_contact(self, subscription: str, email: Optional[str]) -> None:
        """``obspam_set_contact()``: the address notified about a subscription;
        None or "" removes it."""
        self._call(
            "set_contact",
            self._lib.obspam_set_contact,
            _enc(subscription, "set_contact"),
            _enc(email, "set_contact"),
        )

    # -- the whitelist --

    def whitelist_add(self, cidr: str) -> None:
        """``obspam_whitelist_add()``: exempts a network ("192.0.2.0/24",
        "2001:db8::/32") or one address."""
        self._call(
            "whitelist_add", self._lib.obspam_whitelist_add, _enc(cidr, "whitelist_add")
        )

    def whitelist_remove(self, cidr: str) -> None:
        """``obspam_whitelist_remove()``: removes a whitelist entry."""
        self._call(
            "whitelist_remove",
            self._lib.obspam_whitelist_remove,
            _enc(cidr, "whitelist_remove"),
        )

    # -- local networks (1.3) --

    def local_network_add(self, cidr: str) -> None:
        """``obspam_local_network_add()``: a network whose unauthenticated
        mail is charged to its sender under ``OPT_COUNT_UNAUTHENTICATED`` 2,
        written as for :meth:`whitelist_add`. While none is added,
        127.0.0.0/8 and ::1 are the local networks."""
        self._call(
            "local_network_add",
            self._lib.obspam_local_network_add,
            _enc(cidr, "local_network_add"),
        )

    def local_network_remove(self, cidr: str) -> None:
        """``obspam_local_network_remove()``: removes a local network."""
        self._call(
            "local_network_remove",
            self._lib.obspam_local_network_remove,
            _enc(cidr, "local_network_remove"),
        )

    # -- forwards and mailing lists (1.3) --

    def forward_add(self, address: str, remote: bool) -> None:
        """``obspam_forward_add()``: ``address`` (``local@domain``, or
        ``@domain`` for a catch-all) redirects its mail outside
        (``remote``) or to a hosted mailbox; its domain must be hosted."""
        self._call(
            "forward_add",
            self._lib.obspam_forward_add,
            _enc(address, "forward_add"),
            1 if remote else 0,
        )

    def forward_remove(self, address: str) -> None:
        """``obspam_forward_remove()``."""
        self._call(
            "forward_remove",
            self._lib.obspam_forward_remove,
            _enc(address, "forward_remove"),
        )

    def forward_lookup(self, address: str) -> Optional["tuple[int, str]"]:
        """``obspam_forward_lookup()``: for a recipient that is a forward,
        ``(flag, mailbox)``: :data:`MSG_FORWARD_LOCAL` or
        :data:`MSG_FORWARD_REMOTE`, and the name to decide the forward as
        (its sender, with that flag and no login: the address, or the
        domain of a catch-all); ``None`` for any other address."""
        flag = ctypes.c_uint32()
        buf = ctypes.create_string_buffer(NAME_MAX + 1)
        self._call(
            "forward_lookup",
            self._lib.obspam_forward_lookup,
            _enc(address, "forward_lookup"),
            byref(flag),
            buf,
            NAME_MAX + 1,
        )
        return (int(flag.value), _dec(buf.value)) if flag.value else None

    def mailing_list_add(self, address: str) -> None:
        """``obspam_mailing_list_add()``: a list's posting address, whose
        domain must be hosted."""
        self._call(
            "mailing_list_add",
            self._lib.obspam_mailing_list_add,
            _enc(address, "mailing_list_add"),
        )

    def mailing_list_remove(self, address: str) -> None:
        """``obspam_mailing_list_remove()``."""
        self._call(
            "mailing_list_remove",
            self._lib.obspam_mailing_list_remove,
            _enc(address, "mailing_list_remove"),
        )

    def mailing_list_match(self, sender: str, client_address: Optional[str] = None) -> bool:
        """``obspam_mailing_list_match()``: whether mail with this envelope
        sender from this client (``None`` or ``""``: a local submission) is
        a list delivery, to be decided with :data:`MSG_MAILING_LIST`: the
        sender is a list's address or its ``-bounces`` form (with an
        optional ``+tag``), from a local network or a local submission."""
        match = c_int()
        self._call(
            "mailing_list_match",
            self._lib.obspam_mailing_list_match,
            _enc(sender, "mailing_list_match"),
            _enc(client_address, "mailing_list_match"),
            byref(match),
        )
        return bool(match.value)

    # -- the configuration file --

    def load_config(self, path: StrPath) -> None:
        """``obspam_load_config()``: replaces options, tree and whitelist with
        a configuration file's, keeping the counters of the objects that
        remain. On error nothing changes and :class:`Error` says
        ``FILE:LINE: what is wrong``."""
        self._call("load_config", self._lib.obspam_load_config, _path(path, "load_config"))

    def load_config_string(self, text: Union[str, bytes]) -> None:
        """``obspam_load_config_string()``: the same for a configuration held
        in a string; messages name it ``<string>``."""
        raw = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
        if not isinstance(raw, bytes):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        nul = raw.find(b"\0")
        if nul >= 0:
            # The C text ends at a NUL byte; say what the parser says of
            # a file that holds one rather than parse half of the text.
            line = raw.count(b"\n", 0, nul) + 1
            raise Error(ESYNTAX, f"<string>:{line}: line holds a NUL byte")
        self._call("load_config_string", self._lib.obspam_load_config_string, raw)

    # -- deciding --

    def decide(
        self,
        sasl_username: Optional[str] = None,
        sender: Optional[str] = None,
        client_address: Optional[str] = None,
        recipients: int = 1,
        flags: int = 0,
        uid: int = -1,
        domain_hint: Optional[str] = None,
        script: Optional[str] = None,
        time: int = 0,
    ) -> Verdict:
        """``obspam_decide()``: decides one message and charges it if accepted.

        ``flags`` combines :class:`MessageFlag` values; ``uid`` and
        ``domain_hint`` identify a script's subscription and virtual host;
        ``script`` is its path, for reports; ``time`` is Unix seconds
        (0: now). Returns a :class:`Verdict`.

        With ``OPT_NOTIFY_IMMEDIATE`` the notify callback may run inside this
        call; if it raises, the exception propagates from here after the
        message was decided (and charged when accepted).
        """
        return self._verdict(
            "decide", self._lib.obspam_decide, sasl_username, sender,
            client_address, recipients, flags, uid, domain_hint, script, time,
        )

    def check(
        self,
        sasl_username: Optional[str] = None,
        sender: Optional[str] = None,
        client_address: Optional[str] = None,
        recipients: int = 1,
        flags: int = 0,
        uid: int = -1,
        domain_hint: Optional[str] = None,
        script: Optional[str] = None,
        time: int = 0,
    ) -> Verdict:
        """``obspam_check()``: the verdict :meth:`decide` would give now,
        without charging or recording anything (an early answer, at RCPT
        time). Takes the same arguments as :meth:`decide`."""
        return self._verdict(
            "check", self._lib.obspam_check, sasl_username, sender,
            client_address, recipients, flags, uid, domain_hint, script, time,
        )

    def decide_batch(self, messages: Sequence[Mapping[str, Any]]) -> List[Verdict]:
        """``obspam_decide_batch()``: decides several messages in one call, in
        order, each exactly as :meth:`decide` would (and faster than as many
        calls when there are several). Returns their :class:`Verdict` objects,
        in the same order; an empty sequence gives [].

        Each message is a mapping (a dict) whose keys are the keywords of
        :meth:`decide`: ``sasl_username``, ``sender``, ``client_address``,
        ``recipients``, ``flags``, ``uid``, ``domain_hint``, ``script`` and
        ``time``, all optional, with decide's defaults. Another key raises
        :class:`TypeError`, as it does for decide; so does a message that is
        not a mapping. The messages are not one transaction: other threads
        may decide between them.

        Every message gets its own verdict, also when others fail: one that
        cannot be decided (no recipients, a client address that is not an
        address, a negative time, ...) has a :class:`Verdict` whose
        ``status`` is its ``OBSPAM_E*`` code and whose ``error`` says why,
        as :meth:`decide` would have raised it; the others are decided, and
        charged when accepted. (Before 1.3 the whole call raised the first
        failure's :class:`Error` and lost every verdict.) With
        ``OPT_NOTIFY_IMMEDIATE``, what the notify callback raises propagates
        from here once every message was decided.

        On a Redis store the batch is one round trip (1.4). The binding
        calls this instead of ``obspam_decide_start()``, which calls back on
        an engine thread: a program with an event loop runs decide_batch()
        in an executor thread.
        """
        what = "decide_batch"
        msgs: List[_native.Message] = []
        for i, fields in enumerate(messages):
            where = f"{what}: message {i}"
            if not isinstance(fields, _Mapping):
                got = type(fields).__name__
                raise TypeError(f"{where} must be a mapping, not {got}")
            for key in fields:
                if key not in _MESSAGE_FIELDS:
                    raise TypeError(f"{where}: unknown field {key!r}")
            msgs.append(_message(where, **fields))
        n = len(msgs)
        outs = [_new_verdict() for _ in range(n)]
        msg_ptrs = (POINTER(_native.Message) * n)(*(pointer(m) for m in msgs))
        out_ptrs = (POINTER(_native.Verdict) * n)(*(pointer(o) for o in outs))
        rcs = (c_int * n)()  # each message's code
        ptr = self._enter(what)
        try:
            rc = self._lib.obspam_decide_batch(ptr, msg_ptrs, out_ptrs, rcs, n)
            if rc < 0 and not any(r < 0 for r in rcs):
                # The call itself failed (nothing was decided).
                raise self._error(ptr, rc)
            verdicts = [_read_verdict(out) for out in outs]
            for i in range(n):
                if rcs[i] < 0:
                    verdicts[i] = self._failed(ptr, msgs[i], rcs[i])
        finally:
            self._leave()
            self._callbacks.raise_pending(what)
        return verdicts

    def _failed(self, ptr: c_void_p, msg: _native.Message, rc: int) -> Verdict:
        """The verdict of a message of a batch that failed with rc.

        The engine keeps the message of its last failure only, so the
        message is checked again alone: a bad message fails obspam_check
        exactly as it failed in the batch, without charging or recording
        anything. A failure that does not come back (out of memory, say)
        is told by its code's description.
        """
        out = _new_verdict()
        error = ""
        if self._lib.obspam_check(ptr, byref(msg), byref(out)) == rc:
            error = self._errmsg(ptr)
        if not error:
            error = "decide: " + _dec(self._lib.obspam_strerror(rc))
        try:
            status: int = ErrorCode(rc)
        except ValueError:
            status = rc
        return Verdict(action=-1, kind=-1, object="", limit=0, count=0, retry_after=0,
                       window=0, status=status, error=error)

    def _verdict(
        self,
        what: str,
        function: Any,
        sasl_username: Optional[str],
        sender: Optional[str],
        client_address: Optional[str],
        recipients: int,
        flags: int,
        uid: int,
        domain_hint: Optional[str],
        script: Optional[str],
        time: int,
    ) -> Verdict:
        msg = _message(
            what, sasl_username, sender, client_address, recipients, flags,
            uid, domain_hint, script, time,
        )
        out = _new_verdict()
        ptr = self._enter(what)
        try:
            rc = function(ptr, byref(msg), byref(out))
            if rc < 0:
                raise self._error(ptr, rc)
        finally:
            self._leave()
            self._callbacks.raise_pending(what)
        return _read_verdict(out)

    def stats(self, kind: int, name: str, now: int = 0) -> Stats:
        """``obspam_stats_get()``: live status of a subscription, domain or
        mailbox at ``now`` (0: now)."""
        out = _native.Stats()
        out.struct_size = ctypes.sizeof(_native.Stats)
        self._call(
            "stats",
            self._lib.obspam_stats_get,
            int(kind),
            _enc(name, "stats"),
            int(now),
            byref(out),
        )
        return _read_stats(out)

    # -- history and reports --

    def history(
        self, kind: int, name: str, start: int = 0, end: Optional[int] = None
    ) -> List[HistoryEntry]:
        """``obspam_history()``: the hourly history of a subscription, domain,
        mailbox or script (``kind`` SCRIPT, ``name`` its path).

        One entry per clock hour that overlaps [start, end), lies within the
        retention period and had activity, oldest first. ``start`` and
        ``end`` are Unix times taken as they are (0 is 1970, not now);
        ``end`` None means no end.
        """
        rows: List[HistoryEntry] = []
        callbacks = self._callbacks

        def collect(hour: int, sent: int, refused: int, _ud: Any) -> None:
            try:
                rows.append(HistoryEntry(hour, sent, refused))
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                callbacks.store(exc)

        thunk = _native.HISTORY_FN(collect)
        try:
            self._call(
                "history",
                self._lib.obspam_history,
                int(kind),
                _enc(name, "history"),
                int(start),
                _INT64_MAX if end is None else int(end),
                thunk,
                None,
            )
        finally:
            callbacks.raise_pending("history")
        return rows

    def report(self, start: int = 0, end: Optional[int] = None) -> List[ReportRow]:
        """``obspam_report()``: where spam comes from over the clock hours
        that overlap [start, end).

        First every object with refusals (scripts included), most refusals
        first, ties by name; then the scripts without refusals, most sent
        first. Times are taken as they are; ``end`` None means no end.
        """
        return self._rows(
            "report", self._lib.obspam_report, int(start),
            _INT64_MAX if end is None else int(end),
        )

    def top(
        self,
        start: int = 0,
        end: Optional[int] = None,
        n: int = 0,
        kind: Optional[int] = None,
    ) -> List[ReportRow]:
        """``obspam_top()`` (1.3): the top senders over the clock hours that
        overlap [start, end), whether or not they hit a limit.

        The ``n`` rows (0: all) of ``kind`` (SUBSCRIPTION, DOMAIN, MAILBOX
        or SCRIPT; None: every kind) that sent most, most sent first, then
        most refused, ties by kind and name; rows as :meth:`report` gives
        them (a script's with its ``subscription`` and ``uid``). Times are
        taken as they are; ``end`` None means no end.
        """
        if n < 0:
            raise Error(EINVAL, f"top: n must be 0 (all) or more, not {n}")
        return self._rows(
            "top", self._lib.obspam_top, -1 if kind is None else int(kind),
            int(start), _INT64_MAX if end is None else int(end), int(n),
        )

    def _rows(self, what: str, function: Any, *args: Any) -> List[ReportRow]:
        """Calls a C function that hands report rows to a callback (its
        last two arguments) and returns them."""
        rows: List[ReportRow] = []
        callbacks = self._callbacks

        def collect(ptr: Any, _ud: Any) -> None:
            try:
                rows.append(_read_row(ptr.contents))
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                callbacks.store(exc)

        thunk = _native.REPORT_FN(collect)
        try:
            self._call(what, function, *args, thunk, None)
        finally:
            callbacks.raise_pending(what)
        return rows

    # -- panels (1.3) --

    def enumerate(
        self,
        kind: int,
        parent: Optional[str] = None,
        active: bool = False,
        after: Optional[str] = None,
        limit: int = 0,
        page: int = 1000,
        now: int = 0,
    ) -> Iterator[Entry]:
        """``obspam_enumerate()`` (1.3): the subscriptions, domains or
        mailboxes (``kind``; implicit mailboxes included) in name order,
        each an :class:`Entry` with its live status at ``now`` (0: now).

        ``parent`` keeps those under one plan, subscription or domain;
        ``active`` only those with a count in their day window or a
        refusal in the last 60 minutes; ``after`` starts after that name
        (a panel's "next page" link); ``limit`` stops after that many (0:
        no bound). The objects are fetched ``page`` at a time, each page in
        one call that holds the engine, never between pages: a loop over a
        million mailboxes does not stop the decisions, and objects added or
        removed meanwhile are seen or not by their place in the order.

        The first page is fetched by this call, so a bad kind or an unknown
        parent raises :class:`Error` here (``ENOTFOUND`` for the parent);
        the rest as the iterator is consumed.
        """
        if limit < 0:
            raise Error(EINVAL, f"enumerate: limit must be 0 (no bound) or more, not {limit}")
        if page < 1:
            raise Error(EINVAL, f"enumerate: page must be 1 or more, not {page}")
        flags = ENUM_ACTIVE if active else 0
        raw_parent = _enc(parent, "enumerate: parent")
        asked = page if limit == 0 else min(page, limit)
        first = self._page(int(kind), raw_parent, flags, _enc(after, "enumerate: after"),
                           asked, int(now))
        return self._pages(int(kind), raw_parent, flags, first, asked, limit, page, int(now))

    def _pages(
        self,
        kind: int,
        parent: Optional[bytes],
        flags: int,
        entries: List[Tuple[bytes, Entry]],
        asked: int,
        limit: int,
        page: int,
        now: int,
    ) -> Iterator[Entry]:
        given = 0
        while True:
            for _, entry in entries:
                yield entry
            given += len(entries)
            # A short page is the last one; so is the page that reaches the bound.
            if len(entries) < asked or (limit and given >= limit):
                return
            asked = page if limit == 0 else min(page, limit - given)
            entries = self._page(kind, parent, flags, entries[-1][0], asked, now)

    def _page(
        self,
        kind: int,
        parent: Optional[bytes],
        flags: int,
        after: Optional[bytes],
        n: int,
        now: int,
    ) -> List[Tuple[bytes, Entry]]:
        """One call of obspam_enumerate: up to n objects after ``after``,
        each with its name as the library gave it (the next page starts
        after those bytes)."""
        entries: List[Tuple[bytes, Entry]] = []
        callbacks = self._callbacks

        def collect(k: int, name: Optional[bytes], st: Any, _ud: Any) -> int:
            try:
                raw = name or b""
                entries.append((raw, Entry(_kind(k), _dec(raw), _read_stats(st.contents))))
                return 0
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                callbacks.store(exc)
                return 1  # stop: the exception ends the iteration

        thunk = _native.ENUM_FN(collect)
        try:
            self._call("enumerate", self._lib.obspam_enumerate, kind, parent, flags,
                       after, n, now, thunk, None)
        finally:
            callbacks.raise_pending("enumerate")
        return entries

    def reset(self, kind: int, name: str, now: int = 0) -> None:
        """``obspam_reset()`` (1.3): empties every window of a subscription,
        domain or mailbox at ``now`` (0: now), after a password change say:
        it may send its whole limit again. Its history keeps what
        happened, and :attr:`Stats.last_reset` tells when."""
        self._call("reset", self._lib.obspam_reset, int(kind), _enc(name, "reset"), int(now))

    def set_unknown_uid_subscription(self, subscription: Optional[str]) -> None:
        """``obspam_set_unknown_uid_subscription()`` (1.3): the subscription
        charged for mail of a local script whose uid no subscription owns
        (None or "": none, the default; such mail is then ``UNKNOWN``, and
        reported by uid)."""
        self._call(
            "set_unknown_uid_subscription",
            self._lib.obspam_set_unknown_uid_subscription,
            _enc(subscription, "set_unknown_uid_subscription"),
        )

    # -- notifications --

    def set_notify(self, callback: Optional[NotifyCallback]) -> None:
        """``obspam_set_notify()``: the callable that receives :class:`Notice`
        objects (None: none; :meth:`notify_flush` then drops the notices).

        The callable runs on the thread that calls :meth:`notify_flush` (or
        :meth:`decide`, with ``OPT_NOTIFY_IMMEDIATE``) and must not use this
        engine. An exception it raises is re-raised by that call once the
        C call has returned; the notice counts as delivered.
        """
        if callback is not None and not callable(callback):
            raise TypeError("set_notify: callback must be callable or None")
        callbacks = self._callbacks
        thunk = callbacks.notify_thunk if callback is not None else None
        ptr = self._enter("set_notify")
        try:
            # The Python side first: the C library may call the thunk as
            # soon as it is registered.
            if callback is not None:
                callbacks.notify = callback
            rc = self._lib.obspam_set_notify(
                ptr, thunk if thunk is not None else _native.NOTIFY_FN(0), None
            )
            if rc < 0:
                raise self._error(ptr, rc)
            if callback is None:
                callbacks.notify = None
        finally:
            self._leave()

    def notify_flush(self, now: int = 0) -> None:
        """``obspam_notify_flush()``: delivers one notice per object refused in
        every period that ended at or before ``now`` (0: now) and was not
        flushed yet."""
        try:
            self._call("notify_flush", self._lib.obspam_notify_flush, int(now))
        finally:
            self._callbacks.raise_pending("notify_flush")

    # -- the shared counter store (1.1) --

    def set_store(self, uri: Optional[str], prefix: Optional[str] = None) -> None:
        """``obspam_set_store()``: keeps the counters in Redis
        ("redis://HOST:PORT[/DB]" or "sentinel://HOST:PORT[,...]/MASTER"),
        shared by every engine that names it; None or "" goes back to
        memory. ``prefix`` (None: "obspam:") starts every key."""
        self._call(
            "set_store",
            self._lib.obspam_set_store,
            _enc(uri, "set_store"),
            _enc(prefix, "set_store"),
        )

    def store_status(self) -> Dict[str, int]:
        """``obspam_store_status()``: ``shared`` (1 with a shared store),
        ``up`` (1 while it answers), ``episodes`` (times it stopped
        answering) and ``fallback_decisions`` (decisions made without it)."""
        vals = [c_int64() for _ in range(4)]
        self._call("store_status", self._lib.obspam_store_status, *[byref(v) for v in vals])
        return dict(zip(("shared", "up", "episodes", "fallback_decisions"), (v.value for v in vals)))

    def store_backlog(self) -> Dict[str, int]:
        """``obspam_store_backlog()`` (1.4): ``ledger_pending``,
        ``ledger_added`` and ``ledger_dropped`` (the records of an outage:
        charges accepted without Redis, and since 1.4.1 exempt list
        deliveries; waiting to be added to it, added, dropped past the
        ledger's bound), ``keys_pending`` and
        ``keys_deleted`` (keys of objects a reload dropped)."""
        vals = [c_int64() for _ in range(5)]
        self._call("store_backlog", self._lib.obspam_store_backlog, *[byref(v) for v in vals])
        names = ("ledger_pending", "ledger_added", "ledger_dropped", "keys_pending", "keys_deleted")
        return dict(zip(names, (v.value for v in vals)))

    # -- implicit mailboxes (1.3) --

    def implicit_status(self) -> Dict[str, int]:
        """``obspam_implicit_status()``: ``count`` (implicit mailboxes that
        exist now), ``overflow`` (decisions that found the cap
        ``OPT_IMPLICIT_MAILBOXES`` reached) and ``episodes`` (times the cap
        was reached)."""
        vals = [c_int64() for _ in range(3)]
        self._call("implicit_status", self._lib.obspam_implicit_status, *[byref(v) for v in vals])
        return dict(zip(("count", "overflow", "episodes"), (v.value for v in vals)))

    # -- persistence --

    def open_journal(self, state_path: StrPath, fsync: bool = False) -> Dict[str, int]:
        """``obspam_journal_open()`` (1.3): opens the journal beside
        ``state_path`` (``STATE.journal``) and replays the decisions the
        state file does not hold; call it after :meth:`load_state`. From
        then on the decisions that change the counters are recorded, and
        :meth:`flush_journal` writes them. Returns ``replayed`` and
        ``ignored`` (records of a journal that follows another snapshot)."""
        replayed, ignored = c_int64(), c_int64()
        self._call(
            "open_journal",
            self._lib.obspam_journal_open,
            _path(state_path, "open_journal"),
            JOURNAL_FSYNC if fsync else 0,
            byref(replayed),
            byref(ignored),
        )
        return {"replayed": replayed.value, "ignored": ignored.value}

    def flush_journal(self) -> None:
        """``obspam_journal_flush()`` (1.3): writes the decisions recorded
        since the last flush in one write; call it before the answers
        leave. Nothing to do without a journal."""
        self._call("flush_journal", self._lib.obspam_journal_flush)

    def close_journal(self) -> None:
        """``obspam_journal_close()`` (1.3): flushes and closes the
        journal; its file stays for the next :meth:`open_journal`."""
        self._call("close_journal", self._lib.obspam_journal_close)

    def save_state(self, path: StrPath) -> None:
        """``obspam_state_save()``: writes counters, history and notification
        progress to ``path`` atomically."""
        self._call("save_state", self._lib.obspam_state_save, _path(path, "save_state"))

    def load_state(self, path: StrPath) -> None:
        """``obspam_state_load()``: restores a saved state for the objects
        that exist; on error (EIO, ECORRUPT, EVERSION) nothing changes."""
        self._call("load_state", self._lib.obspam_state_load, _path(path, "load_state"))
