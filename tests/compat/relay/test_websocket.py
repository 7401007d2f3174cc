"""Checklist items 24–27 and the WebSocket part of item 8 (§3 WebSocket protocol), with the `websockets` package."""

from __future__ import annotations

import asyncio
import json
import re
import time

import jwt
import pytest

from relay_compat import (
    DEFAULT_ORIGIN,
    JWT_SECRET,
    QUIET,
    Z_FORM,
    json_body,
    uniq,
    ws_expect_silence,
    ws_open,
    ws_ping_fence,
    ws_recv_json,
    ws_rejected_status,
    ws_send_json,
    ws_subscribe,
    ws_subprotocols,
    ws_wait_closed,
)

LIVE_KEYS = ["type", "message_id", "topic", "payload", "timestamp", "metadata"]
SESSION_ID = re.compile(r"^sess_[0-9a-f]{12}$")


def error_frame(code: str, message: str) -> dict:
    return {"type": "error", "code": code, "message": message, "details": None}


async def publish(relay, user, topic, payload, **extra):
    return await asyncio.to_thread(relay.publish, user, topic, payload, **extra)


def ws_user(relay):
    return relay.shared_user("ws", ("read", "write"))


# --------------------------------------------------------------------------
# Item 24: happy path
# --------------------------------------------------------------------------


async def test_item24_happy_path(relay):
    user = ws_user(relay)
    t1, t2 = uniq("w1"), uniq("w2")
    ws = await ws_open(relay, user.token)
    try:
        assert ws.subprotocol == "bearer"
        assert ws.response.headers["Sec-WebSocket-Protocol"] == "bearer"  # the carrier is never echoed
        await ws_send_json(ws, {"type": "subscribe", "topics": [t1, t2], "client_id": "my-client", "offset": "last", "x": 1})
        sub = await ws_recv_json(ws)
        assert list(sub) == ["type", "topics", "session_id", "timestamp"]
        assert sub["type"] == "subscribed" and sub["topics"] == [t1, t2]
        assert SESSION_ID.match(sub["session_id"]) and Z_FORM.match(sub["timestamp"])

        pong = await ws_ping_fence(ws)
        assert list(pong) == ["type", "timestamp"] and Z_FORM.match(pong["timestamp"])

        pub = await publish(relay, user, t1, {"n": 1})
        frame = await ws_recv_json(ws)
        assert list(frame) == LIVE_KEYS
        assert frame == {"type": "message", "message_id": pub["message_id"], "topic": t1, "payload": {"n": 1}, "timestamp": pub["timestamp"], "metadata": None}

        pub = await publish(relay, user, t2, {"n": 2}, metadata={"k": "v"})
        frame = await ws_recv_json(ws)
        assert frame["message_id"] == pub["message_id"] and frame["topic"] == t2 and frame["metadata"] == {"k": "v"}

        bulk = await asyncio.to_thread(
            relay.bulk, user, [{"topic": t1, "payload": {"b": 0}}, {"topic": t2, "payload": {"b": 1}}, {"topic": t1, "payload": {"b": 2}}]
        )
        frames = [await ws_recv_json(ws) for _ in range(3)]
        assert [f["message_id"] for f in frames] == [r["message_id"] for r in bulk["results"]]
        assert [(f["topic"], f["payload"]) for f in frames] == [(t1, {"b": 0}), (t2, {"b": 1}), (t1, {"b": 2})]

        # Unsubscribe from t2: nothing is sent for it, no further frames for t2, pings still answered.
        await ws_send_json(ws, {"type": "unsubscribe", "topics": [t2, uniq("never")]})
        await ws_ping_fence(ws)
        await publish(relay, user, t2, {"gone": True})
        pub = await publish(relay, user, t1, {"still": True})
        frame = await ws_recv_json(ws)
        assert frame["message_id"] == pub["message_id"], frame
        await ws_send_json(ws, {"type": "unsubscribe", "topics": [t1]})
        await ws_ping_fence(ws)
        await publish(relay, user, t1, {"gone": True})
        await ws_ping_fence(ws)
        await ws_expect_silence(ws)
    finally:
        await ws.close()


async def test_item24_subscribe_variants(relay):
    user = ws_user(relay)
    t = uniq("dup")
    before = await publish(relay, user, t, {"old": True})
    # Subprotocols in either order; duplicates echoed; offset "earliest" accepted and ignored (no replay).
    ws = await ws_open(relay, subprotocols=[f"bearer.{user.token}", "bearer"])
    try:
        assert ws.subprotocol == "bearer"
        await ws_send_json(ws, {"type": "subscribe", "topics": [t, t], "client_id": "c" * 255, "offset": "earliest"})
        sub = await ws_recv_json(ws)
        assert sub["type"] == "subscribed" and sub["topics"] == [t, t]
        await ws_ping_fence(ws)  # nothing replayed before the pong
        pub = await publish(relay, user, t, {"new": True})
        frame = await ws_recv_json(ws)
        assert frame["message_id"] == pub["message_id"] != before["message_id"]
        await ws_ping_fence(ws)  # one frame per message per connection, even with the topic listed twice
    finally:
        await ws.close()


