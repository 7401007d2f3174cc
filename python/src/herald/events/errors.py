"""Exceptions raised by :mod:`herald.events`.

They extend the SDK's :class:`~herald.exceptions.HeraldError` hierarchy, so ``except HeraldError``
still catches everything the SDK raises::

    HeraldError
    └── EventsError                  the server answered success=false, or a client-side check failed
        ├── EventsAuthError          Connect refused the access key (also a HeraldAuthError)
        ├── EventsSessionError       the server keeps answering "unknown client", even after a new Connect
        ├── EventsPublishError       PublishMessage refused (e.g. "recipient not found")
        ├── EventsSubscriptionError  subscribe / unsubscribe / pause / continue refused, or the stream
        │                            was refused for good (e.g. PERMISSION_DENIED)
        ├── EventsDeliveryError      ack / defer / discard / replay refused (e.g. "already discarded")
        │   └── EventNotFoundError   "event not found" (also a HeraldNotFoundError)
        ├── EventsValidationError    bad argument caught before any RPC (also a ValueError)
        │   └── InvalidKeyError      a public or secret key has the wrong encoding or length
        ├── EventDecryptionError     a payload could not be decrypted with the client's secret key
        └── EventHandlerError        a subscription handler raised (only given to on_error callbacks)

Failures of the gRPC call itself (server unreachable, deadline, ...) are not ``EventsError``: they
go through :func:`herald.exceptions.handle_grpc_error` like in the rest of the SDK, so an
unreachable server is a :class:`~herald.exceptions.HeraldConnectionError`.

For errors that carry the server's answer, ``err.details`` is the server's text verbatim (the
``error_message`` or ``message`` field), and ``str(err)`` is ``"<operation> failed: <text>"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional, Type

from ..exceptions import HeraldAuthError, HeraldError, HeraldNotFoundError

if TYPE_CHECKING:  # pragma: no cover
    from .types import Event

__all__ = [
    "EventsError",
    "EventsAuthError",
    "EventsSessionError",
    "EventsPublishError",
    "EventsSubscriptionError",
    "EventsDeliveryError",
    "EventNotFoundError",
    "EventsValidationError",
    "InvalidKeyError",
    "EventDecryptionError",
    "EventHandlerError",
]


class EventsError(HeraldError):
    """Base class of the errors specific to :mod:`herald.events`."""


class EventsAuthError(EventsError, HeraldAuthError):
    """``Connect`` answered ``success=false``: the access key is unknown or revoked."""


class EventsSessionError(EventsError):
    """The server does not know the client's session (``unknown client``) and a fresh ``Connect``
    did not help: the call was retried once with the new session and was refused again."""


class EventsPublishError(EventsError):
    """``PublishMessage`` answered ``success=false``.

    Attributes:
        published: ids of the events already stored for the recipients before the failing one.
            Publishing to N recipients is N calls and the server does not roll back, so these
            events exist and will be delivered.
    """

    def __init__(
        self,
        message: str,
        code: Any = None,
        details: Optional[str] = None,
        published: Optional[List[str]] = None,
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.published: List[str] = list(published or [])


class EventsSubscriptionError(EventsError):
    """Subscribing, unsubscribing, pausing or continuing was refused."""


class EventsDeliveryError(EventsError):
    """Acknowledge, defer, discard or replay was refused, e.g. ``already discarded``."""


class EventNotFoundError(EventsDeliveryError, HeraldNotFoundError):
    """The server answered ``event not found``: the id is unknown, expired, addressed to another
    identity, or belongs to another event name."""


class EventsValidationError(EventsError, ValueError):
    """An argument was rejected before anything was sent (also a ``ValueError``)."""


class InvalidKeyError(EventsValidationError):
    """A key is not valid b64, has the wrong length, or is not a valid Ed25519 public key."""


class EventDecryptionError(EventsError):
    """A payload could not be decrypted (or parsed) with the client's secret key.

    Raised by :meth:`herald.events.Subscription.replay`; for streamed events the subscription does
    not raise but passes this error to its ``on_error`` callbacks and counts it in
    ``stats.undecryptable``. The event is neither delivered nor acknowledged, so the server
    redelivers it after its ack timeout.

    Attributes:
        idem, name, block, sender, raw_payload: what is known about the event (``None`` when
            raised outside a subscription).
    """

    def __init__(
        self,
        message: str,
        *,
        idem: Optional[str] = None,
        name: Optional[str] = None,
        block: Optional[int] = None,
        sender: Optional[str] = None,
        raw_payload: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.idem = idem
        self.name = name
        self.block = block
        self.sender = sender
        self.raw_payload = raw_payload


class EventHandlerError(EventsError):
    """A handler registered with :meth:`~herald.events.Subscription.on` raised.

    Never raised to the application: it is handed to the subscription's ``on_error`` callbacks.
    The handler's exception is ``__cause__`` (and :attr:`original`); the event was not
    acknowledged.
    """

    def __init__(self, message: str, event: "Event", original: BaseException) -> None:
        super().__init__(message)
        self.event = event
        self.original = original
        self.__cause__ = original


def error_from_answer(cls: Type[EventsError], operation: str, text: str) -> EventsError:
    """The exception for a ``success=false`` answer: ``cls``, or :class:`EventNotFoundError` when
    the server said ``event not found`` (whatever the operation)."""
    if "event not found" in text.lower():
        cls = EventNotFoundError
    message = f"{operation} failed: {text}" if text else f"{operation} failed"
    return cls(message, details=text or None)
