"""Nodes: the working parts of a service, with a life cycle, inputs, outputs, settings and ticks.

Life cycle (every step publishes on ``node.<id>.status`` where a status is named)::

    Node(...)  ──init()──▶  created  ──start()──▶  started  ──stop()──▶  stopped  ──destroy()
                 on_init, on_create     on_start, ticks        on_stop              on_destroy

* :meth:`Node.init` subscribes ``node.<id>.set_settings`` (a JSON object merged into
  :attr:`Node.settings`, then ``on_settings(update)``), ``node.<id>.status`` (``on_status``) and
  every input topic; runs ``on_init()``; publishes ``created``; runs ``on_create()``. The service
  calls it for nodes built from ``set_config`` and for appended nodes when it runs; ``start()``
  calls it if needed. ``on_create()`` runs directly, once, not when the ``created`` status comes
  back from the server as in FluxLib.
* :meth:`Node.start` runs ``on_start()``, publishes ``started`` and starts ticking. If
  ``on_start()`` raises, ``on_error(err)`` is called and the node is stopped again.
* :meth:`Node.stop` stops the ticks (the tick task is cancelled), runs ``on_stop()`` and publishes
  ``stopped``. Input subscriptions stay, so a stopped node can be started again.
* :meth:`Node.destroy` stops the node if needed, removes every subscription the node made, runs
  ``on_destroy()`` and removes the node from its service.

Hooks may be plain or ``async`` methods. A hook that raises is logged and passed to
``on_error(err)``; it never breaks the life cycle or a subscription.

Ticks: with ``ServiceOptions(has_global_tick=True)`` a started node ticks on the service tick;
otherwise it ticks every ``timer.interval`` ms when it has a :class:`DataTimer`, and never without
one. Each tick calls the constructor's ``on_tick`` callback when one was given, else the
:meth:`Node.on_tick` method — so overriding the method works. Either may take the tick time
(``time.time()``) as its one argument or take none.

Topic mapping of inputs and outputs (the one place this SDK differs from FluxLib's code on the
wire): node **input and output** topics both have every ``/`` replaced by ``.``
(:func:`~herald.service.topics.topic_to_subject`). FluxLib mapped only output topics, so an output
``out/x`` published on ``out.x`` while an input ``out/x`` listened on the single-token subject
``out/x`` and the two never met; here they meet on ``out.x``, which is what a configuration wiring
one node's output to another's input means. Topics without ``/`` are unchanged, so configurations
written with dots behave exactly as with FluxLib. Everything else — the service's ``publish``,
``subscribe``, ``request``, a node's own :meth:`Node.subscribe_handler` — uses subjects verbatim.

Inputs keep the latest message per input and per node (``node.input("a").read()``); FluxLib kept
them in one store shared by every node. ``on_input(topic, message)`` is called for each message
arriving on an input while the node is started, with the input topic as configured
(``message.subject`` is the concrete subject).
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Dict, List, Mapping, Optional, Union

from ..exceptions import HeraldError
from ._util import accepts_argument, call_maybe_async
from .data import DataInput, DataNode, DataOutput, DataTimer
from .message import Message
from .state import StateSlice
from .subscription import Handler, Subscription
from .topics import NodeStatus, topic_to_subject

if TYPE_CHECKING:  # pragma: no cover
    from .service import Service

__all__ = ["Node", "Input", "Output"]

TickCallback = Callable[..., Union[Awaitable[Any], Any]]


class Input:
    """A node input: listens on its topics and keeps the latest message."""

    def __init__(self, node: "Node", spec: DataInput) -> None:
        self.node = node
        self.alias = spec.alias
        self.topics: List[str] = list(spec.topics)
        #: The NATS subjects listened on (the topics with ``/`` mapped to ``.``).
        self.subjects: List[str] = [topic_to_subject(t) for t in self.topics]
        self._latest: Optional[Message] = None
        self._listening = False

    async def listen(self) -> None:
        """Subscribe to every topic of this input (done by :meth:`Node.init`; calling again does
        nothing). Each message is kept for :meth:`read` and passed to the node's ``on_input``."""
        if self._listening:
            return
        self._listening = True
        for topic, subject in zip(self.topics, self.subjects):
            await self.node._subscribe(subject, partial(self._received, topic), label=f"input {self.alias!r}")

    async def _received(self, topic: str, message: Message) -> None:
        self._latest = message
        await self.node._input_received(topic, message)

    def read(self, default: Optional[Message] = None) -> Optional[Message]:
        """The latest message received on this input (``read().payload`` is its bytes), or ``default``."""
        return self._latest if self._latest is not None else default

    async def subscribe(self, callback: Handler) -> List[Subscription]:
        """Also pass every message on this input's topics to ``callback`` (removed at destroy)."""
        return [await self.subscribe_one(topic, callback) for topic in self.topics]

    async def subscribe_one(self, topic: str, callback: Handler) -> Subscription:
        """Pass every message on ``topic`` (mapped like the input topics) to ``callback``."""
        return await self.node._subscribe(topic_to_subject(topic), callback, label=f"input {self.alias!r} callback")

    def __repr__(self) -> str:
        return f"Input({self.alias!r}, topics={self.topics!r})"


