"""The addressed-events client: :class:`EventClient` and :class:`Subscription`.

It speaks the EnSync gRPC interface (``ensync.EnSyncService``) that Herald serves, with the API the
EnSync product documentation describes (``await client.subscribe(...)``, ``subscription.on(...)``,
``continue_subscription()``, ``client.close()``, attribute access on events) -- which the real
``ensync-sdk`` does not actually provide -- plus what a long-running consumer needs and the real
SDK lacks: typed errors, reported (not silent) decryption and handler failures, and reconnection.

Reconnection
    Herald keeps gRPC sessions across its restarts, so a ``client_id`` normally stays valid. Each
    subscription owns one ``Subscribe`` stream, read by one task. When that stream ends:

    * with ``UNAVAILABLE`` (the server went away), or any other transient status, the task opens it
      again after a backoff (``reconnect_initial_delay`` doubling up to ``reconnect_max_delay``,
      unlimited while the client is open; the delay starts over once a stream has worked),
      re-applying the subscription's pause flag first;
    * with ``UNAUTHENTICATED`` (the server no longer knows the session), the client connects again
      with its access key (a new ``client_id``), re-applies the pause flags of all subscriptions and
      re-opens every subscription's stream on the new session;
    * with status OK while the subscription is live (the server ended it: a newer stream of the
      same session replaced it, or the server is shutting down), the task opens it again after the
      backoff delay;
    * with ``PERMISSION_DENIED``, ``INVALID_ARGUMENT`` or ``UNIMPLEMENTED``, the subscription stops
      for good: :attr:`Subscription.error` is set, ``on_error`` callbacks are called and an
      ``async for`` loop over it raises the error.

    A unary call answered ``unknown client`` triggers the same new Connect and is then retried once
    on the new session. The heartbeat (every ``heartbeat_interval`` seconds) keeps the session alive
    and detects a lost session while nothing else is happening; its failures are logged and never
    stop it. Unary calls themselves are not retried when the server is unreachable: they raise
    :class:`~herald.exceptions.HeraldConnectionError` at once.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import json
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import (
    Any,
    Callable,
    Deque,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
)

import grpc
import grpc.aio

from .._generated import ensync_pb2 as pb
from .._generated import ensync_pb2_grpc as pb_grpc
from ..exceptions import HeraldConnectionError, HeraldError, handle_grpc_error
from . import crypto
from .errors import (
    EventDecryptionError,
    EventHandlerError,
    EventsAuthError,
    EventsDeliveryError,
    EventsError,
    EventsPublishError,
    EventsSessionError,
    EventsSubscriptionError,
    EventsValidationError,
    error_from_answer,
)
from .types import Event, SubscriptionStats

__all__ = ["EventClient", "Subscription", "Endpoint", "parse_url", "MAX_DEFER_MS"]

logger = logging.getLogger("herald.events")

MAX_DEFER_MS = 86_400_000
"""The longest deferral the server accepts (24 h); ``defer`` accepts 0 to this many ms."""

Handler = Callable[[Event], Any]
"""A subscription handler: a function or coroutine function taking the :class:`Event`."""
ErrorCallback = Callable[[EventsError], Any]
"""An ``on_error`` callback: a function or coroutine function taking the error."""
_F = TypeVar("_F", bound=Callable[..., Any])

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_DEFAULT_PLAINTEXT_PORT = 50051
_DEFAULT_TLS_PORT = 443
# Stream ends after which retrying cannot help: the server refuses this subscription as such.
_FATAL_STREAM_CODES = frozenset(
    {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED}
)
_END = object()  # handed to waiting ``async for`` loops when the subscription stops


# --------------------------------------------------------------------------------------------
# URLs


@dataclass(frozen=True)
class Endpoint:
    """Where a URL points: the gRPC channel ``target`` (``host:port``) and whether to use TLS."""

    target: str
    secure: bool


def parse_url(url: str) -> Endpoint:
    """Turn a server URL into a channel target.

    * ``grpc://host[:port]`` -- plaintext (h2c); the port defaults to 50051.
    * ``grpcs://host[:port]`` -- TLS with the system roots; the port defaults to 443.
    * ``host[:port]`` without a scheme -- plaintext when the host is exactly ``localhost``,
      ``127.0.0.1`` or ``::1`` (port default 50051), TLS otherwise (port default 443).

    IPv6 literals are written in brackets (``grpc://[::1]:50051``). A trailing ``/`` is ignored;
    any other path is an error. Unlike ``ensync-sdk``, a host merely *containing* ``localhost`` is
    not treated as local.
    """
    text = url.strip()
    secure: Optional[bool] = None
    if "://" in text:
        scheme, text = text.split("://", 1)
        scheme = scheme.lower()
        if scheme == "grpc":
            secure = False
        elif scheme == "grpcs":
            secure = True
        else:
            raise EventsValidationError(
                f"unsupported URL scheme {scheme!r} in {url!r}: use grpc://, grpcs:// or host:port"
            )
    text = text.rstrip("/")
    if not text or "/" in text:
        raise EventsValidationError(f"invalid server URL {url!r}: expected [grpc[s]://]host[:port]")
    host, port = _split_host_port(text, url)
    if secure is None:
        secure = host.lower() not in _LOCAL_HOSTS
    if port is None:
        port = _DEFAULT_TLS_PORT if secure else _DEFAULT_PLAINTEXT_PORT
    shown_host = f"[{host}]" if ":" in host else host
    return Endpoint(target=f"{shown_host}:{port}", secure=secure)


def _split_host_port(text: str, url: str) -> Tuple[str, Optional[int]]:
    port_text: Optional[str]
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (end + 1 < len(text) and text[end + 1] != ":"):
            raise EventsValidationError(f"invalid server URL {url!r}: malformed [IPv6] host")
        host = text[1:end]
        port_text = text[end + 2 :] if end + 1 < len(text) else None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        # No colon, or an unbracketed IPv6 literal such as ``::1``: all host, no port.
        host, port_text = text, None
    if not host:
        raise EventsValidationError(f"invalid server URL {url!r}: no host")
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise EventsValidationError(f"invalid server URL {url!r}: bad port {port_text!r}")
    return host, int(port_text)


# --------------------------------------------------------------------------------------------
# Helpers


def _skeleton_type(value: Any) -> str:
    if isinstance(value, bool):  # before int: bool is an int
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int):
        return "integer" if -(2**31) <= value < 2**31 else "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, (list, tuple)):
        return "array"
    if value is None:
        return "null"
    return "string"


def _payload_metadata(payload: Any, plaintext: bytes) -> Dict[str, Any]:
    """The ``payload_metadata`` sent with each publish: the plaintext's UTF-8 size and the types
    of the top-level keys (``{}`` for a payload that is not an object). The server may use it for
    statistics or schemas; it never sees the payload itself."""
    skeleton = (
        {str(key): _skeleton_type(value) for key, value in payload.items()}
        if isinstance(payload, Mapping)
        else {}
    )
    return {"byte_size": len(plaintext), "skeleton": skeleton}


def _is_unknown_client(text: str) -> bool:
    return "unknown client" in text.lower()


def _check_name(name: Any, operation: str) -> str:
    if not isinstance(name, str) or not name:
        raise EventsValidationError(f"{operation} failed: the event name must be a non-empty string")
    return name


def _idem_and_block(idem: Union[str, Event], block: Optional[int], operation: str) -> Tuple[str, int]:
    if isinstance(idem, Event):
        return idem.idem, idem.block if block is None else block
    if not isinstance(idem, str) or not idem:
        raise EventsValidationError(f"{operation} failed: the event id must be a non-empty string")
    return idem, 0 if block is None else int(block)


async def _call_maybe_async(func: Callable[..., Any], *args: Any) -> None:
    result = func(*args)
    if inspect.isawaitable(result):
        await result


# --------------------------------------------------------------------------------------------
# Client


class EventClient:
    """Async client for Herald's addressed events (EnSync-compatible gRPC).

    Args:
        url: the server, see :func:`parse_url`: ``grpc://host:port`` (plaintext),
            ``grpcs://host[:port]`` (TLS) or ``host:port`` (plaintext only for localhost).
        access_key: the application's access key; the server maps it to the identity.
        secret_key: the identity's secret key (b64 of the 64-byte Ed25519 secret key, or the other
            forms of :func:`herald.events.crypto.secret_scalar`), used only locally to decrypt
            received events. ``None`` for a client that only publishes.
        heartbeat_interval: seconds between heartbeats (default 30).
        reconnect_initial_delay: first delay, in seconds, before re-opening a stream that failed;
            doubled after every failed attempt...
        reconnect_max_delay: ...up to this many seconds. Also bounds gRPC's own channel backoff.
        rpc_timeout: deadline in seconds of each unary call, ``None`` for none (the default 30 s
            keeps a half-open connection from hanging a call forever).
        credentials: TLS credentials for ``grpcs://`` (default: the system roots), e.g. built from
            a private CA with ``grpc.ssl_channel_credentials(root_certificates=...)``.
        channel_options: extra gRPC channel options, appended to the client's own.

    The constructor does no I/O. ``await EventClient.connect(url, ...)`` or
    ``async with EventClient(url, ...) as client`` opens the channel and sends ``Connect``;
    a refused access key raises :class:`~herald.events.errors.EventsAuthError`, an unreachable
    server :class:`~herald.exceptions.HeraldConnectionError`.
    """

    def __init__(
        self,
        url: str,
        *,
        access_key: str,
        secret_key: Optional[crypto.KeyLike] = None,
        heartbeat_interval: float = 30.0,
        reconnect_initial_delay: float = 0.2,
        reconnect_max_delay: float = 5.0,
        rpc_timeout: Optional[float] = 30.0,
        credentials: Optional[grpc.ChannelCredentials] = None,
        channel_options: Optional[Sequence[Tuple[str, Any]]] = None,
    ) -> None:
        if not isinstance(access_key, str):
            raise EventsValidationError("access_key must be a string")
        if heartbeat_interval <= 0:
            raise EventsValidationError("heartbeat_interval must be positive")
        if reconnect_initial_delay <= 0 or reconnect_max_delay < reconnect_initial_delay:
            raise EventsValidationError(
                "need 0 < reconnect_initial_delay <= reconnect_max_delay"
            )
        self.url = url
        self.endpoint = parse_url(url)
        self._access_key = access_key
        # Converted once, so a malformed key fails here rather than on the first event.
        self._secret: Optional[bytes] = None if secret_key is None else crypto.secret_scalar(secret_key)
        self.heartbeat_interval = float(heartbeat_interval)
        self.reconnect_initial_delay = float(reconnect_initial_delay)
        self.reconnect_max_delay = float(reconnect_max_delay)
        self.rpc_timeout = rpc_timeout
        self._credentials = credentials
        self._channel_options = list(channel_options or ())

        self._channel: Optional[grpc.aio.Channel] = None
        self._stub: Optional[pb_grpc.EnSyncServiceStub] = None
        self._client_id: Optional[str] = None
        self._public_key: Optional[str] = None
        self._closed = False
        self._heartbeat_task: Optional[asyncio.Task] = None
        self._subscriptions: Dict[str, Subscription] = {}
        # Created in open(): on Python 3.9 asyncio primitives bind to the loop current at creation.
        self._session_lock: Optional[asyncio.Lock] = None
        self._session_ready: Optional[asyncio.Event] = None
        self._sessions = 0

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        access_key: str,
        secret_key: Optional[crypto.KeyLike] = None,
        **options: Any,
    ) -> "EventClient":
        """Create a client and open it (see the class docs for ``options``)."""
        client = cls(url, access_key=access_key, secret_key=secret_key, **options)
        await client.open()
        return client

    async def open(self) -> "EventClient":
        """Open the channel, authenticate with ``Connect`` and start the heartbeat.

        Does nothing when already open. Raises ``EventsAuthError`` when the server refuses the
        access key and ``HeraldConnectionError`` when it cannot be reached.
        """
        if self._closed:
            raise HeraldConnectionError("open failed: the client is closed")
        if self._channel is not None:
            return self
        self._session_lock = asyncio.Lock()
        self._session_ready = asyncio.Event()
        self._session_ready.set()
        channel = self._make_channel()
        self._channel = channel
        self._stub = pb_grpc.EnSyncServiceStub(channel)
        try:
            await self._connect_session()
        except BaseException:
            self._channel = self._stub = None
            await channel.close()
            raise
        self._heartbeat_task = asyncio.create_task(self._heartbeat_loop())
        return self

    async def close(self) -> None:
        """Stop every subscription and close the channel.

        Does not unsubscribe: the server sees the streams cancelled and puts their unacknowledged
        events back in the queue (the session itself stays valid until the server expires it).
        Handlers running at that moment are cancelled, except the one calling ``close()``. Safe to
        call repeatedly.
        """
        if self._closed:
            return
        self._closed = True
        tasks: List[asyncio.Task] = []
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            tasks.append(self._heartbeat_task)
            self._heartbeat_task = None
        for sub in list(self._subscriptions.values()):
            tasks.extend(sub._stop("closed"))
        self._subscriptions.clear()
        current = asyncio.current_task()
        await asyncio.gather(*(t for t in tasks if t is not current), return_exceptions=True)
        channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            await channel.close()

    async def __aenter__(self) -> "EventClient":
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()

    # -- properties ------------------------------------------------------------------------

    @property
    def client_id(self) -> Optional[str]:
        """The current session id (changes when the client had to connect again)."""
        return self._client_id

    @property
    def public_key(self) -> Optional[str]:
        """The identity's b64 Ed25519 public key as the server knows it (``client_hash``): the
        address other applications publish to."""
        return self._public_key

    @property
    def is_connected(self) -> bool:
        """Whether the client is open (it may be reconnecting in the background)."""
        return self._channel is not None and not self._closed

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def sessions(self) -> int:
        """How many sessions this client has opened: 1 after ``open()``, +1 per re-Connect."""
        return self._sessions

    @property
    def subscriptions(self) -> Dict[str, "Subscription"]:
        """The live subscriptions by event name (a copy)."""
        return dict(self._subscriptions)

    # -- publish / subscribe ----------------------------------------------------------------

    async def publish(
        self,
        name: str,
        recipients: Iterable[str],
        payload: Any,
        *,
        metadata: Optional[Mapping[str, Any]] = None,
        hybrid: Optional[bool] = None,
    ) -> List[str]:
        """Publish ``payload`` as event ``name`` to every recipient; return the new event ids.

        Args:
            name: the event name, e.g. ``"orders/created"``.
            recipients: b64 Ed25519 public keys. Every key is checked before anything is sent.
            payload: any JSON-serializable value except ``None``; encrypted for the recipients
                on this machine, the server only sees ciphertext.
            metadata: a JSON-serializable mapping, sent and delivered in clear text.
            hybrid: ``True`` encrypts the payload once for all recipients (hybrid format),
                ``False`` separately for each one. The default is hybrid when there is more than
                one recipient. Both formats are readable by this SDK and the real EnSync clients.

        Each recipient gets its own event (and id), published with one call each, in order. If
        one fails, :class:`~herald.events.errors.EventsPublishError` is raised and its
        ``published`` attribute lists the ids already stored for the earlier recipients (there is
        no rollback).
        """
        operation = "publish"
        self._require_open(operation)
        _check_name(name, operation)
        if isinstance(recipients, (str, bytes)):
            raise EventsValidationError(f"{operation} failed: recipients must be a list of public keys")
        targets = list(recipients)
        if not targets:
            raise EventsValidationError(f"{operation} failed: recipients cannot be empty")
        for recipient in targets:
            if not isinstance(recipient, str):
                raise EventsValidationError(
                    f"{operation} failed: a recipient must be a b64 public key string, got {recipient!r}"
                )
            crypto.recipient_key(recipient)
        if payload is None:
            raise EventsValidationError(f"{operation} failed: payload cannot be None")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise EventsValidationError(f"{operation} failed: metadata must be a mapping (or None)")
        try:
            plaintext = json.dumps(payload).encode("utf-8")
            metadata_text = "{}" if metadata is None else json.dumps(dict(metadata))
        except (TypeError, ValueError) as exc:
            raise EventsValidationError(
                f"{operation} failed: payload and metadata must be JSON-serializable ({exc})"
            ) from exc
        summary = json.dumps(_payload_metadata(payload, plaintext))
        use_hybrid = len(targets) > 1 if hybrid is None else bool(hybrid)
        shared = crypto.encrypt_payload_hybrid(payload, targets) if use_hybrid else None

        ids: List[str] = []
        for recipient in targets:
            wire = shared if shared is not None else crypto.encrypt_payload(payload, recipient)

            def build(client_id: str, recipient: str = recipient, wire: str = wire) -> Any:
                return pb.PublishMessageRequest(
                    client_id=client_id,
                    message_name=name,
                    payload=wire,
                    delivery_to=recipient,
                    metadata=metadata_text,
                    payload_metadata=summary,
                )

            try:
                response = await self._unary(
                    "PublishMessage", build, operation, EventsPublishError, text_field="error_message"
                )
            except EventsPublishError as exc:
                exc.published = list(ids)
                raise
            ids.append(response.message_idem)
        return ids

    async def subscribe(
        self, name: str, *, auto_ack: bool = True, open_timeout: Optional[float] = 5.0
    ) -> "Subscription":
        """Subscribe to the events named ``name`` addressed to this identity.

        Opens the ``Subscribe`` stream and waits (up to ``open_timeout`` seconds, ``None``/0 for
        not at all) for the server's answer: a refusal for good (``PERMISSION_DENIED``, ...)
        raises ``EventsSubscriptionError``; an unreachable server does not -- the subscription is
        returned and keeps trying in the background (see the module doc). Events already queued
        for the identity are delivered too. Register handlers with :meth:`Subscription.on` or iterate the
        subscription with ``async for``; events are held until one of them is there.

        With ``auto_ack`` (the default), an event is acknowledged once every handler returned
        without raising (or the ``async for`` loop asked for the next event). Without it, call
        :meth:`Subscription.ack` (or defer / discard); unacknowledged events come back after the
        server's ack timeout.

        One client has at most one subscription per name (the server keeps one stream per session
        and name); a second ``subscribe`` for a live name raises ``EventsSubscriptionError``.
        Use another client for competing consumers.
        """
        operation = "subscribe"
        self._require_open(operation)
        _check_name(name, operation)
        if self._secret is None:
            raise EventsValidationError(
                f"{operation} failed: the client has no secret_key to decrypt events with"
            )
        if name in self._subscriptions:
            raise EventsSubscriptionError(
                f"{operation} failed: this client is already subscribed to {name!r}"
            )
        sub = Subscription(self, name, auto_ack=auto_ack)
        self._subscriptions[name] = sub
        sub._start()
        if open_timeout:
            await sub._wait_first_attempt(open_timeout)
        if sub.error is not None:
            raise sub.error
        return sub

    # -- internals ---------------------------------------------------------------------------

    def _make_channel(self) -> grpc.aio.Channel:
        initial_ms = max(1, int(self.reconnect_initial_delay * 1000))
        max_ms = max(initial_ms, int(self.reconnect_max_delay * 1000))
        options: List[Tuple[str, Any]] = [
            # gRPC's own reconnect backoff grows to 120 s by default; keep it within ours so a
            # restarted server is found again as soon as our retry loop asks.
            ("grpc.initial_reconnect_backoff_ms", initial_ms),
            ("grpc.min_reconnect_backoff_ms", initial_ms),
            ("grpc.max_reconnect_backoff_ms", max_ms),
        ]
        options.extend(self._channel_options)
        if self.endpoint.secure:
            credentials = self._credentials or grpc.ssl_channel_credentials()
            return grpc.aio.secure_channel(self.endpoint.target, credentials, options=options)
        return grpc.aio.insecure_channel(self.endpoint.target, options=options)

    def _require_open(self, operation: str) -> pb_grpc.EnSyncServiceStub:
        if self._closed or self._stub is None or self._client_id is None:
            state = "closed" if self._closed else "not connected"
            raise HeraldConnectionError(
                f"{operation} failed: client is {state} (use EventClient.connect() or 'async with')"
            )
        return self._stub

    async def _connect_session(self) -> None:
        """One ``Connect``: on success the client has a new ``client_id``."""
        stub = self._require_stub("connect")
        try:
            response = await stub.Connect(
                pb.ConnectRequest(access_key=self._access_key), timeout=self.rpc_timeout
            )
        except grpc.RpcError as e:
            raise handle_grpc_error(e, "connect") from e
        if not response.success:
            raise error_from_answer(EventsAuthError, "connect", response.error_message)
        if not response.client_id:
            raise EventsAuthError("connect failed: the server returned no client_id")
        self._client_id = response.client_id
        self._public_key = response.client_hash
        self._sessions += 1

    def _require_stub(self, operation: str) -> pb_grpc.EnSyncServiceStub:
        if self._closed or self._stub is None:
            raise HeraldConnectionError(f"{operation} failed: client is closed")
        return self._stub

    async def _unary(
        self,
        method: str,
        build: Callable[[str], Any],
        operation: str,
        error_cls: Type[EventsError],
        *,
        text_field: str = "message",
        renew: bool = True,
    ) -> Any:
        """One unary call with the current session. A ``success=false`` answer raises
        ``error_cls`` (or ``EventNotFoundError``); ``unknown client`` first makes the client
        connect again and retries once on the new session."""
        for attempt in (1, 2):
            stub = self._require_open(operation)
            client_id = self._client_id
            assert client_id is not None
            try:
                response = await getattr(stub, method)(build(client_id), timeout=self.rpc_timeout)
            except grpc.RpcError as e:
                raise handle_grpc_error(e, operation) from e
            except grpc.aio.UsageError as e:  # the channel was closed under the call
                raise HeraldConnectionError(f"{operation} failed: client is closed") from e
            if response.success:
                return response
            text = getattr(response, text_field)
            if _is_unknown_client(text):
                if renew and attempt == 1:
                    await self._renew_session(client_id)
                    continue
                raise EventsSessionError(f"{operation} failed: {text}", details=text)
            raise error_from_answer(error_cls, operation, text)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _renew_session(self, stale_client_id: str) -> None:
        """The server does not know ``stale_client_id``: Connect again (once, even when several
        tasks notice at the same time), re-apply pause flags, re-open every stream."""
        assert self._session_lock is not None and self._session_ready is not None
        async with self._session_lock:
            if self._closed:
                raise HeraldConnectionError("connect failed: client is closed")
            if self._client_id != stale_client_id:
                return  # another task already did it
            self._session_ready.clear()
            try:
                await self._connect_session()
                logger.warning(
                    "herald.events: session %s is unknown to the server; connected again as %s",
                    stale_client_id,
                    self._client_id,
                )
                for sub in list(self._subscriptions.values()):
                    if sub._paused:
                        await sub._reapply_pause(renew=False)
            finally:
                self._session_ready.set()
        for sub in list(self._subscriptions.values()):
            sub._reopen_if_stale()

    async def _heartbeat_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.heartbeat_interval)
            stub, client_id = self._stub, self._client_id
            if stub is None or client_id is None:
                continue
            try:
                response = await stub.Heartbeat(
                    pb.HeartbeatRequest(client_id=client_id),
                    timeout=min(self.heartbeat_interval, self.rpc_timeout or self.heartbeat_interval),
                )
                if not response.success:
                    # Herald answers success=false only for an unknown session.
                    await self._renew_session(client_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failed heartbeat must never end the loop
                logger.warning("herald.events: heartbeat failed: %s", exc)

    def __repr__(self) -> str:
        if self._closed:
            state = "closed"
        elif self._channel is None:
            state = "not connected"
        else:
            state = f"client_id={self._client_id!r}"
        return f"EventClient(url={self.url!r}, {state})"


# --------------------------------------------------------------------------------------------
# Subscription


class _EventIterator:
    """One ``async for`` loop over a subscription. The event it last returned counts as processed
    (and is auto-acknowledged) when the same loop asks for the next one."""

    def __init__(self, subscription: "Subscription") -> None:
        self._subscription = subscription
        self._outstanding: Optional[asyncio.Future] = None

    def __aiter__(self) -> "_EventIterator":
        return self

    async def __anext__(self) -> Event:
        if self._outstanding is not None:
            done, self._outstanding = self._outstanding, None
            if not done.done():
                done.set_result(True)
        event, done = await self._subscription._next_for_iterator()
        self._outstanding = done
        return event


class Subscription:
    """Delivery of one event name to one :class:`EventClient`; made by
    :meth:`EventClient.subscribe`.

    Events are processed one at a time, in the order the server sends them. Each one goes either
    to the handlers registered with :meth:`on` or to an ``async for`` loop over the subscription:
    **handlers win** -- while at least one handler is registered, loops receive nothing. When
    neither is there, the event waits.

    With several handlers, all of them run (in registration order) even if one raises; the event is
    auto-acknowledged only if none raised. A raising handler is logged and reported to the
    :meth:`on_error` callbacks as :class:`~herald.events.errors.EventHandlerError`.

    Events that cannot be decrypted with the client's secret key (or whose metadata is not JSON)
    are neither delivered nor acknowledged -- as with the real SDK -- but they are logged, counted
    in ``stats.undecryptable`` and reported to the ``on_error`` callbacks as
    :class:`~herald.events.errors.EventDecryptionError`.
    """

    def __init__(self, client: EventClient, name: str, *, auto_ack: bool = True) -> None:
        self._client = client
        self.name = name
        self.auto_ack = auto_ack
        self._handlers: List[Handler] = []
        self._error_callbacks: List[ErrorCallback] = []
        self._state = "live"  # live | unsubscribed | closed | failed
        self._error: Optional[EventsError] = None
        self._paused = False
        self._pause_reason = ""
        self._inbox: "asyncio.Queue[Any]" = asyncio.Queue()
        self._reader: Optional[asyncio.Task] = None
        self._worker: Optional[asyncio.Task] = None
        self._stream_client_id: Optional[str] = None
        self._first_attempt = asyncio.Event()
        self._consumer_changed = asyncio.Event()
        self._getters: Deque[asyncio.Future] = collections.deque()
        self._handed_out: Optional[asyncio.Future] = None
        self._counts: Dict[str, int] = dict.fromkeys(SubscriptionStats.__dataclass_fields__, 0)

    # -- state ---------------------------------------------------------------------------------

    @property
    def client(self) -> EventClient:
        return self._client

    @property
    def active(self) -> bool:
        """True until :meth:`unsubscribe`, ``client.close()`` or a permanent stream error."""
        return self._state == "live"

    @property
    def paused(self) -> bool:
        """Whether :meth:`pause` is in effect (re-applied by the client after reconnecting)."""
        return self._paused

    @property
    def error(self) -> Optional[EventsError]:
        """The error that stopped the subscription for good, if any."""
        return self._error

    @property
    def stats(self) -> SubscriptionStats:
        """A snapshot of the subscription's counters."""
        return SubscriptionStats(**self._counts)

    # -- consumers -----------------------------------------------------------------------------

    def on(self, handler: _F) -> _F:
        """Register ``handler(event)`` (a function or a coroutine function) and return it, so it
        also works as a decorator."""
        if not callable(handler):
            raise EventsValidationError("on() needs a callable")
        self._handlers.append(handler)
        self._consumer_changed.set()
        return handler

    def off(self, handler: Handler) -> None:
        """Remove a handler registered with :meth:`on` (no error if it is not registered)."""
        try:
            self._handlers.remove(handler)
        except ValueError:
            pass

    def on_error(self, callback: _F) -> _F:
        """Register ``callback(error)`` for problems that do not raise anywhere: undecryptable
        events (``EventDecryptionError``), raising handlers (``EventHandlerError``), failed
        automatic acknowledgements, and the error that stops the subscription for good. Returns
        ``callback``; a function or a coroutine function."""
        if not callable(callback):
            raise EventsValidationError("on_error() needs a callable")
        self._error_callbacks.append(callback)
        return callback

    def __aiter__(self) -> _EventIterator:
        """``async for event in subscription``: receives events while no handler is registered.

        Leaving the loop (``break`` or an exception) leaves the current event unacknowledged; the
        subscription then holds further events until a new loop starts or a handler is registered
        (the server's ack timeout redelivers the abandoned one). The loop ends when the
        subscription is unsubscribed or the client closed, and raises :attr:`error` if the
        subscription failed.
        """
        self._abandon_handed_out()
        return _EventIterator(self)

    # -- control calls ---------------------------------------------------------------------------

    async def ack(self, idem: Union[str, Event], block: Optional[int] = None) -> str:
        """Acknowledge an event (pass the :class:`Event`, or its id and block); returns the
        server's message. Idempotent on the server; works from any session of the identity."""
        event_id, event_block = _idem_and_block(idem, block, "ack")
        # The name the event arrived under (the server checks it); normally the subscription's.
        name = idem.name if isinstance(idem, Event) and idem.name else self.name
        response = await self._client._unary(
            "AcknowledgeMessage",
            lambda cid: pb.AcknowledgeRequest(
                client_id=cid, message_idem=event_id, message_name=name, partition_block=event_block
            ),
            "ack",
            EventsDeliveryError,
        )
        return str(response.message)

    async def defer(self, idem: Union[str, Event], delay_ms: int = 1000, reason: str = "") -> int:
        """Have the event delivered again after ``delay_ms`` milliseconds (0 to 86 400 000; 0
        requeues it at once). Returns the redelivery time in epoch ms, as the server computed
        it. An out-of-range delay raises ``EventsValidationError`` without calling the server."""
        event_id, _ = _idem_and_block(idem, None, "defer")
        if isinstance(delay_ms, bool) or not isinstance(delay_ms, int) or not 0 <= delay_ms <= MAX_DEFER_MS:
            raise EventsValidationError(
                f"defer failed: delay_ms must be an integer from 0 to {MAX_DEFER_MS}, got {delay_ms!r}"
            )
        response = await self._client._unary(
            "DeferMessage",
            lambda cid: pb.DeferRequest(
                client_id=cid,
                message_idem=event_id,
                message_name=self.name,
                delay_ms=delay_ms,
                reason=reason or "",
            ),
            "defer",
            EventsDeliveryError,
        )
        return int(response.delivery_time)

    async def discard(self, idem: Union[str, Event], reason: str = "") -> None:
        """Reject the event for good: it is never delivered again (it can still be replayed)."""
        event_id, _ = _idem_and_block(idem, None, "discard")
        await self._client._unary(
            "DiscardMessage",
            lambda cid: pb.DiscardRequest(
                client_id=cid, message_idem=event_id, message_name=self.name, reason=reason or ""
            ),
            "discard",
            EventsDeliveryError,
        )

    async def replay(self, idem: Union[str, Event]) -> Event:
        """Fetch a past event of this name (in any state, acknowledged and discarded included)
        and return it decrypted. Changes nothing on the server and sends nothing on the stream.

        The answer carries only the payload, so the returned event has ``block`` 0, ``sender``
        ``""`` and ``metadata`` ``{}``. Raises ``EventNotFoundError`` for an unknown id, an id of
        another name or of another identity, and ``EventDecryptionError`` when the payload does
        not decrypt with the client's key.
        """
        event_id, _ = _idem_and_block(idem, None, "replay")
        response = await self._client._unary(
            "ReplayMessage",
            lambda cid: pb.ReplayRequest(client_id=cid, message_idem=event_id, message_name=self.name),
            "replay",
            EventsDeliveryError,
        )
        raw = str(response.message_data)
        assert self._client._secret is not None
        try:
            payload = crypto.decrypt_payload(raw, self._client._secret)
        except EventDecryptionError as exc:
            raise EventDecryptionError(
                f"replay failed: cannot decrypt event {event_id}: {exc}",
                idem=event_id,
                name=self.name,
                raw_payload=raw,
            ) from exc
        return Event(idem=event_id, name=self.name, block=0, payload=payload, raw_payload=raw)

    async def pause(self, reason: str = "") -> None:
        """Stop delivery of this name to this client until :meth:`continue_subscription`.

        Events already delivered stay in flight; new ones wait (or go to other sessions of the
        identity). The flag is re-applied automatically after a reconnect.
        """
        self._require_live("pause")
        await self._client._unary(
            "PauseMessages",
            lambda cid: pb.PauseRequest(client_id=cid, message_name=self.name, reason=reason or ""),
            "pause",
            EventsSubscriptionError,
        )
        self._paused = True
        self._pause_reason = reason or ""

    async def continue_subscription(self) -> None:
        """Resume delivery after :meth:`pause` (pending events first, in order)."""
        self._require_live("continue")
        await self._client._unary(
            "ContinueMessages",
            lambda cid: pb.ContinueRequest(client_id=cid, message_name=self.name),
            "continue",
            EventsSubscriptionError,
        )
        self._paused = False

    resume = continue_subscription
    """Alias of :meth:`continue_subscription` (the name the real ``ensync-sdk`` uses)."""

    async def unsubscribe(self) -> None:
        """Stop this subscription: local delivery stops at once (a running handler is cancelled,
        unless it is the one calling), then the server is told to drop the subscription.
        Unacknowledged events go back to the identity's queue for the next subscriber.

        Raises if the server refused or could not be reached; local delivery is stopped anyway,
        and calling ``unsubscribe()`` again retries the server call.
        """
        if self._state == "live":
            tasks = self._stop("unsubscribed")
            if self._client._subscriptions.get(self.name) is self:
                del self._client._subscriptions[self.name]
            current = asyncio.current_task()
            await asyncio.gather(*(t for t in tasks if t is not current), return_exceptions=True)
        self._paused = False
        await self._client._unary(
            "Unsubscribe",
            lambda cid: pb.UnsubscribeRequest(client_id=cid, message_name=self.name),
            "unsubscribe",
            EventsSubscriptionError,
        )

    # -- internals -------------------------------------------------------------------------------

    def _require_live(self, operation: str) -> None:
        if self._state != "live":
            raise EventsSubscriptionError(
                f"{operation} failed: the subscription to {self.name!r} is {self._state}"
            )

    def _start(self) -> None:
        self._reader = asyncio.create_task(self._read_loop(reapply_pause=False))
        self._worker = asyncio.create_task(self._work_loop())

    async def _wait_first_attempt(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._first_attempt.wait(), timeout)
        except asyncio.TimeoutError:
            logger.info(
                "herald.events: the stream of %r is not confirmed after %.1f s; continuing",
                self.name,
                timeout,
            )

    def _stop(self, state: str) -> List[asyncio.Task]:
        """Stop local delivery; return the tasks cancelled (for the caller to await)."""
        if self._state == "live":
            self._state = state
        current = asyncio.current_task()
        tasks = []
        for task in (self._reader, self._worker):
            if task is not None and task is not current and not task.done():
                task.cancel()
                tasks.append(task)
        while self._getters:
            getter = self._getters.popleft()
            if not getter.done():
                getter.set_result(_END)
        self._abandon_handed_out()
        self._consumer_changed.set()
        self._first_attempt.set()
        self._inbox.put_nowait(_END)
        return tasks

    def _fail(self, error: EventsError) -> None:
        self._error = error
        logger.error("herald.events: subscription to %r stopped: %s", self.name, error)
        self._stop("failed")
        if self._client._subscriptions.get(self.name) is self:
            del self._client._subscriptions[self.name]
        if self._error_callbacks:
            asyncio.ensure_future(self._report(error))

    def _abandon_handed_out(self) -> None:
        done, self._handed_out = self._handed_out, None
        if done is not None and not done.done():
            done.set_result(False)

    async def _report(self, error: EventsError) -> None:
        for callback in list(self._error_callbacks):
            try:
                await _call_maybe_async(callback, error)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("herald.events: on_error callback of %r raised", self.name)

    async def _reapply_pause(self, *, renew: bool = True) -> None:
        try:
            await self._client._unary(
                "PauseMessages",
                lambda cid: pb.PauseRequest(client_id=cid, message_name=self.name, reason=self._pause_reason),
                "pause",
                EventsSubscriptionError,
                renew=renew,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("herald.events: could not re-apply the pause of %r: %s", self.name, exc)

    def _reopen_if_stale(self) -> None:
        """After a new Connect: restart the reader unless it already uses the new session (or is
        the task that did the Connect, which re-opens by itself)."""
        if self._state != "live" or self._stream_client_id == self._client._client_id:
            return
        reader = self._reader
        if reader is asyncio.current_task():
            return
        if reader is not None and not reader.done():
            reader.cancel()
        # The Connect that made the new session has re-applied the pause flag already.
        self._reader = asyncio.create_task(self._read_loop(reapply_pause=False))

    async def _read_loop(self, *, reapply_pause: bool) -> None:
        """Own the subscription's stream: open it, feed the inbox, re-open it as needed."""
        client = self._client
        loop = asyncio.get_running_loop()
        delay = client.reconnect_initial_delay
        # After a failure the server may have lost the pause flag (a restart): set it again before
        # re-opening, so nothing is delivered in between.
        failed_before = reapply_pause
        last_code: Optional[grpc.StatusCode] = None
        while self._state == "live" and not client.closed:
            assert client._session_ready is not None
            await client._session_ready.wait()
            stub, client_id = client._stub, client._client_id
            if self._state != "live" or stub is None or client_id is None:
                break
            if failed_before and self._paused:
                await self._reapply_pause()
            if self._stream_client_id is not None:
                self._counts["stream_restarts"] += 1
            self._stream_client_id = client_id
            call = stub.Subscribe(pb.SubscribeRequest(client_id=client_id, message_name=self.name))
            started = loop.time()
            received = False
            code, details = grpc.StatusCode.OK, ""
            try:
                await call.initial_metadata()
                if not call.done():
                    self._first_attempt.set()
                async for message in call:
                    received = True
                    self._inbox.put_nowait(message)
            except grpc.aio.AioRpcError as e:
                code, details = e.code(), e.details() or ""
            except asyncio.CancelledError:
                call.cancel()
                raise
            self._first_attempt.set()
            if self._state != "live" or client.closed:
                break
            if received or loop.time() - started >= client.reconnect_max_delay:
                delay = client.reconnect_initial_delay
            repeated, last_code = last_code == code and not received, code
            if code == grpc.StatusCode.OK:
                failed_before = False
                logger.info("herald.events: the server ended the stream of %r; opening it again", self.name)
            elif code == grpc.StatusCode.UNAUTHENTICATED:
                failed_before = True
                try:
                    await client._renew_session(client_id)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    logger.warning("herald.events: connecting again failed: %s", exc)
                else:
                    if not repeated:
                        continue  # re-open at once on the new session; back off if refused again
            elif code in _FATAL_STREAM_CODES:
                self._fail(
                    EventsSubscriptionError(
                        f"subscribe to {self.name!r} failed: {details or code.name}",
                        code=code,
                        details=details or None,
                    )
                )
                return
            else:
                failed_before = True
                logger.warning(
                    "herald.events: stream of %r ended with %s (%s); retrying in %.2f s",
                    self.name,
                    code.name,
                    details,
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, client.reconnect_max_delay)

    async def _work_loop(self) -> None:
        """Process the inbox one event at a time: decrypt, deliver, auto-acknowledge."""
        while True:
            message = await self._inbox.get()
            if message is _END or self._state != "live":
                return
            self._counts["received"] += 1
            event = await self._decode(message)
            if event is None:
                continue
            await self._deliver(event)

    async def _decode(self, message: Any) -> Optional[Event]:
        secret = self._client._secret
        assert secret is not None
        name = message.message_name or self.name
        try:
            payload = crypto.decrypt_payload(message.payload, secret)
            metadata = json.loads(message.metadata) if message.metadata else {}
        except (EventDecryptionError, ValueError) as exc:
            self._counts["undecryptable"] += 1
            error = EventDecryptionError(
                f"event {message.message_idem} on {name!r} from {message.sender or '?'} "
                f"was not delivered: {exc}",
                idem=message.message_idem,
                name=name,
                block=message.partition_block,
                sender=message.sender,
                raw_payload=message.payload,
            )
            logger.warning("herald.events: %s", error)
            await self._report(error)
            return None
        return Event(
            idem=message.message_idem,
            name=name,
            block=int(message.partition_block),
            payload=payload,
            sender=message.sender,
            metadata=metadata,
            timestamp=None,
            raw_payload=message.payload,
        )

    async def _deliver(self, event: Event) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._state != "live":
                return
            if self._handlers:
                self._counts["delivered"] += 1
                processed = await self._run_handlers(event)
                break
            getter = self._getters.popleft() if self._getters else None
            if getter is not None:
                if getter.done():  # its loop was cancelled
                    continue
                done = loop.create_future()
                self._handed_out = done
                self._counts["delivered"] += 1
                getter.set_result((event, done))
                processed = await done
                break
            self._consumer_changed.clear()
            await self._consumer_changed.wait()
        if processed and self.auto_ack and event.idem and not self._client.closed:
            try:
                await self.ack(event)
                self._counts["acked"] += 1
            except asyncio.CancelledError:
                raise
            except HeraldError as exc:
                self._counts["ack_errors"] += 1
                logger.warning("herald.events: auto-ack of %s on %r failed: %s", event.idem, self.name, exc)
                if isinstance(exc, EventsError):
                    await self._report(exc)
                else:
                    await self._report(EventsDeliveryError(str(exc), code=exc.code, details=exc.details))

    async def _run_handlers(self, event: Event) -> bool:
        ok = True
        for handler in list(self._handlers):
            try:
                await _call_maybe_async(handler, event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                ok = False
                logger.exception(
                    "herald.events: handler %r failed on event %s of %r; not acknowledged",
                    getattr(handler, "__qualname__", handler),
                    event.idem,
                    self.name,
                )
                await self._report(
                    EventHandlerError(f"handler failed on event {event.idem}: {exc!r}", event, exc)
                )
        if not ok:
            self._counts["handler_errors"] += 1
        return ok

    async def _next_for_iterator(self) -> Tuple[Event, asyncio.Future]:
        if self._state != "live":
            if self._error is not None:
                raise self._error
            raise StopAsyncIteration
        getter = asyncio.get_running_loop().create_future()
        self._getters.append(getter)
        self._consumer_changed.set()
        try:
            item = await getter
        except asyncio.CancelledError:
            if getter in self._getters:
                self._getters.remove(getter)
            elif getter.done() and not getter.cancelled() and getter.result() is not _END:
                # Handed over just as the loop was cancelled: it was never seen, so not processed.
                _, done = getter.result()
                if not done.done():
                    done.set_result(False)
            raise
        if item is _END:
            if self._error is not None:
                raise self._error
            raise StopAsyncIteration
        return item

    def __repr__(self) -> str:
        flags = " paused" if self._paused else ""
        return f"Subscription({self.name!r}, {self._state}{flags}, auto_ack={self.auto_ack})"