async def test_item24_allowed_origin_and_fan_out(relay):
    """A browser-like client with an allowed Origin is accepted; every subscribed connection gets its frame."""
    user = ws_user(relay)
    t = uniq("fan")
    a = await ws_open(relay, user.token, origin=DEFAULT_ORIGIN)
    b = await ws_open(relay, user.token)
    try:
        await ws_subscribe(a, [t])
        await ws_subscribe(b, [t])
        pubs = [await publish(relay, user, t, {"i": i}) for i in range(5)]
        for ws in (a, b):
            got = [(await ws_recv_json(ws))["message_id"] for _ in range(5)]
            assert got == [p["message_id"] for p in pubs]
    finally:
        await a.close()
        await b.close()


# --------------------------------------------------------------------------
# Item 25: errors
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "first",
    [
        {"type": "subscribe", "topics": ["ok"]},  # no client_id (the checklist's case)
        "not json",
        {"type": "ping"},
        {"type": "subscribe", "topics": [], "client_id": "c"},
        {"type": "subscribe", "topics": [f"t{i}" for i in range(51)], "client_id": "c"},
        {"type": "subscribe", "topics": ["bad topic!"], "client_id": "c"},
        {"type": "subscribe", "client_id": "c"},
        {"type": "subscribe", "topics": ["ok"], "client_id": ""},
        {"type": "subscribe", "topics": ["ok"], "client_id": "c" * 256},
    ],
    ids=["no-client-id", "not-json", "ping-first", "no-topics", "51-topics", "bad-topic", "topics-missing", "empty-client-id", "long-client-id"],
)
async def test_item25_subscribe_errors(relay, first):
    user = ws_user(relay)
    ws = await ws_open(relay, user.token)
    try:
        if isinstance(first, str):
            await ws.send(first)
        else:
            await ws_send_json(ws, first)
        code, reason, frames = await ws_wait_closed(ws, 5)
        assert [json.loads(f) for f in frames] == [error_frame("SUBSCRIPTION_ERROR", "Failed to subscribe")]
        assert code == 1000 and reason == ""
    finally:
        await ws.close()


async def test_item25_errors_after_subscribe(relay):
    user = ws_user(relay)
    t = uniq("err")
    ws = await ws_open(relay, user.token)
    try:
        await ws_subscribe(ws, [t])
        cases = [
            ({"type": "bogus"}, error_frame("UNKNOWN_MESSAGE_TYPE", "Unknown message type: bogus")),
            ({"foo": 1}, error_frame("UNKNOWN_MESSAGE_TYPE", "Unknown message type: None")),
            ({"type": "subscribe", "topics": [uniq("more")], "client_id": "c"}, error_frame("UNKNOWN_MESSAGE_TYPE", "Unknown message type: subscribe")),
            ("not json", error_frame("PROCESSING_ERROR", "processing error")),
            ([1, 2], error_frame("PROCESSING_ERROR", "processing error")),
            ({"type": "ack"}, error_frame("PROCESSING_ERROR", "processing error")),
            ({"type": "unsubscribe", "topics": []}, error_frame("PROCESSING_ERROR", "processing error")),
            ({"type": "unsubscribe", "topics": ["bad topic!"]}, error_frame("PROCESSING_ERROR", "processing error")),
        ]
        for sent, expected in cases:
            await (ws.send(sent) if isinstance(sent, str) else ws_send_json(ws, sent))
            frame = await ws_recv_json(ws)
            assert list(frame) == ["type", "code", "message", "details"]
            assert frame == expected, (sent, frame)
        # ack is accepted and ignored: the next frame is the pong.
        await ws_send_json(ws, {"type": "ack", "message_id": "x"})
        await ws_ping_fence(ws)
        # Still subscribed to the first topic only: the rejected second subscribe added nothing.
        pub = await publish(relay, user, t, {"alive": True})
        assert (await ws_recv_json(ws))["message_id"] == pub["message_id"]
    finally:
        await ws.close()


