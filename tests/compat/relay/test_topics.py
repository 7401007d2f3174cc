"""Checklist item 9 (create-or-verify) and §1.3 / §2.5 topic management."""

from __future__ import annotations

import concurrent.futures

import pytest

from relay_compat import UUID4, Z_FORM, assert_detail, find_error, json_body, uniq, validation_errors

TOPIC_KEYS = ["topic_id", "topic_name", "owner_id", "created_at", "description"]


def test_item09_create_or_verify(relay):
    user = relay.new_user()
    name = uniq("jobs")
    client = relay.client()
    assert client.create_or_verify_topic(user.token, name) is None
    assert client.create_or_verify_topic(user.token, name) is None  # exists, owned by the caller: no exception
    r = relay.post("/api/v1/topics", user.token, json={"topic_name": name})
    assert r.status_code == 400, r.text
    assert "already exists" in json_body(r)["detail"]
    assert json_body(r)["detail"] == f"Topic '{name}' already exists for owner {user.user_id}"
    topic = json_body(relay.get(f"/api/v1/topics/{name}", user.token), 200)
    assert topic["owner_id"] == user.user_id
    assert client.whoami(user.token)["user_id"] == user.user_id


def test_create_topic_shape(relay):
    user = relay.new_user()
    name = uniq("made")
    body = json_body(relay.post("/api/v1/topics", user.token, json={"topic_name": name, "description": "d", "is_public": True}), 201)
    assert list(body) == TOPIC_KEYS
    assert UUID4.match(body["topic_id"]) and Z_FORM.match(body["created_at"])
    assert body["topic_name"] == name and body["owner_id"] == user.user_id and body["description"] == "d"
    assert "is_public" not in body
    plain = json_body(relay.post("/api/v1/topics", user.token, json={"topic_name": uniq("plain")}), 201)
    assert plain["description"] is None
    assert json_body(relay.get(f"/api/v1/topics/{name}", user.token), 200) == body
    me = json_body(relay.get("/auth/me", user.token), 200)
    assert sorted(me["owned_topics"]) == sorted([name, plain["topic_name"]])
    listed = json_body(relay.get("/api/v1/topics", user.token), 200)
    assert sorted(t["topic_name"] for t in listed) == sorted([name, plain["topic_name"]])
    assert all(list(t) == TOPIC_KEYS for t in listed)


@pytest.mark.parametrize(
    "name,msg",
    [
        ("a/b", "Value error, Topic must contain only alphanumeric characters, hyphens, and underscores"),
        ("a.b", "Value error, Topic must contain only alphanumeric characters, hyphens, and underscores"),
        ("a b", "Value error, Topic must contain only alphanumeric characters, hyphens, and underscores"),
        ("a:b", None),
        ("a*", None),
        ("a@b", None),
        ("hey!", None),
        ("", "Value error, Topic name must not be empty"),
        ("x" * 256, "Value error, Topic name must be at most 255 characters"),
    ],
)
def test_create_topic_invalid_names(relay, name, msg):
    user = relay.shared_user("topics", ("read", "write"))
    err = find_error(validation_errors(relay.post("/api/v1/topics", user.token, json={"topic_name": name})), ["body", "topic_name"])
    assert err["type"] == "value_error" and err["input"] == name
    if msg:
        assert err["msg"] == msg


def test_create_topic_valid_edge_names(relay):
    user = relay.shared_user("topics", ("read", "write"))
    for name in ("A-z_0-9" + uniq("x"), ("L" + uniq("n")).ljust(255, "z")):
        assert json_body(relay.post("/api/v1/topics", user.token, json={"topic_name": name}), 201)["topic_name"] == name
    long_desc = relay.post("/api/v1/topics", user.token, json={"topic_name": uniq("d"), "description": "x" * 501})
    assert find_error(validation_errors(long_desc), ["body", "description"])["type"] == "string_too_long"


