"""Messages as handlers see them, and how published values become bytes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

__all__ = ["Message", "encode_payload", "merge_headers"]


@dataclass
class Message:
    """One message received on a subject (or the reply to a request).

    Attributes:
        subject: the subject it was published on (for a reply: the requester's inbox).
        payload: the body, exactly the bytes that were published.
        reply: the subject to answer on (:meth:`Service.respond`), ``""`` when the sender expects
            no answer.
        headers: NATS headers, ``{}`` when there were none.

    ``message.data`` is the same bytes as ``message.payload`` (FluxLib's README uses ``data``,
    fluxmq's messages ``payload``; both work here).
    """

    subject: str
    payload: bytes = b""
    reply: str = ""
    headers: Dict[str, str] = field(default_factory=dict)

    @property
    def data(self) -> bytes:
        """Alias of :attr:`payload`."""
        return self.payload

    def text(self, encoding: str = "utf-8") -> str:
        """The payload decoded as text (strict: invalid UTF-8 raises ``UnicodeDecodeError``)."""
        return self.payload.decode(encoding)

    def get_data_as_string(self) -> str:
        """fluxmq's name for :meth:`text`."""
        return self.text()

    def json(self) -> Any:
        """The payload parsed as JSON (``ValueError`` — ``json.JSONDecodeError`` — when it is not)."""
        return json.loads(self.payload)

    @classmethod
    def from_nats(cls, msg: Any) -> "Message":
        """Build from a nats-py ``Msg`` (``subject``, ``data``, ``reply``, ``headers``)."""
        return cls(
            subject=msg.subject,
            payload=bytes(msg.data or b""),
            reply=msg.reply or "",
            headers=dict(msg.headers or {}),
        )


def encode_payload(value: Any) -> bytes:
    """The bytes published for ``value``, following fluxmq 0.15.0's rule.

    * ``bytes`` (also ``bytearray`` and ``memoryview``): as is;
    * ``str``: UTF-8;
    * anything else: ``json.dumps(value)`` with Python's default separators, UTF-8 encoded — so
      ``{"a": 1}`` becomes ``b'{"a": 1}'``, ``42`` becomes ``b"42"`` and ``None`` becomes ``b"null"``.

    Raises ``TypeError`` for a value JSON cannot represent.
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    try:
        return json.dumps(value).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"cannot publish a {type(value).__name__}: payloads are bytes, str or JSON-serialisable values ({e})"
        ) from e


def merge_headers(*layers: Optional[Mapping[str, Any]]) -> Optional[Dict[str, str]]:
    """Merge header mappings left to right (later ones win), values as ``str``.

    Returns ``None`` when the result is empty, so that a message without headers is sent as a plain
    ``PUB`` rather than an ``HPUB`` with an empty header block.
    """
    merged: Dict[str, str] = {}
    for layer in layers:
        if layer:
            for key, value in layer.items():
                merged[str(key)] = str(value)
    return merged or None
