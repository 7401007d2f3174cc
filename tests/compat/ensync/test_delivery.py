"""Delivery rules behind the checklist, on raw clients (compat/ensync.md §3.4, §3.10, §4.4, §7.3, §7.5, §7.6):
SUB is idempotent, one event per subscription is in flight, a subscriber going away releases its in-flight event at
once (not after the ack timeout), and a pause set before the stream exists is remembered."""

from __future__ import annotations

import asyncio
import time

import grpc

from ensync_compat import ACK_TIMEOUT, STEP, record_json
from herald._generated import ensync_pb2 as pb
from herald.events import crypto


async def _publish(raw, client_id, name, recipient, value) -> str:
    r, code = await raw.unary(
        "PublishMessage",
        pb.PublishMessageRequest(
            client_id=client_id,
            message_name=name,
            payload=crypto.encrypt_payload(value, recipient.public_key),
            delivery_to=recipient.public_key,
            metadata="{}",
        ),
    )
    assert code == grpc.StatusCode.OK and r.success, r
    return r.message_idem


async def test_ws_sub_idempotent_window_one_and_close_releases(clients, ids):
    A, B = ids["A"], ids["B"]
    name = "delivery/ws-close"
    raw = await clients.raw()
    a = await raw.connect(A)

    first = await clients.raw_ws()
    cid = await first.conn(B)
    for _ in range(2):
        assert await first.command(f"SUB;CLIENT_ID=:{cid};EVENT_NAME=:{name}") == "+PASS:subscribed"
    e1 = await _publish(raw, a, name, B, {"n": 1})
    e2 = await _publish(raw, a, name, B, {"n": 2})
    record = record_json(await first.recv())
    assert record["idem"] == e1 and record["name"] == name
    await first.silent(0.5)  # one SUB (not two) and window 1: neither a duplicate nor e2

    # Closing the socket ends the session and puts e1 back at once, ahead of e2.
    await first.close()
    t_closed = time.monotonic()
    second = await clients.raw_ws()
    cid2 = await second.conn(B)
    assert await second.command(f"SUB;CLIENT_ID=:{cid2};EVENT_NAME=:{name}") == "+PASS:subscribed"
    again = record_json(await second.recv())
    assert time.monotonic() - t_closed < ACK_TIMEOUT - 1.0
    assert (again["idem"], again["block"], again["payload"], again["loggedAt"]) == (
        e1,
        record["block"],
        record["payload"],
        record["loggedAt"],
    )
    assert await second.command(f"ACK;CLIENT_ID=:{cid2};EVENT_IDEM=:{e1};BLOCK=:{again['block']};EVENT_NAME=:{name}") == "+PASS:acknowledged"
    nxt = record_json(await second.recv())
    assert nxt["idem"] == e2
    # UNSUB releases it too: a gRPC stream of B picks it up at once.
    assert await second.command(f"UNSUB;CLIENT_ID=:{cid2};EVENT_NAME=:{name}") == "+PASS:unsubscribed"
    b = await raw.connect(B)
    stream = raw.subscribe(b, name)
    (m,) = await stream.wait(1, timeout=ACK_TIMEOUT - 1.0)
    assert m.message_idem == e2
    await second.silent(0.3)


async def test_grpc_stream_cancel_releases_in_flight(clients, ids):
    A, B = ids["A"], ids["B"]
    name = "delivery/grpc-cancel"
    raw = await clients.raw()
    a, b1, b2 = await raw.connect(A), await raw.connect(B), await raw.connect(B)
    s1 = raw.subscribe(b1, name)
    e1 = await _publish(raw, a, name, B, {"n": 1})
    (m1,) = await s1.wait(1)
    assert m1.message_idem == e1
    await s1.cancel()  # the subscriber goes away with the event in flight
    t_cancel = time.monotonic()
    s2 = raw.subscribe(b2, name)
    (m2,) = await s2.wait(1, timeout=STEP)
    assert time.monotonic() - t_cancel < ACK_TIMEOUT - 1.0, "released only by the ack timeout"
    assert (m2.message_idem, m2.partition_block, m2.payload, m2.sender) == (e1, m1.partition_block, m1.payload, A.public_key)


