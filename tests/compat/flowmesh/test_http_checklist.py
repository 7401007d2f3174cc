"""C03–C22 over HTTP: the acceptance checklist of compat/flowmesh.md §8 through the REST API of §5.3–§5.5 on the
admin listener, each gRPC call translated to its route with the mapping of §6.9 (bytes as base64 in JSON;
INVALID_ARGUMENT → 400, NOT_FOUND → 404, FAILED_PRECONDITION → 412; the same message texts), and every error
answered with D16's body ``{"status":"error","message":<text>,"code":<status>}`` as ``application/json``.

The scenarios use their own resources (``h03``…``h22`` and a few extras, provisioned by ``fm_wire``), so the gRPC
files' state is untouched. Where an HTTP route answers with its own text rather than the gRPC one (§5.3's query
parameter errors, ``jobs received successfully``), the route's text is asserted. Parts of a scenario that have no
HTTP route are named in each test's docstring. After the scenarios come the error paths of every route that the
Rust tests (crates/herald/tests/admin_http.rs, which also holds C23–C25) do not already cover.
"""

from __future__ import annotations

import base64
import json
import os
import time
from datetime import datetime
from typing import Any, Callable

import pytest

from fm_wire import HEX32, RFC3339, later, now_ns, run_parallel

if os.environ.get("HERALD_REQUIRE_SERVER") == "1":
    import httpx  # scripts/test.sh installs it (requirements.txt): a missing package must fail there, not skip.
else:
    httpx = pytest.importorskip("httpx")

