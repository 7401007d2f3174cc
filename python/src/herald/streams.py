"""Stream operations: ``client.stream``."""

from __future__ import annotations

from typing import TYPE_CHECKING, AsyncIterator, List

import grpc

from ._generated import flowmesh_pb2 as pb
from .exceptions import error_for_code, handle_grpc_error
from .types import ConsumerGroupState, Event, Message
from .utils import build_resource_path

if TYPE_CHECKING:  # pragma: no cover
    from .client import Herald

__all__ = ["StreamClient"]

#: ``start_offset`` for :meth:`StreamClient.subscribe`: resume after the group's committed offset.
START_COMMITTED = -1
#: ``start_offset`` for :meth:`StreamClient.subscribe`: only messages written after the call starts.
START_LATEST = -2


def _stream_path(tenant: str, namespace: str, stream: str) -> pb.ResourcePath:
    return pb.ResourcePath(**build_resource_path(tenant, namespace, "stream", stream))


class StreamClient:
    """Append-only streams addressed as ``tenant/namespace/stream/<name>``.

    Offsets start at 0 and grow by one per message. A stream has a single partition, 0; other
    partition numbers are accepted and look empty. A consumer group is only a committed offset per
    stream and partition: "the last offset this group has fully processed" (-1 = none). Nothing is
    committed automatically. Streams must be provisioned on the server; an unknown stream raises
    :class:`~herald.exceptions.HeraldNotFoundError`.
    """

    def __init__(self, client: "Herald") -> None:
        self._client = client

    async def write(self, tenant: str, namespace: str, stream: str, events: List[Event]) -> List[int]:
        """Append ``events`` in order (all or nothing) and return their offsets.

        Raises ``HeraldInvalidArgumentError`` for an empty list or an empty payload, or when a
        payload fails the JSON schema attached to the stream.
        """
        request = pb.WriteEventsRequest(
            resource_path=_stream_path(tenant, namespace, stream),
            events=[e.to_proto() for e in events],
        )
        response = await self._client._call("stream", "WriteEvents", request, "write")
        return list(response.offsets)

    async def read(
        self,
        tenant: str,
        namespace: str,
        stream: str,
        partition: int = 0,
        offset: int = 0,
        max_messages: int = 10,
    ) -> List[Message]:
        """Read up to ``max_messages`` messages with offsets ``>= offset``, oldest first.

        Reading at or past the end returns ``[]``. The server reads ``max_messages <= 0`` as 100
        and caps it at 1000; a negative ``offset`` is rejected.
        """
        request = pb.ReadStreamRequest(
            resource_path=_stream_path(tenant, namespace, stream),
            partition=partition,
            offset=offset,
            max_messages=max_messages,
        )
        response = await self._client._call("stream", "ReadStream", request, "read")
        return [Message.from_proto(m) for m in response.messages]

    async def subscribe(
        self,
        tenant: str,
        namespace: str,
        stream: str,
        consumer_group: str,
        partition: int = 0,
        start_offset: int = START_COMMITTED,
    ) -> AsyncIterator[Message]:
        """Follow a stream: an async generator yielding messages in offset order, forever.

        Use it as ``async for msg in client.stream.subscribe(...)`` (do not ``await`` it).

        ``start_offset``:
            * ``-1`` (default): resume after the group's committed offset, or from 0 if the group
              never committed;
            * ``-2``: start *after* the current last message, i.e. only messages written after the
              subscription starts;
            * ``n >= 0``: from offset ``n`` (it may lie beyond the end; the call then waits).

        The subscription does not commit anything: call :meth:`commit_offset` with ``msg.offset``
        after processing a message. Leaving the loop (``break``, an exception, task cancellation,
        ``aclose()``) cancels the server call. Errors, including an error frame sent by the server
        mid-stream, are raised as SDK exceptions and end the generator.
        """
        request = pb.SubscribeRequest(
            resource_path=_stream_path(tenant, namespace, stream),
            consumer_group=consumer_group,
            partition=partition,
            start_offset=start_offset,
        )
        stub = self._client._stub("stream", "subscribe")
        call = stub.Subscribe(request, metadata=self._client._get_metadata())
        try:
            async for response in call:
                if response.HasField("status") and response.status.code != 0:
                    raise error_for_code(response.status.code, "subscribe", response.status.message or None)
                if response.HasField("message"):
                    yield Message.from_proto(response.message)
        except grpc.RpcError as e:
            raise handle_grpc_error(e, "subscribe") from e
        finally:
            call.cancel()

    async def commit_offset(
        self,
        tenant: str,
        namespace: str,
        stream: str,
        consumer_group: str,
        partition: int,
        offset: int,
    ) -> None:
        """Record ``offset`` as the last message ``consumer_group`` has processed.

        A later ``subscribe(..., start_offset=-1)`` resumes at ``offset + 1``. Any offset ``>= -1``
        is accepted, including one before the current commit or past the end; ``-1`` resets the
        group to "never committed".
        """
        request = pb.CommitOffsetRequest(
            resource_path=_stream_path(tenant, namespace, stream),
            consumer_group=consumer_group,
            partition=partition,
            offset=offset,
        )
        await self._client._call("stream", "CommitOffset", request, "commit_offset")

    async def get_offset(
        self, tenant: str, namespace: str, stream: str, consumer_group: str, partition: int = 0
    ) -> int:
        """Return the group's committed offset, or -1 if it never committed."""
        request = pb.GetOffsetRequest(
            resource_path=_stream_path(tenant, namespace, stream),
            consumer_group=consumer_group,
            partition=partition,
        )
        response = await self._client._call("stream", "GetOffset", request, "get_offset")
        return response.offset

    async def get_latest_offset(self, tenant: str, namespace: str, stream: str, partition: int = 0) -> int:
        """Return the offset of the last message (number of messages − 1), or -1 if the stream is empty."""
        request = pb.GetLatestOffsetRequest(
            resource_path=_stream_path(tenant, namespace, stream), partition=partition
        )
        response = await self._client._call("stream", "GetLatestOffset", request, "get_latest_offset")
        return response.offset

    async def get_consumer_group_state(
        self, tenant: str, namespace: str, stream: str, consumer_group: str, partition: int = 0
    ) -> ConsumerGroupState:
        """Return the group's committed offset, the stream's latest offset and the lag between them."""
        request = pb.GetConsumerGroupStateRequest(
            resource_path=_stream_path(tenant, namespace, stream),
            consumer_group=consumer_group,
            partition=partition,
        )
        response = await self._client._call(
            "stream", "GetConsumerGroupState", request, "get_consumer_group_state"
        )
        return ConsumerGroupState.from_proto(response.state)
