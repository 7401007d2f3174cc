"""Checklist items 17–23 (§2.7 long-poll, §2.8 poll stats, §4.3 / §4.6) with RelayTransport.long_poll, its cursor
file and its credentials file (§5.2, §5.3)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import re
import stat
import time

import httpx
import pytest

from relay_compat import (
    OFFSET_FORM,
    Z_FORM,
    assert_detail,
    find_error,
    json_body,
    uniq,
    validation_errors,
    wait_until,
)

LIVE_KEYS = ["type", "message_id", "topic", "payload", "timestamp", "metadata"]
CATCHUP_KEYS = ["topic", "message_id", "payload", "timestamp", "metadata", "stream_id"]
STREAM_ID = re.compile(r"^\d+-\d+$")

executor = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="poll")


def waiters_on(relay, user, topic: str) -> int:
    stats = json_body(relay.get("/messages/poll/stats", user.token), 200)
    return stats["topic_subscriber_counts"].get(f"{user.user_id}/{topic}", 0)


def wait_for_waiters(relay, user, topic: str, n: int = 1) -> None:
    wait_until(lambda: waiters_on(relay, user, topic) >= n, timeout=5, what=f"{n} poll waiter(s) on {topic}")


def check_catchup_item(item, topic: str) -> None:
    assert list(item) == CATCHUP_KEYS, item
    assert item["topic"] == topic and OFFSET_FORM.match(item["timestamp"]), item
    # stream_id is the id when ids are stream ids, null for the memory backend's msg_ ids (§2.7).
    assert item["stream_id"] == (item["message_id"] if STREAM_ID.match(item["message_id"]) else None), item


# --------------------------------------------------------------------------
# Items 17, 18: wait phase
# --------------------------------------------------------------------------


def test_item17_poll_timeout_and_stats(relay):
    user = relay.shared_user("poller", ("read", "write"))
    topic = uniq("q")
    t0 = time.monotonic()
    fut = executor.submit(relay.poll, user, [topic], timeout=2)
    wait_for_waiters(relay, user, topic)
    stats = json_body(relay.get("/messages/poll/stats", user.token), 200)
    assert list(stats) == ["active_waiters", "subscribed_topics", "topic_subscriber_counts"]
    assert stats["active_waiters"] >= 1 and stats["subscribed_topics"] >= 1
    assert stats["topic_subscriber_counts"][f"{user.user_id}/{topic}"] == 1
    r = fut.result(timeout=10)
    elapsed = time.monotonic() - t0
    assert json_body(r, 200) == {"messages": [], "has_more": False}
    assert 1.8 <= elapsed <= 4.0, elapsed
    # The waiter is removed before the answer.
    assert waiters_on(relay, user, topic) == 0


def test_item18_live_poll(relay):
    user = relay.shared_user("poller", ("read", "write"))
    topic = uniq("live")
    fut = executor.submit(relay.poll, user, [topic], timeout=10)
    wait_for_waiters(relay, user, topic)
    time.sleep(1.0)
    t0 = time.monotonic()
    pub = relay.publish(user, topic, {"n": 1})
    r = fut.result(timeout=15)
    assert time.monotonic() - t0 < 3.0
    body = json_body(r, 200)
    assert body["has_more"] is False
    [item] = body["messages"]
    assert list(item) == LIVE_KEYS
    assert item == {"type": "message", "message_id": pub["message_id"], "topic": topic, "payload": {"n": 1}, "timestamp": pub["timestamp"], "metadata": None}
    assert Z_FORM.match(item["timestamp"])


def test_live_poll_metadata_and_since_null(relay):
    user = relay.shared_user("poller", ("read", "write"))
    topic = uniq("live-meta")
    # "since": null and "since": {} both skip the catch-up phase (the benchmark sends null).
    for since in (None, {}):
        fut = executor.submit(relay.post, "/messages/poll", user.token, json={"topics": [topic], "since": since, "timeout": 5}, timeout=15)
        wait_for_waiters(relay, user, topic)
        pub = relay.publish(user, topic, {"m": 1}, metadata={"k": "v"})
        [item] = json_body(fut.result(timeout=15), 200)["messages"]
        assert item["message_id"] == pub["message_id"] and item["metadata"] == {"k": "v"}


def test_catchup_empty_then_live(relay):
    """A cursor with nothing newer falls through to the wait phase; the live item then has the WebSocket shape."""
    user = relay.shared_user("poller", ("read", "write"))
    topic = uniq("fall")
    first = relay.publish(user, topic, {"n": 0})
    fut = executor.submit(relay.poll, user, [topic], {topic: first["message_id"]}, 10)
    wait_for_waiters(relay, user, topic)
    pub = relay.publish(user, topic, {"n": 1})
    [item] = json_body(fut.result(timeout=15), 200)["messages"]
    assert list(item) == LIVE_KEYS and item["message_id"] == pub["message_id"]


# --------------------------------------------------------------------------
# Items 19, 20: catch-up phase
# --------------------------------------------------------------------------


def test_item19_catch_up(relay):
    user = relay.shared_user("poller", ("read", "write"))
    topic = uniq("q")
    m = [relay.publish(user, topic, {"n": n}) for n in (1, 2, 3)]
    t0 = time.monotonic()
    body = json_body(relay.poll(user, [topic], {topic: m[0]["message_id"]}, timeout=10), 200)
    assert time.monotonic() - t0 < 4.0  # immediate, not after the 10 s timeout
    assert body["has_more"] is False
    assert [i["message_id"] for i in body["messages"]] == [m[1]["message_id"], m[2]["message_id"]]
    for n, (item, pub) in enumerate(zip(body["messages"], m[1:], strict=True), start=2):
        check_catchup_item(item, topic)
        assert item["payload"] == {"n": n}
        assert item["timestamp"] == pub["timestamp"][:-1] + "+00:00" and item["metadata"] == {}
    # 150 newer messages, published with two bulk calls: 100 items (the oldest after the cursor) and has_more.
    relay.bulk(user, [{"topic": topic, "payload": {"n": 4 + i}} for i in range(100)])
    relay.bulk(user, [{"topic": topic, "payload": {"n": 104 + i}} for i in range(50)])
    body = json_body(relay.poll(user, [topic], {topic: m[0]["message_id"]}, timeout=10), 200)
    assert body["has_more"] is True
    assert [i["payload"]["n"] for i in body["messages"]] == list(range(2, 102))


def test_catch_up_has_more_counts_all_topics(relay):
    """has_more = total collected across topics ≥ 100, not per topic [QUIRK]."""
    user = relay.shared_user("poller", ("read", "write"))
    a, b = uniq("a"), uniq("b")
    ca = relay.publish(user, a, {"c": 0})
    cb = relay.publish(user, b, {"c": 0})
    relay.bulk(user, [{"topic": a, "payload": {"i": i}} for i in range(60)])
    relay.bulk(user, [{"topic": b, "payload": {"i": i}} for i in range(50)])
    body = json_body(relay.poll(user, [a, b], {a: ca["message_id"], b: cb["message_id"]}), 200)
    assert [i["topic"] for i in body["messages"]] == [a] * 60 + [b] * 50
    assert body["has_more"] is True
    small = json_body(relay.poll(user, [a, b], {a: ca["message_id"], b: body["messages"][-2]["message_id"]}), 200)
    assert len(small["messages"]) == 61 and small["has_more"] is False


def test_catch_up_duplicate_topics(relay):
    user = relay.shared_user("poller", ("read", "write"))
    topic = uniq("dup")
    m = [relay.publish(user, topic, {"n": n}) for n in range(3)]
    body = json_body(relay.poll(user, [topic, topic], {topic: m[0]["message_id"]}), 200)
    assert [i["payload"]["n"] for i in body["messages"]] == [1, 2, 1, 2]


def test_item20_partial_cursor_quirk(relay):
    user = relay.shared_user("poller", ("read", "write"))
    a, b = uniq("a"), uniq("b")
    latest_a = [relay.publish(user, a, {"a": n}) for n in range(2)][-1]
    mb = [relay.publish(user, b, {"b": n}) for n in range(3)]
    t0 = time.monotonic()
    body = json_body(relay.poll(user, [a, b], {a: latest_a["message_id"]}, timeout=10), 200)
    assert time.monotonic() - t0 < 4.0  # immediate, not after the 10 s timeout
    assert [i["message_id"] for i in body["messages"]] == [x["message_id"] for x in mb]
    for item in body["messages"]:
        check_catchup_item(item, b)
    assert body["has_more"] is False


# --------------------------------------------------------------------------
# Item 11 (poll part): validation
# --------------------------------------------------------------------------


def test_item11_poll_validation(relay):
    user = relay.shared_user("poller", ("read", "write"))
    post = lambda body: relay.post("/messages/poll", user.token, json=body)  # noqa: E731
    assert find_error(validation_errors(post({"topics": ["a.b"]})), ["body", "topics", 0])["type"] == "value_error"
    err = find_error(validation_errors(post({"topics": ["q"], "timeout": 61})), ["body", "timeout"])
    assert err["type"] == "less_than_equal" and err["ctx"] == {"le": 60}
    assert find_error(validation_errors(post({"topics": ["q"], "timeout": 0})), ["body", "timeout"])["type"] == "greater_than_equal"
    err = find_error(validation_errors(post({"topics": [f"t{i}" for i in range(21)]})), ["body", "topics"])
    assert err["type"] == "too_long" and err["ctx"]["max_length"] == 20
    assert find_error(validation_errors(post({"topics": []})), ["body", "topics"])["type"] == "too_short"
    assert find_error(validation_errors(post({})), ["body", "topics"])["type"] == "missing"
    assert find_error(validation_errors(post({"topics": ["q"], "since": {"q": None}})), ["body", "since", "q"])["type"] == "string_type"


@pytest.mark.herald_only(reason="§2.7 [DEFECT]: the reference replays from the beginning (memory) or answers 500 (Valkey)")
def test_poll_malformed_since(relay):
    user = relay.shared_user("poller", ("read", "write"))
    topic = uniq("bad-since")
    relay.publish(user, topic, {"n": 1})
    assert_detail(relay.poll(user, [topic], {topic: "garbage"}), 400, "Invalid since cursor")


# --------------------------------------------------------------------------
# Item 23: waiter cap
# --------------------------------------------------------------------------


def test_item23_waiter_cap(relay):
    user = relay.new_user()
    topic = uniq("cap")
    token = user.token

    async def scenario() -> None:
        limits = httpx.Limits(max_connections=80, max_keepalive_connections=80)
        async with httpx.AsyncClient(base_url=relay.base_url, limits=limits, timeout=30) as client:
            body = {"topics": [topic], "timeout": 10}
            hdrs = {"Authorization": f"Bearer {token}"}
            first = [asyncio.create_task(client.post("/messages/poll", json=body, headers=hdrs)) for _ in range(50)]
            deadline = time.monotonic() + 10
            while await asyncio.to_thread(waiters_on, relay, user, topic) < 50:
                assert time.monotonic() < deadline, "50 waiters did not register"
                assert not any(t.done() for t in first), [t.result().text for t in first if t.done()]
                await asyncio.sleep(0.05)
            extra = await client.post("/messages/poll", json=body, headers=hdrs)
            assert_detail(extra, 429, "Too many concurrent poll connections")
            # Release the 50 waiters with one message.
            await asyncio.to_thread(relay.publish, user, topic, {"wake": True})
            answers = await asyncio.wait_for(asyncio.gather(*first), 15)
            assert all(json_body(a, 200)["messages"][0]["payload"] == {"wake": True} for a in answers)

    asyncio.run(scenario())
    # The waiters are gone: a new poll is accepted again.
    assert json_body(relay.poll(user, [topic], timeout=1), 200) == {"messages": [], "has_more": False}


# --------------------------------------------------------------------------
# Items 21, 22: the client's cursor file and credentials file
# --------------------------------------------------------------------------


def test_item21_client_restart_with_cursor_file(relay, tmp_path):
    user = relay.new_user()
    topic = uniq("topic")
    cursor = tmp_path / "cursor.json"
    t1 = relay.transport(user, cursor_path=str(cursor))
    try:
        fut = executor.submit(t1.long_poll, [topic], 10)
        wait_for_waiters(relay, user, topic)
        m1 = relay.publish(user, topic, {"m": 1})
        items = fut.result(timeout=20)
    finally:
        t1.close()
    assert [i["message_id"] for i in items] == [m1["message_id"]]
    assert json.loads(cursor.read_text()) == {topic: m1["message_id"]}
    assert stat.S_IMODE(os.stat(cursor).st_mode) == 0o600
    m2 = relay.publish(user, topic, {"m": 2})
    m3 = relay.publish(user, topic, {"m": 3})
    t2 = relay.transport(user, cursor_path=str(cursor))
    try:
        assert t2.get_last_message_id(topic) == m1["message_id"]
        t0 = time.monotonic()
        items = t2.long_poll([topic], timeout=10)
        assert time.monotonic() - t0 < 4.0  # without waiting for the 10 s timeout
    finally:
        t2.close()
    assert [i["message_id"] for i in items] == [m2["message_id"], m3["message_id"]]
    assert [i["payload"] for i in items] == [{"m": 2}, {"m": 3}]
    assert json.loads(cursor.read_text()) == {topic: m3["message_id"]}


def test_item22_password_then_refresh_token(relay, tmp_path):
    user = relay.new_user()
    topic = uniq("creds")
    tmp_path.chmod(0o700)
    creds = tmp_path / "relay_credentials.json"
    t1 = relay.transport(user, credentials_file=str(creds))
    try:
        assert t1.auth_manager.strategy_name == "password"
        t1.post_message(topic, {"n": 1})
    finally:
        t1.close()
    saved = json.loads(creds.read_text())
    assert saved["relay_url"] == relay.base_url and "issued_at" in saved
    first_rt = saved["refresh_token"]
    t2 = relay.transport(None, credentials_file=str(creds))
    try:
        assert t2.auth_manager.strategy_name == "refresh_token"
        t2.post_message(topic, {"n": 2})
        t2.long_poll([topic], timeout=1)
    finally:
        t2.close()
    rotated = json.loads(creds.read_text())["refresh_token"]
    assert rotated != first_rt
    assert [m["payload"] for m in relay.history(user, topic, order="asc")["messages"]] == [{"n": 1}, {"n": 2}]
    # The saved token is the live one; the first one has been rotated away.
    assert relay.post("/auth/token/refresh", json={"refresh_token": first_rt}).status_code == 401


def test_long_poll_client_topics_without_cursor(relay):
    """RelayTransport.long_poll sends `since` only for topics with a tracked cursor, and advances the cursor per item."""
    user = relay.shared_user("poller", ("read", "write"))
    topic = uniq("tp")
    t = relay.transport(user)
    try:
        assert t.long_poll([topic], timeout=1) == []
        m = [relay.publish(user, topic, {"n": n}) for n in range(3)]
        t.set_last_message_id(topic, m[0]["message_id"])
        items = t.long_poll([topic], timeout=5)
        assert [i["message_id"] for i in items] == [m[1]["message_id"], m[2]["message_id"]]
        assert t.get_all_tracked_message_ids() == {topic: m[2]["message_id"]}
    finally:
        t.close()
