"""Streams: write events, read them back, follow the stream with a consumer group and commit.

    python examples/streams.py --endpoint 127.0.0.1:50051 [--token TOKEN]

Needs the stream default/test/stream/orders provisioned on the server.
"""

import argparse
import asyncio
import json
import sys

from herald import Event, Herald, HeraldError

TENANT, NAMESPACE, STREAM = "default", "test", "orders"
GROUP = "order-processor"


async def run(endpoint: str, token: "str | None") -> None:
    async with Herald(endpoint, auth_token=token) as client:
        events = [
            Event(
                payload=json.dumps({"order_id": f"order-{i}", "amount": 10 * (i + 1)}).encode(),
                headers={"event-type": "order.created"},
            )
            for i in range(3)
        ]
        offsets = await client.stream.write(TENANT, NAMESPACE, STREAM, events)
        print(f"wrote {len(offsets)} events at offsets {offsets}")

        for msg in await client.stream.read(TENANT, NAMESPACE, STREAM, offset=offsets[0], max_messages=10):
            print(f"read offset {msg.offset}: {msg.payload.decode()} headers={msg.headers}")

        # Position the group just before our first event, then follow the stream from its committed
        # offset (start_offset=-1), committing after each message is processed.
        await client.stream.commit_offset(TENANT, NAMESPACE, STREAM, GROUP, 0, offsets[0] - 1)

        async def consume() -> int:
            processed = 0
            async for msg in client.stream.subscribe(TENANT, NAMESPACE, STREAM, GROUP, start_offset=-1):
                order = json.loads(msg.payload)
                print(f"processed offset {msg.offset}: {order['order_id']}")
                await client.stream.commit_offset(TENANT, NAMESPACE, STREAM, GROUP, 0, msg.offset)
                processed += 1
                if msg.offset >= offsets[-1]:
                    break  # leaving the loop cancels the subscription
            return processed

        processed = await asyncio.wait_for(consume(), timeout=30)
        state = await client.stream.get_consumer_group_state(TENANT, NAMESPACE, STREAM, GROUP)
        print(
            f"consumer group {GROUP}: processed {processed}, committed offset {state.committed_offset}, "
            f"latest offset {state.latest_offset}, lag {state.lag}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="127.0.0.1:50051", help="gRPC address of the Herald server")
    parser.add_argument("--token", default=None, help="bearer token, if the server requires one")
    args = parser.parse_args()
    try:
        asyncio.run(run(args.endpoint, args.token))
    except HeraldError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
