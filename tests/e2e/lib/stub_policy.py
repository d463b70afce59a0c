#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A stand-in policy server for the harness check: answers DUNNO to every
request and appends "<protocol_state> <sasl_username> <sender>" for each
one to a file.

    stub_policy.py PORT-FILE LOG-FILE

It listens on a free port of 127.0.0.1 and writes that port to PORT-FILE
once it accepts connections. It stops on SIGTERM.
"""
import os
import signal
import socketserver
import sys


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        attrs = {}
        for raw in self.rfile:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line:
                name, _, value = line.partition("=")
                attrs[name] = value
                continue
            with open(sys.argv[2], "a") as log:
                log.write("%s %s %s\n" % (attrs.get("protocol_state", "-"),
                                          attrs.get("sasl_username") or "-",
                                          attrs.get("sender") or "-"))
            self.wfile.write(b"action=DUNNO\n\n")
            self.wfile.flush()
            attrs = {}


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    server = Server(("127.0.0.1", 0), Handler)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    tmp = sys.argv[1] + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.rename(tmp, sys.argv[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
