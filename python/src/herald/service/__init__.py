"""FluxLib's service framework on Herald: services made of nodes talking over NATS subjects.

The API is FluxLib's (``fluxlib.service``, ``fluxlib.node``, ``fluxlib.state``; see
compat/nats-fluxlib.md §3) working as its documentation says, with nats-py as the transport, so it
runs against Herald's NATS listener or any NATS server, and interoperates with FluxLib/fluxmq
services on the same subjects::

    import asyncio
    from herald.service import DataNode, DataOutput, Node, Service, ServiceOptions

    class Doubler(Node):
        async def on_start(self):
            await self.subscribe_handler(f"double.{self.id}", self.double)

        async def double(self, message):
            value = message.json() * 2
            await self.service.respond(message, value)          # JSON: b"42"
            await self.output("result").publish(value)

    class MyService(Service):
        def get_node(self, descriptor):                        # for service.<id>.set_config
            return Doubler(self, node=descriptor)

    async def main():
        service = MyService("svc1", servers="nats://127.0.0.1:4222",
                            opts=ServiceOptions(has_global_tick=False))
        service.append_node(Doubler(service, node=DataNode(
            id="d1", outputs=[DataOutput(alias="result", topics=["results/d1"])])))
        await service.run()                # subscribes service.svc1.*, publishes CONNECTED
        await service.start_node("d1")
        ...
        await service.shutdown()           # or: await service.run_forever() (SIGINT/SIGTERM)

    asyncio.run(main())

Where FluxLib's code and documentation disagree (compat/nats-fluxlib.md §3.8), this package does
what the documentation promises: ``request()`` returns the reply and ``respond()`` sends its
payload; messages have ``data`` as well as ``payload``; a handler that raises is logged and later
messages are still handled; ``start_node`` / ``stop_node`` / ``destroy_node`` and their ``_all``
variants work; ``Node.stop()`` publishes ``stopped`` and cancels the ticks, ``destroy()`` reaches
``on_destroy``; ``on_tick`` is driven by the service tick (``ServiceOptions(has_global_tick=True,
tick_interval=ms)``, camelCase accepted) or by the node's ``DataTimer``, and overriding the method
works; ``on_shutdown`` runs on shutdown; nodes, default state and logger are per service;
``StateSlice`` initial values are visible through the prefix, slices share by passing a slice or
its ``_state``, and ``reset()`` clears only that slice. Node input **and** output topics map ``/``
to ``.`` so they meet (see :mod:`herald.service.node` for the details).

Subjects are fluxmq ``NatsTopic``'s (:class:`Topics`), statuses ``NatsStatus``' upper-case texts
(:class:`ServiceStatus`) and ``created`` / ``started`` / ``stopped`` for nodes (:class:`NodeStatus`).
"""

from ..exceptions import (
    HeraldConnectionError,
    HeraldError,
    HeraldInvalidArgumentError,
    HeraldNoRespondersError,
    HeraldNotFoundError,
    HeraldTimeoutError,
)
from .data import DataInput, DataNode, DataOutput, DataTimer
from .message import Message, encode_payload
from .node import Input, Node, Output
from .options import ServiceOptions
from .service import DEFAULT_REQUEST_TIMEOUT, DEFAULT_SERVERS, Service
from .state import State, StateSlice
from .subscription import Subscription
from .topics import NodeStatus, ServiceStatus, Topics, topic_to_subject

__all__ = [
    "Service",
    "ServiceOptions",
    "Node",
    "Input",
    "Output",
    "DataNode",
    "DataInput",
    "DataOutput",
    "DataTimer",
    "StateSlice",
    "State",
    "Message",
    "Subscription",
    "Topics",
    "ServiceStatus",
    "NodeStatus",
    "topic_to_subject",
    "encode_payload",
    "DEFAULT_SERVERS",
    "DEFAULT_REQUEST_TIMEOUT",
    "HeraldError",
    "HeraldConnectionError",
    "HeraldInvalidArgumentError",
    "HeraldNotFoundError",
    "HeraldTimeoutError",
    "HeraldNoRespondersError",
]
