"""C11–C16: visibility expiry, NACK, backoff strategies, retry policies, dead-lettering and DLQ replay
(compat/flowmesh.md §3.4; Herald decisions D3, D4, D6, D10, D11, D12)."""

import time
from datetime import datetime

import grpc
import pytest

from fm_wire import HEX32, RFC3339, assert_status, call_error, expect_error, now_ns, run_parallel

S = 10**9


def _stats(fm, name):
    s = fm.stats(name)
    return {
        "total": s.total_jobs,
        "pending": s.pending_jobs,
        "in_flight": s.in_flight_jobs,
        "completed": s.completed_jobs,
        "failed": s.failed_jobs,
    }


def _policy_tuple(p):
    return (p.max_attempts, p.initial_backoff_seconds, p.max_backoff_seconds, p.backoff_multiplier, p.backoff_strategy)


# ---------------------------------------------------------------- C11


def test_c11_visibility_timeout_expiry(fm):
    assert_status(fm.set_policy("c11", 0, 1, 1, 1.0, "fixed"), "")
    e = fm.enqueue("c11", b"expiring")

    reserved_at = time.monotonic()
    r = fm.reserve("c11", visibility=1)
    assert r.HasField("job") and r.job.id == e.job_id
    assert r.job.attempts == 1

    again = fm.reserve("c11")
    assert not again.HasField("job"), f"reserved job handed out twice: {again.job}"
    assert _stats(fm, "c11")["in_flight"] == 1

    rc = fm.receive("c11", long_poll=5)
    elapsed = time.monotonic() - reserved_at
    # FlowMesh: attempts 3 (D3), and expiry may never happen (D4).
    assert [j.id for j in rc.jobs] == [e.job_id], f"no redelivery after {elapsed:.2f} s"
    assert elapsed <= 4.0, f"expired job redelivered {elapsed:.2f} s after the first reservation"
    assert rc.jobs[0].attempts == 2

    fm.ack("c11", e.job_id)
    st = _stats(fm, "c11")
    assert (st["pending"], st["in_flight"]) == (0, 0), st


# ---------------------------------------------------------------- C12


def test_c12_nack_with_explicit_delay(fm):
    e = fm.enqueue("c12", b"retry-me")
    r = fm.reserve("c12")
    assert r.HasField("job") and r.job.id == e.job_id and r.job.attempts == 1

    t_before = now_ns()
    nacked = fm.nack("c12", e.job_id, delay=2)
    t_after = now_ns()
    nacked_mono = time.monotonic()
    assert_status(nacked, "job NACKed successfully")

    r = fm.reserve("c12")
    assert not r.HasField("job"), f"NACKed job delivered before its delay: {r.job}"
    st = _stats(fm, "c12")
    assert (st["pending"], st["in_flight"]) == (1, 0), st

    time.sleep(max(0.0, nacked_mono + 2.3 - time.monotonic()))
    r = fm.reserve("c12")
    assert r.HasField("job"), "NACKed job not redelivered 2.3 s after NACK(delay 2)"
    assert r.job.id == e.job_id
    assert r.job.attempts == 2  # FlowMesh: 3 (D3)
    lo, hi = (r.job.visible_at - t_after) / S, (r.job.visible_at - t_before) / S
    assert lo <= 2.2 and hi >= 2.0, f"visible_at is {lo:.3f}..{hi:.3f} s after the NACK, expected 2.0-2.2 s"

    fm.ack("c12", e.job_id)
    expect_error(
        lambda: fm.nack("c12", e.job_id), "NOT_FOUND", f"job {e.job_id} not found in queue t1/ns1/queue/c12"
    )


# ---------------------------------------------------------------- C13