async def test_item25_binary_frames(relay):
    """Client→server binary frames are errors (§3.2): SUBSCRIPTION_ERROR + close 1000 as the first frame,
    PROCESSING_ERROR (socket stays open) after subscribing."""
    user = ws_user(relay)
    ws = await ws_open(relay, user.token)
    try:
        await ws.send(json.dumps({"type": "subscribe", "topics": [uniq("bin")], "client_id": "c"}).encode())
        code, reason, frames = await ws_wait_closed(ws, 5)
        assert [json.loads(f) for f in frames] == [error_frame("SUBSCRIPTION_ERROR", "Failed to subscribe")]
        assert (code, reason) == (1000, "")
    finally:
        await ws.close()
    ws = await ws_open(relay, user.token)
    try:
        await ws_subscribe(ws, [uniq("bin")])
        await ws.send(b'{"type":"ping"}')
        assert await ws_recv_json(ws) == error_frame("PROCESSING_ERROR", "processing error")
        await ws_ping_fence(ws)
    finally:
        await ws.close()


@pytest.mark.herald_only(
    reason="§3.2 says the first frame's `type` must be exactly `subscribe`; the reference defaults an absent `type` to "
    "`subscribe` and accepts the frame"
)
async def test_item25_subscribe_without_type(relay):
    user = ws_user(relay)
    ws = await ws_open(relay, user.token)
    try:
        await ws_send_json(ws, {"topics": [uniq("nt")], "client_id": "c"})
        code, reason, frames = await ws_wait_closed(ws, 5)
        assert [json.loads(f) for f in frames] == [error_frame("SUBSCRIPTION_ERROR", "Failed to subscribe")]
        assert (code, reason) == (1000, "")
    finally:
        await ws.close()


# --------------------------------------------------------------------------
# Item 26 (and item 8): handshake rejections
# --------------------------------------------------------------------------


async def test_item26_rejections(relay):
    user = ws_user(relay)
    token = user.token
    now = int(time.time())
    expired = jwt.encode({"sub": user.user_id, "username": user.username, "exp": now - 10, "iat": now - 610}, JWT_SECRET, algorithm="HS256")
    assert await ws_rejected_status(relay) == 403  # no subprotocol
    assert await ws_rejected_status(relay, subprotocols=[f"bearer.{token}"]) == 403
    assert await ws_rejected_status(relay, subprotocols=["bearer"]) == 403
    assert await ws_rejected_status(relay, subprotocols=["bearer", "bearer.not-a-jwt"]) == 403
    assert await ws_rejected_status(relay, subprotocols=ws_subprotocols(expired)) == 403
    assert await ws_rejected_status(relay, token, origin="http://evil.example") == 403
    # Query tokens are off by default.
    assert await ws_rejected_status(relay, subprotocols=None, query=f"?token={token}") == 403
    # After all those, the same user still connects.
    ws = await ws_open(relay, token, origin=DEFAULT_ORIGIN)
    await ws.close()


async def test_item08_item26_user_checks(relay):
    writer = await asyncio.to_thread(relay.new_user, ("write",), "w")
    assert await ws_rejected_status(relay, writer.token) == 403  # no `read`
    user = await asyncio.to_thread(relay.new_user)
    token = user.token
    await asyncio.to_thread(lambda: json_body(relay.patch(f"/auth/users/{user.user_id}", relay.admin_token, json={"is_active": False}), 200))
    assert await ws_rejected_status(relay, token) == 403  # inactive
    await asyncio.to_thread(lambda: json_body(relay.patch(f"/auth/users/{user.user_id}", relay.admin_token, json={"is_active": True}), 200))
    ws = await ws_open(relay, token)
    await ws.close()
    assert (await asyncio.to_thread(relay.delete, f"/auth/users/{user.user_id}", relay.admin_token)).status_code == 204
    assert await ws_rejected_status(relay, token) == 403  # user gone


async def test_item26_connection_cap(relay):
    user = await asyncio.to_thread(relay.new_user)
    open_: list = []
    try:
        for _ in range(10):
            open_.append(await ws_open(relay, user.token))
        assert await ws_rejected_status(relay, user.token) == 403
        # Another user is not affected.
        other = await ws_open(relay, ws_user(relay).token)
        await other.close()
        # Closing one frees a slot (the server decrements when it sees the close).
        await open_.pop().close()
        deadline = time.monotonic() + 5
        while True:
            try:
                open_.append(await ws_open(relay, user.token))
                break
            except Exception:
                assert time.monotonic() < deadline, "the slot of a closed connection was not freed"
                await asyncio.sleep(0.1)
    finally:
        for ws in open_:
            await ws.close()


@pytest.mark.herald_only(reason="§3.1 [DEFECT]: the reference does not consult the logout deny-list on /ws")
async def test_item26_deny_listed_token(relay):
    user = await asyncio.to_thread(relay.new_user)
    fresh = (await asyncio.to_thread(relay.login_ok, user.username, user.password))["access_token"]
    assert (await asyncio.to_thread(relay.post, "/auth/logout", fresh)).status_code == 204
    relay.server.tokens.pop(user.username, None)
    assert await ws_rejected_status(relay, fresh) == 403


