"""Herald Python SDK: async client for Herald's streams, queues and key-value stores.

The API is the FlowMesh Python SDK's, under Herald's names; the ``flowmesh`` package installed
alongside re-exports everything under the FlowMesh names. :mod:`herald.service` (imported on its
own) is FluxLib's service/node framework on Herald's NATS listener.

Example::

    import asyncio
    from herald import Herald, Event

    async def main():
        async with Herald("127.0.0.1:50051", auth_token="my-token") as client:
            await client.stream.write("default", "test", "orders", [Event(payload=b"hello")])

    asyncio.run(main())
"""

from .client import Herald, KVClient, QueueClient, StreamClient
from .exceptions import (
    HeraldAlreadyExistsError,
    HeraldAuthError,
    HeraldConnectionError,
    HeraldError,
    HeraldFailedPreconditionError,
    HeraldInvalidArgumentError,
    HeraldNotFoundError,
    HeraldPermissionDeniedError,
    handle_grpc_error,
)
from .types import ConsumerGroupState, Event, Job, Message, QueueStats, RetryPolicy
from .utils import build_resource_path, nanos_to_timestamp, timestamp_to_nanos

__version__ = "0.1.0"

__all__ = [
    "Herald",
    "StreamClient",
    "QueueClient",
    "KVClient",
    "Event",
    "Message",
    "Job",
    "QueueStats",
    "RetryPolicy",
    "ConsumerGroupState",
    "HeraldError",
    "HeraldConnectionError",
    "HeraldAuthError",
    "HeraldNotFoundError",
    "HeraldPermissionDeniedError",
    "HeraldInvalidArgumentError",
    "HeraldFailedPreconditionError",
    "HeraldAlreadyExistsError",
    "handle_grpc_error",
    "build_resource_path",
    "timestamp_to_nanos",
    "nanos_to_timestamp",
]
