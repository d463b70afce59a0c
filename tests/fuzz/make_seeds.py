#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpora of tests/fuzz/corpus/ (run by hand when a target
or a format changes; tests/fuzz/run.sh never writes into the repository).

    tests/fuzz/make_seeds.py BUILD_DIR     (BUILD_DIR/libobspam.so.1)

Seeds are small: a few typical inputs per target, from which the fuzzer
mutates. The snapshots are saved by the library itself (through ctypes)
from the tree that fuzz_snapshot.c loads them into.
"""
import ctypes
import os
import random
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def config_seeds():
    shutil.copy(os.path.join(ROOT, "examples", "obspam.conf"),
                os.path.join(CORPUS, "fuzz_config", "obspam.conf"))
    write("fuzz_config", "small.conf",
          "default mailbox=10 domain=100 subscription=1000 scripts=yes\n"
          "plan basic mailbox=5 scripts=inherit\n"
          "subscription acme plan=basic uid=1000 contact=ops@acme.example\n"
          "domain acme.example subscription=acme domain=50 mailbox=inherit\n"
          "mailbox info@acme.example limit=4\n"
          "whitelist 192.0.2.0/24\n")
    write("fuzz_config", "crlf-bom.conf",
          "\ufeffenabled yes\r\ncount messages\r\naction reject\r\n"
          "retention 1\r\nnotify-period 60\r\nnotify-immediate yes\r\n"
          "subscription S1 subscription=unlimited\r\n"
          "domain A.example subscription=s1\r\nmailbox a#b@A.example\r\n"
          "whitelist 2001:db8::/32")
    write("fuzz_config", "error-later.conf",
          "subscription acme plan=Basik\nplan basik\n")
    write("fuzz_config", "options.conf",
          "count-unauthenticated no\ncount-forward-local yes\n"
          "count-forward-remote no\ncount-mailing-lists yes\n"
          "default mailbox=unlimited domain=0 subscription=99999999999\n")


def addr_seeds():
    for i, (kind, text) in enumerate([
            (0, "192.0.2.0/24"), (1, "2001:db8::/32"), (2, "::ffff:10.0.0.1"),
            (3, "info@Example.COM"), (0, "198.51.100.240/28"),
            (1, "10.0.0.1/024"), (2, "fe80::1%eth0"), (3, "a@b@c"),
            (0, "::ffff:192.0.2.0/120"), (1, "0.0.0.0/0")]):
        write("fuzz_addr", "seed-%02d" % i, bytes([kind]) + text.encode())


def decide_seeds():
    rnd = random.Random(20240501)
    for i in range(6):
        n = rnd.choice([64, 128, 256, 512])
        write("fuzz_decide", "program-%d" % i,
              bytes(rnd.randrange(256) for _ in range(n)))
    # Mostly mail from one mailbox, to reach its limits.
    prog = bytearray()
    for _ in range(40):
        prog += bytes([0, 0, 0, 0, 2, 0, 0, 0, 2, 30])
    write("fuzz_decide", "one-mailbox", bytes(prog))


def policy_seeds():
    req = ("request=smtpd_access_policy\nprotocol_state=RCPT\n"
           "protocol_name=ESMTP\nclient_address=192.0.2.25\n"
           "client_name=mail.example.com\nreverse_client_name=mail.example.com\n"
           "helo_name=mail.example.com\nsender=info@acme.example\n"
           "recipient=someone@example.net\nrecipient_count=0\n"
           "queue_id=\ninstance=123.456.7\nsize=0\netrn_domain=\nstress=\n"
           "sasl_method=plain\nsasl_username=info@acme.example\nsasl_sender=\n"
           "ccert_subject=\nccert_issuer=\nccert_fingerprint=\n"
           "encryption_protocol=TLSv1.3\nencryption_cipher=TLS_AES_256\n"
           "encryption_keysize=256\n\n")
    data = req.replace("RCPT", "END-OF-MESSAGE").replace(
        "recipient_count=0", "recipient_count=12")
    write("fuzz_policy", "rcpt", b"\x00" + req.encode())
    write("fuzz_policy", "two-requests", b"\x07" + (req + data).encode())
    write("fuzz_policy", "crlf",
          b"\x01" + req.replace("\n", "\r\n").encode())
    write("fuzz_policy", "malformed",
          b"\x03request=smtpd_access_policy\nno equals sign\n\n")
    write("fuzz_policy", "ipv6-unknown",
          b"\x05\n\nrequest=smtpd_access_policy\nprotocol_state=DATA\n"
          b"client_address=unknown\nsender=\nrecipient_count=4294967295\n\n"
          b"request=smtpd_access_policy\nclient_address=::1\n"
          b"protocol_state=data\nrecipient_count=3\n\n")


class Message(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32),
                ("flags", ctypes.c_uint32),
                ("sasl_username", ctypes.c_char_p),
                ("sender", ctypes.c_char_p),
                ("client_address", ctypes.c_char_p),
                ("recipients", ctypes.c_uint32),
                ("uid", ctypes.c_int64),
                ("domain_hint", ctypes.c_char_p),
                ("script", ctypes.c_char_p),
                ("time", ctypes.c_int64)]


class Verdict(ctypes.Structure):
    _fields_ = [("struct_size", ctypes.c_uint32),
                ("action", ctypes.c_int32), ("kind", ctypes.c_int32),
                ("limit", ctypes.c_int64), ("count", ctypes.c_int64),
                ("retry_after", ctypes.c_int64),
                ("object", ctypes.c_char * 328)]


# The configuration of fuzz_snapshot.c and fuzz_journal.c.
CONF = (b"retention 72\nnotify-period 600\n"
        b"plan basic mailbox=5 domain=50 subscription=100\n"
        b"subscription acme plan=basic uid=1000 contact=ops@acme.example\n"
        b"subscription bakery uid=1001 subscription=7\n"
        b"domain acme.example subscription=acme\n"
        b"domain bakery.example subscription=bakery mailbox=3\n"
        b"mailbox info@acme.example limit=4\n"
        b"mailbox demo@bakery.example\n")


def library(build):
    lib = ctypes.CDLL(os.path.join(build, "libobspam.so.1"))
    lib.obspam_engine_new.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
    lib.obspam_load_config_string.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.obspam_state_save.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.obspam_decide.argtypes = [ctypes.c_void_p, ctypes.c_void_p,
                                  ctypes.c_void_p]
    lib.obspam_notify_flush.argtypes = [ctypes.c_void_p, ctypes.c_int64]
    lib.obspam_journal_open.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                        ctypes.c_uint, ctypes.c_void_p,
                                        ctypes.c_void_p]
    lib.obspam_journal_close.argtypes = [ctypes.c_void_p]
    lib.obspam_reset.argtypes = [ctypes.c_void_p, ctypes.c_int,
                                 ctypes.c_char_p, ctypes.c_int64]
    lib.obspam_engine_free.argtypes = [ctypes.c_void_p]
    return lib


def snapshot_seeds(build):
    lib = library(build)
    conf = CONF
    t0 = 1700000000
    tmp = tempfile.mkdtemp()
    try:
        # Refusals in a period that ends are kept as pending notices, which
        # the snapshot holds: the busy one has some.
        for name, hours in (("small", 1), ("busy", 5)):
            e = ctypes.c_void_p()
            assert lib.obspam_engine_new(ctypes.byref(e)) == 0
            assert lib.obspam_load_config_string(e, conf) == 0
            for h in range(hours):
                for i in range(12):
                    m = Message(ctypes.sizeof(Message), 0, None,
                                [b"info@acme.example", b"x@acme.example",
                                 b"demo@bakery.example"][i % 3],
                                None, 1 + i % 2, 1000, None,
                                b"/var/www/acme/index.php" if i % 4 == 0
                                else None,
                                t0 + h * 3600 + i * 40)
                    if i == 11:
                        m.flags = 1  # a script of uid 1000
                    v = Verdict(ctypes.sizeof(Verdict))
                    assert lib.obspam_decide(e, ctypes.byref(m),
                                             ctypes.byref(v)) == 0
            path = os.path.join(tmp, name).encode()
            assert lib.obspam_state_save(e, path) == 0
            with open(path, "rb") as f:
                data = f.read()
            write("fuzz_snapshot", name + ".file", b"\x00" + data)
            # 0x09: the payload behind a header of format 5 (the
            # "-format4" seeds beside them were written by 1.3, whose
            # payload goes behind 0x07).
            write("fuzz_snapshot", name + ".payload", b"\x09" + data[32:])
    finally:
        shutil.rmtree(tmp)
    write("fuzz_snapshot", "foreign", b"\x00GIF89a")
    write("fuzz_snapshot", "newer",
          b"\x00OBSPAMST\x06\x00\x00\x00" + bytes(16))


def varint(data, i):
    """The varint at data[i]: its value and the index after it."""
    v = shift = 0
    while True:
        b = data[i]
        i += 1
        v |= (b & 0x7f) << shift
        shift += 7
        if b < 0x80:
            return v, i


def journal_seeds(build):
    """Journals of format 3 written by the library (decisions accepted and
    refused, a script's with its uid, a reset, a probe), whole and as
    records behind 0x05 (format 3 framed by the target); the format 1
    sample of tests/data behind 0x00; a foreign and a newer file."""
    lib = library(build)
    t0 = 1700000000
    tmp = tempfile.mkdtemp()
    try:
        state = os.path.join(tmp, "state").encode()
        e = ctypes.c_void_p()
        assert lib.obspam_engine_new(ctypes.byref(e)) == 0
        assert lib.obspam_load_config_string(e, CONF) == 0
        assert lib.obspam_journal_open(e, state, 0, None, None) == 0
        for i in range(16):
            m = Message(ctypes.sizeof(Message), 0, None,
                        [b"info@acme.example", b"x@acme.example",
                         b"demo@bakery.example", b"y@bakery.example"][i % 4],
                        None, 1 + i % 3, 1000, None,
                        b"/var/www/acme/index.php" if i % 5 == 0 else None,
                        t0 + i * 50)
            m.flags = 1 if i == 15 else 16 if i == 13 else 0
            v = Verdict(ctypes.sizeof(Verdict))
            assert lib.obspam_decide(e, ctypes.byref(m), ctypes.byref(v)) == 0
        assert lib.obspam_reset(e, 4, b"info@acme.example", t0 + 900) == 0
        assert lib.obspam_journal_close(e) == 0
        lib.obspam_engine_free(e)
        with open(state + b".journal", "rb") as f:
            data = f.read()
    finally:
        shutil.rmtree(tmp)
    write("fuzz_journal", "decisions.file", b"\x00" + data)
    records, i = b"", 32
    while i < len(data):
        n, j = varint(data, i)
        records += bytes([n]) + data[j + 4:j + 4 + n]
        i = j + 4 + n
    write("fuzz_journal", "decisions.records", b"\x05" + records)
    with open(os.path.join(ROOT, "tests", "data", "journal-format1.bin"),
              "rb") as f:
        write("fuzz_journal", "format1.file", b"\x00" + f.read())
    write("fuzz_journal", "foreign", b"\x00GIF89a")
    write("fuzz_journal", "newer", b"\x00OBSPAMJR\x04" + bytes(23))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_seeds.py BUILD_DIR")
    for t in ("fuzz_config", "fuzz_addr", "fuzz_decide", "fuzz_policy",
              "fuzz_snapshot", "fuzz_journal"):
        os.makedirs(os.path.join(CORPUS, t), exist_ok=True)
    config_seeds()
    addr_seeds()
    decide_seeds()
    policy_seeds()
    snapshot_seeds(sys.argv[1])
    journal_seeds(sys.argv[1])


if __name__ == "__main__":
    main()
