"""Queue operations: ``client.queue``."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from ._generated import flowmesh_pb2 as pb
from .types import Job, QueueStats, RetryPolicy
from .utils import build_resource_path, duration_to_seconds

if TYPE_CHECKING:  # pragma: no cover
    from .client import Herald

__all__ = ["QueueClient"]


def _queue_path(tenant: str, namespace: str, queue: str) -> pb.ResourcePath:
    return pb.ResourcePath(**build_resource_path(tenant, namespace, "queue", queue))


class QueueClient:
    """Job queues addressed as ``tenant/namespace/queue/<name>``.

    A job is enqueued, reserved by a worker for a visibility timeout, and then ACKed (done) or
    NACKed (retry later). A reservation that runs out without either is treated as a NACK. Retries
    follow the queue's :class:`~herald.types.RetryPolicy`; a job that fails after its last attempt
    moves to the dead-letter queue ``<name>-dlq``, from where it can be listed and replayed.

    Durations are ``timedelta`` objects but travel as **whole seconds, truncated**: anything under
    one second counts as "not set" (no delay, default visibility timeout of 30 s, no long-poll
    wait), and fractions of a second are dropped. The SDK does not check ranges; the server does.
    """

    def __init__(self, client: "Herald") -> None:
        self._client = client

    async def enqueue(
        self,
        tenant: str,
        namespace: str,
        queue: str,
        payload: bytes,
        delay: Optional[timedelta] = None,
        headers: Optional[Dict[str, str]] = None,
    ) -> Tuple[str, int]:
        """Add a job and return ``(job_id, seq)``.

        The job becomes deliverable after ``delay`` (whole seconds; ``None`` = at once). ``seq`` is
        the queue's sequence number for the job (0 for the first job ever enqueued).
        """
        request = pb.EnqueueRequest(
            resource_path=_queue_path(tenant, namespace, queue),
            payload=payload,
            delay_seconds=duration_to_seconds(delay),
            headers=headers or {},
        )
        response = await self._client._call("queue", "Enqueue", request, "enqueue")
        return response.job_id, response.seq

    async def reserve(
        self,
        tenant: str,
        namespace: str,
        queue: str,
        visibility_timeout: Optional[timedelta] = None,
        long_poll_timeout: Optional[timedelta] = None,
    ) -> Optional[Job]:
        """Take the next deliverable job, or return ``None`` if there is none.

        The job stays reserved for ``visibility_timeout`` (``None`` or under 1 s: the server
        default of 30 s; at most 12 h). With ``long_poll_timeout`` the call waits up to that long
        (the server caps it at 20 s) for a job to become available before returning ``None``.
        ``job.attempts`` counts deliveries, this one included.
        """
        request = pb.ReserveRequest(
            resource_path=_queue_path(tenant, namespace, queue),
            visibility_timeout_seconds=duration_to_seconds(visibility_timeout),
            long_poll_timeout_seconds=duration_to_seconds(long_poll_timeout),
        )
        response = await self._client._call("queue", "Reserve", request, "reserve")
        if not response.HasField("job"):
            return None
        return Job.from_proto(response.job)

    async def receive(
        self,
        tenant: str,
        namespace: str,
        queue: str,
        max_jobs: int = 1,
        visibility_timeout: Optional[timedelta] = None,
        long_poll_timeout: Optional[timedelta] = None,
    ) -> List[Job]:
        """Reserve up to ``max_jobs`` jobs (the server clamps it to 1..100); ``[]`` when none.

        Visibility timeout and long-poll behave as in :meth:`reserve`.
        """
        request = pb.ReceiveRequest(
            resource_path=_queue_path(tenant, namespace, queue),
            max_jobs=max_jobs,
            visibility_timeout_seconds=duration_to_seconds(visibility_timeout),
            long_poll_timeout_seconds=duration_to_seconds(long_poll_timeout),
        )
        response = await self._client._call("queue", "Receive", request, "receive")
        return [Job.from_proto(j) for j in response.jobs]

    async def ack(self, tenant: str, namespace: str, queue: str, job_id: str) -> None:
        """Mark a reserved job as done and remove it.

        Idempotent: acknowledging an unknown, already acknowledged or no longer reserved job
        succeeds and does nothing.
        """
        request = pb.ACKRequest(resource_path=_queue_path(tenant, namespace, queue), job_id=job_id)
        await self._client._call("queue", "ACK", request, "ack")

    async def nack(
        self,
        tenant: str,
        namespace: str,
        queue: str,
        job_id: str,
        delay: Optional[timedelta] = None,
    ) -> None:
        """Give a reserved job back for a retry.

        It becomes deliverable again after ``delay`` (whole seconds), or, when ``delay`` is
        ``None`` or under 1 s, after the backoff of the queue's retry policy.

        Raises:
            HeraldFailedPreconditionError: (a ``HeraldError`` with
                ``code == grpc.StatusCode.FAILED_PRECONDITION``) when the job had used up its
                attempts. The job **has been moved** to the dead-letter queue; this error only
                reports it, so a worker may log it and carry on.
            HeraldNotFoundError: the job is not currently reserved (e.g. already ACKed).
        """
        request = pb.NACKRequest(
            resource_path=_queue_path(tenant, namespace, queue),
            job_id=job_id,
            delay_seconds=duration_to_seconds(delay),
        )
        await self._client._call("queue", "NACK", request, "nack")

    async def get_stats(self, tenant: str, namespace: str, queue: str) -> QueueStats:
        """Return the queue's counters (see :class:`~herald.types.QueueStats`)."""
        request = pb.GetQueueStatsRequest(resource_path=_queue_path(tenant, namespace, queue))
        response = await self._client._call("queue", "GetQueueStats", request, "get_stats")
        return QueueStats.from_proto(response.stats)

    async def set_retry_policy(self, tenant: str, namespace: str, queue: str, policy: RetryPolicy) -> None:
        """Replace the queue's retry policy; it applies from the next failure on, including to jobs
        already reserved. Invalid policies raise ``HeraldInvalidArgumentError``."""
        request = pb.SetRetryPolicyRequest(
            resource_path=_queue_path(tenant, namespace, queue), policy=policy.to_proto()
        )
        await self._client._call("queue", "SetRetryPolicy", request, "set_retry_policy")

    async def get_retry_policy(self, tenant: str, namespace: str, queue: str) -> RetryPolicy:
        """Return the queue's retry policy (the default one if none was set)."""
        request = pb.GetRetryPolicyRequest(resource_path=_queue_path(tenant, namespace, queue))
        response = await self._client._call("queue", "GetRetryPolicy", request, "get_retry_policy")
        return RetryPolicy.from_proto(response.policy)

    async def list_dlq_jobs(self, tenant: str, namespace: str, queue: str, max_jobs: int = 100) -> List[Job]:
        """List up to ``max_jobs`` jobs waiting in the queue's dead-letter queue, oldest first.

        Each is a new job (its own id and seq) carrying the original payload and headers plus
        ``x-flowmesh-original-queue``, ``x-flowmesh-original-job-id``, ``x-flowmesh-failed-at`` and
        ``x-flowmesh-attempts``. ``[]`` when nothing was ever dead-lettered.
        """
        request = pb.ListDLQJobsRequest(
            resource_path=_queue_path(tenant, namespace, queue), max_jobs=max_jobs
        )
        response = await self._client._call("queue", "ListDLQJobs", request, "list_dlq_jobs")
        return [Job.from_proto(j, created_at_may_be_seconds=True) for j in response.jobs]

    async def replay_dlq_job(self, tenant: str, namespace: str, queue: str, job_id: str) -> Tuple[str, int]:
        """Move a dead-lettered job (an id from :meth:`list_dlq_jobs`) back into the queue as a new
        job with fresh attempts; return its ``(job_id, seq)``."""
        request = pb.ReplayDLQJobRequest(resource_path=_queue_path(tenant, namespace, queue), job_id=job_id)
        response = await self._client._call("queue", "ReplayDLQJob", request, "replay_dlq_job")
        return response.job_id, response.seq
