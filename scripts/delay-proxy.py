#!/usr/bin/env python3
"""A TCP proxy that adds a fixed one-way delay in each direction (tc netem is not in every kernel).

    delay-proxy.py LISTEN_HOST:PORT TARGET_HOST:PORT DELAY_MS

Bytes keep their order; each chunk is forwarded DELAY_MS after it was read. Stops on SIGTERM/SIGINT.
"""
import asyncio
import signal
import sys
import time


async def pump(reader, writer, delay):
    queue = asyncio.Queue()

    async def send():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.ensure_future(send())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            queue.put_nowait((time.monotonic() + delay, data))
    except (ConnectionError, OSError):
        pass
    queue.put_nowait((0, None))
    try:
        await sender
    except (ConnectionError, OSError):
        pass


async def main():
    (lhost, lport), (thost, tport) = (a.rsplit(":", 1) for a in sys.argv[1:3])
    delay = float(sys.argv[3]) / 1000

    async def handle(client_reader, client_writer):
        try:
            up_reader, up_writer = await asyncio.open_connection(thost, int(tport))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pump(client_reader, up_writer, delay), pump(up_reader, client_writer, delay))

    server = await asyncio.start_server(handle, lhost, int(lport))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    print(f"delay-proxy {lhost}:{lport} -> {thost}:{tport}, {delay * 1000:.1f} ms each way", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(64)
    asyncio.run(main())
