"""Queues against a real server (compat/flowmesh.md §3.4, §6.5; checklist C08–C17, C19, C30)."""

import asyncio
import re
import time
from datetime import datetime, timedelta, timezone

import grpc
import pytest

from herald import (
    HeraldError,
    HeraldFailedPreconditionError,
    HeraldInvalidArgumentError,
    HeraldNotFoundError,
    Job,
    QueueStats,
    RetryPolicy,
)

from .conftest import NAMESPACE, TENANT

pytestmark = pytest.mark.integration

T, NS = TENANT, NAMESPACE
S = timedelta(seconds=1)


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def seconds_between(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


async def test_enqueue_reserve_ack_and_stats(client):
    q = "basic"
    job_id, seq = await client.queue.enqueue(T, NS, q, b"job-0", headers={"h": "v"})
    assert re.fullmatch(r"[0-9a-f]{32}", job_id)
    assert seq == 0
    assert (await client.queue.enqueue(T, NS, q, b"job-1"))[1] == 1
    stats = await client.queue.get_stats(T, NS, q)
    assert isinstance(stats, QueueStats)
    assert (stats.total_jobs, stats.pending_jobs, stats.in_flight_jobs) == (2, 2, 0)
    assert (stats.completed_jobs, stats.failed_jobs) == (0, 0)

    job = await client.queue.reserve(T, NS, q, visibility_timeout=30 * S)
    assert isinstance(job, Job)
    assert (job.id, job.seq, job.payload, job.attempts) == (job_id, 0, b"job-0", 1)
    assert job.headers["h"] == "v"
    assert job.resource_path == f"{T}/{NS}/queue/{q}"
    now = utc_now()
    assert isinstance(job.reserve_until, datetime)
    assert 28 <= seconds_between(job.reserve_until, now) <= 31
    assert job.created_at <= job.visible_at <= now + timedelta(seconds=1)

    stats = await client.queue.get_stats(T, NS, q)
    assert (stats.pending_jobs, stats.in_flight_jobs) == (1, 1)
    await client.queue.ack(T, NS, q, job.id)
    stats = await client.queue.get_stats(T, NS, q)
    assert (stats.pending_jobs, stats.in_flight_jobs, stats.completed_jobs) == (1, 0, 1)
    # ACK is idempotent
    await client.queue.ack(T, NS, q, job.id)
    await client.queue.ack(T, NS, q, "deadbeef")


async def test_empty_queue_reserve_returns_none_and_receive_empty(client):
    assert await client.queue.reserve(T, NS, "empty") is None
    assert await client.queue.receive(T, NS, "empty", max_jobs=5) == []


async def test_long_poll_times_out_and_wakes_up_on_enqueue(client, other_client):
    q = "long_poll"
    started = time.monotonic()
    assert await client.queue.reserve(T, NS, q, long_poll_timeout=2 * S) is None
    assert 1.5 <= time.monotonic() - started <= 3.5

    async def enqueue_later():
        await asyncio.sleep(1.0)
        return await other_client.queue.enqueue(T, NS, q, b"wake")

    started = time.monotonic()
    producer = asyncio.ensure_future(enqueue_later())
    job = await client.queue.reserve(T, NS, q, long_poll_timeout=5 * S)
    elapsed = time.monotonic() - started
    job_id, _ = await producer
    assert job is not None and job.id == job_id
    assert elapsed < 2.5

    producer = asyncio.ensure_future(enqueue_later())
    started = time.monotonic()
    jobs = await client.queue.receive(T, NS, q, max_jobs=3, long_poll_timeout=5 * S)
    assert time.monotonic() - started < 2.5
    assert [j.id for j in jobs] == [(await producer)[0]]


async def test_delayed_job_becomes_visible_later(client):
    q = "delay"
    await client.queue.enqueue(T, NS, q, b"later", delay=timedelta(seconds=1))
    assert await client.queue.reserve(T, NS, q) is None
    assert (await client.queue.get_stats(T, NS, q)).pending_jobs == 1
    await asyncio.sleep(1.2)
    job = await client.queue.reserve(T, NS, q, long_poll_timeout=3 * S)
    assert job is not None and job.payload == b"later"
    assert isinstance(job.reserve_until, datetime)
    assert 0.9 <= seconds_between(job.visible_at, job.created_at) <= 1.2
    await client.queue.ack(T, NS, q, job.id)


async def test_sub_second_delay_is_dropped(client):
    q = "delay"
    await client.queue.enqueue(T, NS, q, b"now", delay=timedelta(milliseconds=900))
    job = await client.queue.reserve(T, NS, q)
    assert job is not None and job.payload == b"now"
    await client.queue.ack(T, NS, q, job.id)


async def test_visibility_timeout_expiry_redelivers_with_attempts_2(client):
    q = "visibility"
    await client.queue.set_retry_policy(T, NS, q, RetryPolicy(0, 1, 1, 1.0, "fixed"))
    job_id, _ = await client.queue.enqueue(T, NS, q, b"slow")
    first = await client.queue.reserve(T, NS, q, visibility_timeout=S)
    reserved_at = time.monotonic()
    assert first is not None and first.attempts == 1
    assert await client.queue.reserve(T, NS, q) is None
    assert (await client.queue.get_stats(T, NS, q)).in_flight_jobs == 1

    jobs = await client.queue.receive(T, NS, q, long_poll_timeout=5 * S)
    assert time.monotonic() - reserved_at < 4.5
    assert [(j.id, j.attempts) for j in jobs] == [(job_id, 2)]
    await client.queue.ack(T, NS, q, job_id)
    stats = await client.queue.get_stats(T, NS, q)
    assert (stats.pending_jobs, stats.in_flight_jobs) == (0, 0)


async def test_nack_with_explicit_delay(client):
    q = "nack_delay"
    job_id, _ = await client.queue.enqueue(T, NS, q, b"retry-me")
    job = await client.queue.reserve(T, NS, q)
    assert job is not None and job.attempts == 1
    await client.queue.nack(T, NS, q, job_id, delay=2 * S)
    nacked_at = utc_now()
    assert await client.queue.reserve(T, NS, q) is None
    stats = await client.queue.get_stats(T, NS, q)
    assert (stats.pending_jobs, stats.in_flight_jobs) == (1, 0)

    await asyncio.sleep(2.3)
    again = await client.queue.reserve(T, NS, q, long_poll_timeout=2 * S)
    assert again is not None and (again.id, again.attempts) == (job_id, 2)
    assert 1.7 <= seconds_between(again.visible_at, nacked_at) <= 2.5
    await client.queue.ack(T, NS, q, job_id)
    with pytest.raises(HeraldNotFoundError, match=f"^nack failed: job {job_id} not found in queue"):
        await client.queue.nack(T, NS, q, job_id)


async def test_exponential_backoff(client):
    q = "backoff"
    await client.queue.set_retry_policy(T, NS, q, RetryPolicy(0, 1, 60, 2.0, "exponential"))
    job_id, _ = await client.queue.enqueue(T, NS, q, b"flaky")
    job = await client.queue.reserve(T, NS, q)
    assert job is not None
    for expected_wait, expected_attempts in ((1, 2), (2, 3), (4, 4)):
        await client.queue.nack(T, NS, q, job.id)
        nacked_at = utc_now()
        job = await client.queue.reserve(T, NS, q, long_poll_timeout=10 * S)
        assert job is not None and job.id == job_id
        assert job.attempts == expected_attempts
        assert abs(seconds_between(job.visible_at, nacked_at) - expected_wait) <= 0.4
    await client.queue.ack(T, NS, q, job_id)


async def test_retry_policy_get_set_and_validation(client):
    q = "retry_policy"
    assert await client.queue.get_retry_policy(T, NS, q) == RetryPolicy()
    policy = RetryPolicy(max_attempts=5, initial_backoff_seconds=2, max_backoff_seconds=120,
                         backoff_multiplier=3.0, backoff_strategy="linear")
    await client.queue.set_retry_policy(T, NS, q, policy)
    assert await client.queue.get_retry_policy(T, NS, q) == policy

    invalid = [
        (RetryPolicy(max_attempts=-1), "max_attempts cannot be negative"),
        (RetryPolicy(initial_backoff_seconds=0), "initial_backoff_seconds must be positive"),
        (RetryPolicy(initial_backoff_seconds=2, max_backoff_seconds=1), "max_backoff_seconds must be >= initial"),
        (RetryPolicy(backoff_multiplier=0.0), "backoff_multiplier must be positive"),
        (RetryPolicy(backoff_strategy="random"), "backoff_strategy must be one of"),
        (RetryPolicy(max_backoff_seconds=31536001), "cannot exceed 31536000"),
    ]
    for bad, text in invalid:
        with pytest.raises(HeraldInvalidArgumentError, match=text):
            await client.queue.set_retry_policy(T, NS, q, bad)
    assert await client.queue.get_retry_policy(T, NS, q) == policy


async def test_dead_letter_after_max_attempts_then_replay(client):
    q = "dlq"
    path = f"{T}/{NS}/queue/{q}"
    await client.queue.set_retry_policy(T, NS, q, RetryPolicy(1, 1, 1, 1.0, "fixed"))
    job_id, _ = await client.queue.enqueue(T, NS, q, b"poison", headers={"a": "b"})
    job = await client.queue.reserve(T, NS, q)
    assert job is not None and job.attempts == 1

    with pytest.raises(HeraldError) as info:
        await client.queue.nack(T, NS, q, job_id)
    err = info.value
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    assert isinstance(err, HeraldFailedPreconditionError)
    assert not isinstance(err, HeraldNotFoundError)
    assert str(err) == f"nack failed: job {job_id} exceeded max attempts (1/1) in queue {path}"

    stats = await client.queue.get_stats(T, NS, q)
    assert (stats.pending_jobs, stats.in_flight_jobs, stats.failed_jobs) == (0, 0, 1)

    dead = await client.queue.list_dlq_jobs(T, NS, q, max_jobs=10)
    assert len(dead) == 1
    d = dead[0]
    assert d.payload == b"poison"
    assert d.id != job_id
    assert d.seq == 0
    assert abs(seconds_between(utc_now(), d.created_at)) < 60
    assert d.headers["a"] == "b"
    assert d.headers["x-flowmesh-original-queue"] == path
    assert d.headers["x-flowmesh-original-job-id"] == job_id
    assert d.headers["x-flowmesh-attempts"] == "1"
    failed_at = d.headers["x-flowmesh-failed-at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", failed_at)
    dlq_stats = await client.queue.get_stats(T, NS, f"{q}-dlq")
    assert (dlq_stats.total_jobs, dlq_stats.pending_jobs) == (1, 1)

    new_id, new_seq = await client.queue.replay_dlq_job(T, NS, q, d.id)
    assert new_id not in (job_id, d.id)
    assert new_seq == 1
    replayed = await client.queue.reserve(T, NS, q)
    assert replayed is not None
    assert (replayed.id, replayed.payload, replayed.attempts) == (new_id, b"poison", 1)
    assert not any(k.startswith("x-flowmesh-") for k in replayed.headers)
    await client.queue.ack(T, NS, q, new_id)
    assert await client.queue.list_dlq_jobs(T, NS, q) == []

    with pytest.raises(HeraldNotFoundError, match="^replay_dlq_job failed"):
        await client.queue.replay_dlq_job(T, NS, q, "0" * 32)


async def test_expired_reservation_is_dead_lettered_silently(client):
    q = "dlq_expiry"
    await client.queue.set_retry_policy(T, NS, q, RetryPolicy(1, 1, 1, 1.0, "fixed"))
    job_id, _ = await client.queue.enqueue(T, NS, q, b"abandoned")
    assert (await client.queue.reserve(T, NS, q, visibility_timeout=S)) is not None
    deadline = time.monotonic() + 4
    dead = []
    while time.monotonic() < deadline and not dead:
        await asyncio.sleep(0.25)
        dead = await client.queue.list_dlq_jobs(T, NS, q)
    assert [j.headers.get("x-flowmesh-original-job-id") for j in dead] == [job_id]


async def test_list_dlq_without_dead_letters_is_empty(client):
    assert await client.queue.list_dlq_jobs(T, NS, "dlq_none") == []


async def test_receive_batches_and_clamps(client):
    q = "receive_batch"
    for i in range(5):
        await client.queue.enqueue(T, NS, q, f"job-{i}".encode())
    first = await client.queue.receive(T, NS, q, max_jobs=3)
    assert [(j.seq, j.attempts) for j in first] == [(0, 1), (1, 1), (2, 1)]
    assert [j.seq for j in await client.queue.receive(T, NS, q, max_jobs=0)] == [3]
    assert [j.seq for j in await client.queue.receive(T, NS, q, max_jobs=500)] == [4]
    assert await client.queue.receive(T, NS, q) == []
    with pytest.raises(HeraldInvalidArgumentError, match="cannot exceed 43200"):
        await client.queue.receive(T, NS, q, visibility_timeout=timedelta(seconds=43201))
    with pytest.raises(HeraldInvalidArgumentError, match="cannot exceed 43200"):
        await client.queue.reserve(T, NS, q, visibility_timeout=timedelta(seconds=43201))


async def test_queue_request_errors(client):
    q = "queue_errors"
    with pytest.raises(HeraldInvalidArgumentError, match="^enqueue failed: payload cannot be empty"):
        await client.queue.enqueue(T, NS, q, b"")
    with pytest.raises(HeraldInvalidArgumentError, match="delay_seconds cannot be negative"):
        await client.queue.enqueue(T, NS, q, b"x", delay=timedelta(seconds=-1))
    with pytest.raises(HeraldInvalidArgumentError, match="job_id is required"):
        await client.queue.ack(T, NS, q, "")
    with pytest.raises(HeraldNotFoundError):
        await client.queue.nack(T, NS, q, "0" * 32)


async def test_unprovisioned_queue_is_not_found(client):
    m = "missing"
    path = f"{T}/{NS}/queue/{m}"
    calls = {
        "enqueue": lambda: client.queue.enqueue(T, NS, m, b"x"),
        "reserve": lambda: client.queue.reserve(T, NS, m),
        "receive": lambda: client.queue.receive(T, NS, m),
        "ack": lambda: client.queue.ack(T, NS, m, "x"),
        "nack": lambda: client.queue.nack(T, NS, m, "x"),
        "get_stats": lambda: client.queue.get_stats(T, NS, m),
        "get_retry_policy": lambda: client.queue.get_retry_policy(T, NS, m),
        "set_retry_policy": lambda: client.queue.set_retry_policy(T, NS, m, RetryPolicy()),
        "list_dlq_jobs": lambda: client.queue.list_dlq_jobs(T, NS, m),
    }
    for operation, call in calls.items():
        with pytest.raises(HeraldNotFoundError) as info:
            await call()
        assert str(info.value).startswith(f"{operation} failed: "), operation
        assert f"queue not found: {path}" in str(info.value), operation