S = 10**9
STREAMS = "/api/v1/streams/t1/ns1"
QUEUES = "/api/v1/queues/t1/ns1"
KV = "/api/v1/kv/t1/ns1"
MISSING_STREAM = "stream not found: t1/ns1/stream/missing"
MISSING_QUEUE = "queue not found: t1/ns1/queue/missing"
MISSING_STORE = "KV store not found: t1/ns1/kv/missing"
NOT_FOUND_PAGE = "404 page not found"
TOO_LONG = "visibility_timeout_seconds cannot exceed 43200 (12 hours)"
MESSAGE_KEYS = ["id", "resource_path", "partition", "offset", "payload", "created_at", "schema_version"]
JOB_KEYS = ["id", "resource_path", "seq", "payload", "created_at", "visible_at", "reserve_until", "attempts"]
STATS_KEYS = ["total_jobs", "pending_jobs", "in_flight_jobs", "completed_jobs", "failed_jobs", "oldest_job_age_seconds"]
TRACE_HEADERS = {"traceparent", "tracestate"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


# --------------------------------------------------------------------------
# The HTTP client and its assertions
# --------------------------------------------------------------------------


class Api:
    """One HTTP client on the admin listener. Long polls wait up to 20 s, so the timeout is longer."""

    def __init__(self, addr: str):
        self.client = httpx.Client(base_url=f"http://{addr}", timeout=40)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "Api":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def call(self, method: str, path: str, body: Any = None, raw: bytes | str | None = None, **params: Any):
        """``body`` goes out as JSON, ``raw`` as is (no Content-Type, as the contract allows); ``params`` are the
        query (``None`` values left out)."""
        query = {k: v for k, v in params.items() if v is not None}
        content = json.dumps(body) if body is not None else raw
        return self.client.request(method, path, content=content, params=query or None)

    # -- streams
    def write(self, name: str, *payloads: bytes, headers: list[dict] | None = None):
        events = []
        for i, p in enumerate(payloads):
            event: dict[str, Any] = {"payload": b64(p)}
            if headers and i < len(headers) and headers[i]:
                event["headers"] = headers[i]
            events.append(event)
        return self.call("POST", f"{STREAMS}/{name}/events", {"events": events})

    def read(self, name: str, **params: Any):
        return self.call("GET", f"{STREAMS}/{name}/messages", **params)

    def latest(self, name: str, **params: Any):
        return self.call("GET", f"{STREAMS}/{name}/offsets/latest", **params)

    def commit(self, name: str, group: str, offset: int, **params: Any):
        return self.call("POST", f"{STREAMS}/{name}/consumer-groups/{group}/offsets", {"offset": offset}, **params)

    def get_offset(self, name: str, group: str, **params: Any):
        return self.call("GET", f"{STREAMS}/{name}/consumer-groups/{group}/offsets", **params)

    def group_state(self, name: str, group: str, **params: Any):
        return self.call("GET", f"{STREAMS}/{name}/consumer-groups/{group}/state", **params)

    # -- queues
    def enqueue(self, name: str, payload: bytes, delay: int | None = None, headers: dict | None = None):
        body: dict[str, Any] = {"payload": b64(payload)}
        if delay is not None:
            body["delay_seconds"] = delay
        if headers:
            body["headers"] = headers
        return self.call("POST", f"{QUEUES}/{name}/jobs", body)

    def reserve(self, name: str, body: dict | None = None, **params: Any):
        return self.call("POST", f"{QUEUES}/{name}/reserve", body, **params)

    def receive(self, name: str, body: dict | None = None, **params: Any):
        return self.call("POST", f"{QUEUES}/{name}/receive", body, **params)

    def ack(self, name: str, job_id: str):
        return self.call("POST", f"{QUEUES}/{name}/jobs/{job_id}/ack")

    def nack(self, name: str, job_id: str, delay: int | None = None):
        body = None if delay is None else {"delay_seconds": delay}
        return self.call("POST", f"{QUEUES}/{name}/jobs/{job_id}/nack", body)

    def stats(self, name: str):
        return self.call("GET", f"{QUEUES}/{name}/stats")

    def set_policy(self, name: str, *fields: Any):
        return self.call("PUT", f"{QUEUES}/{name}/retry-policy", policy(*fields))

    def get_policy(self, name: str):
        return self.call("GET", f"{QUEUES}/{name}/retry-policy")

    def list_dlq(self, name: str, **params: Any):
        return self.call("GET", f"{QUEUES}/{name}/dlq/jobs", **params)

    def replay_dlq(self, name: str, job_id: str):
        return self.call("POST", f"{QUEUES}/{name}/dlq/jobs/{job_id}/replay")

    # -- kv
    def kv_set(self, name: str, key: str, value: bytes, ttl_seconds: int | None = None, query_ttl: str | None = None):
        """``ttl_seconds`` goes in the body, ``query_ttl`` as ``?ttl=`` (Go duration syntax)."""
        body: dict[str, Any] = {"value": b64(value)}
        if ttl_seconds is not None:
            body["ttl_seconds"] = ttl_seconds
        return self.call("PUT", f"{KV}/{name}/keys/{key}", body, ttl=query_ttl)

    def kv_get(self, name: str, key: str):
        return self.call("GET", f"{KV}/{name}/keys/{key}")

    def kv_exists(self, name: str, key: str) -> bool:
        """HEAD: 200 when the key exists, 404 when it does not; never a body."""
        r = self.call("HEAD", f"{KV}/{name}/keys/{key}")
        assert r.status_code in (200, 404) and r.content == b"", (r.status_code, r.content)
        return r.status_code == 200

    def kv_delete(self, name: str, key: str):
        return self.call("DELETE", f"{KV}/{name}/keys/{key}")

    def kv_list(self, name: str, prefix: str | None = None):
        return self.call("GET", f"{KV}/{name}/keys", prefix=prefix)

    # -- the shapes the scenarios read again and again
    def job_of(self, r) -> dict | None:
        """A reserve answer's job, or None for the D1 answer without one."""
        body = ok(r)
        if body["message"] == "no jobs available":
            assert body == {"status": "success", "message": "no jobs available"}, body
            return None
        assert body["message"] == "job reserved successfully", body
        return body["job"]

    def queue_stats(self, name: str) -> dict:
        body = ok(self.stats(name), "queue statistics retrieved successfully")
        assert list(body["stats"]) == STATS_KEYS, body
        s = body["stats"]
        return {
            "total": s["total_jobs"],
            "pending": s["pending_jobs"],
            "in_flight": s["in_flight_jobs"],
            "completed": s["completed_jobs"],
            "failed": s["failed_jobs"],
        }


def policy(max_attempts: int, initial: int, maximum: int, multiplier: float, strategy: str) -> dict:
    """The flat RetryPolicy body of ``PUT .../retry-policy`` (§5.4)."""
    return {
        "max_attempts": max_attempts,
        "initial_backoff_seconds": initial,
        "max_backoff_seconds": maximum,
        "backoff_multiplier": multiplier,
        "backoff_strategy": strategy,
    }


def _json_body(r) -> Any:
    assert r.headers.get("content-type") == "application/json", (r.status_code, r.headers.get("content-type"), r.text)
    assert r.text.endswith("}\n"), f"one JSON object and a newline: {r.text!r}"
    return json.loads(r.text)


def ok(r, message: str | None = None, status: str = "success") -> dict:
    """A 200 JSON answer with ``status`` (and ``message`` when given); returns the body."""
    assert r.status_code == 200, f"{r.request.method} {r.request.url}: {r.status_code} {r.text}"
    body = _json_body(r)
    assert body.get("status") == status, body
    if message is not None:
        assert body.get("message") == message, body
    return body


def err(r, code: int, message: str | Callable[[str], bool]) -> str:
    """A D16 error: ``code``, JSON content type, exactly ``{"status":"error","message","code"}``; ``message`` is
    the exact text or a predicate on it. Returns the message."""
    assert r.status_code == code, f"{r.request.method} {r.request.url}: expected {code}, got {r.status_code} {r.text}"
    body = _json_body(r)
    assert list(body) == ["status", "message", "code"], body
    assert (body["status"], body["code"]) == ("error", code), body
    if callable(message):
        assert message(body["message"]), body
    else:
        assert body["message"] == message, body
    return body["message"]


def body_error(text: str) -> bool:
    return text.startswith("invalid request body: ") and len(text) > len("invalid request body: ")


def user_headers(headers: dict | None) -> dict:
    return {k: v for k, v in (headers or {}).items() if k.lower() not in TRACE_HEADERS}


@pytest.fixture(scope="module")
def api(admin_addr):
    with Api(admin_addr) as a:
        yield a


@pytest.fixture(scope="module")
def api_other(admin_addr):
    """A second, independent client (own connections), for 'another client enqueues' steps."""
    with Api(admin_addr) as a:
        yield a


# ---------------------------------------------------------------- C03


def test_c03_write_and_read(api):
    """C03 over HTTP. The gRPC ``ReadStream(max_messages 0)`` (server default) is the route without
    ``max_messages``; ``max_messages=0`` itself is a 400 on this route (§5.3)."""
    r = api.write("h03", b"a", b"b", b"c", headers=[{"k": "1"}])
    assert ok(r) == {"status": "success", "message": "events written successfully", "offsets": [0, 1, 2]}

    body = ok(api.read("h03", offset=0, max_messages=10), "messages read successfully")
    assert list(body) == ["status", "message", "messages"]
    msgs = body["messages"]
    assert [m["offset"] for m in msgs] == [0, 1, 2]
    assert [m["partition"] for m in msgs] == [0, 0, 0]
    assert [m["resource_path"] for m in msgs] == ["t1/ns1/stream/h03"] * 3
    assert [unb64(m["payload"]) for m in msgs] == [b"a", b"b", b"c"]
    assert user_headers(msgs[0].get("headers")) == {"k": "1"}
    assert user_headers(msgs[1].get("headers")) == {}
    # The Message shape of §5.1 in its order; `headers` (after `payload`) only when there are any.
    assert list(msgs[0]) == MESSAGE_KEYS[:5] + ["headers"] + MESSAGE_KEYS[5:], msgs[0]
    assert [list(m) for m in msgs[1:]] == [MESSAGE_KEYS] * 2, msgs[1:]
    ids = [m["id"] for m in msgs]
    assert all(isinstance(i, str) and HEX32.match(i) for i in ids), ids
    assert len(set(ids)) == 3, ids
    created = [m["created_at"] for m in msgs]
    assert all(isinstance(c, int) for c in created), created
    assert created == sorted(created), created
    now = now_ns()
    assert all(abs(now - c) <= 60 * S for c in created), (created, now)
    assert [m["schema_version"] for m in msgs] == [0, 0, 0]

    assert ok(api.write("h03", b"d", b"e"))["offsets"] == [3, 4]
    r = api.latest("h03")
    assert ok(r) == {"status": "success", "message": "latest offset retrieved successfully", "offset": 4}

    one = ok(api.read("h03", offset=1, max_messages=1))["messages"]
    assert [(m["offset"], unb64(m["payload"])) for m in one] == [(1, b"b")]
    past_end = ok(api.read("h03", offset=5))
    assert past_end == {"status": "success", "message": "messages read successfully", "messages": []}
    default_max = ok(api.read("h03", offset=0))["messages"]
    assert [unb64(m["payload"]) for m in default_max] == [b"a", b"b", b"c", b"d", b"e"]
    assert [m["offset"] for m in default_max] == [0, 1, 2, 3, 4]
    assert ok(api.read("h03", offset=0, partition=1))["messages"] == []
    assert ok(api.latest("h03", partition=1))["offset"] == -1


# ---------------------------------------------------------------- C04


def test_c04_write_validation(api):
    """C04 over HTTP. No route: ``resource_type "queue"``/``"topic"`` (the route fixes the type) and a missing
    ``resource_path`` (a path without its components is the malformed-path 400, tested below). ``ReadStream(offset
    -1)`` is the route's ``invalid offset parameter`` (§5.3)."""
    ok(api.write("h04", b"seed"))
    err(api.call("POST", f"{STREAMS}/h04/events", {"events": []}), 400, "at least one event is required")
    r = api.call("POST", f"{STREAMS}/h04/events", {"events": [{"payload": b64(b"x")}, {"payload": ""}]})
    err(r, 400, "event 1: payload cannot be empty")
    assert ok(api.latest("h04"))["offset"] == 0, "a rejected write must not change the stream"
    err(api.call("POST", "/api/v1/streams/%20%20/ns1/h04/events", {"events": [{"payload": "eA=="}]}), 400,
        "tenant cannot be empty")
    err(api.call("POST", "/api/v1/streams/t1/%20/h04/events", {"events": [{"payload": "eA=="}]}), 400,
        "namespace cannot be empty")
    err(api.call("POST", "/api/v1/streams/t1/ns1/%20/events", {"events": [{"payload": "eA=="}]}), 400,
        "name cannot be empty")
    err(api.read("h04", offset=-1), 400, "invalid offset parameter")
    assert ok(api.latest("h04"))["offset"] == 0


def test_c04_missing_stream(api):
    """C04's missing-stream calls, including the consumer-group routes (D7: 404, FlowMesh 500)."""
    err(api.write("missing", b"x"), 404, MISSING_STREAM)
    err(api.read("missing", offset=0), 404, MISSING_STREAM)
    err(api.latest("missing"), 404, MISSING_STREAM)
    err(api.commit("missing", "g", 0), 404, MISSING_STREAM)
    err(api.get_offset("missing", "g"), 404, MISSING_STREAM)
    err(api.group_state("missing", "g"), 404, MISSING_STREAM)


# ---------------------------------------------------------------- C05


def _state(api, name, group):
    body = ok(api.group_state(name, group), "consumer group state retrieved successfully")
    s = body["state"]
    assert list(s) == ["stream", "group", "partition", "committed_offset", "latest_offset", "lag"], s
    return tuple(s.values())


def test_c05_offsets_and_lag(api):
    """C05 over HTTP; ``consumer_group ""`` is an empty group segment (``.../consumer-groups//offsets``)."""
    assert ok(api.write("h05", *[f"m{i}".encode() for i in range(5)]))["offsets"] == [0, 1, 2, 3, 4]

    r = api.get_offset("h05", "g1")
    assert ok(r) == {"status": "success", "message": "offset retrieved successfully", "offset": -1}
    assert _state(api, "h05", "g1") == ("t1/ns1/stream/h05", "g1", 0, -1, 4, 5)

    assert ok(api.commit("h05", "g1", 2)) == {"status": "success", "message": "offset committed successfully"}
    assert ok(api.get_offset("h05", "g1"))["offset"] == 2
    assert _state(api, "h05", "g1") == ("t1/ns1/stream/h05", "g1", 0, 2, 4, 2)

    ok(api.commit("h05", "g1", 4))
    assert _state(api, "h05", "g1")[3:] == (4, 4, 0)
    ok(api.commit("h05", "g1", 1))  # backwards
    assert ok(api.get_offset("h05", "g1"))["offset"] == 1
    assert _state(api, "h05", "g1")[3:] == (1, 4, 3)
    ok(api.commit("h05", "g1", 10))  # beyond the latest offset
    assert _state(api, "h05", "g1")[3:] == (10, 4, 0)
    ok(api.commit("h05", "g1", -1))
    assert ok(api.get_offset("h05", "g1"))["offset"] == -1
    assert _state(api, "h05", "g1")[3:] == (-1, 4, 5)
    err(api.commit("h05", "g1", -2), 400, "offset cannot be less than -1")
    assert ok(api.get_offset("h05", "g1"))["offset"] == -1

    for method, tail, body in [("POST", "offsets", {"offset": 0}), ("GET", "offsets", None), ("GET", "state", None)]:
        r = api.call(method, f"{STREAMS}/h05/consumer-groups//{tail}", body)
        err(r, 400, "consumer_group is required")

    groups = ok(api.call("GET", f"{STREAMS}/h05/consumer-groups"), "consumer groups retrieved successfully")
    assert groups["consumer_groups"] == [
        {"group": "g1", "partition": 0, "committed_offset": -1, "latest_offset": 4, "lag": 5}
    ], groups


def test_c05_empty_stream(api):
    assert ok(api.latest("h05e"))["offset"] == -1
    assert _state(api, "h05e", "g1") == ("t1/ns1/stream/h05e", "g1", 0, -1, -1, -1)


# ---------------------------------------------------------------- C06, C07


def test_c06_c07_subscribe_has_no_route(api):
    """C06/C07 over HTTP: ``Subscribe`` has no HTTP route (§5.3, §6.9), so its frames, tail and start-offset
    errors are gRPC-only. What remains of C06 is asserted: a committed offset stays where it was put, as nothing
    commits for the group (no auto-commit), and the plausible subscribe paths are not routes."""
    ok(api.write("h06", *[f"m{i}".encode() for i in range(5)]))
    ok(api.commit("h06", "g", 2))
    assert ok(api.get_offset("h06", "g"))["offset"] == 2
    assert _state(api, "h06", "g")[3:] == (2, 4, 2)
    for method, path in [
        ("GET", f"{STREAMS}/h06/subscribe"),
        ("POST", f"{STREAMS}/h06/subscribe"),
        ("GET", f"{STREAMS}/h06/consumer-groups/g/subscribe"),
    ]:
        err(api.call(method, path), 404, NOT_FOUND_PAGE)
    assert ok(api.get_offset("h06", "g"))["offset"] == 2


# ---------------------------------------------------------------- C08


def test_c08_enqueue_reserve_ack_stats(api):
    """C08 over HTTP (``visibility_timeout`` as a query parameter)."""
    r0 = ok(api.enqueue("h08", b"job-0", headers={"h": "v"}), "job enqueued successfully")
    assert list(r0) == ["status", "message", "job_id", "seq"], r0
    assert r0["seq"] == 0 and HEX32.match(r0["job_id"]), r0
    r1 = ok(api.enqueue("h08", b"job-1"), "job enqueued successfully")
    assert r1["seq"] == 1 and HEX32.match(r1["job_id"]) and r1["job_id"] != r0["job_id"], r1

    assert api.queue_stats("h08") == {"total": 2, "pending": 2, "in_flight": 0, "completed": 0, "failed": 0}

    job = api.job_of(api.reserve("h08", visibility_timeout=30))
    now = now_ns()
    assert job is not None
    assert list(job) == JOB_KEYS[:4] + ["headers"] + JOB_KEYS[4:], job
    assert (job["id"], job["seq"], unb64(job["payload"])) == (r0["job_id"], 0, b"job-0")
    assert user_headers(job["headers"]) == {"h": "v"}
    assert job["attempts"] == 1
    assert job["resource_path"] == "t1/ns1/queue/h08"
    assert 29 * S <= job["reserve_until"] - now <= 31 * S, (job["reserve_until"] - now) / S
    assert job["created_at"] <= job["visible_at"] <= now, job

    st = api.queue_stats("h08")
    assert (st["pending"], st["in_flight"]) == (1, 1), st

    acked = {"status": "success", "message": "job acknowledged successfully"}
    assert ok(api.ack("h08", job["id"])) == acked
    st = api.queue_stats("h08")
    assert (st["pending"], st["in_flight"], st["completed"]) == (1, 0, 1), st  # FlowMesh: completed 0 (D6)
    assert ok(api.ack("h08", job["id"])) == acked  # idempotent
    assert ok(api.ack("h08", "deadbeef")) == acked


# ---------------------------------------------------------------- C09


def test_c09_reserve_on_empty_queue(api):
    """C09 over HTTP: D1's 200 without a ``job`` key (FlowMesh answers 500)."""
    r = api.reserve("h09")
    assert ok(r) == {"status": "success", "message": "no jobs available"}


def test_c09_reserve_long_poll(admin_addr):
    """C09's long polls over HTTP, one from the query (``long_poll_timeout``), one from the body (D2)."""

    def empty_long_poll():
        with Api(admin_addr) as a:
            t = time.monotonic()
            r = a.reserve("h09", long_poll_timeout=3)
            elapsed = time.monotonic() - t
            assert a.job_of(r) is None
            assert 2.5 <= elapsed <= 3.5, f"reserve?long_poll_timeout=3 returned after {elapsed:.2f} s"

    def long_poll_with_enqueue():
        with Api(admin_addr) as a, Api(admin_addr) as other:
            t = time.monotonic()
            enq = later(1.0, lambda: ok(other.enqueue("h09b", b"late"))["job_id"])
            r = a.reserve("h09b", {"long_poll_timeout_seconds": 5})
            elapsed = time.monotonic() - t
            job_id = enq.result(timeout=10)
            job = a.job_of(r)
            assert job is not None, f"no job after {elapsed:.2f} s"
            assert (job["id"], unb64(job["payload"])) == (job_id, b"late")
            assert elapsed <= 1.5, f"the long-polling reserve returned the job after {elapsed:.2f} s"

    run_parallel(empty_long_poll, long_poll_with_enqueue)


# ---------------------------------------------------------------- C10


def test_c10_delayed_job(api):
    t = time.monotonic()
    e = ok(api.enqueue("h10", b"delayed", delay=2))
    assert api.job_of(api.reserve("h10")) is None, "delayed job delivered at once"
    assert api.queue_stats("h10")["pending"] == 1

    time.sleep(max(0.0, t + 2.5 - time.monotonic()))
    job = api.job_of(api.reserve("h10"))
    assert job is not None, "delayed job not delivered after 2.5 s"
    assert job["id"] == e["job_id"]
    d = job["visible_at"] - job["created_at"]
    assert 2.0 * S <= d <= 2.1 * S, f"visible_at - created_at = {d / S:.3f} s"


def test_c10_negative_delay(api):
    err(api.enqueue("h10", b"x", delay=-1), 400, "delay_seconds cannot be negative")


# ---------------------------------------------------------------- C11


def test_c11_visibility_timeout_expiry(api):
    """C11 over HTTP (D3, D4): the expired job comes back through a long-polling receive."""
    r = api.set_policy("h11", 0, 1, 1, 1.0, "fixed")
    assert ok(r, status="ok") == {"status": "ok", "message": "retry policy set successfully"}
    e = ok(api.enqueue("h11", b"expiring"))

    reserved_at = time.monotonic()
    job = api.job_of(api.reserve("h11", visibility_timeout=1))
    assert job is not None and job["id"] == e["job_id"] and job["attempts"] == 1, job
    assert api.job_of(api.reserve("h11")) is None, "a reserved job was handed out twice"
    assert api.queue_stats("h11")["in_flight"] == 1

    body = ok(api.receive("h11", {"long_poll_timeout_seconds": 5}), "jobs received successfully")
    elapsed = time.monotonic() - reserved_at
    assert [j["id"] for j in body["jobs"]] == [e["job_id"]], f"no redelivery after {elapsed:.2f} s: {body}"
    assert elapsed <= 4.0, f"expired job redelivered {elapsed:.2f} s after the first reservation"
    assert body["jobs"][0]["attempts"] == 2  # FlowMesh: 3 (D3)

    ok(api.ack("h11", e["job_id"]))
    st = api.queue_stats("h11")
    assert (st["pending"], st["in_flight"]) == (0, 0), st


# ---------------------------------------------------------------- C12


def test_c12_nack_with_explicit_delay(api):
    e = ok(api.enqueue("h12", b"retry-me"))
    job = api.job_of(api.reserve("h12"))
    assert job is not None and job["id"] == e["job_id"] and job["attempts"] == 1

    t_before = now_ns()
    r = api.nack("h12", e["job_id"], delay=2)
    t_after = now_ns()
    nacked = time.monotonic()
    assert ok(r) == {"status": "success", "message": "job NACKed successfully"}

    assert api.job_of(api.reserve("h12")) is None, "NACKed job delivered before its delay"
    st = api.queue_stats("h12")
    assert (st["pending"], st["in_flight"]) == (1, 0), st

    time.sleep(max(0.0, nacked + 2.3 - time.monotonic()))
    job = api.job_of(api.reserve("h12"))
    assert job is not None, "NACKed job not redelivered 2.3 s after a NACK with delay 2"
    assert job["id"] == e["job_id"] and job["attempts"] == 2  # FlowMesh: 3 (D3)
    lo, hi = (job["visible_at"] - t_after) / S, (job["visible_at"] - t_before) / S
    assert lo <= 2.2 and hi >= 2.0, f"visible_at is {lo:.3f}..{hi:.3f} s after the NACK, expected 2.0-2.2 s"

    ok(api.ack("h12", e["job_id"]))
    err(api.nack("h12", e["job_id"]), 404, f"job {e['job_id']} not found in queue t1/ns1/queue/h12")


# ---------------------------------------------------------------- C13


def _backoff_run(admin_addr, name, pol, expected):
    """Enqueue; per expected delay: NACK without delay at t_i, then reserve (long poll 10) the redelivery.
    Rows: (i, expected delay, visible_at - t_i, attempts, delivered before visible_at)."""
    with Api(admin_addr) as a:
        ok(a.set_policy(name, *pol), status="ok")
        e = ok(a.enqueue(name, b"backoff"))
        job = a.job_of(a.reserve(name, long_poll_timeout=10))
        assert job is not None and job["id"] == e["job_id"] and job["attempts"] == 1
        rows = []
        for i, exp in enumerate(expected):
            t_i = now_ns()
            assert ok(a.nack(name, e["job_id"]))["message"] == "job NACKed successfully"
            job = a.job_of(a.reserve(name, long_poll_timeout=10))
            received = now_ns()
            if job is None:
                rows.append((i + 1, exp, None, None, None))
                break
            assert job["id"] == e["job_id"]
            early = received + S // 100 < job["visible_at"]
            rows.append((i + 1, exp, round((job["visible_at"] - t_i) / S, 3), job["attempts"], early))
        return rows


@pytest.mark.slow
def test_c13_backoff_strategies(admin_addr):
    """C13 over HTTP: the four policies run on threads; NACK without a body means 'use the backoff'."""
    cases = [
        ("h13", (0, 1, 60, 2.0, "exponential"), [1, 2, 4]),  # FlowMesh: 1, 4, 16 s and attempts 3, 5, 7 (D3)
        ("h13cap", (0, 1, 3, 2.0, "exponential"), [1, 2, 3, 3]),
        ("h13lin", (0, 1, 60, 2.0, "linear"), [1, 2, 3]),
        ("h13fix", (0, 2, 60, 5.0, "fixed"), [2, 2, 2]),
    ]
    results = run_parallel(*[(lambda c=c: _backoff_run(admin_addr, *c)) for c in cases])
    failures = []
    for (name, pol, expected), rows in zip(cases, results):
        good = len(rows) == len(expected) and all(
            got is not None and abs(got - exp) <= 0.2 and attempts == i + 2 and not early
            for i, (_, exp, got, attempts, early) in enumerate(rows)
        )
        if not good:
            failures.append(f"{name} {pol}: expected delays {expected} (±0.2 s) with attempts 2, 3, ...; got {rows}")
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------- C14


def test_c14_retry_policy_management(api):
    """C14 over HTTP. ``SetRetryPolicy`` without a policy has no HTTP form (the body *is* the policy); the
    nearest request, no body at all, is ``invalid request body: EOF``."""
    r = api.get_policy("h14")
    # The exact bytes: Go writes the whole multiplier without a fraction.
    assert r.text == (
        '{"status":"ok","policy":{"max_attempts":3,"initial_backoff_seconds":1,"max_backoff_seconds":60,'
        '"backoff_multiplier":2,"backoff_strategy":"exponential"}}\n'
    ), r.text
    ok(r, status="ok")

    r = api.set_policy("h14", 5, 2, 120, 3.0, "linear")
    assert ok(r, status="ok") == {"status": "ok", "message": "retry policy set successfully"}
    got = ok(api.get_policy("h14"), status="ok")
    assert got == {"status": "ok", "policy": policy(5, 2, 120, 3.0, "linear")}, got

    queues = ok(api.call("GET", "/api/v1/queues"), "queues retrieved successfully")["queues"]
    h14 = [q for q in queues if (q["tenant"], q["namespace"], q["name"]) == ("t1", "ns1", "h14")]
    assert len(h14) == 1 and h14[0]["retry_policy"] == policy(5, 2, 120, 3.0, "linear"), h14

    err(api.call("PUT", f"{QUEUES}/h14/retry-policy"), 400, "invalid request body: EOF")
    assert ok(api.get_policy("h14"), status="ok")["policy"] == policy(5, 2, 120, 3.0, "linear")


@pytest.mark.parametrize(
    "pol, message",
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
def test_c14_invalid_policy(api, pol, message):
    err(api.set_policy("h14", *pol), 400, message)


def test_c14_missing_queue(api):
    err(api.set_policy("missing", 3, 1, 60, 2.0, "exponential"), 404, MISSING_QUEUE)
    err(api.get_policy("missing"), 404, MISSING_QUEUE)


# ---------------------------------------------------------------- C15, C16


@pytest.fixture(scope="module")
def h15(api):
    """C15's set-up: policy {1,1,1,1.0,fixed}, enqueue 'poison', reserve, NACK (which dead-letters)."""
    pol = api.set_policy("h15", 1, 1, 1, 1.0, "fixed")
    enq = ok(api.enqueue("h15", b"poison", headers={"a": "b"}))
    reserved = api.reserve("h15")
    nack = api.nack("h15", enq["job_id"])
    return {"policy": pol, "J": enq["job_id"], "enqueue": enq, "reserved": reserved, "nack": nack}


def test_c15_dead_lettering_by_nack(api, h15):
    """C15 over HTTP: the NACK that dead-letters answers 412 with D16's body; ``GET .../dlq/jobs`` gives full
    jobs (D10)."""
    J = h15["J"]
    ok(h15["policy"], status="ok")
    job = api.job_of(h15["reserved"])
    assert job is not None and job["id"] == J and job["attempts"] == 1
    err(h15["nack"], 412, f"job {J} exceeded max attempts (1/1) in queue t1/ns1/queue/h15")

    st = api.queue_stats("h15")
    assert (st["pending"], st["in_flight"], st["failed"]) == (0, 0, 1), st  # FlowMesh: failed 0 (D6)

    dlq = ok(api.list_dlq("h15", max_jobs=10), status="ok")
    assert list(dlq) == ["status", "jobs"] and len(dlq["jobs"]) == 1, dlq
    job = dlq["jobs"][0]
    assert unb64(job["payload"]) == b"poison"
    assert job["id"] != J and HEX32.match(job["id"]), job["id"]
    assert job["seq"] == 0
    now = now_ns()
    assert abs(now - job["created_at"]) <= 60 * S, f"created_at {job['created_at']} is not ns within 60 s of {now}"
    h = job["headers"]
    assert h.get("a") == "b", h
    assert h.get("x-flowmesh-original-queue") == "t1/ns1/queue/h15", h
    assert h.get("x-flowmesh-original-job-id") == J, h
    assert h.get("x-flowmesh-attempts") == "1", h
    failed_at = h.get("x-flowmesh-failed-at", "")
    assert RFC3339.match(failed_at), failed_at
    assert abs(datetime.fromisoformat(failed_at.replace("Z", "+00:00")).timestamp() - now / S) <= 60, failed_at
    assert job["resource_path"] == "t1/ns1/queue/h15-dlq"  # D10
    assert job["visible_at"] > 0  # D10

    queues = ok(api.call("GET", "/api/v1/queues"))["queues"]
    by_name = {q["name"]: q for q in queues if (q["tenant"], q["namespace"]) == ("t1", "ns1")}
    assert "h15-dlq" in by_name, sorted(by_name)
    assert by_name["h15"]["dlq"]["enabled"] is True, by_name["h15"]
    assert by_name["h15"]["dlq"]["dlq_path"] == "t1/ns1/queue/h15-dlq", by_name["h15"]
    dst = api.queue_stats("h15-dlq")
    assert (dst["total"], dst["pending"]) == (1, 1), dst


def test_c15_dead_lettering_by_visibility_expiry(api):
    ok(api.set_policy("h15b", 1, 1, 1, 1.0, "fixed"), status="ok")
    e = ok(api.enqueue("h15b", b"poison-b"))
    reserved_at = time.monotonic()
    job = api.job_of(api.reserve("h15b", visibility_timeout=1))
    assert job is not None and job["id"] == e["job_id"] and job["attempts"] == 1

    listed: list = []
    while time.monotonic() - reserved_at <= 3.0:
        listed = ok(api.list_dlq("h15b"), status="ok")["jobs"]  # any error fails the test ("nobody gets one")
        if listed:
            break
        time.sleep(0.1)
    assert listed, "expired exhausted job not dead-lettered within 3 s (D4)"
    assert len(listed) == 1 and unb64(listed[0]["payload"]) == b"poison-b", listed
    assert listed[0]["headers"].get("x-flowmesh-original-job-id") == e["job_id"], listed[0]
    st = api.queue_stats("h15b")
    assert (st["pending"], st["in_flight"], st["failed"]) == (0, 0, 1), st


def test_c16_replay_from_dlq(api, h15):
    """C16 over HTTP, continuing C15 (D11, D12)."""
    J = h15["J"]
    dlq = ok(api.list_dlq("h15", max_jobs=10), status="ok")["jobs"]
    assert len(dlq) == 1, dlq
    dlq_id = dlq[0]["id"]

    rr = ok(api.replay_dlq("h15", dlq_id), "job replayed successfully", status="ok")
    assert list(rr) == ["status", "message", "job_id", "seq"], rr
    assert HEX32.match(rr["job_id"]) and rr["job_id"] not in (J, dlq_id), rr
    assert rr["seq"] == 1

    job = api.job_of(api.reserve("h15"))
    assert job is not None and job["id"] == rr["job_id"], job
    assert unb64(job["payload"]) == b"poison" and job["attempts"] == 1, job
    xh = {k: v for k, v in (job.get("headers") or {}).items() if k.lower().startswith("x-flowmesh-")}
    assert xh == {}, f"replayed job carries DLQ headers {xh}"
    assert ok(api.list_dlq("h15"), status="ok") == {"status": "ok", "jobs": []}  # FlowMesh keeps it (D12)

    zero = "0" * 32
    err(api.replay_dlq("h15", zero), 404, f"job {zero} not found in queue t1/ns1/queue/h15-dlq")


def test_c16_dlq_of_queue_that_never_dead_lettered(api):
    assert ok(api.list_dlq("h16"), status="ok") == {"status": "ok", "jobs": []}
    names = [q["name"] for q in ok(api.call("GET", "/api/v1/queues"))["queues"]]
    assert "h16" in names and "h16-dlq" not in names, names  # FlowMesh creates it (D11)
    err(api.stats("h16-dlq"), 404, "queue not found: t1/ns1/queue/h16-dlq")


def test_c16_dlq_of_missing_queue(api):
    err(api.list_dlq("missing"), 404, MISSING_QUEUE)  # FlowMesh: 500 (D11)


# ---------------------------------------------------------------- C17


def test_c17_batch_receive_and_limits(api):
    """C17 over HTTP. The route's success message is always ``jobs received successfully`` (§5.4), where gRPC
    says ``received <n> jobs``."""
    assert [ok(api.enqueue("h17", f"j{i}".encode()))["seq"] for i in range(5)] == [0, 1, 2, 3, 4]

    body = ok(api.receive("h17", {"max_jobs": 3}), "jobs received successfully")
    assert list(body) == ["status", "message", "jobs"]
    assert [j["seq"] for j in body["jobs"]] == [0, 1, 2]
    assert [j["attempts"] for j in body["jobs"]] == [1, 1, 1]
    assert [unb64(j["payload"]) for j in body["jobs"]] == [b"j0", b"j1", b"j2"]
    assert [j["seq"] for j in ok(api.receive("h17", {"max_jobs": 0}))["jobs"]] == [3]
    assert [j["seq"] for j in ok(api.receive("h17", max_jobs=500))["jobs"]] == [4]
    r = api.receive("h17")
    assert ok(r) == {"status": "success", "message": "jobs received successfully", "jobs": []}

    err(api.receive("h17", {"visibility_timeout_seconds": 43201}), 400, TOO_LONG)
    err(api.reserve("h17", visibility_timeout=43201), 400, TOO_LONG)

    ok(api.enqueue("h17", b"default-visibility"))
    jobs = ok(api.receive("h17", {"visibility_timeout_seconds": 0}))["jobs"]
    now = now_ns()
    assert len(jobs) == 1
    d = jobs[0]["reserve_until"] - now
    assert 29 * S <= d <= 31 * S, f"reserve_until - now = {d / S:.3f} s with visibility 0"


# ---------------------------------------------------------------- C18


@pytest.mark.slow
def test_c18_receive_long_poll(admin_addr):
    """C18 over HTTP, the three waits on threads."""

    def short_poll():
        with Api(admin_addr) as a:
            t = time.monotonic()
            body = ok(a.receive("h18", {"long_poll_timeout_seconds": 2}))
            elapsed = time.monotonic() - t
            assert body["jobs"] == []
            assert 1.7 <= elapsed <= 2.3, f"receive with long poll 2 returned after {elapsed:.2f} s"

    def capped_poll():
        with Api(admin_addr) as a:
            t = time.monotonic()
            body = ok(a.receive("h18", long_poll_timeout=60))
            elapsed = time.monotonic() - t
            assert body["jobs"] == []
            assert 19.0 <= elapsed <= 21.0, f"receive with long poll 60 returned after {elapsed:.2f} s (cap 20 s)"

    def poll_with_enqueue():
        with Api(admin_addr) as a, Api(admin_addr) as other:
            t = time.monotonic()
            enq = later(1.0, lambda: ok(other.enqueue("h18b", b"late"))["job_id"])
            body = ok(a.receive("h18b", {"long_poll_timeout_seconds": 5}))
            elapsed = time.monotonic() - t
            job_id = enq.result(timeout=10)
            assert [j["id"] for j in body["jobs"]] == [job_id], f"after {elapsed:.2f} s: {body}"
            assert elapsed <= 1.5, f"the long-polling receive returned the job after {elapsed:.2f} s"

    run_parallel(short_poll, capped_poll, poll_with_enqueue)


# ---------------------------------------------------------------- C19


def test_c19_request_errors(api):
    """C19 over HTTP; ``job_id ""`` is an empty job segment (``.../jobs//ack``), refused as over gRPC (the same
    for NACK and DLQ replay, §3.4). No route: ``resource_type "stream"`` on a queue call (the route fixes the
    type)."""
    err(api.enqueue("h19", b""), 400, "payload cannot be empty")
    err(api.call("POST", f"{QUEUES}/h19/jobs", {"payload": None}), 400, "payload cannot be empty")
    for path in [f"{QUEUES}/h19/jobs//ack", f"{QUEUES}/h19/jobs//nack", f"{QUEUES}/h19/dlq/jobs//replay"]:
        err(api.call("POST", path), 400, "job_id is required")
    assert api.queue_stats("h19")["completed"] == 0, "an empty job id acknowledged something"


def test_c19_missing_queue(api):
    calls = {
        "enqueue": lambda: api.enqueue("missing", b"x"),
        "reserve": lambda: api.reserve("missing"),
        "receive": lambda: api.receive("missing"),
        "ack": lambda: api.ack("missing", "x"),
        "nack": lambda: api.nack("missing", "x"),
        "stats": lambda: api.stats("missing"),
        "retry-policy": lambda: api.get_policy("missing"),
    }
    failures = []
    for name, call in calls.items():
        try:
            err(call(), 404, MISSING_QUEUE)
        except AssertionError as e:
            failures.append(f"{name}: {e}")
    assert not failures, "\n".join(failures)


def test_c19_nack_never_reserved(api):
    e = ok(api.enqueue("h19", b"waiting"))
    err(api.nack("h19", e["job_id"]), 404, f"job {e['job_id']} not found in queue t1/ns1/queue/h19")


# ---------------------------------------------------------------- C20


def test_c20_kv_basics(api):
    """C20 over HTTP; ``Exists`` is ``HEAD`` (200 / 404, no body)."""
    set_ok = {"status": "success", "message": "key-value pair set successfully"}
    assert ok(api.kv_set("h20", "k1", b"v1")) == set_ok
    got = ok(api.kv_get("h20", "k1"))
    assert got == {"status": "success", "message": "value retrieved successfully", "value": b64(b"v1")}, got
    assert api.kv_exists("h20", "k1") is True

    assert ok(api.kv_set("h20", "k1", b"v2")) == set_ok
    assert unb64(ok(api.kv_get("h20", "k1"))["value"]) == b"v2"

    deleted = {"status": "success", "message": "key deleted successfully"}
    assert ok(api.kv_delete("h20", "k1")) == deleted
    assert api.kv_exists("h20", "k1") is False
    err(api.kv_get("h20", "k1"), 404, "key k1 not found in KV store t1/ns1/kv/h20")
    assert ok(api.kv_delete("h20", "k1")) == deleted  # idempotent


def test_c20_kv_request_errors(api):
    """C20's request errors over HTTP. No route: ``resource_type "stream"`` (the route fixes the type). An empty
    key (``PUT .../keys/``) is a path without a key: no route, 404."""
    err(api.kv_set("h20", "k", b""), 400, "value cannot be empty")
    err(api.call("PUT", f"{KV}/h20/keys/k", {"value": None}), 400, "value cannot be empty")
    err(api.call("PUT", f"{KV}/h20/keys/", {"value": b64(b"v")}), 404, NOT_FOUND_PAGE)


def test_c20_missing_store(api):
    calls = {
        "PUT": lambda: api.kv_set("missing", "k", b"v"),
        "GET": lambda: api.kv_get("missing", "k"),
        "DELETE": lambda: api.kv_delete("missing", "k"),
        "GET keys": lambda: api.kv_list("missing"),
    }
    failures = []
    for name, call in calls.items():
        try:
            err(call(), 404, MISSING_STORE)
        except AssertionError as e:
            failures.append(f"{name}: {e}")
    assert not failures, "\n".join(failures)
    assert api.kv_exists("missing", "k") is False  # HEAD: 404 without a body


# ---------------------------------------------------------------- C21


def _keys(api, name, prefix=None) -> list:
    body = ok(api.kv_list(name, prefix), "keys listed successfully")
    assert list(body) == ["status", "message", "keys"], body
    return body["keys"]


@pytest.mark.slow
def test_c21_kv_ttl(api):
    """C21 over HTTP (D9): ``ttl_seconds`` in the body; the ``?ttl=`` form has its own test below."""
    ok(api.kv_set("h21", "t2", b"x", ttl_seconds=1))
    ok(api.kv_set("h21", "t2", b"y"))
    overwritten_at = time.monotonic()
    ok(api.kv_set("h21", "neg", b"forever", ttl_seconds=-5))

    set_at = time.monotonic()
    ok(api.kv_set("h21", "t", b"x", ttl_seconds=1))
    ok(api.kv_set("h21", "t3", b"x", ttl_seconds=1))  # never read with GET before the HEAD/list checks
    assert unb64(ok(api.kv_get("h21", "t"))["value"]) == b"x"

    time.sleep(max(0.0, set_at + 1.5 - time.monotonic()))
    assert api.kv_exists("h21", "t3") is False, "HEAD reports an expired key (D9)"
    assert "t3" not in _keys(api, "h21"), "the key listing reports an expired key (D9)"
    msg = err(api.kv_get("h21", "t"), 404, lambda m: "has expired" in m or "not found" in m)
    assert msg in ("key t in KV store t1/ns1/kv/h21 has expired", "key t not found in KV store t1/ns1/kv/h21"), msg
    assert api.kv_exists("h21", "t") is False
    assert "t" not in _keys(api, "h21", "")

    err(api.kv_set("h21", "big", b"x", ttl_seconds=31536001), 400, "ttl_seconds cannot exceed 31536000 (1 year)")

    time.sleep(max(0.0, overwritten_at + 12.0 - time.monotonic()))
    got = api.kv_get("h21", "t2")
    assert got.status_code == 200 and unb64(got.json()["value"]) == b"y", f"t2 12 s after the overwrite: {got.text}"
    assert unb64(ok(api.kv_get("h21", "neg"))["value"]) == b"forever", "ttl -5 must mean no expiry"
    assert api.kv_exists("h21", "neg") is True


# ---------------------------------------------------------------- C22


def test_c22_kv_listing(api):
    for k in ["user:2", "user:10", "order:1", "user:1", "a.b"]:
        ok(api.kv_set("h22", k, b"v"))
    assert _keys(api, "h22") == ["a.b", "order:1", "user:1", "user:10", "user:2"]
    assert _keys(api, "h22", "") == ["a.b", "order:1", "user:1", "user:10", "user:2"]
    assert _keys(api, "h22", "user:") == ["user:1", "user:10", "user:2"]
    assert _keys(api, "h22", "zzz") == []
    assert _keys(api, "h22e", "") == []  # FlowMesh: null


# ==========================================================================
# Every route's error paths (§5.3–§5.5) beyond crates/herald/tests/admin_http.rs
# ==========================================================================

# Every route that reads a JSON body, with a path on the provisioned `herr` resources.
BODY_ROUTES = [
    ("POST", f"{STREAMS}/herr/events"),
    ("POST", f"{STREAMS}/herr/consumer-groups/g/offsets"),
    ("POST", f"{QUEUES}/herr/jobs"),
    ("POST", f"{QUEUES}/herr/reserve"),
    ("POST", f"{QUEUES}/herr/receive"),
    ("POST", f"{QUEUES}/herr/jobs/{'1' * 32}/nack"),
    ("PUT", f"{QUEUES}/herr/retry-policy"),
    ("PUT", f"{KV}/herr/keys/k"),
]


@pytest.mark.parametrize("method, path", BODY_ROUTES, ids=[p.split("/herr/")[1] for _, p in BODY_ROUTES])
@pytest.mark.parametrize(
    "raw",
    ['{"events":', "{not json}", "[1, 2]", '"text"', "42"],
    ids=["truncated", "not-json", "array", "string", "number"],
)
def test_malformed_json_body(api, method, path, raw):
    """A body that is not a JSON object: 400 ``invalid request body: <detail>``, before anything else runs."""
    err(api.call(method, path, raw=raw), 400, body_error)


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("POST", f"{STREAMS}/herr/events", {"events": {"payload": "eA=="}}),
        ("POST", f"{STREAMS}/herr/events", {"events": [{"payload": 5}]}),
        ("POST", f"{STREAMS}/herr/events", {"events": [{"payload": "eA==", "headers": {"h": 1}}]}),
        ("POST", f"{STREAMS}/herr/consumer-groups/g/offsets", {"offset": "1"}),
        ("POST", f"{STREAMS}/herr/consumer-groups/g/offsets", {"offset": 1.5}),
        ("POST", f"{QUEUES}/herr/jobs", {"payload": "eA==", "delay_seconds": "1"}),
        ("POST", f"{QUEUES}/herr/jobs", {"payload": ["eA=="]}),
        ("POST", f"{QUEUES}/herr/reserve", {"visibility_timeout_seconds": "30"}),
        ("POST", f"{QUEUES}/herr/receive", {"max_jobs": "x"}),
        ("POST", f"{QUEUES}/herr/jobs/{'1' * 32}/nack", {"delay_seconds": "x"}),
        ("PUT", f"{QUEUES}/herr/retry-policy", {**policy(1, 1, 1, 1.0, "fixed"), "max_attempts": "1"}),
        ("PUT", f"{KV}/herr/keys/k", {"value": "eA==", "ttl_seconds": "1"}),
    ],
)
def test_wrongly_typed_body_fields(api, method, path, body):
    """A field of the wrong JSON type is a decoding error too (Go's decoder refuses it)."""
    err(api.call(method, path, body), 400, body_error)


