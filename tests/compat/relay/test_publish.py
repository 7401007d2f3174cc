"""Checklist items 11–15 (§1.4 messages, §1.7 / §4.4 idempotency, §2.4 publishing, body cap) and the publish rate
limits; the client calls RelayTransport.post_message and post_bulk_messages (§5.3)."""

from __future__ import annotations

import concurrent.futures
import json
import re
import uuid

import pytest

from relay_compat import (
    DEFAULT_CONFIG,
    Z_FORM,
    FaultProxy,
    assert_detail,
    avoid_minute_boundary,
    find_error,
    json_body,
    uniq,
    validation_errors,
)

TOPIC_MSG = "Value error, Topic must contain only alphanumeric characters, hyphens, and underscores"


# --------------------------------------------------------------------------
# Item 12: single publish with the client
# --------------------------------------------------------------------------


def test_item12_post_message_client(relay):
    user = relay.new_user()
    transport = relay.transport(user)
    try:
        body = transport.post_message("t", {"a": 1}, ttl=5, metadata={"k": "v"})
    finally:
        transport.close()
    assert list(body) == ["message_id", "topic", "timestamp"]
    assert body["topic"] == "t" and isinstance(body["message_id"], str) and body["message_id"]
    assert Z_FORM.match(body["timestamp"]), body["timestamp"]
    topics = json_body(relay.get("/api/v1/topics", user.token), 200)
    assert [(t["topic_name"], t["description"], t["owner_id"]) for t in topics] == [
        ("t", f"Auto-created topic by {user.username}", user.user_id)
    ]
    assert json_body(relay.get("/auth/me", user.token), 200)["owned_topics"] == ["t"]
    [stored] = relay.history(user, "t")["messages"]
    assert stored == {
        "message_id": body["message_id"],
        "topic": "t",
        "payload": {"a": 1},
        "timestamp": body["timestamp"][:-1] + "+00:00",
        "metadata": {"k": "v"},
    }


def test_publish_raw_shape_and_unknown_keys(relay):
    user = relay.shared_user("pub", ("read", "write"))
    topic = uniq("raw")
    body = json_body(relay.publish_raw(user, topic, {"x": 1}, ttl=None, metadata=None, extra="ignored"), 201)
    assert list(body) == ["message_id", "topic", "timestamp"] and body["topic"] == topic
    [stored] = relay.history(user, topic)["messages"]
    assert stored["metadata"] == {} and "extra" not in stored and "ttl" not in stored


def test_payload_round_trip(relay):
    """§0: payload objects round-trip losslessly — key order, big integers, floats as given, raw non-ASCII."""
    user = relay.shared_user("pub", ("read", "write"))
    topic = uniq("rt")
    text = '{"z":1,"a":2,"big":123456789012345678901234567890,"f":1715611987.412345,"neg":-0.5,"u":"é✓ 中","n":null,"nested":{"b":[1,{"c":true}],"a":{}}}'
    r = relay.post("/api/v1/messages", user.token, content=f'{{"topic":"{topic}","payload":{text}}}'.encode(), headers={"Content-Type": "application/json"})
    json_body(r, 201)
    h = relay.get(f"/api/v1/topics/{topic}/messages", user.token)
    json_body(h, 200)
    assert f'"payload":{text}' in h.content.decode("utf-8"), h.text


# --------------------------------------------------------------------------
# Item 11: validation
# --------------------------------------------------------------------------


