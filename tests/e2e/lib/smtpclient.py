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

With --rcpts N each message goes to N recipients (rcpt-TAG-N-I@DOMAIN of
--rcpt's domain, I from 1) as an honest client sends it: the recipients
a RCPT answers with a 4xx are sent again in another transaction of the
same session once the message has gone to the others, until none is
left or a transaction takes none; after a 452 (too many recipients) the
transaction asks for no more of them, as RFC 5321 (4.5.3.1.10) expects.
One line per transaction:

    <n> <stage> <code> rcpts=<taken> deferred=<left> <text>
"""
import argparse
import smtplib
import sys


def session(args):
    """An SMTP session, logged in as the options say."""
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
    except BaseException:
        s.close()
        raise
    return s


def quit_session(s):
    try:
        s.quit()
    except smtplib.SMTPException:
        s.close()


def one_message(args, n):
    s = session(args)
    try:
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
        quit_session(s)


def many_recipients(args, n):
    """Message n to args.rcpts recipients, in as many transactions as the
    server's 4xx at RCPT make: a list of (stage, code, taken, left, text)."""
    domain = args.rcpt.split("@", 1)[1]
    left = ["rcpt-%s-%d-%d@%s" % (args.tag, n, i, domain)
            for i in range(1, args.rcpts + 1)]
    out = []
    s = session(args)
    try:
        while left:
            code, text = s.mail(args.sender)
            if code != 250:
                out.append(("mail", code, 0, len(left), text))
                break
            taken, later = [], []
            for i, r in enumerate(left):
                code, text = s.rcpt(r)
                if code in (250, 251):
                    taken.append(r)
                elif code == 452:
                    later.extend(left[i:])
                    last = (code, text)
                    break
                elif 400 <= code < 500:
                    later.append(r)
                    last = (code, text)
                else:
                    out.append(("rcpt", code, 0, len(later), text))
                    return out
            if not taken:
                s.rset()
                out.append(("rcpt", last[0], 0, len(later), last[1]))
                break
            body = ("From: <{sender}>\r\nTo: <{rcpt}>\r\n"
                    "Subject: e2e {tag} {n}\r\n"
                    "X-E2E-Tag: {tag}-{n}\r\n\r\n"
                    "Test message {n} of {tag} to {k} recipients.\r\n"
                    "-- end of test message\r\n").format(
                        sender=args.sender, rcpt=taken[0], tag=args.tag,
                        n=n, k=len(taken))
            try:
                code, text = s.data(body)
            except smtplib.SMTPDataError as e:
                out.append(("data", e.smtp_code, len(taken), len(later),
                            e.smtp_error))
                break
            out.append((("accepted" if code == 250 else "eod"), code,
                        len(taken), len(later), text))
            if code != 250:
                break
            left = later
    finally:
        quit_session(s)
    return out


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
    ap.add_argument("--rcpts", type=int, default=0,
                    help="recipients per message, sent as an honest client "
                    "does when some get a 4xx (see above)")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--first", type=int, default=1,
                    help="number of the first message (in its subject)")
    ap.add_argument("--tag", default="msg")
    ap.add_argument("--timeout", type=float, default=30)
    args = ap.parse_args()
    for n in range(args.first, args.first + args.count):
        if args.rcpts > 0:
            try:
                lines = many_recipients(args, n)
            except (OSError, smtplib.SMTPException, RuntimeError) as e:
                print("smtpclient: message %d: %s" % (n, e), file=sys.stderr)
                return 2
            for stage, code, taken, left, text in lines:
                if isinstance(text, bytes):
                    text = text.decode("utf-8", "replace")
                print(n, stage, code, "rcpts=%d deferred=%d" % (taken, left),
                      " ".join(text.split()), flush=True)
            continue
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