def test_bad_base64(api):
    """Bytes are padded standard base64 (§5.1); anything else is Go's decoding error."""
    at1 = "invalid request body: illegal base64 data at input byte 1"
    err(api.call("POST", f"{STREAMS}/herr/events", {"events": [{"payload": "e*=="}]}), 400, at1)
    err(api.call("POST", f"{QUEUES}/herr/jobs", {"payload": "e*=="}), 400, at1)
    err(api.call("PUT", f"{KV}/herr/keys/k", {"value": "e*=="}), 400, at1)
    err(api.call("PUT", f"{KV}/herr/keys/k", {"value": "eA"}), 400, body_error)  # padding is required
    assert ok(api.latest("herr"))["offset"] == -1, "nothing was written"


def test_empty_bodies(api):
    """Routes that need a body answer ``invalid request body: EOF`` without one; the optional bodies of reserve,
    receive and nack are read only when present."""
    for method, path in [
        ("POST", f"{STREAMS}/herr/events"),
        ("POST", f"{STREAMS}/herr/consumer-groups/g/offsets"),
        ("POST", f"{QUEUES}/herr/jobs"),
        ("PUT", f"{QUEUES}/herr/retry-policy"),
        ("PUT", f"{KV}/herr/keys/k"),
    ]:
        err(api.call(method, path), 400, "invalid request body: EOF")
    assert ok(api.reserve("herr")) == {"status": "success", "message": "no jobs available"}
    assert ok(api.reserve("herr", raw="null"))["message"] == "no jobs available"
    assert ok(api.receive("herr", raw="  "))["jobs"] == []
    err(api.nack("herr", "1" * 32), 404, f"job {'1' * 32} not found in queue t1/ns1/queue/herr")


