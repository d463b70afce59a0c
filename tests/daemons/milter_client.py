# SPDX-License-Identifier: MIT
"""The MTA side of the Sendmail milter protocol (version 6), enough to
drive obspam-milter without Postfix: option negotiation, macros, CONNECT,
MAIL, RCPT, headers, end of message, ABORT and QUIT, and the replies
(continue, accept, reject, tempfail, reply codes, quarantine).

The protocol, as libmilter (libmilter/mfdef.h) and Postfix (milter8.c)
speak it: every packet is a 32-bit big-endian length (of what follows),
one command byte and its data. Strings end with NUL. Macros ('D') go
before the command they belong to and get no reply; so do ABORT and
QUIT. Steps the filter declined at negotiation (SMFIP_NO*) are not sent,
as an MTA does not send them.

Used by milter_test.py; run alone it sends one message and prints the
replies:

    python3 milter_client.py inet:PORT@127.0.0.1 [--local UID]
"""

import socket
import struct
import sys

# Commands (MTA -> filter).
SMFIC_ABORT = b"A"
SMFIC_BODY = b"B"
SMFIC_CONNECT = b"C"
SMFIC_MACRO = b"D"
SMFIC_BODYEOB = b"E"
SMFIC_HELO = b"H"
SMFIC_HEADER = b"L"
SMFIC_MAIL = b"M"
SMFIC_EOH = b"N"
SMFIC_OPTNEG = b"O"
SMFIC_QUIT = b"Q"
SMFIC_RCPT = b"R"
SMFIC_DATA = b"T"

# Replies (filter -> MTA).
SMFIR_ACCEPT = b"a"
SMFIR_CONTINUE = b"c"
SMFIR_DISCARD = b"d"
SMFIR_QUARANTINE = b"q"
SMFIR_REJECT = b"r"
SMFIR_TEMPFAIL = b"t"
SMFIR_REPLYCODE = b"y"
SMFIR_ADDHEADER = b"h"
SMFIR_INSHEADER = b"i"
SMFIR_CHGHEADER = b"m"
SMFIR_PROGRESS = b"p"
SMFIR_SKIP = b"s"
FINAL_REPLIES = (SMFIR_ACCEPT, SMFIR_CONTINUE, SMFIR_DISCARD, SMFIR_REJECT,
                 SMFIR_TEMPFAIL, SMFIR_REPLYCODE, SMFIR_SKIP)

# Action flags (SMFIF_*) and protocol flags (SMFIP_*).
SMFIF_ALL = 0x1FF            # every action of protocol version 6
SMFIF_QUARANTINE = 0x20
SMFIF_SETSYMLIST = 0x100
SMFIP_NOCONNECT = 0x1
SMFIP_NOHELO = 0x2
SMFIP_NOMAIL = 0x4
SMFIP_NORCPT = 0x8
SMFIP_NOBODY = 0x10
SMFIP_NOHDRS = 0x20
SMFIP_NOEOH = 0x40
SMFIP_NR_HDR = 0x80
SMFIP_NOUNKNOWN = 0x100
SMFIP_NODATA = 0x200
SMFIP_ALL = 0x1FFFFF         # what Postfix 3.x offers
# Each "no reply" bit: the step that then gets no reply.
NR_BITS = {SMFIC_CONNECT: 0x1000, SMFIC_HELO: 0x2000, SMFIC_MAIL: 0x4000,
           SMFIC_RCPT: 0x8000, SMFIC_DATA: 0x10000, SMFIC_EOH: 0x40000,
           SMFIC_BODY: 0x80000, SMFIC_HEADER: SMFIP_NR_HDR}
NO_BITS = {SMFIC_CONNECT: SMFIP_NOCONNECT, SMFIC_HELO: SMFIP_NOHELO,
           SMFIC_MAIL: SMFIP_NOMAIL, SMFIC_RCPT: SMFIP_NORCPT,
           SMFIC_BODY: SMFIP_NOBODY, SMFIC_HEADER: SMFIP_NOHDRS,
           SMFIC_EOH: SMFIP_NOEOH, SMFIC_DATA: SMFIP_NODATA}

# Macro stages, for the lists a filter asks for (SMFIM_*).
STAGES = {0: b"C", 1: b"H", 2: b"M", 3: b"R", 4: b"T", 5: b"E", 6: b"N"}


class ProtocolError(Exception):
    pass


