"""Plain data types returned by and passed to the SDK.

All ``datetime`` fields are naive datetimes in UTC (see :mod:`herald.utils`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Dict, Optional

from ._generated import flowmesh_pb2 as pb
from .utils import _nanos_from_maybe_seconds, nanos_to_timestamp

__all__ = ["Event", "Message", "Job", "QueueStats", "RetryPolicy", "ConsumerGroupState"]


@dataclass
class Event:
    """One event to append to a stream with ``stream.write``.

    Attributes:
        payload: the bytes to store; must not be empty.
        headers: string headers stored with the message (``None`` is accepted and means ``{}``).
    """

    payload: bytes
    headers: Dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.headers is None:
            self.headers = {}

    def to_proto(self) -> pb.Event:
        return pb.Event(payload=self.payload, headers=self.headers or {})


@dataclass
class Message:
    """A message read from a stream.

    Attributes:
        id: server-generated id (opaque string).
        resource_path: ``tenant/namespace/stream/name`` of the stream.
        partition: always 0 (every stream has a single partition).
        offset: position in the stream; the first message has offset 0, then +1 per message.
        payload: the bytes written.
        headers: the headers written (the server may add trace headers).
        created_at: write time, naive UTC.
        schema_version: version of the schema attached to the stream at write time, else 0.
    """

    id: str
    resource_path: str
    partition: int
    offset: int
    payload: bytes
    headers: Dict[str, str]
    created_at: datetime
    schema_version: int = 0

    @classmethod
    def from_proto(cls, msg: Any) -> "Message":
        return cls(
            id=msg.id,
            resource_path=msg.resource_path,
            partition=msg.partition,
            offset=msg.offset,
            payload=bytes(msg.payload),
            headers=dict(msg.headers),
            created_at=nanos_to_timestamp(msg.created_at),
            schema_version=msg.schema_version,
        )


@dataclass
class Job:
    """A queue job, as returned by ``reserve``, ``receive`` and ``list_dlq_jobs``.

    Attributes:
        id: server-generated id; pass it to ``ack`` / ``nack``.
        resource_path: ``tenant/namespace/queue/name`` of the queue holding the job.
        seq: per-queue sequence number (0 for the first job ever enqueued).
        payload: the enqueued bytes.
        headers: the enqueued headers. Jobs in a dead-letter queue also carry
            ``x-flowmesh-original-queue``, ``x-flowmesh-original-job-id``, ``x-flowmesh-failed-at``
            and ``x-flowmesh-attempts``.
        created_at: enqueue time, naive UTC.
        visible_at: when this delivery became due (enqueue time + delay, or requeue time + backoff).
        reserve_until: end of the current reservation, or ``None`` when the job is not reserved.
            Unless it is ACKed or NACKed before then, the job is redelivered (or dead-lettered).
        attempts: number of deliveries so far, this one included.
    """

    id: str
    resource_path: str
    seq: int
    payload: bytes
    headers: Dict[str, str]
    created_at: datetime
    visible_at: datetime
    reserve_until: Optional[datetime]
    attempts: int

    @classmethod
    def from_proto(cls, job: Any, *, created_at_may_be_seconds: bool = False) -> "Job":
        """Convert a ``flowmesh.v1.Job``.

        With ``created_at_may_be_seconds`` (used for dead-letter listings), a ``created_at`` below
        10**12 is read as Unix seconds, because FlowMesh sends seconds there.
        """
        created_at = job.created_at
        if created_at_may_be_seconds:
            created_at = _nanos_from_maybe_seconds(created_at)
        return cls(
            id=job.id,
            resource_path=job.resource_path,
            seq=job.seq,
            payload=bytes(job.payload),
            headers=dict(job.headers),
            created_at=nanos_to_timestamp(created_at),
            visible_at=nanos_to_timestamp(job.visible_at),
            reserve_until=nanos_to_timestamp(job.reserve_until) if job.reserve_until else None,
            attempts=job.attempts,
        )


@dataclass
class QueueStats:
    """Counters of a queue.

    Attributes:
        total_jobs: jobs ever enqueued (including replays from the dead-letter queue).
        pending_jobs: jobs waiting to be delivered, including delayed ones and ones waiting out a
            retry backoff.
        in_flight_jobs: reserved jobs not yet ACKed, NACKed or expired.
        completed_jobs: jobs removed by ACK.
        failed_jobs: jobs moved to the dead-letter queue.
        oldest_job_age_seconds: age in whole seconds of the oldest pending job (0 when none).
    """

    total_jobs: int
    pending_jobs: int
    in_flight_jobs: int
    completed_jobs: int
    failed_jobs: int
    oldest_job_age_seconds: int

    @classmethod
    def from_proto(cls, stats: Any) -> "QueueStats":
        return cls(
            total_jobs=stats.total_jobs,
            pending_jobs=stats.pending_jobs,
            in_flight_jobs=stats.in_flight_jobs,
            completed_jobs=stats.completed_jobs,
            failed_jobs=stats.failed_jobs,
            oldest_job_age_seconds=stats.oldest_job_age_seconds,
        )


@dataclass
class RetryPolicy:
    """How a queue retries failed jobs. The defaults are the server's defaults.

    A job is delivered at most ``max_attempts`` times (0 = unlimited). When a delivery fails (NACK
    without a delay, or the visibility timeout expires) after ``a`` attempts, the job waits
    ``backoff(a)`` seconds before it is delivered again: ``fixed`` → ``initial``; ``linear`` →
    ``initial × a``; ``exponential`` → ``initial × multiplier^(a−1)``; capped at
    ``max_backoff_seconds``. A failure at ``attempts >= max_attempts`` moves the job to the
    dead-letter queue ``<queue>-dlq`` instead.
    """

    max_attempts: int = 3
    initial_backoff_seconds: int = 1
    max_backoff_seconds: int = 60
    backoff_multiplier: float = 2.0
    backoff_strategy: str = "exponential"

    @classmethod
    def from_proto(cls, policy: Any) -> "RetryPolicy":
        return cls(
            max_attempts=policy.max_attempts,
            initial_backoff_seconds=policy.initial_backoff_seconds,
            max_backoff_seconds=policy.max_backoff_seconds,
            backoff_multiplier=policy.backoff_multiplier,
            backoff_strategy=policy.backoff_strategy,
        )

    def to_proto(self) -> pb.RetryPolicy:
        return pb.RetryPolicy(
            max_attempts=self.max_attempts,
            initial_backoff_seconds=self.initial_backoff_seconds,
            max_backoff_seconds=self.max_backoff_seconds,
            backoff_multiplier=self.backoff_multiplier,
            backoff_strategy=self.backoff_strategy,
        )


@dataclass
class ConsumerGroupState:
    """Position of a consumer group on one stream partition.

    Attributes:
        stream: ``tenant/namespace/stream/name``.
        group: the consumer group name.
        partition: the partition (always 0 in practice).
        committed_offset: last offset the group committed as processed, -1 if it never committed.
        latest_offset: offset of the last message, -1 if the stream is empty.
        lag: messages not yet processed: -1 for an empty stream, ``latest + 1`` when nothing was
            committed, else ``max(0, latest - committed)``.
    """

    stream: str
    group: str
    partition: int
    committed_offset: int
    latest_offset: int
    lag: int

    @classmethod
    def from_proto(cls, state: Any) -> "ConsumerGroupState":
        return cls(
            stream=state.stream,
            group=state.group,
            partition=state.partition,
            committed_offset=state.committed_offset,
            latest_offset=state.latest_offset,
            lag=state.lag,
        )
