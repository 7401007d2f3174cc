"""An in-process fake of Herald's EnSync gRPC service, for the ``herald.events`` client tests.

It is a test double, not a model of the server: enough of compat/ensync.md §3 and §7 to exercise the
client -- sessions, a durable per-recipient queue, one event in flight per (session, name) stream,
ack / defer / discard / replay / pause / continue / unsubscribe with the §7.4 answers, the "newest
stream wins" rule -- and the knobs the reconnect tests need: restart on the same port (keeping the
sessions or not), forget the sessions while running, refuse a name, fail heartbeats. Every request
is recorded in ``state.calls``.

Everything runs on the test's event loop, so no locking.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Set, Tuple

import grpc
import grpc.aio

from herald._generated import ensync_pb2 as pb
from herald._generated import ensync_pb2_grpc as pb_grpc

_END = None  # put on a stream's queue to end it with status OK
MAX_DELAY_MS = 86_400_000


def _key_bytes(text: str) -> Optional[bytes]:
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


@dataclass
class FakeEvent:
    idem: str
    block: int
    name: str
    recipient: bytes
    sender: str
    payload: str
    metadata: str
    state: str = "pending"  # pending | inflight | deferred | acked | discarded
    owner: Optional[str] = None  # client_id while in flight
    timer: Optional[asyncio.TimerHandle] = None


class _Stream:
    def __init__(self) -> None:
        self.queue: "asyncio.Queue[Any]" = asyncio.Queue()


class FakeState:
    """What survives a restart of :class:`FakeEnSync` (like Herald's store)."""

    def __init__(self, identities: Dict[str, str]) -> None:
        self.identities = dict(identities)  # access key -> b64 public key
        self.sessions: Dict[str, str] = {}  # client_id -> b64 public key
        self.events: Dict[str, FakeEvent] = {}
        self.paused: Set[Tuple[str, str]] = set()
        self.streams: Dict[Tuple[str, str], _Stream] = {}
        self.refused_names: Set[str] = set()
        self.fail_heartbeats = False
        self.calls: List[Tuple[str, Any]] = []
        self._block = 0

    # -- inspection helpers for tests --------------------------------------------------------

    def calls_of(self, method: str) -> List[Any]:
        return [request for name, request in self.calls if name == method]

    def event(self, idem: str) -> FakeEvent:
        return self.events[idem]

    def open_streams(self, name: Optional[str] = None) -> List[Tuple[str, str]]:
        return [key for key in self.streams if name is None or key[1] == name]

    # -- behaviour ------------------------------------------------------------------------------

    def store(self, recipient: bytes, name: str, payload: str, sender: str, metadata: str) -> FakeEvent:
        self._block += 1
        event = FakeEvent(
            idem=uuid.uuid4().hex,
            block=self._block,
            name=name,
            recipient=recipient,
            sender=sender,
            payload=payload,
            metadata=metadata,
        )
        self.events[event.idem] = event
        self.pump()
        return event

    def pump(self) -> None:
        """Dispatch pending events: lowest block first, at most one in flight per stream."""
        for (client_id, name), stream in list(self.streams.items()):
            if (client_id, name) in self.paused:
                continue
            identity = self.sessions.get(client_id)
            if identity is None:
                continue
            if any(
                e.state == "inflight" and e.owner == client_id and e.name == name for e in self.events.values()
            ):
                continue
            recipient = base64.b64decode(identity)
            pending = [
                e
                for e in self.events.values()
                if e.state == "pending" and e.recipient == recipient and e.name == name
            ]
            if not pending:
                continue
            event = min(pending, key=lambda e: e.block)
            event.state, event.owner = "inflight", client_id
            stream.queue.put_nowait(
                pb.MessageStreamResponse(
                    message_idem=event.idem,
                    message_name=event.name,
                    payload=event.payload,
                    partition_block=event.block,
                    metadata=event.metadata,
                    sender=event.sender,
                )
            )

    def release(self, client_id: str, name: Optional[str] = None) -> None:
        """In-flight events of ``client_id`` (for ``name``) go back to pending."""
        for event in self.events.values():
            if event.state == "inflight" and event.owner == client_id and (name is None or event.name == name):
                event.state, event.owner = "pending", None

    def end_streams(self, client_id: str, name: Optional[str] = None) -> None:
        for key in [k for k in self.streams if k[0] == client_id and (name is None or k[1] == name)]:
            self.streams.pop(key).queue.put_nowait(_END)

    def forget_sessions(self) -> None:
        """Expire every session: streams end with OK, in-flight events are released."""
        for client_id in list(self.sessions):
            self.end_streams(client_id)
            self.release(client_id)
        self.sessions.clear()
        self.paused.clear()
        self.pump()

    def find(self, client_id: str, idem: str, name: str) -> Optional[FakeEvent]:
        identity = self.sessions.get(client_id)
        event = self.events.get(idem)
        if identity is None or event is None or event.recipient != base64.b64decode(identity):
            return None
        if name and name != event.name:
            return None
        return event


class _Servicer(pb_grpc.EnSyncServiceServicer):
    def __init__(self, state: FakeState) -> None:
        self.s = state

    def _record(self, method: str, request: Any) -> None:
        self.s.calls.append((method, request))

    async def Connect(self, request: Any, context: Any) -> Any:
        self._record("Connect", request)
        identity = self.s.identities.get(request.access_key)
        if identity is None:
            return pb.ConnectResponse(success=False, error_message="invalid access key")
        client_id = secrets.token_urlsafe(16)
        self.s.sessions[client_id] = identity
        return pb.ConnectResponse(success=True, client_id=client_id, client_hash=identity)

    async def Heartbeat(self, request: Any, context: Any) -> Any:
        self._record("Heartbeat", request)
        if self.s.fail_heartbeats:
            await context.abort(grpc.StatusCode.INTERNAL, "heartbeat failure injected by the test")
        return pb.HeartbeatResponse(success=request.client_id in self.s.sessions)

    async def PublishMessage(self, request: Any, context: Any) -> Any:
        self._record("PublishMessage", request)
        sender = self.s.sessions.get(request.client_id)
        if sender is None:
            return pb.PublishMessageResponse(success=False, error_message="unknown client")
        if not request.message_name:
            return pb.PublishMessageResponse(success=False, error_message="invalid event name")
        recipient = _key_bytes(request.delivery_to)
        if recipient is None:
            return pb.PublishMessageResponse(success=False, error_message="invalid recipient")
        if recipient not in {base64.b64decode(pk) for pk in self.s.identities.values()}:
            return pb.PublishMessageResponse(success=False, error_message="recipient not found")
        if request.metadata:
            try:
                json.loads(request.metadata)
            except ValueError:
                return pb.PublishMessageResponse(success=False, error_message="invalid metadata")
        if not request.payload:
            return pb.PublishMessageResponse(success=False, error_message="empty payload")
        event = self.s.store(recipient, request.message_name, request.payload, sender, request.metadata)
        return pb.PublishMessageResponse(success=True, message_idem=event.idem)

    async def Subscribe(self, request: Any, context: Any) -> Any:
        self._record("Subscribe", request)
        if request.client_id not in self.s.sessions:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown client")
        if request.message_name in self.s.refused_names:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not allowed to receive this name")
        key = (request.client_id, request.message_name)
        older = self.s.streams.get(key)
        if older is not None:
            older.queue.put_nowait(_END)  # newest stream wins; in-flight events stay in flight
        stream = _Stream()
        self.s.streams[key] = stream
        await context.send_initial_metadata(())
        self.s.pump()
        try:
            while True:
                item = await stream.queue.get()
                if item is _END:
                    return
                yield item
        finally:
            if self.s.streams.get(key) is stream:  # cancelled by the client (or the server stopped)
                del self.s.streams[key]
                self.s.release(request.client_id, request.message_name)
                self.s.pump()

    async def Unsubscribe(self, request: Any, context: Any) -> Any:
        self._record("Unsubscribe", request)
        if request.client_id not in self.s.sessions:
            return pb.UnsubscribeResponse(success=False, message="unknown client")
        self.s.end_streams(request.client_id, request.message_name)
        self.s.release(request.client_id, request.message_name)
        self.s.paused.discard((request.client_id, request.message_name))
        self.s.pump()
        return pb.UnsubscribeResponse(success=True, message="unsubscribed")

    def _terminal_answer(self, event: Optional[FakeEvent], verb: str) -> Optional[str]:
        if event is None:
            return "event not found"
        if event.state == "acked" and verb != "ack":
            return "already acknowledged"
        if event.state == "discarded" and verb != "discard":
            return "already discarded"
        return None

    def _settle(self, event: FakeEvent, state: str) -> None:
        if event.timer is not None:
            event.timer.cancel()
            event.timer = None
        event.state, event.owner = state, None
        self.s.pump()

    async def AcknowledgeMessage(self, request: Any, context: Any) -> Any:
        self._record("AcknowledgeMessage", request)
        if request.client_id not in self.s.sessions:
            return pb.AcknowledgeResponse(success=False, message="unknown client")
        event = self.s.find(request.client_id, request.message_idem, request.message_name)
        problem = self._terminal_answer(event, "ack")
        if problem:
            return pb.AcknowledgeResponse(success=False, message=problem)
        assert event is not None
        if event.state != "acked":
            self._settle(event, "acked")
        return pb.AcknowledgeResponse(success=True, message="acknowledged")

    async def DeferMessage(self, request: Any, context: Any) -> Any:
        self._record("DeferMessage", request)
        if request.client_id not in self.s.sessions:
            return pb.DeferResponse(success=False, message="unknown client")
        if not 0 <= request.delay_ms <= MAX_DELAY_MS:
            return pb.DeferResponse(success=False, message="invalid delay")
        event = self.s.find(request.client_id, request.message_idem, request.message_name)
        problem = self._terminal_answer(event, "defer")
        if problem:
            return pb.DeferResponse(success=False, message=problem)
        assert event is not None
        self._settle(event, "deferred")

        def due(event: FakeEvent = event) -> None:
            event.timer = None
            if event.state == "deferred":
                event.state = "pending"
                self.s.pump()

        event.timer = asyncio.get_running_loop().call_later(request.delay_ms / 1000, due)
        return pb.DeferResponse(
            success=True, message="deferred", delivery_time=int(time.time() * 1000) + request.delay_ms
        )

    async def DiscardMessage(self, request: Any, context: Any) -> Any:
        self._record("DiscardMessage", request)
        if request.client_id not in self.s.sessions:
            return pb.DiscardResponse(success=False, message="unknown client")
        event = self.s.find(request.client_id, request.message_idem, request.message_name)
        problem = self._terminal_answer(event, "discard")
        if problem:
            return pb.DiscardResponse(success=False, message=problem)
        assert event is not None
        if event.state != "discarded":
            self._settle(event, "discarded")
        return pb.DiscardResponse(success=True, message="discarded")

    async def ReplayMessage(self, request: Any, context: Any) -> Any:
        self._record("ReplayMessage", request)
        if request.client_id not in self.s.sessions:
            return pb.ReplayResponse(success=False, message="unknown client")
        event = self.s.find(request.client_id, request.message_idem, request.message_name)
        if event is None:
            return pb.ReplayResponse(success=False, message="event not found")
        return pb.ReplayResponse(success=True, message="replayed", message_data=event.payload)

    async def PauseMessages(self, request: Any, context: Any) -> Any:
        self._record("PauseMessages", request)
        if request.client_id not in self.s.sessions:
            return pb.PauseResponse(success=False, message="unknown client")
        self.s.paused.add((request.client_id, request.message_name))
        return pb.PauseResponse(success=True, message="paused")

    async def ContinueMessages(self, request: Any, context: Any) -> Any:
        self._record("ContinueMessages", request)
        if request.client_id not in self.s.sessions:
            return pb.ContinueResponse(success=False, message="unknown client")
        self.s.paused.discard((request.client_id, request.message_name))
        self.s.pump()
        return pb.ContinueResponse(success=True, message="continued")


class FakeEnSync:
    """The fake server: ``await start()``, ``url``, ``await restart(...)``, ``await stop()``."""

    def __init__(self, identities: Dict[str, str]) -> None:
        self.state = FakeState(identities)
        self.port = 0
        self._server: Optional[grpc.aio.Server] = None

    @property
    def url(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    async def start(self) -> None:
        server = grpc.aio.server()
        pb_grpc.add_EnSyncServiceServicer_to_server(_Servicer(self.state), server)
        port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        if not port:
            raise RuntimeError(f"cannot bind 127.0.0.1:{self.port}")
        self.port = port
        await server.start()
        self._server = server

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.stop(None)  # aborts the open streams, like a crash
        # Handlers that were cancelled released their in-flight events; drop what is left.
        for client_id, _ in list(self.state.streams):
            self.state.release(client_id)
        self.state.streams.clear()

    async def restart(self, *, keep_sessions: bool = True, downtime: float = 0.3) -> None:
        """Stop, wait ``downtime`` seconds, start again on the same port. Pause flags are lost
        (they live in memory); sessions are kept unless ``keep_sessions=False``."""
        await self.stop()
        self.state.paused.clear()
        if not keep_sessions:
            self.state.sessions.clear()
        await asyncio.sleep(downtime)
        await self.start()
