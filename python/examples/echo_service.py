"""Echo service: a herald.service Service with echo nodes answering requests over NATS.

    python examples/echo_service.py [NATS_URL] [--node echo1 --node echo2 ...]

The URL comes from the argument, else $HERALD_NATS_URL, else nats://127.0.0.1:4222. Each node
answers requests on ``echo.<node>.request`` with the request's payload and publishes the same
payload on its output ``echo/<node>/response`` (subject ``echo.<node>.response``). The service runs
until SIGINT or SIGTERM, then shuts down (nodes stopped, connection drained). Try it with
``examples/echo_client.py``.
"""

import argparse
import asyncio
import logging
import os
import sys
from typing import List

from herald.service import DataNode, DataOutput, HeraldError, Message, Node, Service, Subscription


class EchoNode(Node):
    """Answers ``echo.<id>.request`` while started."""

    request_sub: Subscription

    async def on_start(self) -> None:
        self.request_sub = await self.subscribe_handler(f"echo.{self.id}.request", self.echo)

    async def on_stop(self) -> None:
        await self.request_sub.unsubscribe()

    async def echo(self, message: Message) -> None:
        count = self.state.get("count", 0) + 1
        self.state.set("count", count)
        await self.service.respond(message, message.payload, headers={"Echo-Count": str(count)})
        await self.output("response").publish(message.payload)


class EchoService(Service):
    async def on_connected(self, service_id: str) -> None:
        self.logger.info("service %s connected", service_id)

    async def on_shutdown(self) -> None:
        for node in self.nodes:
            print(f"node {node.id} answered {node.state.get('count', 0)} requests", flush=True)


async def run(url: str, node_ids: List[str]) -> None:
    service = EchoService("echo-service", servers=url)
    for node_id in node_ids:
        descriptor = DataNode(
            id=node_id, type="echo", outputs=[DataOutput(alias="response", topics=[f"echo/{node_id}/response"])]
        )
        service.append_node(EchoNode(service, node=descriptor))
    await service.run()
    await service.start_node_all()
    print(f"echo service ready on {url}: nodes {', '.join(node_ids)}", flush=True)
    await service.run_forever()  # until SIGINT / SIGTERM
    print("echo service stopped", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", nargs="?", default=os.environ.get("HERALD_NATS_URL", "nats://127.0.0.1:4222"))
    parser.add_argument("--node", action="append", dest="nodes", help="node id (repeatable; default echo1)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        asyncio.run(run(args.url, args.nodes or ["echo1"]))
    except HeraldError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
