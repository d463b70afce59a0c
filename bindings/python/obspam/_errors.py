# SPDX-License-Identifier: MIT
"""The exceptions of the obspam package (re-exported by :mod:`obspam`)."""

from __future__ import annotations


class Error(Exception):
    """A libobspam call failed.

    ``code`` is the library's negative ``OBSPAM_E*`` code (see
    :class:`obspam.ErrorCode`) and ``str(error)`` the engine's one-line
    message, for a configuration error ``FILE:LINE: what is wrong``.
    """

    code: int
    message: str

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


class LibraryError(Error, ImportError):
    """libobspam cannot be used: it is missing, or has another major version.

    Also an :class:`ImportError`. ``code`` is ``EIO`` when the library cannot
    be loaded and ``EVERSION`` when its major version is not the one this
    binding is written for.
    """