def _backoff_run(fm, name, policy, expected):
    """Enqueue, then per expected delay: NACK without delay at t_i and reserve (long-poll 10) the redelivery.

    Returns rows (i, expected delay, observed visible_at - t_i, attempts, received-before-visible?)."""
    assert_status(fm.set_policy(name, *policy), "")
    e = fm.enqueue(name, b"backoff")
    r = fm.reserve(name, long_poll=10)
    assert r.HasField("job") and r.job.id == e.job_id and r.job.attempts == 1
    rows = []
    for i, exp in enumerate(expected):
        t_i = now_ns()
        assert_status(fm.nack(name, e.job_id), "job NACKed successfully")
        r = fm.reserve(name, long_poll=10)
        received = now_ns()
        if not r.HasField("job"):
            rows.append((i + 1, exp, None, None, None))
            break
        assert r.job.id == e.job_id
        rows.append(
            (i + 1, exp, round((r.job.visible_at - t_i) / S, 3), r.job.attempts, received + S // 100 < r.job.visible_at)
        )
    return rows


def _check_backoff(name, policy, expected, rows):
    want = [(i + 1, exp, i + 2) for i, exp in enumerate(expected)]
    ok = len(rows) == len(expected) and all(
        got is not None and abs(got - exp) <= 0.2 and attempts == i + 2 and not early
        for (i, (_, exp, got, attempts, early)) in enumerate(rows)
    )
    assert ok, (
        f"{name} policy {policy}: expected (nack#, delay s, attempts) {want} with delay ±0.2 s; "
        f"got (nack#, expected, visible_at - t_i, attempts, delivered before visible_at) {rows}"
    )


@pytest.mark.slow
def test_c13_backoff_strategies(fm):
    cases = [
        ("c13", (0, 1, 60, 2.0, "exponential"), [1, 2, 4]),  # FlowMesh: 1, 4, 16 s and attempts 3, 5, 7 (D3)
        ("c13cap", (0, 1, 3, 2.0, "exponential"), [1, 2, 3, 3]),
        ("c13lin", (0, 1, 60, 2.0, "linear"), [1, 2, 3]),
        ("c13fix", (0, 2, 60, 5.0, "fixed"), [2, 2, 2]),
    ]
    results = run_parallel(*[(lambda c=c: _backoff_run(fm, *c)) for c in cases])
    failures = []
    for (name, policy, expected), rows in zip(cases, results):
        try:
            _check_backoff(name, policy, expected, rows)
        except AssertionError as e:
            failures.append(str(e))
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------- C14


def test_c14_retry_policy_management(fm):
    pb = fm.pb
    rp = fm.rp("queue", "c14")
    got = fm.queue.GetRetryPolicy(pb.GetRetryPolicyRequest(resource_path=rp))
    assert_status(got, "")
    assert _policy_tuple(got.policy) == (3, 1, 60, 2.0, "exponential")

    assert_status(fm.set_policy("c14", 5, 2, 120, 3.0, "linear"), "")
    got = fm.queue.GetRetryPolicy(pb.GetRetryPolicyRequest(resource_path=rp))
    assert_status(got, "")
    assert _policy_tuple(got.policy) == (5, 2, 120, 3.0, "linear")


@pytest.mark.parametrize(
    "policy, message",
    [
        ((-1, 1, 60, 2.0, "exponential"), "max_attempts cannot be negative"),
        ((3, 0, 60, 2.0, "exponential"), "initial_backoff_seconds must be positive"),
        ((3, 1, 0, 2.0, "exponential"), "max_backoff_seconds must be positive"),
        ((3, 2, 1, 2.0, "exponential"), "max_backoff_seconds must be >= initial_backoff_seconds"),
        ((3, 1, 60, 0.0, "exponential"), "backoff_multiplier must be positive"),
        ((3, 1, 60, 2.0, "random"), "backoff_strategy must be one of: fixed, linear, exponential"),
        ((3, 1, 31536001, 2.0, "exponential"), "max_backoff_seconds cannot exceed 31536000 (1 year)"),
    ],
    ids=["max_attempts-1", "initial0", "max0", "initial2-max1", "multiplier0", "random", "max31536001"],
)
def test_c14_invalid_policy(fm, policy, message):
    expect_error(lambda: fm.set_policy("c14", *policy), "INVALID_ARGUMENT", message)


def test_c14_policy_required(fm):
    pb = fm.pb
    expect_error(
        lambda: fm.queue.SetRetryPolicy(pb.SetRetryPolicyRequest(resource_path=fm.rp("queue", "c14"))),
        "INVALID_ARGUMENT",
        "policy is required",
    )


def test_c14_missing_queue(fm):
    pb = fm.pb
    rp = fm.rp("queue", "missing")
    expect_error(lambda: fm.set_policy("missing", 3, 1, 60, 2.0, "exponential"), "NOT_FOUND",
                 "queue not found: t1/ns1/queue/missing")
    expect_error(lambda: fm.queue.GetRetryPolicy(pb.GetRetryPolicyRequest(resource_path=rp)), "NOT_FOUND",
                 "queue not found: t1/ns1/queue/missing")


# ---------------------------------------------------------------- C15


@pytest.fixture(scope="module")
def c15(fm):
    """C15 set-up: policy {1,1,1,1.0,fixed}, enqueue 'poison', reserve, NACK (which dead-letters)."""
    policy_resp = fm.set_policy("c15", 1, 1, 1, 1.0, "fixed")
    enq = fm.enqueue("c15", b"poison", headers={"a": "b"})
    reserved = fm.reserve("c15")
    try:
        nack_result = fm.nack("c15", enq.job_id)
    except grpc.RpcError as e:
        nack_result = e
    return {"policy": policy_resp, "J": enq.job_id, "enqueue": enq, "reserved": reserved, "nack": nack_result}


def test_c15_dead_lettering_by_nack(fm, c15):
    J = c15["J"]
    assert_status(c15["policy"], "")
    r = c15["reserved"]
    assert r.HasField("job") and r.job.id == J and r.job.attempts == 1

    nack = c15["nack"]
    assert isinstance(nack, grpc.RpcError), f"NACK of an exhausted job succeeded: {nack!r}"
    assert (nack.code().name, nack.details()) == (
        "FAILED_PRECONDITION",
        f"job {J} exceeded max attempts (1/1) in queue t1/ns1/queue/c15",
    ), f"got {nack.code().name} {nack.details()!r}"

    st = _stats(fm, "c15")
    assert (st["pending"], st["in_flight"], st["failed"]) == (0, 0, 1), st  # FlowMesh: failed 0 (D6)

    dlq = fm.list_dlq("c15", max_jobs=10)
    assert_status(dlq, "")
    assert len(dlq.jobs) == 1, list(dlq.jobs)
    job = dlq.jobs[0]
    assert job.payload == b"poison"
    assert job.id != J and HEX32.match(job.id), job.id
    assert job.seq == 0
    now = now_ns()
    # FlowMesh: seconds and no headers (D10).
    assert abs(now - job.created_at) <= 60 * S, f"created_at {job.created_at} is not nanoseconds within 60 s of {now}"
    h = dict(job.headers)
    assert h.get("a") == "b", h
    assert h.get("x-flowmesh-original-queue") == "t1/ns1/queue/c15", h
    assert h.get("x-flowmesh-original-job-id") == J, h
    assert h.get("x-flowmesh-attempts") == "1", h
    failed_at = h.get("x-flowmesh-failed-at", "")
    assert RFC3339.match(failed_at), f"x-flowmesh-failed-at {failed_at!r} is not RFC 3339"
    parsed = datetime.fromisoformat(failed_at.replace("Z", "+00:00"))
    assert abs(parsed.timestamp() - now / S) <= 60, failed_at
    assert job.resource_path == "t1/ns1/queue/c15-dlq"  # D10
    assert job.visible_at > 0  # D10

    dst = _stats(fm, "c15-dlq")
    assert (dst["total"], dst["pending"]) == (1, 1), dst


def test_c15_dead_lettering_by_visibility_expiry(fm):
    assert_status(fm.set_policy("c15b", 1, 1, 1, 1.0, "fixed"), "")
    e = fm.enqueue("c15b", b"poison-b")
    reserved_at = time.monotonic()
    r = fm.reserve("c15b", visibility=1)
    assert r.HasField("job") and r.job.id == e.job_id and r.job.attempts == 1

    listed = []
    while time.monotonic() - reserved_at <= 3.0:
        listed = list(fm.list_dlq("c15b").jobs)  # any error here fails the test ("nobody receives an error")
        if listed:
            break
        time.sleep(0.1)
    elapsed = time.monotonic() - reserved_at
    assert listed, "expired exhausted job not dead-lettered within 3 s (D4)"
    assert len(listed) == 1 and listed[0].payload == b"poison-b", listed
    assert listed[0].headers.get("x-flowmesh-original-job-id") == e.job_id, dict(listed[0].headers)
    assert elapsed <= 3.0
    st = _stats(fm, "c15b")
    assert (st["pending"], st["in_flight"], st["failed"]) == (0, 0, 1), st


# ---------------------------------------------------------------- C16


def test_c16_replay_from_dlq(fm, c15):
    pb = fm.pb
    J = c15["J"]
    dlq = list(fm.list_dlq("c15", max_jobs=10).jobs)
    assert len(dlq) == 1, f"C15 should have left exactly one DLQ job, found {dlq}"
    dlq_id = dlq[0].id

    rr = fm.queue.ReplayDLQJob(pb.ReplayDLQJobRequest(resource_path=fm.rp("queue", "c15"), job_id=dlq_id))
    assert_status(rr, "")
    assert HEX32.match(rr.job_id) and rr.job_id not in (J, dlq_id), (rr.job_id, J, dlq_id)
    assert rr.seq == 1

    r = fm.reserve("c15")
    assert r.HasField("job"), "replayed job not reservable"
    assert r.job.id == rr.job_id
    assert r.job.payload == b"poison"
    assert r.job.attempts == 1
    xh = {k: v for k, v in r.job.headers.items() if k.lower().startswith("x-flowmesh-")}
    assert xh == {}, f"replayed job carries DLQ headers {xh}"

    assert list(fm.list_dlq("c15").jobs) == []  # FlowMesh keeps the entry (D12)

    e = call_error(
        lambda: fm.queue.ReplayDLQJob(
            pb.ReplayDLQJobRequest(resource_path=fm.rp("queue", "c15"), job_id="0" * 32)
        )
    )
    assert e.code().name == "NOT_FOUND", f"got {e.code().name} {e.details()!r}"
    assert "not found" in e.details(), e.details()


def test_c16_dlq_of_queue_that_never_dead_lettered(fm):
    resp = fm.list_dlq("c16")
    assert_status(resp, "")
    assert list(resp.jobs) == []
    # No side effect (FlowMesh creates c16-dlq; D11): the DLQ queue must still not exist.
    expect_error(lambda: fm.stats("c16-dlq"), "NOT_FOUND", "queue not found: t1/ns1/queue/c16-dlq")


def test_c16_dlq_of_missing_queue(fm):
    # FlowMesh: INTERNAL (D11).
    expect_error(lambda: fm.list_dlq("missing"), "NOT_FOUND", "queue not found: t1/ns1/queue/missing")
