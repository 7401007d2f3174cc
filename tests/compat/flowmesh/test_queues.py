"""C08–C10, C17–C19: enqueue/reserve/ACK, empty queue and long-poll, delays, batch receive, queue errors
(compat/flowmesh.md §3.4)."""

import time

import pytest

from fm_wire import HEX32, assert_status, expect_error, later, now_ns, run_parallel, user_headers

S = 10**9
MISSING_QUEUE = "queue not found: t1/ns1/queue/missing"


def _stats(fm, name):
    s = fm.stats(name)
    return {
        "total": s.total_jobs,
        "pending": s.pending_jobs,
        "in_flight": s.in_flight_jobs,
        "completed": s.completed_jobs,
        "failed": s.failed_jobs,
    }


# ---------------------------------------------------------------- C08


def test_c08_enqueue_reserve_ack_stats(fm):
    pb = fm.pb
    e0 = fm.enqueue("c08", b"job-0", headers={"h": "v"})
    assert_status(e0, "job enqueued successfully")
    assert e0.seq == 0
    assert HEX32.match(e0.job_id), e0.job_id
    e1 = fm.enqueue("c08", b"job-1")
    assert_status(e1, "job enqueued successfully")
    assert e1.seq == 1
    assert HEX32.match(e1.job_id) and e1.job_id != e0.job_id

    stats = fm.queue.GetQueueStats(pb.GetQueueStatsRequest(resource_path=fm.rp("queue", "c08")))
    assert_status(stats, "queue statistics retrieved successfully")
    assert _stats(fm, "c08") == {"total": 2, "pending": 2, "in_flight": 0, "completed": 0, "failed": 0}

    r = fm.reserve("c08", visibility=30)
    now = now_ns()
    assert_status(r, "job reserved successfully")
    assert r.HasField("job")
    job = r.job
    assert (job.id, job.seq, job.payload) == (e0.job_id, 0, b"job-0")
    assert user_headers(job.headers) == {"h": "v"}
    assert job.attempts == 1
    assert job.resource_path == "t1/ns1/queue/c08"
    assert 29 * S <= job.reserve_until - now <= 31 * S, f"reserve_until - now = {(job.reserve_until - now) / S:.3f} s"
    # Checked at the end so that a failure here does not hide the stats/ACK part of the scenario.
    timestamps = (job.created_at, job.visible_at, now)

    st = _stats(fm, "c08")
    assert (st["pending"], st["in_flight"]) == (1, 1), st

    assert_status(fm.ack("c08", job.id), "job acknowledged successfully")
    st = _stats(fm, "c08")
    # FlowMesh reports completed 0; Herald counts ACKs (D6).
    assert (st["pending"], st["in_flight"], st["completed"]) == (1, 0, 1), st

    # ACK is idempotent, also for unknown ids.
    assert_status(fm.ack("c08", job.id), "job acknowledged successfully")
    assert_status(fm.ack("c08", "deadbeef"), "job acknowledged successfully")

    created_at, visible_at, now = timestamps
    assert created_at <= visible_at <= now, (
        f"expected created_at <= visible_at <= now, got created_at={created_at} visible_at={visible_at} "
        f"(visible_at - created_at = {visible_at - created_at} ns) now={now}"
    )


# ---------------------------------------------------------------- C09


def test_c09_reserve_on_empty_queue(fm):
    # FlowMesh crashes here; Herald answers OK without a job (D1).
    r = fm.reserve("c09")
    assert_status(r, "no jobs available")
    assert not r.HasField("job"), r.job


def test_c09_reserve_long_poll(fm, fm_other):
    def empty_long_poll():
        t = time.monotonic()
        r = fm.reserve("c09", long_poll=3)
        elapsed = time.monotonic() - t
        assert not r.HasField("job"), r.job
        assert r.status.message == "no jobs available"
        assert 2.5 <= elapsed <= 3.5, f"Reserve(long_poll 3) returned after {elapsed:.2f} s"

    def long_poll_with_enqueue():
        t = time.monotonic()
        enq = later(1.0, lambda: fm_other.enqueue("c09b", b"late"))
        r = fm.reserve("c09b", long_poll=5)
        elapsed = time.monotonic() - t
        job_id = enq.result(timeout=10).job_id
        # FlowMesh ignores the long poll on Reserve; Herald honours it (D2).
        assert r.HasField("job"), f"no job after {elapsed:.2f} s"
        assert (r.job.id, r.job.payload) == (job_id, b"late")
        assert elapsed <= 1.5, f"Reserve(long_poll 5) returned the job after {elapsed:.2f} s"

    run_parallel(empty_long_poll, long_poll_with_enqueue)


# ---------------------------------------------------------------- C10


def test_c10_delayed_job(fm):
    t = time.monotonic()
    e = fm.enqueue("c10", b"delayed", delay=2)
    r = fm.reserve("c10")
    assert not r.HasField("job"), f"delayed job delivered at once: {r.job}"
    assert _stats(fm, "c10")["pending"] == 1

    time.sleep(max(0.0, t + 2.5 - time.monotonic()))
    r = fm.reserve("c10")
    assert r.HasField("job"), "delayed job not delivered after 2.5 s"
    assert r.job.id == e.job_id
    d = r.job.visible_at - r.job.created_at
    assert 2.0 * S <= d <= 2.1 * S, f"visible_at - created_at = {d / S:.3f} s"


