"""Subscriptions made through a :class:`~herald.service.Service`."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional, Set, Union

import nats.errors

from ..exceptions import HeraldError, HeraldTimeoutError
from .message import Message

if TYPE_CHECKING:  # pragma: no cover
    from .service import Service

__all__ = ["Subscription", "Handler"]

#: A message handler: a plain or ``async`` function taking a :class:`Message`.
Handler = Callable[[Message], Union[Awaitable[Any], Any]]

_CLOSED = object()

# Tasks that finish an unsubscribe requested from inside the subscription's own handler; kept
# referenced until they are done.
_BACKGROUND: Set["asyncio.Task[Any]"] = set()


class Subscription:
    """One subscription to a subject, delivering either to a handler or to a queue.

    Made by :meth:`Service.subscribe` (queue mode: iterate with ``async for``, or call
    :meth:`next` / :meth:`get`) and :meth:`Service.subscribe_handler` (handler mode: every message
    is passed to the handler, in arrival order, one at a time; a handler that raises is logged and
    the next message is handled as usual).

    Attributes:
        subject: the subject (wildcards allowed) as subscribed.
    """

    def __init__(
        self,
        service: "Service",
        subject: str,
        handler: Optional[Handler] = None,
        *,
        label: str = "",
        internal: bool = False,
        on_error: Optional[Callable[[BaseException], Awaitable[None]]] = None,
        max_queued: int = 65536,
    ) -> None:
        self.subject = subject
        self._service = service
        self._handler = handler
        self._label = label or (getattr(handler, "__qualname__", None) or repr(handler))
        self._on_error = on_error
        self.internal = internal
        self._queue: Optional["asyncio.Queue[Any]"] = None if handler is not None else asyncio.Queue(max_queued)
        self._nats_sub: Any = None
        self._closed = False
        self._unsubscribe_after_handler = False

    # ---- state --------------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """``False`` once unsubscribed (or once the service shut down)."""
        return not self._closed

    @property
    def queue(self) -> "asyncio.Queue[Any]":
        """The queue of received :class:`Message` objects (queue mode only).

        fluxmq 0.2.0's ``subscribe()`` returned an ``asyncio.Queue``; prefer :meth:`next` or
        ``async for``, which also notice when the subscription ends (the queue then holds an
        end marker that is not a :class:`Message`).
        """
        if self._queue is None:
            raise HeraldError(f"subscription to {self.subject!r} delivers to a handler, it has no queue")
        return self._queue

    # ---- receiving ----------------------------------------------------------------------------

    async def _on_nats_message(self, msg: Any) -> None:
        """nats-py callback (runs in the subscription's own task, one message at a time)."""
        if self._closed:
            return
        message = Message.from_nats(msg)
        if self._queue is not None:
            await self._queue.put(message)
            return
        assert self._handler is not None
        try:
            await self._service._dispatch(self._handler, message, self._label, self._on_error)
        finally:
            if self._unsubscribe_after_handler:
                self._unsubscribe_after_handler = False
                task = asyncio.get_running_loop().create_task(self._unsubscribe_nats())
                _BACKGROUND.add(task)
                task.add_done_callback(_BACKGROUND.discard)

    async def next(self, timeout: Optional[float] = None) -> Message:
        """The next message (queue mode). Waits at most ``timeout`` seconds (forever when ``None``).

        Raises :class:`~herald.exceptions.HeraldTimeoutError` on timeout and
        :class:`~herald.exceptions.HeraldError` once the subscription has ended and its queue is empty.
        """
        queue = self.queue
        if self._closed and queue.empty():
            raise HeraldError(f"subscription to {self.subject!r} is closed")
        try:
            item = await asyncio.wait_for(queue.get(), timeout)
        except asyncio.TimeoutError:
            raise HeraldTimeoutError(f"no message on {self.subject!r} within {timeout} s") from None
        if not isinstance(item, Message):  # the end-of-subscription marker
            queue.put_nowait(_CLOSED)  # wake any other waiter too
            raise HeraldError(f"subscription to {self.subject!r} is closed")
        return item

    async def get(self) -> Message:
        """``await sub.get()`` as on fluxmq 0.2.0's queue: :meth:`next` without a timeout."""
        return await self.next()

    def __aiter__(self) -> "Subscription":
        self.queue  # noqa: B018 - raises in handler mode
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.next()
        except HeraldTimeoutError:  # pragma: no cover - no timeout given
            raise
        except HeraldError:
            raise StopAsyncIteration from None

    # ---- ending -------------------------------------------------------------------------------

    async def unsubscribe(self) -> None:
        """Stop receiving. Messages already queued can still be read; iteration then ends.

        Safe to call repeatedly, after the service shut down, and from inside this subscription's
        own handler (the handler finishes normally; no further message is handled).
        """
        if self._closed:
            return
        self._close_local()
        own_task = getattr(self._nats_sub, "_wait_for_msgs_task", None)
        if self._nats_sub is not None and own_task is asyncio.current_task():
            # Unsubscribing in nats-py cancels the task running this very handler: do it once
            # the handler has returned.
            self._unsubscribe_after_handler = True
            return
        await self._unsubscribe_nats()

    def _close_local(self) -> None:
        """Mark closed, forget it in the service and wake a reader waiting on the queue."""
        self._closed = True
        self._service._forget_subscription(self)
        if self._queue is not None:
            try:
                self._queue.put_nowait(_CLOSED)
            except asyncio.QueueFull:
                pass  # the reader sees the flag once it has emptied the queue

    async def _unsubscribe_nats(self) -> None:
        sub, self._nats_sub = self._nats_sub, None
        if sub is None:
            return
        try:
            await sub.unsubscribe()
        except (
            nats.errors.ConnectionClosedError,
            nats.errors.ConnectionDrainingError,
            nats.errors.BadSubscriptionError,
        ):
            pass  # the connection is gone or going: the server forgets the subscription anyway

    def __repr__(self) -> str:
        mode = "queue" if self._queue is not None else f"handler={self._label}"
        state = "active" if not self._closed else "closed"
        return f"Subscription({self.subject!r}, {mode}, {state})"
