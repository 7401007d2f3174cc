"""Data types of :mod:`herald.events`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

__all__ = ["Event", "SubscriptionStats"]


@dataclass(frozen=True)
class Event:
    """One delivered (or replayed) event, with its payload already decrypted.

    Attributes:
        idem: the event's id; pass it (or the event itself) to ack / defer / discard / replay.
        name: the event name, e.g. ``"orders/created"``.
        block: the event's position in the server's log (>= 1); echoed back by :meth:`ack`.
        payload: the decrypted JSON value the publisher passed to ``publish``.
        sender: b64 Ed25519 public key of the publishing identity.
        metadata: the publisher's metadata, parsed from its JSON text; ``{}`` when there was none.
        timestamp: always ``None`` over gRPC: the stream message carries no timestamp (the field
            exists so code written against the WebSocket shape keeps working).
        raw_payload: the payload string exactly as the server delivered it (still encrypted).

    A replayed event (:meth:`Subscription.replay`) only knows ``idem``, ``name`` and ``payload``:
    the replay answer carries nothing else, so ``block`` is 0, ``sender`` is ``""`` and
    ``metadata`` is ``{}``.
    """

    idem: str
    name: str
    block: int
    payload: Any
    sender: str = ""
    metadata: Dict[str, Any] = field(default_factory=dict)
    timestamp: Optional[int] = None
    raw_payload: str = field(default="", repr=False)

    def to_dict(self) -> Dict[str, Any]:
        """The dict the real ``ensync-sdk`` gRPC client passes to handlers (``idem``,
        ``messageName``, ``block``, ``timestamp``, ``payload``, ``sender``, ``metadata``), for code
        ported from it."""
        return {
            "idem": self.idem,
            "messageName": self.name,
            "block": self.block,
            "timestamp": self.timestamp,
            "payload": self.payload,
            "sender": self.sender,
            "metadata": self.metadata,
        }


@dataclass(frozen=True)
class SubscriptionStats:
    """Counters of one subscription since it was created (a snapshot; see
    :attr:`Subscription.stats`).

    Attributes:
        received: events read from the stream (including undecryptable ones and redeliveries).
        delivered: events handed to handlers or to an ``async for`` loop.
        acked: automatic acknowledgements the server confirmed.
        handler_errors: events for which a handler raised (those are not acknowledged).
        undecryptable: events whose payload or metadata could not be decrypted or parsed with the
            client's secret key: never delivered, never acknowledged.
        ack_errors: automatic acknowledgements that failed.
        stream_restarts: times the subscription's stream had to be opened again after it ended.
    """

    received: int = 0
    delivered: int = 0
    acked: int = 0
    handler_errors: int = 0
    undecryptable: int = 0
    ack_errors: int = 0
    stream_restarts: int = 0
