#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A TCP proxy on 127.0.0.1 that adds a delay to every round trip.

    delay_proxy.py LISTEN_PORT TARGET_PORT DELAY_MS

Each chunk a client sends reaches 127.0.0.1:TARGET_PORT DELAY_MS
milliseconds later, in order; answers come back at once. So a request
and its answer take DELAY_MS more, as on a network where the relay and
its Redis are that far apart. Prints "ready" once it listens; runs until
killed.
"""
import asyncio
import sys


async def pipe(reader, writer, delay):
    loop = asyncio.get_running_loop()
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if delay > 0:
                # Timers of equal delay fire in the order they were set.
                loop.call_later(delay, writer.write, data)
            else:
                writer.write(data)
    except (ConnectionError, OSError):
        pass
    finally:
        if delay > 0:
            await asyncio.sleep(delay)
        writer.close()


async def serve(listen_port, target_port, delay):
    async def handle(creader, cwriter):
        try:
            sreader, swriter = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            cwriter.close()
            return
        await asyncio.gather(
            pipe(creader, swriter, delay), pipe(sreader, cwriter, 0)
        )

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    asyncio.run(serve(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) / 1000))


if __name__ == "__main__":
    main()