def test_c10_negative_delay(fm):
    expect_error(lambda: fm.enqueue("c10", b"x", delay=-1), "INVALID_ARGUMENT", "delay_seconds cannot be negative")


# ---------------------------------------------------------------- C17


def test_c17_batch_receive_and_limits(fm):
    seqs = [fm.enqueue("c17", f"j{i}".encode()).seq for i in range(5)]
    assert seqs == [0, 1, 2, 3, 4]

    r = fm.receive("c17", max_jobs=3)
    assert_status(r, "received 3 jobs")
    assert [j.seq for j in r.jobs] == [0, 1, 2]
    assert [j.attempts for j in r.jobs] == [1, 1, 1]
    assert [j.payload for j in r.jobs] == [b"j0", b"j1", b"j2"]

    r = fm.receive("c17", max_jobs=0)
    assert [j.seq for j in r.jobs] == [3]
    assert_status(r, "received 1 jobs")

    r = fm.receive("c17", max_jobs=500)
    assert [j.seq for j in r.jobs] == [4]

    r = fm.receive("c17")
    assert_status(r, "received 0 jobs")
    assert list(r.jobs) == []

    msg = "visibility_timeout_seconds cannot exceed 43200 (12 hours)"
    expect_error(lambda: fm.receive("c17", visibility=43201), "INVALID_ARGUMENT", msg)
    expect_error(lambda: fm.reserve("c17", visibility=43201), "INVALID_ARGUMENT", msg)

    fm.enqueue("c17", b"default-visibility")
    r = fm.receive("c17", visibility=0)
    now = now_ns()
    assert len(r.jobs) == 1
    d = r.jobs[0].reserve_until - now
    assert 29 * S <= d <= 31 * S, f"reserve_until - now = {d / S:.3f} s with visibility 0"


# ---------------------------------------------------------------- C18


@pytest.mark.slow
def test_c18_receive_long_poll(fm, fm_other):
    def short_poll():
        t = time.monotonic()
        r = fm.receive("c18", long_poll=2)
        elapsed = time.monotonic() - t
        assert list(r.jobs) == []
        assert 1.7 <= elapsed <= 2.3, f"Receive(long_poll 2) returned after {elapsed:.2f} s"

    def capped_poll():
        t = time.monotonic()
        r = fm.receive("c18", long_poll=60)
        elapsed = time.monotonic() - t
        assert list(r.jobs) == []
        assert 19.0 <= elapsed <= 21.0, f"Receive(long_poll 60) returned after {elapsed:.2f} s (cap is 20 s)"

    def poll_with_enqueue():
        t = time.monotonic()
        enq = later(1.0, lambda: fm_other.enqueue("c18b", b"late"))
        r = fm.receive("c18b", long_poll=5)
        elapsed = time.monotonic() - t
        job_id = enq.result(timeout=10).job_id
        assert [j.id for j in r.jobs] == [job_id], f"after {elapsed:.2f} s"
        assert elapsed <= 1.5, f"Receive(long_poll 5) returned the job after {elapsed:.2f} s"

    run_parallel(short_poll, capped_poll, poll_with_enqueue)


# ---------------------------------------------------------------- C19


def test_c19_request_errors(fm):
    pb = fm.pb
    expect_error(lambda: fm.enqueue("c19", b""), "INVALID_ARGUMENT", "payload cannot be empty")
    expect_error(
        lambda: fm.queue.Enqueue(pb.EnqueueRequest(resource_path=fm.rp("stream", "c19"), payload=b"x")),
        "INVALID_ARGUMENT",
        "resource_type must be 'queue'",
    )
    expect_error(lambda: fm.ack("c19", ""), "INVALID_ARGUMENT", "job_id is required")


def test_c19_missing_queue(fm):
    pb = fm.pb
    rp = fm.rp("queue", "missing")
    calls = {
        "Enqueue": lambda: fm.enqueue("missing", b"x"),
        "Reserve": lambda: fm.reserve("missing"),
        "Receive": lambda: fm.receive("missing"),
        "ACK": lambda: fm.ack("missing", "x"),
        "NACK": lambda: fm.nack("missing", "x"),
        "GetQueueStats": lambda: fm.stats("missing"),
        "GetRetryPolicy": lambda: fm.queue.GetRetryPolicy(pb.GetRetryPolicyRequest(resource_path=rp)),
    }
    failures = []
    for name, call in calls.items():
        try:
            expect_error(call, "NOT_FOUND", MISSING_QUEUE)
        except (AssertionError, pytest.fail.Exception) as e:
            failures.append(f"{name}: {e}")
    assert not failures, "\n".join(failures)


def test_c19_nack_never_reserved(fm):
    e = fm.enqueue("c19", b"waiting")
    expect_error(lambda: fm.nack("c19", e.job_id), "NOT_FOUND", f"job {e.job_id} not found in queue t1/ns1/queue/c19")
