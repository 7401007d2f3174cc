"""Bad input on both transports (compat/ensync.md §3.0, §3.2, §3.4, §4.2–§4.4, §7.10).

WebSocket: every frame -- malformed, unknown, missing fields, wrong CLIENT_ID, a ~5 MB payload, binary -- gets
exactly one reply (checked by sending a sentinel command right after it: the next two frames must be the expected
reply and the sentinel's reply), and another socket's session is not disturbed.

gRPC: domain failures are ``success=false`` with Herald's text and status OK; ``Subscribe`` with an unknown client id
ends with UNAUTHENTICATED.
"""

from __future__ import annotations

import base64

import grpc
import pytest

from ensync_compat import record_json
from herald._generated import ensync_pb2 as pb
from herald.events import crypto


def _payload_for(ident, value) -> str:
    return crypto.encrypt_payload(value, ident.public_key)


# --------------------------------------------------------------------------
# WebSocket
# --------------------------------------------------------------------------


async def test_ws_bad_frames_one_reply_each(clients, ids):
    A, B, C, X = ids["A"], ids["B"], ids["C"], ids["X"]
    victim_name = "bad/ws/victim"

    # Another socket with a live session and subscription, to check it is not disturbed.
    victim = await clients.raw_ws()
    victim_cid = await victim.conn(C)
    assert await victim.command(f"SUB;CLIENT_ID=:{victim_cid};EVENT_NAME=:{victim_name}") == "+PASS:subscribed"

    ws = await clients.raw_ws()

    async def check(frame, expect, sentinel: str, sentinel_reply: str) -> None:
        await ws.send(frame)
        await ws.send(sentinel)
        first = await ws.recv_reply()
        second = await ws.recv_reply()
        if callable(expect):
            assert expect(first), (frame if isinstance(frame, bytes) else frame[:120], first[:200])
        else:
            assert first == expect, (frame if isinstance(frame, bytes) else frame[:120], first[:200])
        assert second == sentinel_reply, f"more than one reply to {frame[:120]!r}: {second[:200]}"

    def fail(reply: str) -> bool:
        return reply.startswith("-FAIL:") and len(reply) > len("-FAIL:") and "\n" not in reply

    # Before CONN: the sentinel is an unknown command (everything else is "not authenticated").
    pre = ("FOO", "-FAIL:unknown command FOO")
    await check(f"SUB;CLIENT_ID=:{victim_cid};EVENT_NAME=:x", "-FAIL:not authenticated", *pre)
    await check("PUB;CLIENT_ID=:x;EVENT_NAME=:n;PAYLOAD=:p;DELIVERY_TO=:d", "-FAIL:not authenticated", *pre)
    await check("CONN", fail, *pre)  # no ACCESS_KEY
    await check("CONN;ACCESS_KEY=:wrong-key", "-FAIL:invalid access key", *pre)
    await check("", lambda r: r.startswith("-FAIL:unknown command"), *pre)
    await ws.send("PONG")  # no reply: the next frame answers the command after it
    assert await ws.command("FOO") == "-FAIL:unknown command FOO"

    cid = await ws.conn(B)
    assert cid != victim_cid
    sent = (f"CONTINUE;CLIENT_ID=:{cid};EVENT_NAME=:bad/ws/sentinel", "+PASS:continued")

    cases: list[tuple[object, object]] = [
        ("CONN;ACCESS_KEY=:key-B", "-FAIL:already authenticated"),
        # malformed / unknown
        ("garbage without any separator", "-FAIL:unknown command garbage without any separator"),
        (";;;", lambda r: r.startswith("-FAIL:unknown command")),
        (f"sub;CLIENT_ID=:{cid};EVENT_NAME=:x", "-FAIL:unknown command sub"),
        (f"FOO;CLIENT_ID=:{cid}", "-FAIL:unknown command FOO"),
        (f"ROLLBACK;CLIENT_ID=:{cid};EVENT_IDEM=:1-0000000000000000;BLOCK=:1", "-FAIL:ROLLBACK not supported"),
        ("PING", "-FAIL:unknown command PING"),
        # missing fields
        (f"SUB;CLIENT_ID=:{cid}", fail),
        (f"UNSUB;CLIENT_ID=:{cid}", fail),
        (f"PUB;CLIENT_ID=:{cid};EVENT_NAME=:bad/ws;DELIVERY_TO=:{C.public_key}", fail),
        (f"PUB;CLIENT_ID=:{cid};EVENT_NAME=:bad/ws;PAYLOAD=:eyJ9", fail),
        (f"PUB;CLIENT_ID=:{cid};PAYLOAD=:eyJ9;DELIVERY_TO=:{C.public_key}", fail),
        (f"ACK;CLIENT_ID=:{cid};EVENT_NAME=:bad/ws", fail),
        (f"DEFER;CLIENT_ID=:{cid};EVENT_IDEM=:1-0000000000000000;EVENT_NAME=:bad/ws", fail),
        (f"DISCARD;CLIENT_ID=:{cid};EVENT_NAME=:bad/ws", fail),
        (f"REPLAY;CLIENT_ID=:{cid}", fail),
        (f"PAUSE;CLIENT_ID=:{cid}", fail),
        # wrong or missing CLIENT_ID (including the other socket's)
        ("SUB;CLIENT_ID=:not-my-client;EVENT_NAME=:bad/ws", "-FAIL:invalid client id"),
        (f"SUB;CLIENT_ID=:{victim_cid};EVENT_NAME=:{victim_name}", "-FAIL:invalid client id"),
        (f"UNSUB;CLIENT_ID=:{victim_cid};EVENT_NAME=:{victim_name}", "-FAIL:invalid client id"),
        ("SUB;EVENT_NAME=:bad/ws", "-FAIL:invalid client id"),
        (f"PAUSE;CLIENT_ID=:{cid}x;EVENT_NAME=:bad/ws;REASON=:", "-FAIL:invalid client id"),
        # domain failures
        (f"PUB;CLIENT_ID=:{cid};EVENT_NAME=:bad/ws;PAYLOAD=:eyJ9;DELIVERY_TO=:abc;METADATA=:{{}}", "-FAIL:invalid recipient"),
        (
            f"PUB;CLIENT_ID=:{cid};EVENT_NAME=:bad/ws;PAYLOAD=:eyJ9;DELIVERY_TO=:{X.public_key};METADATA=:{{}}",
            "-FAIL:recipient not found",
        ),
        (
            f"PUB;CLIENT_ID=:{cid};EVENT_NAME=:bad/ws;PAYLOAD=:eyJ9;DELIVERY_TO=:{C.public_key};METADATA=:{{not json",
            "-FAIL:invalid metadata",
        ),
        (f"ACK;CLIENT_ID=:{cid};EVENT_IDEM=:no-such-event;BLOCK=:None;EVENT_NAME=:bad/ws", "-FAIL:event not found"),
        (f"DEFER;CLIENT_ID=:{cid};EVENT_IDEM=:1-0000000000000000;EVENT_NAME=:bad/ws;DELAY=:abc;REASON=:", "-FAIL:invalid delay"),
        (f"DEFER;CLIENT_ID=:{cid};EVENT_IDEM=:1-0000000000000000;EVENT_NAME=:bad/ws;DELAY=:-5;REASON=:", "-FAIL:invalid delay"),
        (f"DEFER;CLIENT_ID=:{cid};EVENT_IDEM=:no-such-event;EVENT_NAME=:bad/ws;DELAY=:1500.0;REASON=:", "-FAIL:event not found"),
        (f"DISCARD;CLIENT_ID=:{cid};EVENT_IDEM=:no-such-event;EVENT_NAME=:bad/ws;REASON=:x", "-FAIL:event not found"),
        (f"REPLAY;CLIENT_ID=:{cid};EVENT_IDEM=:no-such-event;EVENT_NAME=:bad/ws", "-FAIL:event not found"),
        # a ~5 MB payload (the server reads frames of at least 4 MiB; the event limit is 1,000,000 bytes)
        (
            f"PUB;CLIENT_ID=:{cid};EVENT_NAME=:bad/ws;PAYLOAD=:{'A' * 5_000_000};DELIVERY_TO=:{C.public_key};METADATA=:{{}}",
            "-FAIL:payload too large",
        ),
        # binary frames are read as UTF-8 text
        (f"PAUSE;CLIENT_ID=:{cid};EVENT_NAME=:bad/ws/bin;REASON=:".encode(), "+PASS:paused"),
        (b"FOO", "-FAIL:unknown command FOO"),
        (b"\xff\xfe;CLIENT_ID=:x", lambda r: r.startswith("-FAIL:unknown command")),
    ]
    for frame, expect in cases:
        await check(frame, expect, *sent)

    # The attacking socket still works ...
    assert await ws.command(f"CONTINUE;CLIENT_ID=:{cid};EVENT_NAME=:bad/ws/bin") == "+PASS:continued"
    await ws.silent(0.3)
    # ... and the other socket's session, subscription and replies are intact.
    a = await clients.raw()
    a_cid = await a.connect(A)
    r, code = await a.unary(
        "PublishMessage",
        pb.PublishMessageRequest(
            client_id=a_cid, message_name=victim_name, payload=_payload_for(C, {"v": 1}), delivery_to=C.public_key, metadata="{}"
        ),
    )
    assert code == grpc.StatusCode.OK and r.success, r
    record = record_json(await victim.recv())
    assert record["idem"] == r.message_idem and record["name"] == victim_name and record["sender"] == A.public_key
    assert await victim.command(f"ACK;CLIENT_ID=:{victim_cid};EVENT_IDEM=:{r.message_idem};BLOCK=:{record['block']};EVENT_NAME=:{victim_name}") == "+PASS:acknowledged"
    assert await victim.command(f"PAUSE;CLIENT_ID=:{victim_cid};EVENT_NAME=:{victim_name};REASON=:") == "+PASS:paused"
    await victim.silent(0.3)


