"""Small helpers shared by the SDK: resource paths, timestamps and durations.

Timestamps on the wire are Unix epoch nanoseconds. The SDK represents them as **naive**
``datetime`` objects in **UTC** (no ``tzinfo``): compare them with
``datetime.now(timezone.utc).replace(tzinfo=None)`` or ``datetime.utcnow()``, not with the local
``datetime.now()``. A naive datetime given to the SDK is likewise taken as UTC.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Dict, Optional

__all__ = [
    "build_resource_path",
    "timestamp_to_nanos",
    "nanos_to_timestamp",
    "duration_to_seconds",
]

_EPOCH = datetime(1970, 1, 1)
_NANOS_PER_SECOND = 1_000_000_000
_MICROS_PER_SECOND = 1_000_000


def build_resource_path(tenant: str, namespace: str, resource_type: str, name: str) -> Dict[str, str]:
    """Return the four parts of a resource address as a dict.

    The dict has the keys ``tenant``, ``namespace``, ``resource_type`` and ``name`` and can be
    passed as ``ResourcePath(**d)``. The canonical string form the server reports (for example in
    ``Message.resource_path``) is the four parts joined with ``/``: ``tenant/namespace/stream/orders``.
    """
    return {
        "tenant": tenant,
        "namespace": namespace,
        "resource_type": resource_type,
        "name": name,
    }


def timestamp_to_nanos(dt: datetime) -> int:
    """Convert a datetime to Unix epoch nanoseconds, exactly (microseconds × 1000, no float rounding).

    An aware datetime is converted using its UTC offset; a naive datetime is taken as UTC.
    """
    if dt.tzinfo is not None and dt.utcoffset() is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    elif dt.tzinfo is not None:
        dt = dt.replace(tzinfo=None)
    delta = dt - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * _MICROS_PER_SECOND + delta.microseconds
    return micros * 1000


def nanos_to_timestamp(nanos: int) -> datetime:
    """Convert Unix epoch nanoseconds to a naive UTC datetime (sub-microsecond digits are dropped)."""
    return _EPOCH + timedelta(microseconds=int(nanos) // 1000)


def duration_to_seconds(duration: Optional[timedelta]) -> int:
    """Whole seconds of ``duration``, truncated toward zero; ``None`` gives 0.

    This is how every ``timedelta`` parameter travels on the wire: the protocol only carries whole
    seconds, so ``timedelta(milliseconds=1500)`` becomes 1 and anything under one second becomes 0
    (which the server reads as "not set": no delay, no TTL, the default visibility timeout).
    """
    if duration is None:
        return 0
    micros = (duration.days * 86_400 + duration.seconds) * _MICROS_PER_SECOND + duration.microseconds
    whole = abs(micros) // _MICROS_PER_SECOND
    return whole if micros >= 0 else -whole


def _nanos_from_maybe_seconds(value: int) -> int:
    """Interpret a timestamp that some servers send in seconds instead of nanoseconds.

    FlowMesh fills ``created_at`` of dead-lettered jobs in Unix seconds. Any value below 10**12
    (which as nanoseconds would be in January 1970) is read as seconds.
    """
    if 0 < value < 10**12:
        return value * _NANOS_PER_SECOND
    return value
