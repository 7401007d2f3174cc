"""Checklist item 10 (§1.3, §4.8): every topic-bearing request resolves to (bearer user_id, name)."""

from __future__ import annotations

import asyncio
import concurrent.futures

from relay_compat import assert_detail, json_body, uniq, wait_until, ws_open, ws_recv_json, ws_subscribe

executor = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="ns")


def test_item10_namespacing(relay):
    admin = relay.admin()
    user = relay.new_user()
    jobs = uniq("jobs")
    mine = json_body(relay.post("/api/v1/topics", user.token, json={"topic_name": jobs}), 201)
    theirs = json_body(relay.post("/api/v1/topics", admin.token, json={"topic_name": jobs}), 201)
    assert mine["owner_id"] == user.user_id and theirs["owner_id"] == admin.user_id
    assert mine["topic_id"] != theirs["topic_id"]

    async def scenario() -> tuple[dict, dict, list]:
        ws = await ws_open(relay, user.token)
        try:
            await ws_subscribe(ws, [jobs])
            poll = executor.submit(relay.poll, user, [jobs], None, 10)
            await asyncio.to_thread(
                wait_until,
                lambda: json_body(relay.get("/messages/poll/stats", user.token), 200)["topic_subscriber_counts"].get(f"{user.user_id}/{jobs}"),
                5,
            )
            # A's message first: if it leaked, the WebSocket and the poll would see it before U's.
            a_pub = await asyncio.to_thread(relay.publish, admin, jobs, {"from": "A"})
            u_pub = await asyncio.to_thread(relay.publish, user, jobs, {"from": "U"})
            frame = await ws_recv_json(ws)
            polled = await asyncio.to_thread(poll.result, 15)
            return a_pub, u_pub, [frame, json_body(polled, 200)]
        finally:
            await ws.close()

    a_pub, u_pub, (frame, polled) = asyncio.run(scenario())
    assert frame["message_id"] == u_pub["message_id"] and frame["payload"] == {"from": "U"}
    assert [m["payload"] for m in polled["messages"]] == [{"from": "U"}]

    assert [m["payload"] for m in relay.history(user, jobs)["messages"]] == [{"from": "U"}]
    assert [m["payload"] for m in relay.history(admin, jobs)["messages"]] == [{"from": "A"}]
    # Catch-up with U's cursor never includes A's message either.
    # A well-formed cursor older than everything: both servers replay the whole retained stream.
    catch = json_body(relay.poll(user, [jobs], {jobs: "0-0"}), 200)
    assert [m["payload"] for m in catch["messages"]] == [{"from": "U"}]

    listed = json_body(relay.get("/api/v1/topics", user.token), 200)
    assert listed and all(t["owner_id"] == user.user_id for t in listed)
    assert admin.user_id not in {t["owner_id"] for t in listed}
    # Admins are not special: a topic only U owns is not found for the admin.
    only_u = uniq("only-u")
    relay.publish(user, only_u, {"x": 1})
    assert_detail(relay.get(f"/api/v1/topics/{only_u}", admin.token), 404, f"Topic '{only_u}' not found")
    assert_detail(relay.get(f"/api/v1/topics/{only_u}/messages", admin.token), 404, f"Topic '{only_u}' not found")
    assert_detail(relay.delete(f"/api/v1/topics/{only_u}", admin.token), 404, f"Topic '{only_u}' not found")
    # owned_topics mirrors each user's own set.
    assert jobs in json_body(relay.get("/auth/me", user.token), 200)["owned_topics"]
    assert only_u not in json_body(relay.get("/auth/me", admin.token), 200)["owned_topics"]


def test_same_name_auto_created_per_user(relay):
    a = relay.new_user()
    b = relay.new_user()
    name = uniq("shared")
    relay.publish(a, name, {"who": "a"})
    relay.publish(b, name, {"who": "b"})
    ta = json_body(relay.get(f"/api/v1/topics/{name}", a.token), 200)
    tb = json_body(relay.get(f"/api/v1/topics/{name}", b.token), 200)
    assert (ta["owner_id"], tb["owner_id"]) == (a.user_id, b.user_id)
    assert [m["payload"] for m in relay.history(a, name)["messages"]] == [{"who": "a"}]
    assert [m["payload"] for m in relay.history(b, name)["messages"]] == [{"who": "b"}]