def test_item11_publish_validation(relay):
    user = relay.shared_user("pub", ("read", "write"))
    post = lambda body: relay.post("/api/v1/messages", user.token, json=body)  # noqa: E731

    err = find_error(validation_errors(post({"topic": "bad topic!", "payload": {}})), ["body", "topic"])
    assert err == {"type": "value_error", "loc": ["body", "topic"], "msg": TOPIC_MSG, "input": "bad topic!", "ctx": {"error": {}}}
    assert find_error(validation_errors(post({"topic": "", "payload": {}})), ["body", "topic"])["msg"] == "Value error, Topic name must not be empty"
    assert find_error(validation_errors(post({"topic": "x" * 256, "payload": {}})), ["body", "topic"])["msg"] == "Value error, Topic name must be at most 255 characters"

    err = find_error(validation_errors(post({"topic": "t", "payload": [1, 2]})), ["body", "payload"])
    assert err["type"] == "dict_type" and err["input"] == [1, 2] and err["msg"] == "Input should be a valid dictionary"
    for bad in ("s", 3, None, True):
        assert find_error(validation_errors(post({"topic": "t", "payload": bad})), ["body", "payload"])["type"] == "dict_type", bad

    body = {"topic": "t"}
    err = find_error(validation_errors(post(body)), ["body", "payload"])
    assert err["type"] == "missing" and err["msg"] == "Field required" and err["input"] == body

    err = find_error(validation_errors(post({"topic": "t", "payload": {}, "ttl": 0})), ["body", "ttl"])
    assert err == {"type": "greater_than", "loc": ["body", "ttl"], "msg": "Input should be greater than 0", "input": 0, "ctx": {"gt": 0}}
    assert find_error(validation_errors(post({"topic": "t", "payload": {}, "ttl": -1})), ["body", "ttl"])["type"] == "greater_than"

    errors = validation_errors(post({"topic": "t", "payload": {}, "metadata": {"k": 1}}))
    assert errors[0]["loc"][:2] == ["body", "metadata"], errors

    # No body at all.
    r = relay.post("/api/v1/messages", user.token)
    assert validation_errors(r) == [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}]

    # Invalid JSON.
    r = relay.post("/api/v1/messages", user.token, content=b'{"topic": "t", "payload": ', headers={"Content-Type": "application/json"})
    [err] = validation_errors(r)
    assert err["type"] == "json_invalid" and err["loc"][0] == "body" and isinstance(err["loc"][1], int)
    assert err["msg"] == "JSON decode error" and "error" in err["ctx"]

    # Nothing above created the topic "t" for this user... except nothing: validation runs before get-or-create.
    assert "t" not in json_body(relay.get("/auth/me", user.token), 200)["owned_topics"]


def test_item11_bulk_validation(relay):
    user = relay.shared_user("pub", ("read", "write"))
    topic = uniq("bv")
    r = relay.post("/api/v1/messages/bulk", user.token, json={"messages": []})
    err = find_error(validation_errors(r), ["body", "messages"])
    assert err["type"] == "too_short" and err["ctx"] == {"field_type": "List", "min_length": 1, "actual_length": 0}
    r = relay.post("/api/v1/messages/bulk", user.token, json={"messages": [{"topic": topic, "payload": {}}] * 101})
    err = find_error(validation_errors(r), ["body", "messages"])
    assert err["type"] == "too_long" and err["ctx"]["max_length"] == 100 and err["ctx"]["actual_length"] == 101
    # One invalid item: the whole request is 422 and nothing is stored (the topic is not even created).
    r = relay.post("/api/v1/messages/bulk", user.token, json={"messages": [{"topic": topic, "payload": {}}, {"topic": "bad topic!", "payload": {}}]})
    assert find_error(validation_errors(r), ["body", "messages", 1, "topic"])["type"] == "value_error"
    assert_detail(relay.get(f"/api/v1/topics/{topic}/messages", user.token), 404, f"Topic '{topic}' not found")


# --------------------------------------------------------------------------
# Item 13: bulk
# --------------------------------------------------------------------------


def test_item13_bulk_client(relay):
    user = relay.shared_user("pub", ("read", "write"))
    t1, t2 = uniq("b1"), uniq("b2")
    transport = relay.transport(user)
    try:
        body = transport.post_bulk_messages(
            [{"topic": t1, "payload": {"i": 0}}, {"topic": t2, "payload": {"i": 1}}, {"topic": t1, "payload": {"i": 2}, "metadata": {"m": "x"}}]
        )
    finally:
        transport.close()
    assert list(body) == ["results", "summary"]
    assert body["summary"] == {"total": 3, "accepted": 3, "rejected": 0}
    assert [r["topic"] for r in body["results"]] == [t1, t2, t1]
    for r in body["results"]:
        assert list(r) == ["message_id", "topic", "status", "error"]
        assert r["status"] == "accepted" and r["error"] is None and r["message_id"]
    h1 = relay.history(user, t1, order="asc")["messages"]
    assert [m["message_id"] for m in h1] == [body["results"][0]["message_id"], body["results"][2]["message_id"]]
    assert [m["payload"] for m in h1] == [{"i": 0}, {"i": 2}] and h1[1]["metadata"] == {"m": "x"}
    assert [m["payload"] for m in relay.history(user, t2)["messages"]] == [{"i": 1}]
    # Every distinct topic was auto-created.
    owned = json_body(relay.get("/auth/me", user.token), 200)["owned_topics"]
    assert t1 in owned and t2 in owned


def test_bulk_raw_status_207(relay):
    user = relay.shared_user("pub", ("read", "write"))
    topic = uniq("b")
    r = relay.post("/api/v1/messages/bulk", user.token, json={"messages": [{"topic": topic, "payload": {"n": n}} for n in range(100)]})
    body = json_body(r, 207)
    assert body["summary"] == {"total": 100, "accepted": 100, "rejected": 0}
    assert [m["payload"]["n"] for m in relay.all_history(user, topic)] == list(range(100))