@pytest.mark.parametrize("value", ["x", "1.5", "0x1", "2147483648", " 1"])
def test_non_integer_partition(api, value):
    """``partition`` must be an int32 on every stream route that reads it: 400 ``invalid partition parameter``."""
    failures = []
    for method, path, body in [
        ("GET", f"{STREAMS}/herr/messages?offset=0", None),
        ("GET", f"{STREAMS}/herr/offsets/latest", None),
        ("GET", f"{STREAMS}/herr/stats", None),
        ("POST", f"{STREAMS}/herr/consumer-groups/g/offsets", {"offset": 0}),
        ("GET", f"{STREAMS}/herr/consumer-groups/g/offsets", None),
        ("GET", f"{STREAMS}/herr/consumer-groups/g/state", None),
    ]:
        try:
            err(api.call(method, path, body, partition=value), 400, "invalid partition parameter")
        except AssertionError as e:
            failures.append(f"{method} {path}: {e}")
    assert not failures, "\n".join(failures)


def test_offset_and_max_messages_parameters(api):
    """``offset`` is required and a non-negative integer; ``max_messages`` a positive integer, capped at 1000."""
    msgs = f"{STREAMS}/herr/messages"
    err(api.call("GET", msgs), 400, "offset parameter is required")
    err(api.call("GET", msgs, max_messages=5), 400, "offset parameter is required")
    for bad in ["x", "1.5", "-1", "1e3", "9223372036854775808"]:
        err(api.call("GET", msgs, offset=bad), 400, "invalid offset parameter")
    for bad in ["x", "0", "-3", "2.0"]:
        err(api.call("GET", msgs, offset=0, max_messages=bad), 400, "invalid max_messages parameter")
    # The offset is checked before max_messages, and both before the stream's existence.
    err(api.call("GET", msgs, offset="x", max_messages="x"), 400, "invalid offset parameter")
    err(api.call("GET", f"{STREAMS}/missing/messages", offset="x"), 400, "invalid offset parameter")
    assert ok(api.call("GET", msgs, offset=0, max_messages=5000))["messages"] == []
    # A repeated parameter: the first value counts, as Go's Query().Get does.
    assert ok(api.call("GET", f"{msgs}?offset=0&offset=x"))["messages"] == []