async def test_ws_path_variants(clients, ids):
    """``//message`` (what the SDK makes of a URL with a trailing slash) is accepted too (§1.3)."""
    ws = await clients.raw_ws("//message")
    await ws.conn(ids["B"])


async def test_ws_oversized_but_valid_publish_boundary(clients, ids):
    """payload + metadata of exactly 1,000,000 bytes is accepted; one byte more is ``payload too large`` (§7.10)."""
    B, C = ids["B"], ids["C"]
    ws = await clients.raw_ws()
    cid = await ws.conn(B)
    payload = "A" * 999_992  # valid b64 text
    for metadata, expect in (('{"a":12}', "+PASS:"), ('{"a":123}', "-FAIL:payload too large")):
        reply = await ws.command(
            f"PUB;CLIENT_ID=:{cid};EVENT_NAME=:bad/ws/limit;PAYLOAD=:{payload};DELIVERY_TO=:{C.public_key};METADATA=:{metadata}"
        )
        assert reply.startswith(expect), (len(payload) + len(metadata), reply[:100])


# --------------------------------------------------------------------------
# gRPC
# --------------------------------------------------------------------------

UNKNOWN = "no-such-client-0000000000000000000000000000"


async def test_grpc_unknown_client_id(clients, ids):
    C = ids["C"]
    raw = await clients.raw()
    name = "bad/grpc/unknown-client"
    calls = [
        ("PublishMessage", pb.PublishMessageRequest(client_id=UNKNOWN, message_name=name, payload="eyJ9", delivery_to=C.public_key, metadata="{}"), "error_message"),
        ("AcknowledgeMessage", pb.AcknowledgeRequest(client_id=UNKNOWN, message_idem="1-0000000000000000", message_name=name, partition_block=1), "message"),
        ("DeferMessage", pb.DeferRequest(client_id=UNKNOWN, message_idem="1-0000000000000000", message_name=name, delay_ms=1000), "message"),
        ("DiscardMessage", pb.DiscardRequest(client_id=UNKNOWN, message_idem="1-0000000000000000", message_name=name), "message"),
        ("ReplayMessage", pb.ReplayRequest(client_id=UNKNOWN, message_idem="1-0000000000000000", message_name=name), "message"),
        ("PauseMessages", pb.PauseRequest(client_id=UNKNOWN, message_name=name), "message"),
        ("ContinueMessages", pb.ContinueRequest(client_id=UNKNOWN, message_name=name), "message"),
        ("Unsubscribe", pb.UnsubscribeRequest(client_id=UNKNOWN, message_name=name), "message"),
        ("PublishMessage", pb.PublishMessageRequest(client_id="", message_name=name, payload="eyJ9", delivery_to=C.public_key), "error_message"),
    ]
    for method, request, text_field in calls:
        resp, code = await raw.unary(method, request)
        assert code == grpc.StatusCode.OK, (method, code)
        assert resp.success is False, method
        assert getattr(resp, text_field) == "unknown client", (method, resp)

    resp, code = await raw.unary("Heartbeat", pb.HeartbeatRequest(client_id=UNKNOWN))
    assert code == grpc.StatusCode.OK and resp.success is False

    resp, code = await raw.unary("Connect", pb.ConnectRequest(access_key="no-such-key"))
    assert code == grpc.StatusCode.OK
    assert (resp.success, resp.client_id, resp.client_hash, resp.error_message) == (False, "", "", "invalid access key")
    resp, code = await raw.unary("Connect", pb.ConnectRequest())
    assert code == grpc.StatusCode.OK and resp.success is False

    stream = raw.subscribe(UNKNOWN, name)
    assert await stream.ended() == grpc.StatusCode.UNAUTHENTICATED
    assert stream.messages == []