# --------------------------------------------------------------------------
# Item 14: idempotency
# --------------------------------------------------------------------------


def test_item14_idempotency_raw(relay):
    user = relay.new_user()
    other = relay.new_user()
    topic = uniq("idem")
    key = uuid.uuid4().hex
    first = relay.publish_raw(user, topic, {"v": 1}, headers={"Idempotency-Key": key})
    second = relay.publish_raw(user, topic, {"v": 2}, headers={"Idempotency-Key": key})
    assert json_body(first, 201) == json_body(second, 201)
    assert first.content == second.content
    history = relay.history(user, topic)["messages"]
    assert [m["payload"] for m in history] == [{"v": 1}]
    # Scope is (user, key): another user with the same key gets a message of its own.
    theirs = json_body(relay.publish_raw(other, topic, {"v": 3}, headers={"Idempotency-Key": key}), 201)
    assert theirs["message_id"] != json_body(first)["message_id"] or theirs["timestamp"] != json_body(first)["timestamp"]
    assert [m["payload"] for m in relay.history(other, topic)["messages"]] == [{"v": 3}]


def test_item14_idempotency_bulk(relay):
    user = relay.shared_user("pub", ("read", "write"))
    topic = uniq("idem-bulk")
    key = uuid.uuid4().hex
    msgs = [{"topic": topic, "payload": {"n": n}} for n in range(3)]
    a = relay.post("/api/v1/messages/bulk", user.token, json={"messages": msgs}, headers={"Idempotency-Key": key})
    b = relay.post("/api/v1/messages/bulk", user.token, json={"messages": msgs[:1]}, headers={"Idempotency-Key": key})
    assert json_body(a, 207) == json_body(b, 207)
    assert len(relay.history(user, topic)["messages"]) == 3


def test_item14_replay_recreates_deleted_topic(relay):
    """§4.4 item 5: get-or-create runs before the idempotency check."""
    user = relay.shared_user("pub", ("read", "write"))
    topic = uniq("idem-del")
    key = uuid.uuid4().hex
    first = json_body(relay.publish_raw(user, topic, {"v": 1}, headers={"Idempotency-Key": key}), 201)
    assert relay.delete(f"/api/v1/topics/{topic}", user.token).status_code == 204
    again = json_body(relay.publish_raw(user, topic, {"v": 1}, headers={"Idempotency-Key": key}), 201)
    assert again == first
    assert json_body(relay.get(f"/api/v1/topics/{topic}", user.token), 200)["topic_name"] == topic
    assert len(relay.history(user, topic)["messages"]) == 1


def test_item14_client_retry_through_fault_proxy(relay):
    """The proxy forwards the first publish to the server but answers 503; the client retries with the same key and
    receives the original message_id; exactly one message is stored."""
    user = relay.new_user()
    topic = uniq("retry")
    with FaultProxy(relay.port, lambda method, path, status: method == "POST" and path == "/api/v1/messages" and status == 201) as proxy:
        transport = relay.transport(user, relay_url=proxy.url)
        try:
            body = transport.post_message(topic, {"once": True})
        finally:
            transport.close()
    posts = [e for e in proxy.log if e["path"] == "/api/v1/messages"]
    assert [(e["upstream_status"], e["sent_status"]) for e in posts] == [(201, 503), (201, 201)]
    keys = [e["headers"].get("Idempotency-Key") for e in posts]
    assert keys[0] == keys[1] and re.fullmatch(r"[0-9a-f]{32}", keys[0]), keys
    original = json.loads(posts[0]["upstream_body"])
    assert body == original
    assert [m["message_id"] for m in relay.history(user, topic)["messages"]] == [original["message_id"]]


def test_client_reauthenticates_on_401(relay):
    """§5.3: a 401 makes the transport drop its token, log in again and retry with the same key."""
    user = relay.new_user()
    topic = uniq("reauth")
    transport = relay.transport(user)
    try:
        transport.post_message(topic, {"n": 1})
        stale = transport.auth_manager.get_token()
        assert relay.post("/auth/logout", stale).status_code == 204
        body = transport.post_message(topic, {"n": 2})
        assert transport.auth_manager.get_token() != stale
    finally:
        transport.close()
    assert [m["message_id"] for m in relay.history(user, topic)["messages"]][0] == body["message_id"]


