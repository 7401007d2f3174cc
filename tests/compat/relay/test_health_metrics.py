"""Checklist item 1 (§2.9 health and readiness, §2.10 metrics)."""

from __future__ import annotations

import asyncio
import re

from relay_compat import Z_FORM, json_body, uniq, ws_open, ws_subscribe

DECLARED_METRICS = (
    "relay_messages_received_total",
    "relay_messages_delivered_total",
    "relay_message_latency_seconds",
    "relay_websocket_connections_active",
    "relay_websocket_connections_total",
    "relay_websocket_disconnections_total",
    "relay_storage_operations_total",
    "relay_topic_message_count",
    "relay_errors_total",
)


def metric_value(text: str, name: str, labels: str = "") -> float | None:
    """The value of one sample in Prometheus text exposition; ``labels`` is the exact ``{...}`` part or ''."""
    pattern = re.compile(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", re.M)
    m = pattern.search(text)
    return float(m.group(1)) if m else None


def get_metrics(relay) -> str:
    r = relay.get("/metrics")
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"].startswith("text/plain"), r.headers["content-type"]
    return r.text


def test_item01_health(relay):
    r = relay.get("/health")
    body = json_body(r, 200)
    assert list(body) == ["status", "timestamp", "version"]
    assert body["status"] == "healthy"
    assert body["version"] == "0.1.0"
    assert Z_FORM.match(body["timestamp"]), body["timestamp"]


def test_item01_ready(relay):
    assert json_body(relay.get("/ready"), 200) == {"ready": True, "checks": {"storage": "ok"}}


def test_item01_health_needs_no_auth_and_ignores_bad_token(relay):
    # /health, /ready and /metrics carry no authentication at all (§1.8): even a garbage bearer is fine.
    for path in ("/health", "/ready", "/metrics"):
        assert relay.get(path, "not-a-jwt").status_code == 200, path


def test_item01_metrics_after_publish(relay):
    user = relay.shared_user("pub", ("read", "write"))
    topic = uniq("metrics")
    channel = f'{{topic="{user.user_id}/{topic}"}}'
    relay.publish(user, topic, {"n": 1})
    text = get_metrics(relay)
    for name in DECLARED_METRICS:
        assert re.search(rf"^# (HELP|TYPE) {name}\b", text, re.M), f"{name} is not registered"
    assert metric_value(text, "relay_messages_received_total", channel) == 1.0, text[:2000]
    assert metric_value(text, "relay_message_latency_seconds_count", channel) == 1.0
    relay.publish(user, topic, {"n": 2})
    text = get_metrics(relay)
    assert metric_value(text, "relay_messages_received_total", channel) == 2.0


def test_item01_metrics_bulk_does_not_count(relay):
    user = relay.shared_user("pub", ("read", "write"))
    topic = uniq("metrics-bulk")
    relay.bulk(user, [{"topic": topic, "payload": {"i": i}} for i in range(3)])
    text = get_metrics(relay)
    assert f'topic="{user.user_id}/{topic}"' not in text.split("relay_messages_received_total", 1)[-1].split("# HELP", 1)[0]
    assert metric_value(text, "relay_messages_received_total", f'{{topic="{user.user_id}/{topic}"}}') is None


def test_item01_metrics_websocket_gauges(relay):
    user = relay.shared_user("reader", ("read", "write"))

    def sample() -> tuple[float, float, float]:
        text = get_metrics(relay)
        return (
            metric_value(text, "relay_websocket_connections_total") or 0.0,
            metric_value(text, "relay_websocket_connections_active") or 0.0,
            metric_value(text, "relay_websocket_disconnections_total") or 0.0,
        )

    total0, active0, gone0 = sample()

    async def scenario() -> None:
        ws = await ws_open(relay, user.token)
        try:
            await ws_subscribe(ws, [uniq("g")])
            total1, active1, _ = await asyncio.to_thread(sample)
            assert total1 == total0 + 1
            assert active1 == active0 + 1
        finally:
            await ws.close()

    asyncio.run(scenario())
    deadline_ok = False
    for _ in range(100):
        total2, active2, gone2 = sample()
        if active2 == active0 and gone2 == gone0 + 1:
            deadline_ok = True
            break
        asyncio.run(asyncio.sleep(0.05))
    assert deadline_ok, (total2, active2, gone2, total0, active0, gone0)