class Reply:
    """A filter's answer to one step: the final reply, its SMTP reply text
    (for 'y'), and the actions that came before it (quarantine, header
    changes) at end of message."""

    def __init__(self, code, data, actions):
        self.code = code        # one byte, e.g. b"c", b"y", b"t"
        self.data = data
        self.actions = actions  # [(code, data)]

    @property
    def text(self):
        """The SMTP reply of an 'y' reply, e.g. "451 4.7.1 mailbox ..."."""
        return self.data.rstrip(b"\0").decode() if self.code == b"y" else None

    @property
    def quarantine(self):
        """The reason of a quarantine request, or None."""
        for code, data in self.actions:
            if code == SMFIR_QUARANTINE:
                return data.rstrip(b"\0").decode()
        return None

    def __repr__(self):
        return "Reply(%r, %r, %r)" % (self.code, self.data, self.actions)


def open_socket(spec, timeout=10):
    """Connects to a libmilter spec: unix:PATH, local:PATH or
    inet:PORT@HOST."""
    kind, _, rest = spec.partition(":")
    if kind in ("unix", "local"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(rest)
        return s
    if kind in ("inet", "inet6"):
        port, _, host = rest.partition("@")
        s = socket.create_connection((host or "127.0.0.1", int(port)),
                                     timeout=timeout)
        # A macro packet and its command go out as two writes: without
        # this, Nagle's algorithm holds the second for the peer's delayed
        # ACK (40 ms a step).
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return s
    raise ValueError("bad spec %r" % spec)


class MilterClient:
    def __init__(self, spec, timeout=10):
        self.sock = open_socket(spec, timeout)
        self.protocol = 0       # the filter's SMFIP_* answer
        self.actions = 0        # the filter's SMFIF_* answer
        self.symlists = {}      # stage byte -> macro names it asked for

    # ---- packets ----------------------------------------------------------

    def send(self, cmd, data=b""):
        self.sock.sendall(struct.pack(">I", len(data) + 1) + cmd + data)

    def _read_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ProtocolError("the filter closed the connection")
            buf += chunk
        return buf

    def read_packet(self):
        (length,) = struct.unpack(">I", self._read_exact(4))
        if length < 1 or length > 1 << 20:
            raise ProtocolError("bad packet length %d" % length)
        body = self._read_exact(length)
        return body[:1], body[1:]

    def read_reply(self):
        """Reads packets up to a final reply; actions before it (at end of
        message) are collected."""
        actions = []
        while True:
            code, data = self.read_packet()
            if code in FINAL_REPLIES:
                return Reply(code, data, actions)
            if code == SMFIR_PROGRESS:
                continue
            actions.append((code, data))

    # ---- steps ------------------------------------------------------------

    def negotiate(self, version=6, actions=SMFIF_ALL, protocol=SMFIP_ALL):
        self.send(SMFIC_OPTNEG, struct.pack(">III", version, actions,
                                            protocol))
        code, data = self.read_packet()
        if code != SMFIC_OPTNEG or len(data) < 12:
            raise ProtocolError("bad option negotiation reply %r" % code)
        _, self.actions, self.protocol = struct.unpack(">III", data[:12])
        rest = data[12:]
        while len(rest) >= 4:
            (stage,) = struct.unpack(">I", rest[:4])
            names, _, rest = rest[4:].partition(b"\0")
            self.symlists[STAGES.get(stage, b"?")] = names.decode().split()
        return self.actions, self.protocol

    def macros(self, cmd, values):
        if not values:
            return
        data = cmd
        for name, value in values.items():
            data += name.encode() + b"\0" + value.encode() + b"\0"
        self.send(SMFIC_MACRO, data)

    def _step(self, cmd, data, macros=None):
        """Sends a step unless the filter declined it; returns its reply,
        or None when none is due."""
        if self.protocol & NO_BITS.get(cmd, 0):
            return None
        self.macros(cmd, macros)
        self.send(cmd, data)
        if self.protocol & NR_BITS.get(cmd, 0):
            return None
        return self.read_reply()

    def connect(self, hostname, addr, port, macros=None):
        family = b"6" if ":" in addr else b"4"
        data = (hostname.encode() + b"\0" + family + struct.pack(">H", port)
                + addr.encode() + b"\0")
        return self._step(SMFIC_CONNECT, data, macros)

    def helo(self, name, macros=None):
        return self._step(SMFIC_HELO, name.encode() + b"\0", macros)

    def mail(self, sender, macros=None):
        return self._step(SMFIC_MAIL, sender.encode() + b"\0", macros)

    def rcpt(self, recipient, macros=None):
        return self._step(SMFIC_RCPT, recipient.encode() + b"\0", macros)

    def data(self, macros=None):
        return self._step(SMFIC_DATA, b"", macros)

    def header(self, name, value, macros=None):
        return self._step(SMFIC_HEADER,
                          name.encode() + b"\0" + value.encode() + b"\0",
                          macros)

    def eoh(self, macros=None):
        return self._step(SMFIC_EOH, b"", macros)

    def body(self, chunk, macros=None):
        return self._step(SMFIC_BODY, chunk, macros)

    def eom(self, macros=None):
        self.macros(SMFIC_BODYEOB, macros)
        self.send(SMFIC_BODYEOB)
        return self.read_reply()

    def abort(self):
        self.send(SMFIC_ABORT)

    def quit(self):
        try:
            self.send(SMFIC_QUIT)
        finally:
            self.sock.close()

    # ---- a whole message --------------------------------------------------

    def message(self, sender, recipients, headers, body=b"hello\r\n",
                queue_id="TESTQID", auth=None):
        """MAIL, RCPT..., DATA, headers, EOH, body and EOM, as Postfix sends
        them; returns the end-of-message reply, or the first reply that was
        not "continue" (and then aborts the message, as an MTA does)."""
        mail_macros = {"i": queue_id}
        if auth is not None:
            mail_macros["{auth_authen}"] = auth
            mail_macros["{auth_type}"] = "PLAIN"
        # The steps up to the end of the message, in Postfix's order; the
        # first answer other than continue ends the message there.
        steps = [lambda: self.mail(sender, mail_macros)]
        steps += [lambda rcpt=rcpt: self.rcpt(
            rcpt, {"{rcpt_addr}": rcpt.strip("<>")}) for rcpt in recipients]
        steps.append(lambda: self.data({"i": queue_id}))
        steps += [lambda name=name, value=value: self.header(
            name, value, {"i": queue_id}) for name, value in headers]
        steps += [lambda: self.eoh({"i": queue_id}), lambda: self.body(body)]
        for step in steps:
            r = step()
            if r is not None and r.code != SMFIR_CONTINUE:
                self.abort()
                return r
        return self.eom({"i": queue_id})


def smtp_session(spec, addr="192.0.2.10", port=40000, hostname="client.test",
                 macro_addr=None):
    """A negotiated connection as smtpd opens it. macro_addr: the
    {client_addr} macro when it is not addr as it is (Sendmail writes
    "IPv6:2001:db8::1" or "[203.0.113.7]")."""
    c = MilterClient(spec)
    c.negotiate()
    r = c.connect(hostname, addr, port,
                  {"j": "mx.test", "{daemon_name}": "mx.test",
                   "{client_addr}": macro_addr or addr,
                   "{client_port}": str(port),
                   "{client_name}": hostname,
                   "_": "%s [%s]" % (hostname, addr)})
    if r is not None and r.code != SMFIR_CONTINUE:
        raise ProtocolError("connect refused: %r" % r)
    c.helo(hostname)
    return c


def local_session(spec):
    """A connection as Postfix's cleanup(8) emulates it for a message from
    sendmail(1)/pickup(8): localhost, 127.0.0.1, port 0."""
    return smtp_session(spec, addr="127.0.0.1", port=0, hostname="localhost")


def pickup_received(uid, host="mx.test", queue_id="TESTQID"):
    """The Received: header pickup(8) writes, as a milter gets it."""
    return ("Received",
            "by %s (Postfix, from userid %d)\n\tid %s; "
            "Mon,  6 May 2024 10:00:00 +0000 (UTC)" % (host, uid, queue_id))


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    spec = argv[1]
    if len(argv) >= 4 and argv[2] == "--local":
        c = local_session(spec)
        headers = [pickup_received(int(argv[3])), ("Subject", "test")]
        sender = "www@mx.test"
    else:
        c = smtp_session(spec)
        headers = [("Subject", "test")]
        sender = "<info@acme.example>"
    print("negotiated actions=%#x protocol=%#x macros=%r"
          % (c.actions, c.protocol, c.symlists))
    r = c.message(sender, ["<someone@example.org>"], headers)
    print("end of message: %r" % r)
    c.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