def test_short_stream_paths(api):
    """Fewer than three components before a stream route's tail: 400 with §5.3's text naming the URL path."""

    def text(path: str) -> str:
        return f"invalid resource path '{path}': path must include tenant, namespace, and name"

    for method, path, body in [
        ("POST", "/api/v1/streams/t1/ns1/events", {"events": [{"payload": "eA=="}]}),
        ("POST", "/api/v1/streams/t1/events", {"events": [{"payload": "eA=="}]}),
        ("GET", "/api/v1/streams/t1/ns1/messages?offset=0", None),
        ("GET", "/api/v1/streams/t1/offsets/latest", None),
        ("GET", "/api/v1/streams/t1/ns1/stats", None),
        ("GET", "/api/v1/streams/t1/ns1/consumer-groups", None),
        ("POST", "/api/v1/streams/t1/ns1/consumer-groups/g/offsets", {"offset": 0}),
        ("GET", "/api/v1/streams/ns1/consumer-groups/g/offsets", None),
        ("GET", "/api/v1/streams/t1/ns1/consumer-groups/g/state", None),
    ]:
        err(api.call(method, path, body), 400, text(path.split("?")[0]))
    # The same paths with a method their route does not serve, and paths with no route tail, stay 404s.
    err(api.call("GET", "/api/v1/streams/t1/ns1/events"), 404, NOT_FOUND_PAGE)
    err(api.call("GET", "/api/v1/streams/t1/ns1"), 404, NOT_FOUND_PAGE)