async def test_grpc_bad_publish(clients, ids):
    A, C, X = ids["A"], ids["C"], ids["X"]
    raw = await clients.raw()
    cid = await raw.connect(A)
    name = "bad/grpc/publish"
    good = _payload_for(C, {"ok": 1})

    def req(**kw):
        base = dict(client_id=cid, message_name=name, payload=good, delivery_to=C.public_key, metadata="{}")
        base.update(kw)
        return pb.PublishMessageRequest(**base)

    cases = [
        (req(delivery_to="abc"), "invalid recipient"),
        (req(delivery_to=""), "invalid recipient"),
        (req(delivery_to=base64.b64encode(b"\x01" * 31).decode()), "invalid recipient"),
        (req(delivery_to=base64.b64encode(b"\x01" * 33).decode()), "invalid recipient"),
        (req(delivery_to="not base64 at all!"), "invalid recipient"),
        (req(delivery_to=X.public_key), "recipient not found"),
        (req(metadata="{not json"), "invalid metadata"),
        (req(metadata="{\"a\": 1"), "invalid metadata"),
        (req(payload="A" * 1_000_000, metadata="{}"), "payload too large"),
        (req(payload="A" * 999_992, metadata='{"a":123}'), "payload too large"),  # 1,000,001 bytes
    ]
    for request, text in cases:
        resp, code = await raw.unary("PublishMessage", request)
        assert code == grpc.StatusCode.OK, (text, code)
        assert (resp.success, resp.message_idem, resp.error_message) == (False, "", text), (request.delivery_to, resp)

    # Accepted: missing padding on the recipient, no metadata, no / malformed payload_metadata (§3.3).
    accepted = [
        req(delivery_to=C.public_key.rstrip("=")),
        req(metadata=""),
        req(payload_metadata='{"byte_size": 8, "skeleton": {"ok": "integer"}}'),
        req(payload_metadata="not json at all"),
        req(payload="A" * 999_992, metadata='{"a":12}'),  # payload + metadata = exactly 1,000,000 bytes
    ]
    for request in accepted:
        resp, code = await raw.unary("PublishMessage", request)
        assert code == grpc.StatusCode.OK and resp.success, resp
        assert resp.message_idem and resp.error_message == ""


