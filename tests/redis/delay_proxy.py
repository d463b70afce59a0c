#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A TCP proxy on 127.0.0.1 that adds a delay to every round trip.

    delay_proxy.py LISTEN_PORT TARGET_PORT DELAY_MS [CONTROL_PORT]

Each chunk a client sends reaches 127.0.0.1:TARGET_PORT DELAY_MS
milliseconds later, in order; answers come back at once. So a request
and its answer take DELAY_MS more, as on a network where the relay and
its Redis are that far apart. Prints "ready" once it listens; runs until
killed.

With CONTROL_PORT, a connection to 127.0.0.1:CONTROL_PORT sends one line
and gets one line back:
  count    the number of charge exchanges forwarded so far: turns of a
           connection (what a client sends until an answer comes back)
           that call a script (EVALSHA), however TCP cut them;
  hold     from now on nothing reaches Redis ("ok");
  release  what was held goes on, in order, DELAY_MS later ("ok").
"""
import asyncio
import sys


class Control:
    """What the control port reports and sets."""

    def __init__(self):
        self.exchanges = 0
        self.held = None  # while held, the (writer, data) waiting

    def send(self, writer, data, delay):
        if self.held is not None:
            self.held.append((writer, data))
        elif delay > 0:
            # Timers of equal delay fire in the order they were set.
            asyncio.get_running_loop().call_later(delay, writer.write, data)
        else:
            writer.write(data)

    def release(self, delay):
        held, self.held = self.held or [], None
        for writer, data in held:
            self.send(writer, data, delay)


class Turn:
    """One connection's turn: the client has spoken since the last
    answer (open), and the turn was counted as an exchange (counted)."""

    def __init__(self):
        self.open = False
        self.counted = False


async def pipe(reader, writer, delay, control, turn, upstream):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if upstream:
                if not turn.open:
                    turn.open, turn.counted = True, False
                if not turn.counted and b"EVALSHA" in data:
                    turn.counted = True
                    control.exchanges += 1
                control.send(writer, data, delay)
            else:
                turn.open = False
                writer.write(data)
    except (ConnectionError, OSError):
        pass
    finally:
        if upstream and delay > 0:
            await asyncio.sleep(delay)
        writer.close()


async def serve(listen_port, target_port, delay, control_port):
    control = Control()

    async def handle(creader, cwriter):
        try:
            sreader, swriter = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            cwriter.close()
            return
        turn = Turn()
        await asyncio.gather(
            pipe(creader, swriter, delay, control, turn, True),
            pipe(sreader, cwriter, 0, control, turn, False),
        )

    async def command(reader, writer):
        try:
            line = (await reader.readline()).strip()
            if line == b"count":
                answer = str(control.exchanges)
            elif line == b"hold":
                control.held = control.held if control.held is not None else []
                answer = "ok"
            elif line == b"release":
                control.release(delay)
                answer = "ok"
            else:
                answer = "unknown command"
            writer.write(answer.encode() + b"\n")
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    if control_port is not None:
        await asyncio.start_server(command, "127.0.0.1", control_port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main():
    if len(sys.argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000,
                      int(sys.argv[4]) if len(sys.argv) == 5 else None))


if __name__ == "__main__":
    main()
