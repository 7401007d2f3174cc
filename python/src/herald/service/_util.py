"""Small helpers shared by the service modules (not public API)."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from typing import Any, Callable, Optional

import nats.errors

from ..exceptions import (
    HeraldConnectionError,
    HeraldError,
    HeraldInvalidArgumentError,
    HeraldNoRespondersError,
    HeraldTimeoutError,
)

#: The task currently running a message handler of some subscription (set by the dispatcher).
#: ``Service.shutdown()`` and ``Subscription.unsubscribe()`` use it to avoid waiting for, or
#: cancelling, the very handler they are called from.
HANDLER_TASK: "contextvars.ContextVar[Optional[asyncio.Task[Any]]]" = contextvars.ContextVar(
    "herald_service_handler_task", default=None
)


def in_handler() -> bool:
    """Whether the current task is running a message handler."""
    task = HANDLER_TASK.get()
    return task is not None and task is asyncio.current_task()


async def call_maybe_async(fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn(*args)``; await the result if it is awaitable (handlers may be sync or async)."""
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def accepts_argument(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` can be called with one positional argument (tick callbacks may take the
    time or nothing)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    for param in sig.parameters.values():
        if param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD, param.VAR_POSITIONAL):
            return True
    return False


def map_nats_error(err: BaseException, operation: str, subject: str = "") -> HeraldError:
    """The SDK exception for a nats-py error raised by ``operation`` (on ``subject``)."""
    where = f" on {subject!r}" if subject else ""
    if isinstance(err, nats.errors.NoRespondersError):
        return HeraldNoRespondersError(f"{operation} failed: no responders{where} (nobody subscribes to it)")
    if isinstance(err, (nats.errors.TimeoutError, asyncio.TimeoutError)):
        return HeraldTimeoutError(f"{operation} failed: timed out{where}")
    if isinstance(err, (nats.errors.BadSubjectError, nats.errors.BadHeaderError)):
        return HeraldInvalidArgumentError(f"{operation} failed: invalid subject or header{where}")
    if isinstance(err, nats.errors.MaxPayloadError):
        return HeraldInvalidArgumentError(f"{operation} failed: payload larger than the server's max_payload{where}")
    if isinstance(
        err,
        (
            nats.errors.ConnectionClosedError,
            nats.errors.ConnectionDrainingError,
            nats.errors.ConnectionReconnectingError,
            nats.errors.OutboundBufferLimitError,
            nats.errors.NoServersError,
            nats.errors.StaleConnectionError,
        ),
    ):
        return HeraldConnectionError(f"{operation} failed: {type(err).__name__}: {err}{where}")
    return HeraldError(f"{operation} failed: {err}{where}")


async def flush_connection(nc: Any, timeout: float = 10.0) -> None:
    """A round trip after which the server has processed everything sent on ``nc`` before.

    nats-py's ``flush()`` alone is not that: it writes its ``PING`` straight to the socket, ahead
    of commands still waiting in the client's write buffer (compat/nats-fluxlib.md §2.1), so the
    ``PONG`` can come back before a ``SUB`` queued just before it has even been sent. So first have
    the client's flusher write the buffer out (``_flush_pending(force_flush=True)`` returns once it
    has), then ``flush()``.
    """
    flush_pending = getattr(nc, "_flush_pending", None)
    if flush_pending is not None:
        await asyncio.wait_for(flush_pending(force_flush=True), timeout)
    await nc.flush(timeout=max(1, int(timeout)))