@pytest.mark.herald_only(reason="§3.1 [HERALD]: PULSAR_WS_ALLOW_QUERY_TOKEN is a Herald addition for the benchmark")
async def test_item26_query_token_mode(make):
    relay = await asyncio.to_thread(make, PULSAR_WS_ALLOW_QUERY_TOKEN="true")
    user = await asyncio.to_thread(relay.new_user)
    ws = await ws_open(relay, subprotocols=None, query=f"?token={user.token}")
    try:
        assert ws.subprotocol is None
        assert "Sec-WebSocket-Protocol" not in ws.response.headers
        t = uniq("q")
        await ws_subscribe(ws, [t])
        pub = await publish(relay, user, t, {"q": 1})
        assert (await ws_recv_json(ws))["message_id"] == pub["message_id"]
    finally:
        await ws.close()
    # With both, the subprotocol wins (and is negotiated).
    ws = await ws_open(relay, user.token, query="?token=not-a-jwt")
    assert ws.subprotocol == "bearer"
    await ws.close()
    assert await ws_rejected_status(relay, subprotocols=None, query="?token=not-a-jwt") == 403
    assert await ws_rejected_status(relay, subprotocols=None) == 403


# --------------------------------------------------------------------------
# Item 27: idle timeouts (PULSAR_WS_IDLE_SECONDS=5), run concurrently
# --------------------------------------------------------------------------


@pytest.mark.slow
async def test_item27_idle_timeouts(make):
    relay = await asyncio.to_thread(make, PULSAR_WS_IDLE_SECONDS="5")
    user = await asyncio.to_thread(relay.new_user)
    token = user.token

    async def before_subscribe():
        ws = await ws_open(relay, token)
        t0 = time.monotonic()
        code, reason, frames = await ws_wait_closed(ws, 12)
        return code, reason, frames, time.monotonic() - t0

    async def silent_while_server_pushes():
        ws = await ws_open(relay, token)
        t = uniq("idle")
        await ws_subscribe(ws, [t])
        t0 = time.monotonic()

        async def pusher():
            while True:
                await asyncio.sleep(2)
                await publish(relay, user, t, {"tick": time.monotonic() - t0})

        task = asyncio.create_task(pusher())
        try:
            code, reason, frames = await ws_wait_closed(ws, 12)
        finally:
            task.cancel()
        return code, reason, frames, time.monotonic() - t0

    async def protocol_pings_only():
        ws = await ws_open(relay, token)
        await ws_subscribe(ws, [uniq("idle")])
        t0 = time.monotonic()

        async def pinger():
            while True:
                await asyncio.sleep(1)
                await ws.ping()

        task = asyncio.create_task(pinger())
        try:
            code, reason, frames = await ws_wait_closed(ws, 12)
        finally:
            task.cancel()
        return code, reason, frames, time.monotonic() - t0

    async def app_pings_then_silence():
        ws = await ws_open(relay, token)
        await ws_subscribe(ws, [uniq("idle")])
        for _ in range(3):
            await asyncio.sleep(2)
            await ws_ping_fence(ws)
        t0 = time.monotonic()  # last client data frame
        code, reason, frames = await ws_wait_closed(ws, 12)
        return code, reason, frames, time.monotonic() - t0

    (c1, r1, f1, e1), (c2, r2, f2, e2), (c3, r3, f3, e3), (c4, r4, f4, e4) = await asyncio.gather(
        before_subscribe(), silent_while_server_pushes(), protocol_pings_only(), app_pings_then_silence()
    )
    assert (c1, r1, f1) == (1011, "Idle timeout before subscribe", []) and 4.0 <= e1 <= 7.5, (c1, r1, f1, e1)
    assert (c2, r2) == (1011, "Idle timeout") and 4.0 <= e2 <= 7.5, (c2, r2, e2)
    assert len(f2) >= 1 and all(json.loads(f)["type"] == "message" for f in f2), f2
    assert (c3, r3, f3) == (1011, "Idle timeout", []) and 4.0 <= e3 <= 7.5, (c3, r3, f3, e3)
    assert (c4, r4, f4) == (1011, "Idle timeout", []) and 4.0 <= e4 <= 7.5, (c4, r4, f4, e4)


async def test_ws_client_close_leaves_no_subscription(relay):
    """A client that closes right after subscribing leaves no subscription behind: publishing still works."""
    user = ws_user(relay)
    t = uniq("gone")
    ws = await ws_open(relay, user.token)
    await ws_subscribe(ws, [t])
    await ws.close()
    await asyncio.sleep(QUIET)
    await publish(relay, user, t, {"after": "close"})