async def test_grpc_bad_delivery_control(clients, ids):
    """§7.4 on raw RPCs: invalid delay, unknown events, another identity's event, terminal states."""
    A, B, C = ids["A"], ids["B"], ids["C"]
    raw = await clients.raw()
    a, b, c = await raw.connect(A), await raw.connect(B), await raw.connect(C)
    name = "bad/grpc/control"
    wire = _payload_for(B, 1)
    r, _ = await raw.unary(
        "PublishMessage",
        pb.PublishMessageRequest(client_id=a, message_name=name, payload=wire, delivery_to=B.public_key, metadata="{}"),
    )
    idem = r.message_idem

    async def answer(method, request):
        resp, code = await raw.unary(method, request)
        assert code == grpc.StatusCode.OK, (method, code)
        return resp.success, resp.message

    for delay in (-1, 86_400_001):
        assert await answer("DeferMessage", pb.DeferRequest(client_id=b, message_idem=idem, message_name=name, delay_ms=delay)) == (False, "invalid delay")
    for method, request in (
        ("AcknowledgeMessage", pb.AcknowledgeRequest(client_id=c, message_idem=idem, message_name=name)),  # C is not the recipient
        ("ReplayMessage", pb.ReplayRequest(client_id=c, message_idem=idem, message_name=name)),
        ("DiscardMessage", pb.DiscardRequest(client_id=b, message_idem=idem, message_name="other/name")),  # name must match
        ("AcknowledgeMessage", pb.AcknowledgeRequest(client_id=b, message_idem="no-such-event", message_name=name)),
        ("DeferMessage", pb.DeferRequest(client_id=b, message_idem="999999999-0000000000000000", message_name=name, delay_ms=1000)),
    ):
        assert await answer(method, request) == (False, "event not found"), method

    # ack wins, ack is idempotent, terminal states answer as §7.4 says; partition_block is informational
    assert await answer("AcknowledgeMessage", pb.AcknowledgeRequest(client_id=b, message_idem=idem, message_name=name, partition_block=987654)) == (True, "acknowledged")
    assert await answer("AcknowledgeMessage", pb.AcknowledgeRequest(client_id=b, message_idem=idem, message_name="")) == (True, "acknowledged")
    assert await answer("DeferMessage", pb.DeferRequest(client_id=b, message_idem=idem, message_name=name, delay_ms=1000)) == (False, "already acknowledged")
    assert await answer("DiscardMessage", pb.DiscardRequest(client_id=b, message_idem=idem, message_name=name)) == (False, "already acknowledged")
    replay, _ = await raw.unary("ReplayMessage", pb.ReplayRequest(client_id=b, message_idem=idem, message_name=name))
    assert replay.success and replay.message_data == wire  # replayable after the ack, byte for byte


@pytest.mark.parametrize("transport", ["grpc", "ws"])
async def test_empty_event_name(clients, ids, transport):
    """An empty event name is refused on publish (§7.9), with a text, never a dropped connection."""
    A, C = ids["A"], ids["C"]
    if transport == "grpc":
        raw = await clients.raw()
        cid = await raw.connect(A)
        resp, code = await raw.unary(
            "PublishMessage",
            pb.PublishMessageRequest(client_id=cid, message_name="", payload="eyJ9", delivery_to=C.public_key, metadata="{}"),
        )
        assert code == grpc.StatusCode.OK and resp.success is False and resp.error_message
    else:
        ws = await clients.raw_ws()
        cid = await ws.conn(A)
        reply = await ws.command(f"PUB;CLIENT_ID=:{cid};EVENT_NAME=:;PAYLOAD=:eyJ9;DELIVERY_TO=:{C.public_key};METADATA=:{{}}")
        assert reply.startswith("-FAIL:") and len(reply) > 6
        assert await ws.command(f"PAUSE;CLIENT_ID=:{cid};EVENT_NAME=:ok;REASON=:") == "+PASS:paused"