def test_short_queue_paths(api):
    """A queue path with fewer than three components before the route's tail is no route: 404 (§5.4; FlowMesh
    panics)."""
    for method, path in [
        ("POST", "/api/v1/queues/t1/ns1/jobs"),
        ("POST", "/api/v1/queues/t1/reserve"),
        ("POST", "/api/v1/queues/t1/ns1/receive"),
        ("GET", "/api/v1/queues/t1/ns1/stats"),
        ("GET", "/api/v1/queues/t1/ns1/retry-policy"),
        ("GET", "/api/v1/queues/t1/ns1/dlq/jobs"),
        ("POST", "/api/v1/queues/t1/ns1/jobs/x/ack"),
        ("POST", "/api/v1/queues/t1/jobs/x/nack"),
        ("POST", "/api/v1/queues/t1/ns1/dlq/jobs/x/replay"),
    ]:
        err(api.call(method, path, raw='{"payload":"eA=="}'), 404, NOT_FOUND_PAGE)


def test_unknown_paths_and_wrong_methods(api):
    """Unknown paths, and known paths with a method they do not serve: 404 ``404 page not found`` (FlowMesh
    never answers 405), as D16's JSON under ``/api/`` and as Go's plain text elsewhere."""
    for method, path in [
        ("PUT", f"{STREAMS}/herr/events"),
        ("POST", f"{STREAMS}/herr/messages"),
        ("DELETE", f"{STREAMS}/herr/consumer-groups/g/offsets"),
        ("POST", f"{STREAMS}/herr/consumer-groups/g/state"),
        ("POST", f"{STREAMS}/herr/consumer-groups"),
        ("GET", f"{STREAMS}/herr/consumer-groups/g"),
        ("GET", f"{STREAMS}/herr/offsets"),
        ("DELETE", "/api/v1/streams"),
        ("GET", f"{QUEUES}/herr/jobs"),
        ("DELETE", f"{QUEUES}/herr/jobs"),
        ("GET", f"{QUEUES}/herr/reserve"),
        ("GET", f"{QUEUES}/herr/receive"),
        ("POST", f"{QUEUES}/herr/stats"),
        ("DELETE", f"{QUEUES}/herr/retry-policy"),
        ("POST", f"{QUEUES}/herr/retry-policy"),
        ("POST", f"{QUEUES}/herr/dlq/jobs"),
        ("GET", f"{QUEUES}/herr/dlq/jobs/x/replay"),
        ("GET", f"{QUEUES}/herr/jobs/x"),
        ("PUT", "/api/v1/queues"),
        ("POST", f"{KV}/herr/keys"),
        ("PATCH", f"{KV}/herr/keys/k"),
        ("DELETE", f"{KV}/herr/keys"),
        ("POST", "/api/v1/kv"),
        ("GET", "/api/v2/streams"),
        ("GET", "/api/v1"),
        ("GET", "/api/"),
    ]:
        err(api.call(method, path), 404, NOT_FOUND_PAGE)
    for method, path in [("GET", "/apiv1/streams"), ("POST", "/nope"), ("GET", "/ready/x")]:
        r = api.call(method, path)
        assert (r.status_code, r.text) == (404, "404 page not found\n"), (method, path, r.status_code, r.text)