def test_topic_get_update_delete(relay):
    user = relay.new_user()
    name = uniq("crud")
    created = json_body(relay.post("/api/v1/topics", user.token, json={"topic_name": name, "description": "one"}), 201)
    updated = json_body(relay.put(f"/api/v1/topics/{name}", user.token, json={"description": "two"}), 200)
    assert updated == {**created, "description": "two"}
    assert json_body(relay.put(f"/api/v1/topics/{name}", user.token, json={"description": None}), 200)["description"] == "two"
    assert json_body(relay.put(f"/api/v1/topics/{name}", user.token, json={}), 200)["description"] == "two"
    r = relay.delete(f"/api/v1/topics/{name}", user.token)
    assert r.status_code == 204 and r.content == b""
    assert_detail(relay.get(f"/api/v1/topics/{name}", user.token), 404, f"Topic '{name}' not found")
    assert_detail(relay.put(f"/api/v1/topics/{name}", user.token, json={"description": "x"}), 404, f"Topic '{name}' not found")
    assert_detail(relay.delete(f"/api/v1/topics/{name}", user.token), 404, f"Topic '{name}' not found")
    assert name not in json_body(relay.get("/auth/me", user.token), 200)["owned_topics"]


def test_topic_path_not_validated_and_percent_decoded(relay):
    user = relay.shared_user("topics", ("read", "write"))
    assert_detail(relay.get("/api/v1/topics/a%20b", user.token), 404, "Topic 'a b' not found")
    assert_detail(relay.get("/api/v1/topics/a.b/messages", user.token), 404, "Topic 'a.b' not found")


def test_topic_write_not_needed_for_own_topic_admin(relay):
    """PUT/DELETE/list need no `write` (§2.5)."""
    user = relay.new_user()
    name = uniq("ro")
    json_body(relay.post("/api/v1/topics", user.token, json={"topic_name": name}), 201)
    json_body(relay.patch(f"/auth/users/{user.user_id}", relay.admin_token, json={"permissions": []}), 200)
    assert json_body(relay.put(f"/api/v1/topics/{name}", user.token, json={"description": "x"}), 200)["description"] == "x"
    assert [t["topic_name"] for t in json_body(relay.get("/api/v1/topics", user.token), 200)] == [name]
    assert relay.delete(f"/api/v1/topics/{name}", user.token).status_code == 204


def test_topic_stats_admin_only(relay):
    user = relay.shared_user("topics", ("read", "write"))
    assert_detail(relay.get("/api/v1/topics/stats", user.token), 403, "Permission 'admin' required")
    stats = json_body(relay.get("/api/v1/topics/stats", relay.admin_token), 200)
    assert list(stats) == ["total_topics"] and isinstance(stats["total_topics"], int)


def test_topic_named_stats(relay):
    user = relay.new_user()
    json_body(relay.post("/api/v1/topics", user.token, json={"topic_name": "stats"}), 201)
    relay.publish(user, "stats", {"s": 1})
    # GET /api/v1/topics/stats is the admin route, even for a user owning a topic named "stats".
    assert_detail(relay.get("/api/v1/topics/stats", user.token), 403, "Permission 'admin' required")
    assert [m["payload"] for m in relay.history(user, "stats")["messages"]] == [{"s": 1}]
    assert json_body(relay.put("/api/v1/topics/stats", user.token, json={"description": "d"}), 200)["topic_name"] == "stats"
    assert relay.delete("/api/v1/topics/stats", user.token).status_code == 204


def test_permission_routes_are_gone(relay):
    user = relay.shared_user("topics", ("read", "write"))
    name = uniq("perm")
    json_body(relay.post("/api/v1/topics", user.token, json={"topic_name": name}), 201)
    for method in ("GET", "POST", "PUT", "DELETE"):
        assert_detail(relay.request(method, f"/api/v1/topics/{name}/permissions", user.token), 404, "Not Found")
    assert_detail(relay.delete(f"/api/v1/topics/{name}/permissions/{user.user_id}", user.token), 404, "Not Found")


def test_topic_creation_is_atomic(relay):
    user = relay.shared_user("topics", ("read", "write"))
    name = uniq("race")
    token = user.token

    def create(_: int) -> int:
        return relay.post("/api/v1/topics", token, json={"topic_name": name}).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        statuses = sorted(ex.map(create, range(8)))
    assert statuses == [201] + [400] * 7, statuses


def test_delete_keeps_messages(relay):
    """§1.6 [QUIRK]: deleting a topic keeps its messages; re-creating it shows them again."""
    user = relay.shared_user("topics", ("read", "write"))
    name = uniq("keep")
    first = relay.publish(user, name, {"old": True})
    assert relay.delete(f"/api/v1/topics/{name}", user.token).status_code == 204
    assert_detail(relay.get(f"/api/v1/topics/{name}/messages", user.token), 404, f"Topic '{name}' not found")
    json_body(relay.post("/api/v1/topics", user.token, json={"topic_name": name}), 201)
    assert [m["message_id"] for m in relay.history(user, name)["messages"]] == [first["message_id"]]
