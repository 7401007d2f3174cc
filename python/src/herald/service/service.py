"""The service: one NATS connection, the control subjects, nodes, and messaging calls."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import time
from types import TracebackType
from typing import Any, Awaitable, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Type, Union

import nats
import nats.errors
from nats.aio.client import Client as NatsClient

from ..exceptions import (
    HeraldConnectionError,
    HeraldError,
    HeraldInvalidArgumentError,
    HeraldNotFoundError,
    HeraldTimeoutError,
)
from ._util import HANDLER_TASK, call_maybe_async, flush_connection, in_handler, map_nats_error
from .data import DataNode
from .message import Message, encode_payload, merge_headers
from .node import Node
from .options import ServiceOptions
from .state import State, StateSlice
from .subscription import Handler, Subscription
from .topics import ServiceStatus, Topics

__all__ = ["Service", "DEFAULT_SERVERS"]

#: Where :meth:`Service.connect` goes when no server is given.
DEFAULT_SERVERS = "nats://127.0.0.1:4222"
#: Default :meth:`Service.request` timeout, in seconds.
DEFAULT_REQUEST_TIMEOUT = 5.0

Servers = Union[str, Sequence[str]]

# (subject method of Topics, takes the service id?, handler names in call order)
_CONTROL_SUBJECTS: Tuple[Tuple[str, bool, Tuple[str, ...]], ...] = (
    ("configuration", True, ("on_init", "on_config")),
    ("service_settings", True, ("on_settings",)),
    ("start", True, ("on_start",)),
    ("stop", True, ("on_stop",)),
    ("error", True, ("on_error",)),
    ("status", True, ("on_ready",)),
    ("restart_node", True, ("on_restart",)),
    ("ide_status", False, ("on_ide_status",)),
    ("get_common_data", True, ("on_get_common_data",)),
)


class Service:
    """A FluxLib service on Herald (or any NATS server), through nats-py.

    Args:
        service_id: names the control subjects (``service.<id>.…``).
        logger: any ``logging.Logger``-like object; default ``logging.getLogger("herald.service.<id>")``.
        state: the service's :class:`StateSlice` (or a :class:`State` / mapping to build one from);
            default: a new private one per service. Nodes get slices of it by default.
        opts: :class:`ServiceOptions` (or a mapping of them); default ``ServiceOptions()``.
        servers: NATS URL(s) used by :meth:`connect` / :meth:`run` when they are given none.
        topics: subject naming; default :class:`Topics` without prefix (fluxmq ``NatsTopic``).

    Typical use::

        class MyService(Service):
            def get_node(self, descriptor):            # build nodes from service.<id>.set_config
                return EchoNode(self, node=descriptor)

        service = MyService("svc1", servers="nats://127.0.0.1:4222")
        await service.run_forever()                    # run(), then wait for SIGINT/SIGTERM

    :meth:`run` connects once, subscribes the control subjects and publishes ``CONNECTED``; each
    control message calls the matching ``on_…`` handler with a :class:`Message`. Handlers may be
    plain or ``async``; one that raises is logged and the next message is handled as usual.
    """

    def __init__(
        self,
        service_id: str = "UndefinedID",
        logger: Optional[Any] = None,
        state: Union[StateSlice, State, Mapping[str, Any], None] = None,
        opts: Union[ServiceOptions, Mapping[str, Any], None] = None,
        *,
        servers: Optional[Servers] = None,
        topics: Optional[Topics] = None,
    ) -> None:
        if not isinstance(service_id, str) or not service_id or any(c.isspace() or c in "*>" for c in service_id):
            raise ValueError(f"invalid service id {service_id!r}: non-empty, no whitespace, no '*' or '>'")
        self.service_id = service_id
        self.logger = logger if logger is not None else logging.getLogger(f"herald.service.{service_id}")
        self.state = state if isinstance(state, StateSlice) else StateSlice(state)
        self.opts = ServiceOptions.coerce(opts)
        self.topics = topics if topics is not None else Topics()
        self.servers = servers
        #: The nodes of this service (this instance only).
        self.nodes: List[Node] = []
        #: The last configuration received on ``set_config`` (parsed JSON), ``None`` before.
        self.config: Any = None
        #: Merged JSON objects received on ``service.<id>.set_settings``.
        self.settings: Dict[str, Any] = {}
        self._nc: Optional[NatsClient] = None
        self._subscriptions: List[Subscription] = []
        self._running = False
        self._tick_task: Optional["asyncio.Task[None]"] = None
        self._shutdown_task: Optional["asyncio.Task[None]"] = None
        self._stop_requested: Optional[asyncio.Event] = None

    # ---- properties ---------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """Alias of :attr:`service_id`."""
        return self.service_id

    @property
    def connection(self) -> Optional[NatsClient]:
        """The nats-py client, once connected."""
        return self._nc

    @property
    def is_connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    @property
    def is_running(self) -> bool:
        """Between :meth:`run` and :meth:`shutdown`."""
        return self._running

    # ---- connection and life cycle ------------------------------------------------------------

    async def connect(self, servers: Optional[Servers] = None, **options: Any) -> None:
        """Open the service's one NATS connection (doing nothing if it is open).

        Args:
            servers: URL or list of URLs; default the constructor's ``servers``, else
                ``nats://127.0.0.1:4222``.
            options: passed to ``nats.connect`` (e.g. ``allow_reconnect=False``,
                ``connect_timeout=2``, ``user_credentials=...``).

        Raises :class:`~herald.exceptions.HeraldConnectionError` when no server can be reached.
        nats-py tries an unreachable server ``max_reconnect_attempts`` times (default 60), every
        ``reconnect_time_wait`` seconds (default 2), before giving up; pass smaller values (e.g.
        ``max_reconnect_attempts=1, reconnect_time_wait=0.1``) to fail fast.
        """
        if self._nc is not None and not self._nc.is_closed:
            return
        if self._shutdown_task is not None:
            raise HeraldConnectionError(f"connect failed: service {self.service_id!r} has been shut down")
        chosen = servers if servers is not None else (self.servers if self.servers is not None else DEFAULT_SERVERS)
        server_list = [chosen] if isinstance(chosen, str) else list(chosen)
        self.servers = chosen
        settings: Dict[str, Any] = {
            "name": f"herald-service:{self.service_id}",
            "error_cb": self._on_nats_error,
            "disconnected_cb": self._on_nats_disconnected,
            "reconnected_cb": self._on_nats_reconnected,
            "closed_cb": self._on_nats_closed,
            "drain_timeout": 5,
        }
        settings.update(options)
        try:
            self._nc = await nats.connect(servers=server_list, **settings)
        except Exception as e:  # nats-py raises OSError, NoServersError, TimeoutError, ...
            raise HeraldConnectionError(f"connect failed: cannot reach {', '.join(server_list)}: {e}") from e

    async def run(self) -> None:
        """Connect (if needed), subscribe the control subjects, publish ``CONNECTED``, initialize the
        appended nodes, start the service tick (``has_global_tick``) and call ``on_connected``.

        Subscribes, each with its handlers: ``service.<id>.set_config`` → ``on_init`` (parses the
        JSON, builds nodes with :meth:`get_node`) then ``on_config``; ``.set_settings`` →
        ``on_settings``; ``.start`` → ``on_start``; ``.stop`` → ``on_stop``; ``.error`` →
        ``on_error``; ``.status`` → ``on_ready`` (the service's own ``CONNECTED`` included);
        ``.restart`` → ``on_restart``; ``ide.status`` → ``on_ide_status``; ``.get_common_data`` →
        ``on_get_common_data``. When ``run()`` returns the server has registered the subscriptions.
        Calling it again while running does nothing.
        """
        if self._running:
            return
        await self.connect()
        for method, with_id, names in _CONTROL_SUBJECTS:
            make_subject: Callable[..., str] = getattr(self.topics, method)
            subject = make_subject(self.service_id) if with_id else make_subject()
            await self._subscribe(
                subject, self._control_handler(names), label="/".join(names), internal=True, flush=False
            )
        await self.flush()
        self._running = True
        await self.send_status(ServiceStatus.CONNECTED)
        for node in list(self.nodes):
            if not node.is_initialized:
                await node.init()
        if self.opts.has_global_tick:
            self._tick_task = asyncio.get_running_loop().create_task(self._tick_loop())
        await self._call_handler("on_connected", self.service_id)

    async def run_forever(self, signals: Iterable[int] = (signal.SIGINT, signal.SIGTERM)) -> None:
        """:meth:`run`, then wait until a signal in ``signals`` arrives, :meth:`request_shutdown` or
        :meth:`shutdown` is called, or the connection closes for good; then :meth:`shutdown`."""
        await self.run()
        event = self._stop_event()
        loop = asyncio.get_running_loop()
        installed: List[int] = []
        for sig in signals:
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
                pass
        try:
            await event.wait()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
        await self.shutdown()

    def request_shutdown(self) -> None:
        """Make :meth:`run_forever` shut the service down (safe anywhere, handlers included)."""
        self._stop_event().set()

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the service: stop the tick, call ``on_shutdown()``, stop every started node,
        publish ``STOPPED``, then drain the connection (messages already received are still
        handled, for at most ``timeout`` seconds and the connection's ``drain_timeout``, 5 s unless
        given to :meth:`connect`) and close it. Safe to call repeatedly.

        Called from inside a message handler, it returns at once and the shutdown completes after
        that handler has returned (draining waits for running handlers). Called from a hook that
        the shutdown itself runs (``on_shutdown``, a node's ``on_stop``), it returns at once too.
        """
        if self._shutdown_task is None:
            self._stop_event().set()
            self._shutdown_task = asyncio.get_running_loop().create_task(self._shutdown(timeout))
        if in_handler() or asyncio.current_task() is self._shutdown_task:
            return
        await asyncio.shield(self._shutdown_task)

    async def _shutdown(self, timeout: float) -> None:
        task, self._tick_task = self._tick_task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        await self._call_handler("on_shutdown")
        for node in list(self.nodes):
            if node.is_started:
                try:
                    await node.stop()
                except Exception:  # noqa: BLE001 - keep shutting down
                    self.logger.exception("stopping node %r during shutdown failed", node.id)
        nc = self._nc
        if nc is not None and nc.is_connected:
            try:
                await self.send_status(ServiceStatus.STOPPED)
            except HeraldError:
                pass
        for sub in list(self._subscriptions):
            sub._close_local()
        self._running = False
        if nc is not None and not nc.is_closed:
            try:
                await asyncio.wait_for(nc.drain(), timeout + 1.0)
            except Exception:  # noqa: BLE001 - draining is best effort; close below in any case
                self.logger.debug("drain failed; closing", exc_info=True)
            if not nc.is_closed:
                await nc.close()

    async def __aenter__(self) -> "Service":
        await self.run()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.shutdown()

    async def flush(self, timeout: float = 10.0) -> None:
        """Round trip to the server: everything sent before has been processed by it."""
        nc = self._require_connection("flush")
        try:
            await flush_connection(nc, timeout)
        except Exception as e:
            raise map_nats_error(e, "flush") from e

    # ---- messaging ----------------------------------------------------------------------------

    async def publish(self, topic: str, payload: Any = b"", headers: Optional[Mapping[str, Any]] = None) -> None:
        """Publish on ``topic`` (verbatim). ``payload``: bytes as is, ``str`` as UTF-8, anything
        else as JSON (``{"a": 1}`` → ``b'{"a": 1}'``). ``headers`` (a dict of strings) are sent
        when non-empty."""
        nc = self._require_connection("publish")
        data = encode_payload(payload)
        try:
            await nc.publish(topic, data, headers=merge_headers(headers))
        except nats.errors.Error as e:
            raise map_nats_error(e, "publish", topic) from e

    async def subscribe(self, topic: str) -> Subscription:
        """Subscribe to ``topic`` (wildcards allowed) and return a :class:`Subscription` to read
        from: ``async for message in sub``, ``await sub.next(timeout=...)`` or ``await sub.get()``."""
        return await self._subscribe(topic, None, label=f"queue {topic}")

    async def subscribe_handler(self, topic: str, handler: Handler) -> Subscription:
        """Call ``handler(message)`` for each message on ``topic``, in arrival order, one at a time.
        A handler that raises is logged; the subscription goes on."""
        return await self._subscribe(topic, handler, label=getattr(handler, "__qualname__", "handler"))

    async def unsubscribe(self, topic_or_subscription: Union[str, Subscription]) -> int:
        """Unsubscribe one :class:`Subscription`, or every subscription made with
        :meth:`subscribe` / :meth:`subscribe_handler` (by the service or its nodes) on exactly
        that topic. Returns how many were removed (the control subscriptions are never matched by
        topic)."""
        if isinstance(topic_or_subscription, Subscription):
            was_active = topic_or_subscription.active
            await topic_or_subscription.unsubscribe()
            return 1 if was_active else 0
        matching = [s for s in self._subscriptions if s.subject == topic_or_subscription and not s.internal]
        for sub in matching:
            await sub.unsubscribe()
        for node in self.nodes:
            node._subscriptions = [s for s in node._subscriptions if s.active]
        return len(matching)

    async def request(
        self,
        topic: str,
        payload: Any = b"",
        timeout: float = DEFAULT_REQUEST_TIMEOUT,
        headers: Optional[Mapping[str, Any]] = None,
    ) -> Message:
        """Send a request on ``topic`` and return the reply :class:`Message`.

        ``payload`` and ``headers`` as for :meth:`publish`. Raises
        :class:`~herald.exceptions.HeraldNoRespondersError` at once when nobody subscribes to
        ``topic``, :class:`~herald.exceptions.HeraldTimeoutError` when no reply came within
        ``timeout`` seconds (default 5).
        """
        nc = self._require_connection("request")
        data = encode_payload(payload)
        try:
            reply = await nc.request(topic, data, timeout=timeout, headers=merge_headers(headers))
        except nats.errors.NoRespondersError as e:
            raise map_nats_error(e, "request", topic) from e
        except (nats.errors.TimeoutError, asyncio.TimeoutError) as e:
            raise HeraldTimeoutError(f"request failed: no reply on {topic!r} within {timeout} s") from e
        except nats.errors.Error as e:
            raise map_nats_error(e, "request", topic) from e
        return Message.from_nats(reply)

    async def respond(
        self, message: Message, response: Any = b"", headers: Optional[Mapping[str, Any]] = None
    ) -> None:
        """Answer a request: publish ``response`` (encoded as for :meth:`publish`) to
        ``message.reply``. The reply carries the request's headers updated with ``headers`` (as
        nats-py's ``Msg.respond`` and fluxmq 0.15.0 do).

        Raises :class:`~herald.exceptions.HeraldInvalidArgumentError` when the message has no
        reply subject (it was published, not sent as a request).
        """
        if not message.reply:
            raise HeraldInvalidArgumentError(
                f"respond failed: the message on {message.subject!r} has no reply subject "
                "(it was published, not sent with request())"
            )
        nc = self._require_connection("respond")
        data = encode_payload(response)
        try:
            await nc.publish(message.reply, data, headers=merge_headers(message.headers, headers))
        except nats.errors.Error as e:
            raise map_nats_error(e, "respond", message.reply) from e

    async def send_status(self, status: str) -> None:
        """Publish ``status`` (e.g. ``ServiceStatus.READY``) on ``service.<id>.status``."""
        await self.publish(self.topics.status(self.service_id), status)

    async def request_config(self) -> None:
        """Ask for a configuration: publish ``READY`` on ``service.<id>.get_config``. The answer is
        expected on ``service.<id>.set_config`` (handled by ``on_init`` / ``on_config``)."""
        await self.publish(self.topics.configuration_request(self.service_id), ServiceStatus.READY)

    async def send_common_data(self, data: Any) -> None:
        """Publish ``data`` on ``service.<id>.set_common_data``."""
        await self.publish(self.topics.set_common_data(self.service_id), data)

    # ---- nodes --------------------------------------------------------------------------------

    def append_node(self, node: Node) -> None:
        """Add ``node`` to this service. Adding the same node again does nothing; another node
        with the same id raises ``ValueError``. A node appended before :meth:`run` is initialized
        by ``run()``; after it, call ``await node.init()`` (or :meth:`start_node`)."""
        if any(n is node for n in self.nodes):
            return
        if self.find_node(node.id) is not None:
            raise ValueError(f"service {self.service_id!r} already has a node {node.id!r}")
        self.nodes.append(node)

    def find_node(self, node_id: str) -> Optional[Node]:
        """The node with id ``node_id``, or ``None``."""
        for node in self.nodes:
            if node.id == node_id:
                return node
        return None

    def _require_node(self, node_id: str, operation: str) -> Node:
        node = self.find_node(node_id)
        if node is None:
            raise HeraldNotFoundError(
                f"{operation} failed: service {self.service_id!r} has no node {node_id!r} "
                f"(nodes: {[n.id for n in self.nodes]})"
            )
        return node

    async def start_node(self, node_id: str) -> None:
        """Start the node ``node_id`` (``HeraldNotFoundError`` if there is none)."""
        await self._require_node(node_id, "start_node").start()

    async def stop_node(self, node_id: str) -> None:
        """Stop the node ``node_id`` (``HeraldNotFoundError`` if there is none)."""
        await self._require_node(node_id, "stop_node").stop()

    async def destroy_node(self, node_id: str) -> None:
        """Destroy the node ``node_id`` and remove it from the service."""
        await self._require_node(node_id, "destroy_node").destroy()

    async def start_node_all(self) -> None:
        """Start every node."""
        for node in list(self.nodes):
            await node.start()

    async def stop_node_all(self) -> None:
        """Stop every started node."""
        for node in list(self.nodes):
            await node.stop()

    async def destroy_node_all(self) -> None:
        """Destroy every node (the service then has none)."""
        for node in list(self.nodes):
            await node.destroy()

    def _remove_node(self, node: Node) -> None:
        self.nodes = [n for n in self.nodes if n is not node]

    # ---- handlers (override) ------------------------------------------------------------------

    def get_node(self, descriptor: DataNode) -> Union[Optional[Node], Awaitable[Optional[Node]]]:
        """Build the node for one descriptor of a ``set_config`` message, or return ``None`` to
        skip it. May be ``async``. The default builds nothing."""
        return None

    async def on_init(self, message: Message) -> None:
        """``service.<id>.set_config`` (first handler). Parses the JSON into :attr:`config`; for a
        list, or an object's ``nodes`` list, builds each node with :meth:`get_node`, appends it
        (replacing and destroying a node with the same id) and initializes it. Bad JSON or a bad
        descriptor is logged and skipped."""
        try:
            config = message.json()
        except ValueError:
            self.logger.error("set_config: payload is not JSON, ignored: %r", message.payload[:200])
            return
        self.config = config
        if isinstance(config, list):
            descriptors = config
        elif isinstance(config, dict) and isinstance(config.get("nodes"), list):
            descriptors = config["nodes"]
        else:
            descriptors = []
        for raw in descriptors:
            try:
                descriptor = DataNode.from_dict(raw)
            except ValueError as e:
                self.logger.error("set_config: skipping a node descriptor: %s", e)
                continue
            try:
                node = await call_maybe_async(self.get_node, descriptor)
                if node is None:
                    continue
                old = self.find_node(node.id)
                if old is not None and old is not node:
                    await old.destroy()
                self.append_node(node)
                await node.init()
            except Exception:  # noqa: BLE001 - one bad node must not stop the others
                self.logger.exception("set_config: building node %r failed", descriptor.id)

    async def on_config(self, message: Message) -> None:
        """``service.<id>.set_config`` (second handler, after :meth:`on_init`). Default: nothing."""

    async def on_settings(self, message: Message) -> None:
        """``service.<id>.set_settings``. Default: a JSON object is merged into :attr:`settings`."""
        try:
            update = message.json()
        except ValueError:
            return
        if isinstance(update, dict):
            self.settings.update(update)

    async def on_start(self, message: Message) -> None:
        """``service.<id>.start``. Default: start the addressed nodes (:meth:`target_nodes`)."""
        for node in self.target_nodes(message):
            await node.start()

    async def on_stop(self, message: Message) -> None:
        """``service.<id>.stop``. Default: stop the addressed nodes (:meth:`target_nodes`)."""
        for node in self.target_nodes(message):
            await node.stop()

    async def on_restart(self, message: Message) -> None:
        """``service.<id>.restart``. Default: stop, then start, the addressed nodes."""
        for node in self.target_nodes(message):
            await node.stop()
            await node.start()

    async def on_error(self, message: Message) -> None:
        """``service.<id>.error``. Default: log it as a warning."""
        self.logger.warning("error reported on %s: %r", message.subject, message.payload[:500])

    async def on_ready(self, message: Message) -> None:
        """Every message on ``service.<id>.status``, this service's own ``CONNECTED`` included."""

    async def on_ide_status(self, message: Message) -> None:
        """``ide.status``."""

    async def on_get_common_data(self, message: Message) -> None:
        """``service.<id>.get_common_data``."""

    async def on_connected(self, service_id: str) -> None:
        """At the end of :meth:`run`, with the service id."""

    async def on_tick(self, time: float) -> None:
        """Each service tick (``ServiceOptions(has_global_tick=True)``), before the nodes tick;
        ``time`` is ``time.time()``."""

    async def on_shutdown(self) -> None:
        """At the start of :meth:`shutdown`, while still connected."""

    def target_nodes(self, message: Message) -> List[Node]:
        """The nodes a start / stop / restart message addresses.

        The payload may be empty, ``*``, a node id, a JSON string, or a JSON object whose
        ``node_id`` is ``"*"``, an id or a list of ids. Empty, ``*``, ``{}`` or anything without a
        ``node_id`` means every node. Unknown ids are logged and skipped.
        """
        target: Any = None
        raw = message.payload.strip()
        if raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw.decode("utf-8", errors="replace")
            if isinstance(parsed, dict):
                target = parsed.get("node_id")
            elif isinstance(parsed, (str, list)):
                target = parsed
        if target is None or target == "*" or target == "" or target == ["*"]:
            return list(self.nodes)
        ids = [target] if isinstance(target, str) else [str(t) for t in target]
        nodes: List[Node] = []
        for node_id in ids:
            node = self.find_node(node_id)
            if node is None:
                self.logger.warning("%s: no node %r in service %r", message.subject, node_id, self.service_id)
            else:
                nodes.append(node)
        return nodes

    # ---- internals ----------------------------------------------------------------------------

    def _require_connection(self, operation: str) -> NatsClient:
        nc = self._nc
        if nc is None or nc.is_closed:
            raise HeraldConnectionError(
                f"{operation} failed: service {self.service_id!r} is not connected (call run() or connect())"
            )
        return nc

    async def _subscribe(
        self,
        subject: str,
        handler: Optional[Handler],
        *,
        label: str,
        internal: bool = False,
        on_error: Optional[Callable[[BaseException], Awaitable[None]]] = None,
        flush: bool = True,
    ) -> Subscription:
        nc = self._require_connection("subscribe")
        sub = Subscription(self, subject, handler, label=label, internal=internal, on_error=on_error)
        try:
            sub._nats_sub = await nc.subscribe(subject, cb=sub._on_nats_message)
        except nats.errors.Error as e:
            raise map_nats_error(e, "subscribe", subject) from e
        self._subscriptions.append(sub)
        if flush:
            # nats-py only queues the SUB; the round trip makes sure the server has it before
            # this returns, so messages published afterwards by anyone are received.
            await self.flush()
        return sub

    def _forget_subscription(self, sub: Subscription) -> None:
        self._subscriptions = [s for s in self._subscriptions if s is not sub]

    async def _dispatch(
        self,
        handler: Handler,
        message: Message,
        label: str,
        on_error: Optional[Callable[[BaseException], Awaitable[None]]] = None,
    ) -> None:
        """Run one handler for one message; log (and report) an exception instead of raising."""
        token = HANDLER_TASK.set(asyncio.current_task())
        try:
            await call_maybe_async(handler, message)
        except Exception as err:  # noqa: BLE001 - a handler must never kill its subscription
            self.logger.exception("%s failed on a message on %r", label, message.subject)
            if on_error is not None:
                try:
                    await on_error(err)
                except Exception:  # noqa: BLE001
                    self.logger.exception("error handler of %s failed", label)
        finally:
            HANDLER_TASK.reset(token)

    def _control_handler(self, names: Tuple[str, ...]) -> Callable[[Message], Awaitable[None]]:
        async def handle(message: Message) -> None:
            for name in names:
                # Looked up per message, so overriding or reassigning a handler takes effect.
                await self._dispatch(getattr(self, name), message, name)

        handle.__qualname__ = "/".join(names)
        return handle

    async def _call_handler(self, name: str, *args: Any) -> None:
        try:
            await call_maybe_async(getattr(self, name), *args)
        except Exception:  # noqa: BLE001
            self.logger.exception("%s failed", name)

    async def _tick_loop(self) -> None:
        interval = self.opts.tick_seconds
        loop = asyncio.get_running_loop()
        next_at = loop.time() + interval
        while True:
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.time()
            await self._call_handler("on_tick", now)
            for node in list(self.nodes):
                if node.is_started:
                    await node._tick(now)
            next_at += interval
            current = loop.time()
            if next_at < current:  # a slow tick: skip the missed ones instead of bursting
                next_at = current + interval

    def _stop_event(self) -> asyncio.Event:
        # Created lazily: on Python 3.9 an Event binds to the loop current at creation.
        if self._stop_requested is None:
            self._stop_requested = asyncio.Event()
        return self._stop_requested

    def _on_signal(self, sig: int) -> None:
        self.logger.info("signal %s received, shutting down", signal.Signals(sig).name)
        self._stop_event().set()

    async def _on_nats_error(self, error: Exception) -> None:
        self.logger.warning("NATS connection error: %s", error)

    async def _on_nats_disconnected(self) -> None:
        if self._shutdown_task is None:
            self.logger.warning("disconnected from the NATS server")

    async def _on_nats_reconnected(self) -> None:
        self.logger.info("reconnected to the NATS server")

    async def _on_nats_closed(self) -> None:
        if self._shutdown_task is None:
            self.logger.warning("NATS connection closed")
            self._stop_event().set()

    def __repr__(self) -> str:
        state = "running" if self._running else ("connected" if self.is_connected else "not connected")
        return f"{type(self).__name__}({self.service_id!r}, {len(self.nodes)} nodes, {state})"
