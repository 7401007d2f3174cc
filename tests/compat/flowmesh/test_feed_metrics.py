"""C26 and C27: the ``/ws`` live feed and ``/metrics`` over the network (compat/flowmesh.md §5.8, §5.9; Herald
decisions D18 and D23).

The mutations go through FlowMesh's REST routes (``httpx``) and, where the checklist says so, through gRPC; the
feed is read with a real WebSocket client (``websockets``). The session server is shared with the other
scenarios, so a connection that subscribes to nothing (which receives every event) may also see events of other
resources: such frames are checked for shape and otherwise skipped.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import time

import pytest

if os.environ.get("HERALD_REQUIRE_SERVER") == "1":
    # scripts/test.sh installs them (requirements.txt): a missing package must fail there, not skip.
    import httpx
    import websockets.sync.client as ws_client
else:
    httpx = pytest.importorskip("httpx")
    ws_client = pytest.importorskip("websockets.sync.client")

# Client messages get no reply, so a test cannot see when a subscription was applied; this waits long enough.
SETTLE = 0.3
# The checklist's "within 1 s".
WITHIN = 1.0


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Feed:
    """One ``/ws`` connection; every frame it receives must be one text frame holding one JSON object."""

    def __init__(self, conn):
        self.conn = conn

    def send(self, message: dict) -> None:
        self.conn.send(json.dumps(message))
        time.sleep(SETTLE)

    def next(self, timeout: float) -> dict | None:
        """The next event within ``timeout`` seconds, or None."""
        try:
            frame = self.conn.recv(timeout=timeout)
        except TimeoutError:
            return None
        assert isinstance(frame, str), f"a text frame, got {frame!r}"
        event = json.loads(frame)  # one JSON object per frame, never several joined by newlines (D18)
        assert isinstance(event, dict) and set(event) == {"type", "topic", "payload"}, frame
        return event

    def on(self, topic: str, timeout: float = WITHIN) -> list[dict]:
        """Every event on ``topic`` until ``timeout`` seconds pass without one (other topics are skipped)."""
        found = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            event = self.next(left)
            if event is None:
                break
            if event["topic"] == topic:
                found.append(event)
        return found

    def first_on(self, topic: str) -> dict:
        """The first event on ``topic`` within 1 s."""
        deadline = time.monotonic() + WITHIN
        while (left := deadline - time.monotonic()) > 0:
            event = self.next(left)
            if event is not None and event["topic"] == topic:
                return event
        pytest.fail(f"no event on {topic} within {WITHIN} s")


@contextlib.contextmanager
def feed(admin_addr: str):
    """A ``/ws`` connection for the ``with`` block. The upgrade must succeed [FlowMesh 500; D18]."""
    # Any Origin is accepted (§5.8): send a browser-like one.
    with ws_client.connect(f"ws://{admin_addr}/ws", origin="http://dashboard.example") as conn:
        time.sleep(SETTLE)  # let the server register the connection
        yield Feed(conn)


@pytest.fixture
def http(admin_addr):
    with httpx.Client(base_url=f"http://{admin_addr}", timeout=30) as client:
        yield client


def ok(response) -> dict:
    assert response.status_code == 200, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json()


QUEUE_STATS_KEYS = {
    "total_jobs",
    "pending_jobs",
    "in_flight_jobs",
    "completed_jobs",
    "failed_jobs",
    "oldest_job_age_seconds",
}


def assert_queue_stats(event: dict, name: str, total_jobs: int) -> None:
    assert event["type"] == "queue.stats"
    assert event["topic"] == f"queue.stats.t1/ns1/{name}"
    assert set(event["payload"]) == QUEUE_STATS_KEYS, event
    assert event["payload"]["total_jobs"] == total_jobs, event


# ---------------------------------------------------------------- C26


def test_c26_websocket_feed(admin_addr, http, fm):
    with feed(admin_addr) as a, feed(admin_addr) as b:
        a.send({"type": "subscribe", "payload": {"topics": ["queue.stats.t1/ns1/c26"]}})

        # HTTP enqueue: A and B each receive one frame.
        ok(http.post("/api/v1/queues/t1/ns1/c26/jobs", json={"payload": b64(b"job")}))
        got_a = a.on("queue.stats.t1/ns1/c26")
        got_b = b.on("queue.stats.t1/ns1/c26")
        assert len(got_a) == 1 and len(got_b) == 1, (got_a, got_b)
        assert_queue_stats(got_a[0], "c26", 1)
        assert got_b[0] == got_a[0]
        assert got_a[0]["payload"]["pending_jobs"] == 1

        # HTTP stream write: B receives stream.stats, A (subscribed to the queue only) nothing within 1 s.
        ok(http.post("/api/v1/streams/t1/ns1/c26/events", json={"events": [{"payload": b64(b"e")}]}))
        assert b.first_on("stream.stats.t1/ns1/c26") == {
            "type": "stream.stats",
            "topic": "stream.stats.t1/ns1/c26",
            "payload": {"latest_offset": 0},
        }
        assert a.next(WITHIN) is None

        # HTTP PUT of key k: B receives kv.update.
        ok(http.put("/api/v1/kv/t1/ns1/c26/keys/k", json={"value": b64(b"v")}))
        assert b.first_on("kv.update.t1/ns1/c26") == {
            "type": "kv.update",
            "topic": "kv.update.t1/ns1/c26",
            "payload": {"action": "set", "key": "k"},
        }

        # A gRPC Enqueue publishes too [D18; FlowMesh publishes only for HTTP calls].
        fm.enqueue("c26", b"job")
        assert_queue_stats(a.first_on("queue.stats.t1/ns1/c26"), "c26", 2)


def test_c26_reads_and_deletes_publish_and_unsubscribe_means_everything(admin_addr, http):
    with feed(admin_addr) as ws:
        topics = ["stream.stats.t1/ns1/c26", "queue.stats.t1/ns1/c26", "kv.update.t1/ns1/c26"]
        ws.send({"type": "subscribe", "payload": {"topics": topics}})

        # The statistics routes publish what they read (§5.3, §5.4).
        stats = ok(http.get("/api/v1/streams/t1/ns1/c26/stats"))["stats"]
        assert ws.first_on("stream.stats.t1/ns1/c26")["payload"] == stats
        stats = ok(http.get("/api/v1/queues/t1/ns1/c26/stats"))["stats"]
        assert ws.first_on("queue.stats.t1/ns1/c26")["payload"] == stats

        # KV DELETE publishes, also for a key that does not exist (the call succeeds).
        ok(http.delete("/api/v1/kv/t1/ns1/c26/keys/k"))
        assert ws.first_on("kv.update.t1/ns1/c26")["payload"] == {"action": "delete", "key": "k"}

        # Unsubscribing from every topic switches the connection back to receiving everything.
        ws.send({"type": "unsubscribe", "payload": {"topics": topics}})
        ok(http.put("/api/v1/kv/t1/ns1/c27/keys/k", json={"value": b64(b"v")}))
        assert ws.first_on("kv.update.t1/ns1/c27")["payload"] == {"action": "set", "key": "k"}


# ---------------------------------------------------------------- C27

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str) -> tuple[dict, dict]:
    """(samples, types): samples map (name, frozenset of labels) → value; types map family → type."""
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            family, kind = line[len("# TYPE ") :].split(" ", 1)
            types[family] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples, types


def sample(samples: dict, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in samples, f"no sample {name}{labels}"
    return samples[key]


def scrape(addr: str) -> tuple[dict, dict]:
    r = httpx.get(f"http://{addr}/metrics", timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain"), r.headers["content-type"]
    return parse_metrics(r.text)


# The families Herald MUST export (§5.9), with FlowMesh's types. A labelled family appears only once it has a value,
# so a scrape is checked for the families present, and for the ones this scenario gives values.
FAMILIES = {
    "flowmesh_stream_events_total": "counter",
    "flowmesh_stream_bytes_written_total": "counter",
    "flowmesh_stream_bytes_read_total": "counter",
    "flowmesh_stream_offset": "gauge",
    "flowmesh_stream_write_duration_seconds": "histogram",
    "flowmesh_stream_read_duration_seconds": "histogram",
    "flowmesh_queue_total_jobs": "counter",
    "flowmesh_queue_enqueue_duration_seconds": "histogram",
    "flowmesh_queue_reserve_duration_seconds": "histogram",
    "flowmesh_queue_pending": "gauge",
    "flowmesh_queue_in_flight": "gauge",
    "flowmesh_queue_depth": "gauge",
    "flowmesh_queue_oldest_job_age_seconds": "gauge",
    "flowmesh_queue_failed_jobs": "counter",
    "flowmesh_queue_dlq_jobs": "gauge",
    "flowmesh_queue_completed_jobs": "counter",
    "flowmesh_consumer_group_offset_commits_total": "counter",
    "flowmesh_consumer_group_committed_offset": "gauge",
    "flowmesh_consumer_group_lag": "gauge",
}


def test_c27_metrics(admin_addr, metrics_addr, http, fm):
    # "Any transport": the events and one job over HTTP, the other job over gRPC, the commit over HTTP.
    events = [{"payload": b64(p)} for p in (b"a", b"bb", b"ccc")]
    assert ok(http.post("/api/v1/streams/t1/ns1/c27/events", json={"events": events}))["offsets"] == [0, 1, 2]
    ok(http.post("/api/v1/queues/t1/ns1/c27/jobs", json={"payload": b64(b"j0")}))
    fm.enqueue("c27", b"j1")
    ok(http.post("/api/v1/streams/t1/ns1/c27/consumer-groups/g/offsets", json={"offset": 1}))

    stream = dict(tenant="t1", namespace="ns1", stream="c27", partition="0")
    queue = dict(tenant="t1", namespace="ns1", queue="c27")
    group = dict(tenant="t1", namespace="ns1", stream="c27", consumer_group="g", partition="0")

    samples, types = scrape(admin_addr)
    assert sample(samples, "flowmesh_stream_events_total", **stream) == 3
    assert sample(samples, "flowmesh_queue_total_jobs", **queue) == 2
    assert sample(samples, "flowmesh_consumer_group_committed_offset", **group) == 1
    assert sample(samples, "flowmesh_stream_offset", **stream) == 2
    # Not in the checklist, but the same calls move them (§5.9).
    assert sample(samples, "flowmesh_stream_bytes_written_total", **stream) == 6
    assert sample(samples, "flowmesh_queue_enqueue_duration_seconds_count", **queue) == 2
    assert sample(samples, "flowmesh_consumer_group_offset_commits_total", **group) == 1
    flowmesh_types = {f: t for f, t in types.items() if f.startswith("flowmesh_")}
    assert flowmesh_types == {f: FAMILIES[f] for f in flowmesh_types}, flowmesh_types
    for family in (
        "flowmesh_stream_events_total",
        "flowmesh_stream_offset",
        "flowmesh_queue_total_jobs",
        "flowmesh_queue_pending",
        "flowmesh_consumer_group_committed_offset",
        "flowmesh_consumer_group_lag",
    ):
        assert family in flowmesh_types, family

    # The dedicated metrics listener returns the same families [D23].
    dedicated, dedicated_types = scrape(metrics_addr)
    assert {f: t for f, t in dedicated_types.items() if f.startswith("flowmesh_")} == flowmesh_types
    assert sample(dedicated, "flowmesh_stream_events_total", **stream) == 3
    assert sample(dedicated, "flowmesh_queue_total_jobs", **queue) == 2
    assert sample(dedicated, "flowmesh_consumer_group_committed_offset", **group) == 1
    assert sample(dedicated, "flowmesh_stream_offset", **stream) == 2


def test_c27_http_reads_count(admin_addr, http):
    """`GET .../messages` counts the payload bytes it returns and its duration, as ReadStream does (§5.9)."""
    stream = dict(tenant="t1", namespace="ns1", stream="c27", partition="0")
    labels = frozenset(stream.items())
    before, _ = scrape(admin_addr)
    bytes_before = before.get(("flowmesh_stream_bytes_read_total", labels), 0.0)
    reads_before = before.get(("flowmesh_stream_read_duration_seconds_count", labels), 0.0)
    messages = ok(http.get("/api/v1/streams/t1/ns1/c27/messages", params={"offset": 0}))["messages"]
    read = sum(len(base64.b64decode(m["payload"])) for m in messages)
    after, _ = scrape(admin_addr)
    assert sample(after, "flowmesh_stream_bytes_read_total", **stream) == bytes_before + read
    assert sample(after, "flowmesh_stream_read_duration_seconds_count", **stream) == reads_before + 1