async def test_pause_before_subscribe_is_remembered(clients, ids):
    A, B = ids["A"], ids["B"]
    name = "delivery/pause-first"
    raw = await clients.raw()
    a, b = await raw.connect(A), await raw.connect(B)
    r, _ = await raw.unary("PauseMessages", pb.PauseRequest(client_id=b, message_name=name, reason="not yet"))
    assert (r.success, r.message) == (True, "paused")
    stream = raw.subscribe(b, name)
    e1 = await _publish(raw, a, name, B, {"n": 1})
    time_paused = time.monotonic()
    while time.monotonic() - time_paused < 1.0:
        assert not stream.messages and stream.code is None
        await asyncio.sleep(0.05)
    r, _ = await raw.unary("ContinueMessages", pb.ContinueRequest(client_id=b, message_name=name))
    assert (r.success, r.message) == (True, "continued")
    (m,) = await stream.wait(1)
    assert m.message_idem == e1
    # Unsubscribe ends the stream with OK and answers "unsubscribed" (also when nothing is subscribed).
    r, _ = await raw.unary("Unsubscribe", pb.UnsubscribeRequest(client_id=b, message_name=name))
    assert (r.success, r.message) == (True, "unsubscribed")
    assert await stream.ended() == grpc.StatusCode.OK
    r, _ = await raw.unary("Unsubscribe", pb.UnsubscribeRequest(client_id=b, message_name="delivery/never-subscribed"))
    assert (r.success, r.message) == (True, "unsubscribed")


async def test_ws_grammar_variants_and_metadata_passthrough(clients, ids):
    """§4.3: field order is free, PAYLOAD_METADATA and PARTITION_BLOCK (other SDKs) are accepted, DELAY may end in
    ``.0``; §3.4/§4.5: metadata reaches a gRPC stream byte for byte and a record as JSON (``{}`` when empty)."""
    A, B = ids["A"], ids["B"]
    name = "delivery/grammar"
    pub = await clients.raw_ws()
    a = await pub.conn(A)
    sub = await clients.raw_ws()
    b = await sub.conn(B)
    assert await sub.command(f"SUB;CLIENT_ID=:{b};EVENT_NAME=:{name}") == "+PASS:subscribed"
    payload = crypto.encrypt_payload({"g": 1}, B.public_key)
    odd_metadata = '{"b": 1,   "a":[2, {"c": "x;y=:z"}]}'

    # PUB with the fields in another order plus PAYLOAD_METADATA, as other SDKs send it
    reply = await pub.command(
        f"PUB;METADATA=:{odd_metadata};DELIVERY_TO=:{B.public_key};PAYLOAD_METADATA=:"
        f'{{"byte_size": 8, "skeleton": {{"g": "integer"}}}};EVENT_NAME=:{name};CLIENT_ID=:{a};PAYLOAD=:{payload}'
    )
    assert reply.startswith("+PASS:"), reply
    idem = reply[len("+PASS:"):]
    rec = record_json(await sub.recv())
    assert rec["idem"] == idem and rec["payload"] == payload and rec["metadata"] == {"b": 1, "a": [2, {"c": "x;y=:z"}]}
    assert isinstance(rec["block"], int) and isinstance(rec["loggedAt"], int)

    # DEFER with a Python float delay, then ACK with the Go SDK's PARTITION_BLOCK key
    t0 = time.monotonic()
    assert await sub.command(f"DEFER;CLIENT_ID=:{b};EVENT_IDEM=:{idem};EVENT_NAME=:{name};DELAY=:1500.0;REASON=:") == "+PASS:deferred"
    again = record_json(await sub.recv(timeout=3.0))
    assert again["idem"] == idem and 1.4 <= time.monotonic() - t0 <= 2.5
    assert await sub.command(f"ACK;CLIENT_ID=:{b};EVENT_IDEM=:{idem};EVENT_NAME=:{name};PARTITION_BLOCK=:{again['block']}") == "+PASS:acknowledged"
    replay = await sub.command(f"REPLAY;CLIENT_ID=:{b};EVENT_IDEM=:{idem};EVENT_NAME=:{name}")
    assert record_json(replay, "+REPLAY:") == rec

    # gRPC publisher, empty metadata and odd metadata: the gRPC stream carries the text byte for byte
    raw = await clients.raw()
    ga, gb = await raw.connect(A), await raw.connect(B)
    ids_sent = []
    for metadata in ("", odd_metadata):
        r, _ = await raw.unary(
            "PublishMessage",
            pb.PublishMessageRequest(client_id=ga, message_name=name, payload=payload, delivery_to=B.public_key, metadata=metadata),
        )
        assert r.success, r
        ids_sent.append(r.message_idem)
    empty = record_json(await sub.recv())
    assert empty["idem"] == ids_sent[0] and empty["metadata"] == {}
    # hand the rest to a gRPC stream: the WebSocket session goes away with the first one in flight
    await sub.close()
    stream = raw.subscribe(gb, name)
    (m1,) = await stream.wait(1)
    assert (m1.message_idem, m1.metadata) == (ids_sent[0], "")
    r, _ = await raw.unary("AcknowledgeMessage", pb.AcknowledgeRequest(client_id=gb, message_idem=m1.message_idem, message_name=name))
    assert r.success
    (_, m2) = await stream.wait(2)
    assert (m2.message_idem, m2.metadata) == (ids_sent[1], odd_metadata)
