#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Sends test messages to the private Postfix, logged in through XCLIENT.

    smtpclient.py --port P --login info@acme.example --count 6 \
        --sender info@acme.example --rcpt someone@remote.example --tag mb

Each message goes in its own SMTP session: EHLO, XCLIENT LOGIN=<login>
(Postfix answers 220 and a new greeting), EHLO again, MAIL, RCPT, DATA, the
content, ".". With --auth PASSWORD the login is SMTP AUTH PLAIN instead of
XCLIENT (for Exim, which has no XCLIENT). With --addr the same XCLIENT also sets the client's address,
so that the session is one from that client (without --login: a client
that does not log in, as the Internet delivering mail). One line is printed per message:

    <n> <stage> <code> <text>

where stage is "accepted" (250 at end of data), "data" (the DATA command
was refused), "eod" (refused at end of data), "mail" or "rcpt" (refused
there), and text is the server's reply on one line. Every message body ends
with the line "-- end of test message", which tells the test that the
sink's copy is complete. The exit status is 0 when every session ran to its
end, whatever the replies; 2 on a protocol or connection failure.
"""
import argparse
import smtplib
import sys


def one_message(args, n):
    s = smtplib.SMTP("127.0.0.1", args.port, timeout=args.timeout)
    try:
        s.ehlo("client.e2e.test")
        if args.auth:
            # SMTP AUTH PLAIN, for an MTA without XCLIENT (Exim).
            s.login(args.login, args.auth)
        attrs = []
        if args.login and not args.auth:
            attrs.append("LOGIN=" + args.login)
        if args.addr:
            attrs.append("ADDR=" + args.addr)
        if attrs:
            code, text = s.docmd("XCLIENT", " ".join(attrs))
            if code != 220:
                raise RuntimeError("XCLIENT %s: %d %s"
                                   % (" ".join(attrs), code, text.decode()))
            s.ehlo_resp = None
            s.ehlo("client.e2e.test")
        code, text = s.mail(args.sender)
        if code != 250:
            return "mail", code, text
        code, text = s.rcpt(args.rcpt)
        if code not in (250, 251):
            return "rcpt", code, text
        body = ("From: <{sender}>\r\nTo: <{rcpt}>\r\n"
                "Subject: e2e {tag} {n}\r\n"
                "X-E2E-Tag: {tag}-{n}\r\n\r\n"
                "Test message {n} of {tag}.\r\n"
                "-- end of test message\r\n").format(
                    sender=args.sender, rcpt=args.rcpt, tag=args.tag, n=n)
        try:
            code, text = s.data(body)
        except smtplib.SMTPDataError as e:
            # DATA itself was refused (smtpd_data_restrictions).
            return "data", e.smtp_code, e.smtp_error
        return ("accepted" if code == 250 else "eod"), code, text
    finally:
        try:
            s.quit()
        except smtplib.SMTPException:
            s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--login", default="")
    ap.add_argument("--auth", default="",
                    help="log in with AUTH PLAIN and this password rather "
                    "than with XCLIENT")
    ap.add_argument("--addr", default="",
                    help="the client address XCLIENT gives the session")
    ap.add_argument("--sender", required=True)
    ap.add_argument("--rcpt", default="someone@remote.example")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--first", type=int, default=1,
                    help="number of the first message (in its subject)")
    ap.add_argument("--tag", default="msg")
    ap.add_argument("--timeout", type=float, default=30)
    args = ap.parse_args()
    for n in range(args.first, args.first + args.count):
        try:
            stage, code, text = one_message(args, n)
        except (OSError, smtplib.SMTPException, RuntimeError) as e:
            print("smtpclient: message %d: %s" % (n, e), file=sys.stderr)
            return 2
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        print(n, stage, code, " ".join(text.split()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