@pytest.mark.herald_only(reason="§4.4 [DEFECT]: the reference processes an in-flight duplicate again and stores a second message")
def test_item14_in_flight_duplicates_wait(relay):
    user = relay.shared_user("pub", ("read", "write"))
    topic = uniq("inflight")
    key = uuid.uuid4().hex
    token = user.token

    def publish(i: int):
        return relay.post("/api/v1/messages", token, json={"topic": topic, "payload": {"i": i}}, headers={"Idempotency-Key": key})

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        answers = list(ex.map(publish, range(8)))
    bodies = [json_body(r, 201) for r in answers]
    assert all(b == bodies[0] for b in bodies), bodies
    assert len(relay.history(user, topic)["messages"]) == 1


@pytest.mark.herald_only(reason="§4.4 [DEFECT]: the reference answers 500 when a key is reused across the two endpoints")
def test_item14_key_reused_across_endpoints(relay):
    user = relay.shared_user("pub", ("read", "write"))
    single_topic, bulk_topic = uniq("x1"), uniq("x2")
    key = uuid.uuid4().hex
    json_body(relay.publish_raw(user, single_topic, {"a": 1}, headers={"Idempotency-Key": key}), 201)
    r = relay.post("/api/v1/messages/bulk", user.token, json={"messages": [{"topic": bulk_topic, "payload": {}}]}, headers={"Idempotency-Key": key})
    assert_detail(r, 422, "Idempotency-Key was used for a different endpoint")
    key2 = uuid.uuid4().hex
    relay.bulk(user, [{"topic": bulk_topic, "payload": {"b": 1}}], headers={"Idempotency-Key": key2})
    r = relay.publish_raw(user, single_topic, {"a": 2}, headers={"Idempotency-Key": key2})
    assert_detail(r, 422, "Idempotency-Key was used for a different endpoint")
    assert [m["payload"] for m in relay.history(user, single_topic)["messages"]] == [{"a": 1}]
    assert [m["payload"] for m in relay.history(user, bulk_topic)["messages"]] == [{"b": 1}]


# --------------------------------------------------------------------------
# Item 15: body cap (default settings)
# --------------------------------------------------------------------------


def _sized_body(topic: str, size: int) -> bytes:
    head = f'{{"topic":"{topic}","payload":{{"pad":"'.encode()
    tail = b'"}}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def test_item15_body_cap(default_relay):
    relay = default_relay
    token = relay.admin_token
    topic = uniq("big")
    hdrs = {"Content-Type": "application/json"}
    r = relay.post("/api/v1/messages", token, content=_sized_body(topic, 1_048_577), headers=hdrs)
    assert json_body(r, 413) == {"error": "PAYLOAD_TOO_LARGE", "message": "request body exceeds configured limit"}
    # Also without authentication (the middleware runs before routing) and on any route.
    r = relay.post("/auth/register", content=b"x" * 1_048_577, headers=hdrs)
    assert json_body(r, 413)["error"] == "PAYLOAD_TOO_LARGE"
    # Exactly at the limit is accepted.
    r = relay.post("/api/v1/messages", token, content=_sized_body(topic, 1_048_576), headers=hdrs)
    assert json_body(r, 201)["topic"] == topic


def test_item15_chunked_body_is_not_checked(default_relay):
    relay = default_relay
    topic = uniq("chunked")
    data = _sized_body(topic, 1_100_000)

    def chunks():
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    r = relay.post("/api/v1/messages", relay.admin_token, content=chunks(), headers={"Content-Type": "application/json"})
    assert json_body(r, 201)["topic"] == topic


# --------------------------------------------------------------------------
# Publish rate limits (§2.1), on a server of their own
# --------------------------------------------------------------------------


def test_publish_rate_limits(make):
    relay = make(DEFAULT_CONFIG, private_=True)
    admin = relay.admin()
    topic = uniq("rl")
    avoid_minute_boundary(8)
    # Rejected requests (401, 422) do not consume the budget.
    for _ in range(3):
        assert relay.post("/api/v1/messages", admin.token, json={"topic": topic, "payload": []}).status_code == 422
        assert relay.post("/api/v1/messages", json={"topic": topic, "payload": {}}).status_code == 401
    for i in range(120):
        assert relay.publish_raw(admin, topic, {"i": i}).status_code == 201, f"publish {i + 1} of 120"
    r = relay.publish_raw(admin, topic, {"i": 120})
    assert json_body(r, 429) == {"error": "Rate limit exceeded: 120 per 1 minute"}
    for i in range(30):
        r = relay.post("/api/v1/messages/bulk", admin.token, json={"messages": [{"topic": topic, "payload": {"b": i}}]})
        assert r.status_code == 207, f"bulk {i + 1} of 30: {r.status_code}"
    r = relay.post("/api/v1/messages/bulk", admin.token, json={"messages": [{"topic": topic, "payload": {}}]})
    assert json_body(r, 429) == {"error": "Rate limit exceeded: 30 per 1 minute"}
