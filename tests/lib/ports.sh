# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Ports for the servers a test starts, on 127.0.0.1 only.
#
#   . tests/lib/ports.sh
#   port=$(free_port)

# free_port: prints a TCP port of 127.0.0.1 that is free right now (the
# kernel picks it; the small race until it is bound again is harmless on a
# test machine).
free_port() {
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}
