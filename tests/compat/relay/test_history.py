"""Checklist item 16 (§2.6 history, §4.9 / §4.10 forms) with HttpRelayClient.fetch_messages (§5.4)."""

from __future__ import annotations

import pytest

from relay_compat import OFFSET_FORM, assert_detail, find_error, json_body, uniq, validation_errors

HISTORY_KEYS = ["messages", "total", "limit", "order", "cursor", "next_cursor"]
ITEM_KEYS = ["message_id", "topic", "payload", "timestamp", "metadata"]


@pytest.fixture
def ten(relay):
    """A user with topic ``p`` holding payloads {"id": 0} … {"id": 9}; returns (user, topic, publish answers)."""
    user = relay.shared_user("hist", ("read", "write"))
    topic = uniq("p")
    published = [relay.publish(user, topic, {"id": i}) for i in range(10)]
    return user, topic, published


def ids(page):
    return [m["payload"]["id"] for m in page["messages"]]


def test_item16_pages_with_client(relay, ten):
    user, topic, published = ten
    client = relay.client()
    page = client.fetch_messages(user.token, topic, limit=3)
    assert list(page) == HISTORY_KEYS
    assert ids(page) == [9, 8, 7]
    assert (page["order"], page["total"], page["limit"], page["cursor"]) == ("desc", 3, 3, None)
    assert page["next_cursor"] == published[7]["message_id"]
    page2 = client.fetch_messages(user.token, topic, limit=3, cursor=page["next_cursor"])
    assert ids(page2) == [6, 5, 4] and page2["cursor"] == published[7]["message_id"]
    asc = client.fetch_messages(user.token, topic, limit=3, order="asc")
    assert ids(asc) == [0, 1, 2] and asc["order"] == "asc"
    asc2 = client.fetch_messages(user.token, topic, limit=3, order="asc", cursor=asc["next_cursor"])
    assert ids(asc2) == [3, 4, 5]
    latest = client.fetch_messages(user.token, topic, limit=1, order="desc")
    assert ids(latest) == [9]


def test_item16_item_shape(relay, ten):
    user, topic, published = ten
    page = relay.history(user, topic, limit=10, order="asc")
    for item, pub in zip(page["messages"], published, strict=True):
        assert list(item) == ITEM_KEYS
        assert item["message_id"] == pub["message_id"] and item["topic"] == topic
        assert OFFSET_FORM.match(item["timestamp"]), item["timestamp"]
        # The same instant as the publish answer, in offset-form instead of Z-form (§4.9).
        assert item["timestamp"] == pub["timestamp"][:-1] + "+00:00"
        assert item["metadata"] == {}


def test_item16_defaults_last_page_and_empty_page(relay, ten):
    user, topic, published = ten
    page = relay.history(user, topic)
    assert (page["limit"], page["order"], page["total"]) == (10, "desc", 10)
    assert ids(page) == list(range(9, -1, -1))
    last = relay.history(user, topic, order="asc", limit=3, cursor=published[8]["message_id"])
    assert ids(last) == [9] and last["total"] == 1 and last["next_cursor"] == published[9]["message_id"]
    empty = relay.history(user, topic, order="asc", limit=3, cursor=published[9]["message_id"])
    assert empty["messages"] == [] and empty["total"] == 0 and empty["next_cursor"] is None
    oldest = relay.history(user, topic, order="desc", limit=3, cursor=published[0]["message_id"])
    assert oldest["messages"] == [] and oldest["next_cursor"] is None


def test_item16_limits_and_errors(relay, ten):
    user, topic, _ = ten
    assert_detail(relay.get(f"/api/v1/topics/{topic}/messages", user.token, params={"limit": 0}), 400, "Limit must be at least 1")
    assert_detail(relay.get(f"/api/v1/topics/{topic}/messages", user.token, params={"limit": -5}), 400, "Limit must be at least 1")
    capped = relay.history(user, topic, limit=150)
    assert capped["limit"] == 100 and capped["total"] == 10
    assert_detail(relay.get(f"/api/v1/topics/{topic}/messages", user.token, params={"order": "x"}), 400, "Order must be 'asc' or 'desc'")
    # Check order: topic → order → limit.
    assert_detail(relay.get(f"/api/v1/topics/{topic}/messages", user.token, params={"order": "x", "limit": 0}), 400, "Order must be 'asc' or 'desc'")
    assert_detail(relay.get("/api/v1/topics/x/messages", user.token, params={"order": "x"}), 404, "Topic 'x' not found")
    err = find_error(validation_errors(relay.get(f"/api/v1/topics/{topic}/messages", user.token, params={"limit": "abc"})), ["query", "limit"])
    assert err == {
        "type": "int_parsing",
        "loc": ["query", "limit"],
        "msg": "Input should be a valid integer, unable to parse string as an integer",
        "input": "abc",
    }


def test_item16_unknown_topic(relay):
    from pulsar_relay_client import RelayClientError

    user = relay.shared_user("hist", ("read", "write"))
    assert_detail(relay.get("/api/v1/topics/x/messages", user.token), 404, "Topic 'x' not found")
    with pytest.raises(RelayClientError) as e:
        relay.client().fetch_messages(user.token, "x")
    assert "404" in str(e.value)


def test_history_metadata_object(relay):
    user = relay.shared_user("hist", ("read", "write"))
    topic = uniq("meta")
    relay.publish(user, topic, {"a": 1}, metadata={"k": "v", "é": "✓"})
    [item] = relay.history(user, topic)["messages"]
    assert item["metadata"] == {"k": "v", "é": "✓"}


def test_retention_count_cap(make):
    """§1.6 / §4.7 (item 28's count cap, on the default backend): PULSAR_MAX_MESSAGES_PER_TOPIC=5 keeps exactly the
    newest 5; a poll whose cursor was trimmed away resumes from the oldest retained message."""
    relay = make(PULSAR_MAX_MESSAGES_PER_TOPIC="5")
    user = relay.new_user()
    topic = uniq("cap")
    published = [relay.publish(user, topic, {"i": i}) for i in range(7)]
    page = relay.history(user, topic, limit=100)
    assert ids_of(page) == [6, 5, 4, 3, 2]
    assert [m["message_id"] for m in page["messages"]] == [p["message_id"] for p in reversed(published[2:])]
    body = json_body(relay.poll(user, [topic], {topic: published[0]["message_id"]}), 200)
    assert [m["payload"]["i"] for m in body["messages"]] == [2, 3, 4, 5, 6] and body["has_more"] is False
    # Another topic of the same user has its own cap.
    other = uniq("cap2")
    relay.publish(user, other, {"i": 0})
    assert ids_of(relay.history(user, other)) == [0]


def ids_of(page):
    return [m["payload"]["i"] for m in page["messages"]]


@pytest.mark.herald_only(reason="§2.6 [DEFECT]: the reference ignores an unknown cursor (memory) or answers 500 (Valkey)")
def test_history_malformed_cursor(relay, ten):
    user, topic, _ = ten
    assert_detail(relay.get(f"/api/v1/topics/{topic}/messages", user.token, params={"cursor": "garbage"}), 400, "Invalid cursor")