class Output:
    """A node output: publishes to every one of its topics."""

    def __init__(self, node: "Node", spec: DataOutput) -> None:
        self.node = node
        self.alias = spec.alias
        self.topics: List[str] = list(spec.topics)
        #: The NATS subjects published to (the topics with ``/`` mapped to ``.``).
        self.subjects: List[str] = [topic_to_subject(t) for t in self.topics]

    async def publish(self, data: Any, headers: Optional[Mapping[str, str]] = None) -> None:
        """Publish ``data`` (encoded as :meth:`Service.publish` does) to every topic of this output."""
        for subject in self.subjects:
            await self.node.service.publish(subject, data, headers=headers)

    def __repr__(self) -> str:
        return f"Output({self.alias!r}, topics={self.topics!r})"


class Node:
    """A node of a service. Subclass it and override the hooks you need.

    Args:
        service: the service the node belongs to (register it with :meth:`Service.append_node`,
            or return it from :meth:`Service.get_node`).
        node_id: the node id; defaults to ``node.id``.
        node: the descriptor (id, type, settings, inputs, outputs); defaults to
            ``DataNode(id=node_id)``. At least one of ``node_id`` and ``node`` is needed.
        logger: defaults to a child of the service's logger.
        state: a :class:`StateSlice` to use as is, a mapping of initial values, or ``None``: a
            slice of the service's state under the prefix ``node_id`` (private to this node, visible
            to the service as ``"<node_id>/<key>"``).
        timer: ticks every ``timer.interval`` ms while started (unless the service has a global tick).
        on_tick: called on each tick instead of the :meth:`on_tick` method.
        status_factory: accepted for FluxLib compatibility; status texts are :class:`NodeStatus`'s.

    Attributes:
        id: the node id (``node_id`` is an alias).
        type: the descriptor's type.
        settings: a copy of the descriptor's settings, updated by ``node.<id>.set_settings``.
        inputs / outputs: :class:`Input` / :class:`Output` by alias.
    """

    def __init__(
        self,
        service: "Service",
        node_id: Optional[str] = None,
        node: Optional[DataNode] = None,
        logger: Optional[Any] = None,
        state: Union[StateSlice, Mapping[str, Any], None] = None,
        timer: Optional[DataTimer] = None,
        on_tick: Optional[TickCallback] = None,
        status_factory: Any = None,
    ) -> None:
        if node is None and node_id is None:
            raise ValueError("Node needs a node_id or a DataNode")
        if node is None:
            node = DataNode(id=str(node_id))
        self.id: str = str(node_id) if node_id is not None else node.id
        if not self.id or any(c.isspace() for c in self.id):
            raise ValueError(f"invalid node id {self.id!r}: it must be non-empty and contain no whitespace")
        self.service = service
        self.node = node
        self.type = node.type
        self.settings: Dict[str, Any] = dict(node.settings)
        self.logger = logger if logger is not None else _child_logger(service.logger, f"node.{self.id}")
        if isinstance(state, StateSlice):
            self.state = state
        elif state is None:
            self.state = StateSlice(service.state, prefix=self.id)
        else:
            self.state = StateSlice(state, prefix=self.id)
        self.timer = timer
        self.status_factory = status_factory if status_factory is not None else NodeStatus()
        self.inputs: Dict[str, Input] = {spec.alias: Input(self, spec) for spec in node.inputs}
        self.outputs: Dict[str, Output] = {spec.alias: Output(self, spec) for spec in node.outputs}
        self._on_tick_callback = on_tick
        self._status: Optional[str] = None
        self._subscriptions: List[Subscription] = []
        self._initialized = False
        self._started = False
        self._destroyed = False
        self._tick_task: Optional["asyncio.Task[None]"] = None

    # ---- properties ---------------------------------------------------------------------------

    @property
    def node_id(self) -> str:
        """Alias of :attr:`id`."""
        return self.id

    @property
    def status(self) -> Optional[str]:
        """The last status this node published (``None`` before :meth:`init`)."""
        return self._status

    @property
    def is_initialized(self) -> bool:
        return self._initialized

    @property
    def is_started(self) -> bool:
        return self._started

    @property
    def is_destroyed(self) -> bool:
        return self._destroyed

    def input(self, alias: str) -> Input:
        """The input called ``alias`` (``KeyError`` naming the known ones otherwise)."""
        try:
            return self.inputs[alias]
        except KeyError:
            raise KeyError(f"node {self.id!r} has no input {alias!r} (inputs: {sorted(self.inputs)})") from None

    def output(self, alias: str) -> Output:
        """The output called ``alias`` (``KeyError`` naming the known ones otherwise)."""
        try:
            return self.outputs[alias]
        except KeyError:
            raise KeyError(f"node {self.id!r} has no output {alias!r} (outputs: {sorted(self.outputs)})") from None

    # ---- life cycle ---------------------------------------------------------------------------

    async def init(self) -> None:
        """Subscribe settings, status and inputs, run ``on_init``, publish ``created``, run
        ``on_create``. Calling it again does nothing."""
        self._check_not_destroyed("init")
        if self._initialized:
            return
        self._initialized = True
        topics = self.service.topics
        await self._subscribe(topics.node_settings(self.id), self._handle_settings, label="settings", flush=False)
        await self._subscribe(topics.node_status(self.id), self._handle_status, label="status", flush=False)
        for inp in self.inputs.values():
            await inp.listen()
        await self.service.flush()
        await self._hook("on_init")
        await self.set_status(NodeStatus.CREATED)
        await self._hook("on_create")

    async def start(self) -> None:
        """Start the node (initializing it first if needed). Starting a started node does nothing."""
        self._check_not_destroyed("start")
        if not self._initialized:
            await self.init()
        if self._started:
            return
        self._started = True
        if not await self._hook("on_start"):
            await self.stop()
            return
        await self.set_status(NodeStatus.STARTED)
        if self._started and self.timer is not None and not self.service.opts.has_global_tick:
            self._tick_task = asyncio.get_running_loop().create_task(self._tick_loop(self.timer.seconds))

    async def stop(self) -> None:
        """Stop ticking, run ``on_stop``, publish ``stopped``. Stopping a node that is not started
        does nothing."""
        if not self._started:
            return
        self._started = False
        task, self._tick_task = self._tick_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.wait({task})
        await self._hook("on_stop")
        await self.set_status(NodeStatus.STOPPED)

    async def destroy(self) -> None:
        """Stop, remove every subscription of the node, run ``on_destroy`` and leave the service.
        Destroying twice does nothing."""
        if self._destroyed:
            return
        await self.stop()
        self._destroyed = True
        for sub in list(self._subscriptions):
            await sub.unsubscribe()
        self._subscriptions.clear()
        await self._hook("on_destroy")
        self.service._remove_node(self)

    async def set_status(self, status: str) -> None:
        """Remember ``status`` and publish it on ``node.<id>.status``."""
        self._status = status
        await self.service.publish(self.service.topics.node_status(self.id), status)

    # ---- messaging helpers --------------------------------------------------------------------

    async def publish(self, topic: str, payload: Any, headers: Optional[Mapping[str, str]] = None) -> None:
        """:meth:`Service.publish` (subject verbatim)."""
        await self.service.publish(topic, payload, headers=headers)

    async def subscribe_handler(self, topic: str, handler: Handler) -> Subscription:
        """Subscribe ``handler`` to ``topic`` (verbatim) for this node: exceptions go to
        ``on_error`` and the subscription is removed by :meth:`destroy`."""
        return await self._subscribe(topic, handler, label=getattr(handler, "__qualname__", "handler"))

    # ---- hooks (override) ---------------------------------------------------------------------

    async def on_init(self) -> None:
        """In :meth:`init`, after the subscriptions, before ``created`` is published."""

    async def on_create(self) -> None:
        """In :meth:`init`, after ``created`` is published."""

    async def on_start(self) -> None:
        """In :meth:`start`, before ``started`` is published. Raising aborts the start."""

    async def on_stop(self) -> None:
        """In :meth:`stop`, after the ticks stopped, before ``stopped`` is published."""

    async def on_destroy(self) -> None:
        """In :meth:`destroy`, after the subscriptions are gone."""

    async def on_tick(self, time: float) -> None:
        """On each tick while started (unless an ``on_tick`` callback was given). ``time`` is
        ``time.time()``; an override may also take no argument."""

    async def on_input(self, topic: str, message: Message) -> None:
        """For each message on an input while started; ``topic`` as configured."""

    async def on_settings(self, update: Dict[str, Any]) -> None:
        """After ``update`` (from ``node.<id>.set_settings``) was merged into :attr:`settings`."""

    async def on_status(self, message: Message) -> None:
        """For each message on ``node.<id>.status``, this node's own publications included."""

    async def on_error(self, error: BaseException) -> None:
        """When a hook or a handler of this node raised (already logged)."""

    # ---- internals ----------------------------------------------------------------------------

    def _check_not_destroyed(self, operation: str) -> None:
        if self._destroyed:
            raise HeraldError(f"{operation} failed: node {self.id!r} has been destroyed")

    async def _subscribe(self, subject: str, handler: Handler, *, label: str, flush: bool = True) -> Subscription:
        sub = await self.service._subscribe(
            subject, handler, label=f"node {self.id!r} {label}", on_error=self._report_error, flush=flush
        )
        self._subscriptions.append(sub)
        return sub

    async def _hook(self, name: str, *args: Any) -> bool:
        """Run hook ``name``; on failure log it, call ``on_error`` and return ``False``."""
        try:
            await call_maybe_async(getattr(self, name), *args)
            return True
        except Exception as err:  # noqa: BLE001 - user code; reported, never fatal
            self.logger.exception("node %r: %s failed", self.id, name)
            await self._report_error(err)
            return False

    async def _report_error(self, error: BaseException) -> None:
        try:
            await call_maybe_async(self.on_error, error)
        except Exception:  # noqa: BLE001
            self.logger.exception("node %r: on_error failed", self.id)

    async def _handle_settings(self, message: Message) -> None:
        try:
            update = message.json()
        except ValueError:
            self.logger.warning("node %r: settings are not JSON, ignored: %r", self.id, message.payload[:200])
            return
        if not isinstance(update, dict):
            self.logger.warning("node %r: settings must be a JSON object, ignored: %r", self.id, update)
            return
        self.settings.update(update)
        await self._hook("on_settings", update)

    async def _handle_status(self, message: Message) -> None:
        await self._hook("on_status", message)

    async def _input_received(self, topic: str, message: Message) -> None:
        if self._started:
            await self._hook("on_input", topic, message)

    async def _tick(self, now: float) -> None:
        """One tick (from the node's timer or the service tick)."""
        if not self._started:
            return
        if self._on_tick_callback is not None:
            fn: Callable[..., Any] = self._on_tick_callback
            name = "on_tick callback"
        else:
            fn = self.on_tick
            name = "on_tick"
        try:
            if accepts_argument(fn):
                await call_maybe_async(fn, now)
            else:
                await call_maybe_async(fn)
        except Exception as err:  # noqa: BLE001
            self.logger.exception("node %r: %s failed", self.id, name)
            await self._report_error(err)

    async def _tick_loop(self, interval: float) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + interval
        while self._started:
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if not self._started:
                break
            await self._tick(time.time())
            next_at += interval
            now = loop.time()
            if next_at < now:  # a slow tick: skip the missed ones instead of bursting
                next_at = now + interval

    def __repr__(self) -> str:
        state = "destroyed" if self._destroyed else (self._status or "new")
        return f"{type(self).__name__}(id={self.id!r}, type={self.type!r}, {state})"


def _child_logger(parent: Any, suffix: str) -> Any:
    get_child = getattr(parent, "getChild", None)
    if callable(get_child):
        return get_child(suffix)
    return logging.getLogger(f"herald.service.{suffix}")

