# SPDX-License-Identifier: MIT
"""Running part of a test as another local user: how the daemons' tests
play a customer's script that connects to a socket it should not use."""

# The child cannot load modules once it is nobody: the interpreter's
# library may live where only root reads (a home directory). What it needs
# is loaded here, before the fork: socket.create_connection encodes a host
# name with the idna codec.
import encodings.idna  # noqa: F401
import os
import pwd

NOBODY = pwd.getpwnam("nobody")


def as_nobody(fn):
    """Runs fn() in a child process that is the user nobody (no
    supplementary groups) and returns the repr of what it returned, or
    "error: ..." when it raised. The child is forked, not executed: no
    interpreter need be readable by nobody."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY.pw_gid)
            os.setuid(NOBODY.pw_uid)
            out = repr(fn())
        except BaseException as e:  # reported to the parent
            out, code = f"error: {e!r}", 1
        os.write(w, out.encode())
        os._exit(code)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return data.decode()
