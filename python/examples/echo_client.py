"""Echo client: sends N requests to an echo node of examples/echo_service.py and prints the replies.

    python examples/echo_client.py [NATS_URL] [--node echo1] [--count 3]

The URL comes from the argument, else $HERALD_NATS_URL, else nats://127.0.0.1:4222. It also
listens to the node's output (``echo.<node>.response``) and prints what the node published there.
"""

import argparse
import asyncio
import os
import sys
import time

from herald.service import HeraldError, Service


async def run(url: str, node: str, count: int) -> None:
    async with Service("echo-client", servers=url) as client:
        outputs = await client.subscribe(f"echo.{node}.response")
        for i in range(1, count + 1):
            request = {"text": f"Hello, Echo! Message #{i}", "id": i}
            started = time.monotonic()
            reply = await client.request(f"echo.{node}.request", request, timeout=2)
            elapsed_ms = (time.monotonic() - started) * 1000
            print(f"reply {i}: {reply.text()} (count {reply.headers.get('Echo-Count')}, {elapsed_ms:.1f} ms)")
        for i in range(1, count + 1):
            message = await outputs.next(timeout=2)
            print(f"output {i}: {message.text()}")
        print(f"received {count} replies from {node}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default=os.environ.get("HERALD_NATS_URL", "nats://127.0.0.1:4222"))
    parser.add_argument("--node", default="echo1", help="echo node id")
    parser.add_argument("--count", type=int, default=3, help="number of requests")
    args = parser.parse_args()
    try:
        asyncio.run(run(args.url, args.node, args.count))
    except HeraldError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