@pytest.mark.parametrize("kind, key", [("streams", "streams"), ("queues", "queues"), ("kv", "stores")])
def test_bare_and_trailing_slash_list_routes(api, kind, key):
    """``GET /api/v1/<kind>`` and ``GET /api/v1/<kind>/`` answer alike (a direct 200 for the bare form, §5.1),
    sorted by path (D15), with ``tenant`` and ``namespace`` as exact filters."""
    message = {"streams": "streams", "queues": "queues", "kv": "KV stores"}[kind] + " retrieved successfully"
    bare = api.call("GET", f"/api/v1/{kind}")
    slash = api.call("GET", f"/api/v1/{kind}/")
    assert bare.status_code == 200, bare.text
    assert ok(bare, message) == ok(slash, message)
    items = ok(bare)[key]
    assert [(i["tenant"], i["namespace"], i["name"]) for i in items] == sorted(
        (i["tenant"], i["namespace"], i["name"]) for i in items
    )
    single = "stream" if kind == "streams" else "queue" if kind == "queues" else "kv"
    h03 = [i for i in items if i["name"] == "h03"]
    assert len(h03) == 1, [i["name"] for i in items]
    assert (h03[0]["tenant"], h03[0]["namespace"], h03[0]["type"]) == ("t1", "ns1", single)
    assert RFC3339.match(h03[0]["created_at"]) and RFC3339.match(h03[0]["updated_at"]), h03[0]

    filtered = ok(api.call("GET", f"/api/v1/{kind}/", tenant="t1", namespace="ns1"))[key]
    assert filtered == [i for i in items if (i["tenant"], i["namespace"]) == ("t1", "ns1")]
    assert ok(api.call("GET", f"/api/v1/{kind}", tenant="t1", namespace="nope"))[key] == []
    assert ok(api.call("GET", f"/api/v1/{kind}", tenant="T1"))[key] == []


