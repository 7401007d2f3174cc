"""AC-19's reader, run in its own process: a nats-py subscriber that must keep up and receive everything while
another subscriber of the same subject is cut off as a slow consumer.

usage: slow_consumer_reader.py URL SUBJECT COUNT SIZE LIMIT_SECONDS
prints "ready" once the subscription is in place, then "received <n> disconnects <d>" at the end.
Exit code 0 when COUNT messages of SIZE bytes arrived within LIMIT_SECONDS, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import sys

import nats


async def main(url: str, subject: str, count: int, size: int, limit: float) -> int:
    disconnects = 0

    async def disconnected():
        nonlocal disconnects
        disconnects += 1

    nc = await asyncio.wait_for(nats.connect(url, disconnected_cb=disconnected), 10)
    received = 0
    wrong = 0
    done = asyncio.Event()

    async def cb(msg):
        nonlocal received, wrong
        received += 1
        if len(msg.data) != size:
            wrong += 1
        if received >= count:
            done.set()

    await nc.subscribe(subject, cb=cb, pending_msgs_limit=count * 2, pending_bytes_limit=count * size * 2)
    await nc.flush(timeout=5)
    await nc.flush(timeout=5)  # the second PONG is behind the SUB (nats-py's PING can overtake it)
    print("ready", flush=True)
    try:
        await asyncio.wait_for(done.wait(), limit)
    except asyncio.TimeoutError:
        pass
    connected = nc.is_connected
    disconnects_before_close = disconnects  # close() itself calls disconnected_cb
    await nc.close()
    disconnects = disconnects_before_close
    print(f"received {received} disconnects {disconnects}", flush=True)
    ok = received == count and wrong == 0 and disconnects == 0 and connected
    return 0 if ok else 1


if __name__ == "__main__":
    url, subject, count, size, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    sys.exit(asyncio.run(main(url, subject, count, size, limit)))
