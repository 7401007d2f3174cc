"""Herald keeps the relay's state in its data directory: a restart on the same data dir and port keeps history,
users, topics and refresh tokens, and new message ids sort after the old ones (cf. checklist item 28, which asks the
same of the Valkey backend). The reference's memory backend loses everything on restart (§1.6), so Herald only."""

from __future__ import annotations

import pytest

from relay_compat import NO_LIMITS, id_order_key, json_body, uniq


@pytest.mark.herald_only(reason="the reference's in-memory backend does not survive a restart (§1.6)")
def test_restart_keeps_state(make):
    relay = make(NO_LIMITS, private_=True)
    user = relay.new_user()
    topic, made = uniq("durable"), uniq("made")
    published = [relay.publish(user, topic, {"i": i}, metadata={"k": str(i)}) for i in range(5)]
    json_body(relay.post("/api/v1/topics", user.token, json={"topic_name": made, "description": "kept"}), 201)
    login = relay.login_ok(user.username, user.password)
    rotated_away = login["refresh_token"]
    live_rt = json_body(relay.post("/auth/token/refresh", json={"refresh_token": rotated_away}), 200)["refresh_token"]
    before_history = relay.history(user, topic, order="asc")
    before_topics = sorted(json_body(relay.get("/api/v1/topics", user.token), 200), key=lambda t: t["topic_name"])
    before_me = json_body(relay.get("/auth/me", user.token), 200)
    old_token = user.token
    port = relay.port

    relay.server.restart()
    assert relay.port == port

    # Access tokens stay valid (same secret, user still there); users can log in with their password.
    assert json_body(relay.get("/auth/me", old_token), 200) == before_me
    json_body(relay.login(user.username, user.password), 200)
    assert relay.history(user, topic, order="asc") == before_history
    assert sorted(json_body(relay.get("/api/v1/topics", user.token), 200), key=lambda t: t["topic_name"]) == before_topics
    # Refresh tokens: the live one rotates, the rotated-away one is still rejected.
    assert relay.post("/auth/token/refresh", json={"refresh_token": rotated_away}).status_code == 401
    # (the replay above revoked the chain, as before the restart; a fresh login shows refresh still works)
    assert relay.post("/auth/token/refresh", json={"refresh_token": live_rt}).status_code == 401
    fresh = relay.login_ok(user.username, user.password)["refresh_token"]
    json_body(relay.post("/auth/token/refresh", json={"refresh_token": fresh}), 200)

    new = relay.publish(user, topic, {"i": 5})
    assert id_order_key(new["message_id"]) > max(id_order_key(p["message_id"]) for p in published)
    assert [m["payload"]["i"] for m in relay.history(user, topic, order="asc")["messages"]] == list(range(6))
    # Catch-up from a pre-restart cursor.
    body = json_body(relay.poll(user, [topic], {topic: published[3]["message_id"]}), 200)
    assert [m["payload"]["i"] for m in body["messages"]] == [4, 5]


@pytest.mark.herald_only(reason="the reference's in-memory backend does not survive a restart (§1.6)")
def test_restart_keeps_refresh_token(make):
    relay = make(NO_LIMITS, private_=True)
    user = relay.new_user()
    rt = relay.login_ok(user.username, user.password)["refresh_token"]
    relay.server.restart()
    body = relay.client().exchange_refresh_token(rt)
    assert json_body(relay.get("/auth/me", body["access_token"]), 200)["user_id"] == user.user_id