def _expiry(api, key: str) -> int | None:
    """The key's expiry (Unix ns, None without one) from Herald's own entries route."""
    r = api.call("GET", "/api/herald/kv/t1/ns1/httl/entries", prefix=key)
    assert r.status_code == 200, r.text
    entries = [e for e in r.json()["entries"] if e["key"] == key]
    assert len(entries) == 1, r.text
    return entries[0]["expires_at"]


def test_kv_ttl_query_in_go_duration_syntax(api):
    """``PUT .../keys/{key}?ttl=<Go duration>`` (§5.5): used when the body has no ``ttl_seconds``, truncated to
    whole seconds (``500ms`` = no TTL), ignored when unparsable; the one-year cap applies to it too."""
    for key, ttl, expected in [
        ("s90", "90s", 90),
        ("h1m30", "1h30m", 5400),
        ("m15", "15m", 900),
        ("frac", "1.5h", 5400),
        ("ms500", "500ms", None),
        ("ms1500", "1500ms", 1),
        ("zero", "0", None),
        ("bad", "soon", None),
        ("unitless", "5", None),
        ("negative", "-5s", None),
    ]:
        before = now_ns()
        ok(api.kv_set("httl", key, b"v", query_ttl=ttl))
        after = now_ns()
        got = _expiry(api, key)
        if expected is None:
            assert got is None, f"?ttl={ttl}: expires_at {got}, expected no TTL"
        else:
            seconds = None if got is None else (got - before) / S
            assert got is not None and before + expected * S <= got <= after + expected * S, (
                f"?ttl={ttl}: expires {seconds} s after the PUT, expected {expected}"
            )
    # The body's TTL wins over the query.
    before = now_ns()
    ok(api.kv_set("httl", "body", b"v", ttl_seconds=100, query_ttl="1s"))
    got = _expiry(api, "body")
    assert got is not None and abs((got - before) / S - 100) <= 2, got
    err(api.kv_set("httl", "big", b"v", query_ttl="8761h"), 400, "ttl_seconds cannot exceed 31536000 (1 year)")

    # And the TTL is enforced: 1 s later the key is gone, the 500ms one is not.
    set_at = time.monotonic()
    ok(api.kv_set("httl", "short", b"v", query_ttl="1s"))
    time.sleep(max(0.0, set_at + 1.5 - time.monotonic()))
    assert api.kv_get("httl", "short").status_code == 404
    assert unb64(ok(api.kv_get("httl", "ms500"))["value"]) == b"v"


def test_query_overrides_body_for_reserve_and_receive(api):
    """``visibility_timeout``, ``long_poll_timeout`` and (receive) ``max_jobs`` in the query override the body's
    fields when they parse as integers, and are ignored when they do not (§5.4)."""
    for i in range(4):
        ok(api.enqueue("hq", f"q{i}".encode()))

    # visibility: query over body, body when the query does not parse.
    job = api.job_of(api.reserve("hq", {"visibility_timeout_seconds": 43201}, visibility_timeout=10))
    now = now_ns()
    assert job is not None and 9 * S <= job["reserve_until"] - now <= 11 * S, job
    job = api.job_of(api.reserve("hq", {"visibility_timeout_seconds": 20}, visibility_timeout="abc"))
    now = now_ns()
    assert job is not None and 19 * S <= job["reserve_until"] - now <= 21 * S, job
    err(api.reserve("hq", {"visibility_timeout_seconds": 10}, visibility_timeout=43201), 400, TOO_LONG)
    err(api.receive("hq", {"visibility_timeout_seconds": 10}, visibility_timeout=43201), 400, TOO_LONG)

    # max_jobs: query over body, body when the query does not parse.
    assert len(ok(api.receive("hq", {"max_jobs": 3}, max_jobs=1, visibility_timeout=10))["jobs"]) == 1
    jobs = ok(api.receive("hq", {"max_jobs": 1, "visibility_timeout_seconds": 10}, max_jobs="many"))["jobs"]
    assert [unb64(j["payload"]) for j in jobs] == [b"q3"], jobs
    now = now_ns()
    assert 9 * S <= jobs[0]["reserve_until"] - now <= 11 * S, jobs

    # long poll: the query's 1 s wins over the body's 5 s; an unparsable query leaves the body's value.
    for call in (api.reserve, api.receive):
        t = time.monotonic()
        call("hq", {"long_poll_timeout_seconds": 5}, long_poll_timeout=1)
        elapsed = time.monotonic() - t
        assert 0.8 <= elapsed <= 1.6, f"{call.__name__}: query long_poll_timeout=1 over body 5: {elapsed:.2f} s"
    t = time.monotonic()
    body = ok(api.receive("hq", {"long_poll_timeout_seconds": 1}, long_poll_timeout="later"))
    elapsed = time.monotonic() - t
    assert body["jobs"] == [] and 0.8 <= elapsed <= 1.6, f"body long poll 1 with an unparsable query: {elapsed:.2f} s"
