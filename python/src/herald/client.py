"""The Herald client: one gRPC channel, with ``.stream``, ``.queue`` and ``.kv`` sub-clients.

Example::

    async with Herald("127.0.0.1:50051", auth_token="my-token") as client:
        offsets = await client.stream.write("default", "test", "orders", [Event(payload=b"hi")])
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, List, Optional, Tuple, Type

import grpc
import grpc.aio

from ._generated import flowmesh_pb2 as pb
from ._generated import flowmesh_pb2_grpc as pb_grpc
from .exceptions import HeraldConnectionError, handle_grpc_error
from .kv import KVClient
from .queues import QueueClient
from .streams import StreamClient

__all__ = ["Herald", "StreamClient", "QueueClient", "KVClient"]

# Responses (a ReadStream of 1000 messages, a large DLQ listing) can exceed gRPC's default 4 MiB
# receive limit; the server decides what it sends, so the client accepts any size.
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", -1)]


class Herald:
    """Async client for a Herald server's FlowMesh-compatible gRPC API.

    Args:
        endpoint: ``host:port`` of the gRPC listener (for example ``"127.0.0.1:50051"``); used as
            given, without validation.
        auth_token: bearer token sent as ``authorization: Bearer <token>`` with every call, or
            ``None`` for a server running without authentication.

    The constructor does no I/O. :meth:`connect` (or ``async with``) opens the channel without
    waiting for the server, so an unreachable server shows up as
    :class:`~herald.exceptions.HeraldConnectionError` on the first call. Calls made before
    ``connect()`` or after ``close()`` raise ``HeraldConnectionError`` too.

    Attributes:
        stream: :class:`StreamClient` — append-only streams, offsets and consumer groups.
        queue: :class:`QueueClient` — job queues with retries and a dead-letter queue.
        kv: :class:`KVClient` — key-value stores with TTL.
    """

    def __init__(self, endpoint: str, auth_token: Optional[str] = None) -> None:
        self.endpoint = endpoint
        self.auth_token = auth_token
        self._channel: Optional[grpc.aio.Channel] = None
        self._stubs: Optional[dict] = None
        self.stream = StreamClient(self)
        self.queue = QueueClient(self)
        self.kv = KVClient(self)

    async def connect(self) -> None:
        """Open an insecure gRPC channel to ``endpoint`` and create the stubs.

        Does not wait for the server to be reachable. Calling it again while connected does nothing.
        """
        if self._channel is not None:
            return
        channel = grpc.aio.insecure_channel(self.endpoint, options=_CHANNEL_OPTIONS)
        self._channel = channel
        self._stubs = {
            "health": pb_grpc.HealthServiceStub(channel),
            "stream": pb_grpc.StreamServiceStub(channel),
            "queue": pb_grpc.QueueServiceStub(channel),
            "kv": pb_grpc.KVServiceStub(channel),
        }

    async def close(self) -> None:
        """Close the channel, cancelling calls still in progress. Safe to call repeatedly or before
        ``connect()``."""
        channel, self._channel, self._stubs = self._channel, None, None
        if channel is not None:
            await channel.close()

    async def __aenter__(self) -> "Herald":
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()

    async def health_check(self) -> bool:
        """Return ``True`` when the server answers its health check with status code 0.

        Needs no valid token. Raises (rather than returning ``False``) when the call fails, e.g.
        ``HeraldConnectionError`` when the server is unreachable.
        """
        response = await self._call("health", "HealthCheck", pb.HealthCheckRequest(), "health_check")
        return response.status.code == 0

    async def readiness_check(self) -> bool:
        """Return whether the server is ready to serve data requests (storage opened and recovered).

        Needs no valid token. Raises when the call itself fails.
        """
        response = await self._call(
            "health", "ReadinessCheck", pb.ReadinessCheckRequest(), "readiness_check"
        )
        return bool(response.ready)

    def _get_metadata(self) -> Optional[List[Tuple[str, str]]]:
        """Call metadata: ``None`` without a token, else ``[("authorization", "Bearer <token>")]``."""
        if self.auth_token is None:
            return None
        return [("authorization", f"Bearer {self.auth_token}")]

    def _stub(self, service: str, operation: str) -> Any:
        """The stub for ``service``; raises ``HeraldConnectionError`` when not connected."""
        if self._stubs is None:
            raise HeraldConnectionError(
                f"{operation} failed: client is not connected (call connect() or use 'async with')"
            )
        return self._stubs[service]

    async def _call(self, service: str, method: str, request: Any, operation: str) -> Any:
        """Run one unary RPC with the auth metadata, mapping gRPC errors to SDK exceptions."""
        rpc = getattr(self._stub(service, operation), method)
        try:
            return await rpc(request, metadata=self._get_metadata())
        except grpc.RpcError as e:
            raise handle_grpc_error(e, operation) from e

    def __repr__(self) -> str:
        state = "connected" if self._channel is not None else "not connected"
        return f"Herald(endpoint={self.endpoint!r}, {state})"
