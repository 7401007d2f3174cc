"""Herald's own SDK (``herald.events``) and the real EnSync SDKs, through Herald, in both directions.

* herald.events publishes (one recipient, several recipients per-recipient, and the hybrid form herald.events
  writes: the fixed variant of §5.3 that seals the b64 text of the message key) and ``ensync-sdk`` (gRPC) and
  ``ensync-sdk-ws`` subscribers decrypt it;
* ``ensync-sdk`` and ``ensync-sdk-ws`` publish (one recipient, ``useHybridEncryption: False``, and the default hybrid
  form whose raw 32-byte key the real SDKs cannot read themselves, bug C1) and herald.events subscribers decrypt it;
* ack, defer, discard, replay, pause/continue and unsubscribe through herald.events, with their effects observed
  (redeliveries, Herald's answers, a real SDK engine picking up what is left);
* metadata round trips as equal dicts on every path.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from ensync_compat import ACK_TIMEOUT, STEP, Collector, decode_wire_payload, now_ms, wait_until
from herald.events import Event, EventNotFoundError, EventsDeliveryError, EventsValidationError


class Inbox:
    """A herald.events handler that records ``(monotonic time, Event)``."""

    def __init__(self) -> None:
        self.items: list[tuple[float, Event]] = []

    def __call__(self, event: Event) -> None:
        self.items.append((time.monotonic(), event))

    @property
    def events(self) -> list[Event]:
        return [e for _, e in self.items]

    async def wait(self, n: int, timeout: float = STEP) -> list[Event]:
        await wait_until(lambda: len(self.items) >= n, timeout, f"{n} herald.events deliveries (got {self.events})")
        return self.events

    async def stays(self, n: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert len(self.items) <= n, f"unexpected delivery: {self.events[n:]}"
            await asyncio.sleep(0.02)
        assert len(self.items) == n, self.events


async def events_subscriber(clients, ident, name, *, auto_ack=True):
    client = await clients.events(ident)
    inbox = Inbox()
    sub = await client.subscribe(name, auto_ack=auto_ack)
    sub.on(inbox)
    return client, sub, inbox


async def ws_subscriber(clients, ident, name):
    eng = await clients.ws(ident)
    got = Collector(f"{ident.name} WebSocket")
    s = await eng._subscribe_internal(name, {"autoAck": False, "appSecretKey": None})
    s.on(got)
    return eng, s, got


# --------------------------------------------------------------------------
# herald.events -> real SDKs
# --------------------------------------------------------------------------


async def test_herald_events_single_recipient_to_real_sdks(clients, ids):
    A, B, C = ids["A"], ids["B"], ids["C"]
    name = "interop/he-single"
    got_b = Collector("B gRPC")
    await clients.grpc(B, {name: got_b})
    _, s, got_c = await ws_subscriber(clients, C, name)
    a = await clients.events(A)
    assert a.public_key == A.public_key

    payload = {"order": 17, "items": ["a", "é"], "total": 12.5, "ok": True, "none": None}
    (id_b,) = await a.publish(name, [B.public_key], payload, metadata={"src": "herald.events"})
    (id_c,) = await a.publish(name, [C.public_key], [1, "two", {"three": 3}])
    (eb,) = await got_b.wait(1)
    (ec,) = await got_c.wait(1)
    assert (eb["idem"], eb["payload"], eb["sender"], eb["metadata"]) == (id_b, payload, A.public_key, {"src": "herald.events"})
    assert (ec["idem"], ec["payload"], ec["sender"], ec["metadata"]) == (id_c, [1, "two", {"three": 3}], A.public_key, {})
    assert set(ec["encryptedPayload"]) == {"nonce", "ciphertext", "ephemeralPublicKey"}
    assert (await s.ack(id_c, ec["block"])).startswith("+PASS:")


@pytest.mark.parametrize("hybrid", [None, True, False], ids=["default", "hybrid", "per-recipient"])
async def test_herald_events_multi_recipient_to_real_sdks(clients, ids, hybrid):
    """The point of herald.events' fixed hybrid variant: the REAL SDKs decrypt it (they cannot read their own)."""
    A, B, C = ids["A"], ids["B"], ids["C"]
    name = f"interop/he-multi/{hybrid}"
    got_b = Collector("B gRPC")
    b = await clients.grpc(B, {name: got_b})
    _, s, got_c = await ws_subscriber(clients, C, name)
    a = await clients.events(A)

    payload = {"multi": True, "n": [1, 2, 3], "text": "ünïcode"}
    id_b, id_c = await a.publish(name, [B.public_key, C.public_key], payload, metadata={"k": "v"}, hybrid=hybrid)
    assert id_b != id_c
    (eb,) = await got_b.wait(1)
    (ec,) = await got_c.wait(1)
    assert (eb["idem"], eb["payload"], eb["sender"], eb["metadata"]) == (id_b, payload, A.public_key, {"k": "v"})
    assert (ec["idem"], ec["payload"], ec["sender"], ec["metadata"]) == (id_c, payload, A.public_key, {"k": "v"})

    wire_b = b.rec.delivered(name)[0][1].payload
    doc_b = decode_wire_payload(wire_b)
    if hybrid is False:
        assert "type" not in doc_b and "type" not in ec["encryptedPayload"]
        assert doc_b != ec["encryptedPayload"]
    else:
        assert doc_b["type"] == "hybrid"
        assert doc_b == ec["encryptedPayload"]  # one payload string for both recipients
        assert sorted(doc_b["keys"]) == sorted(ids[n].public_key_bytes.hex() for n in "BC")
    assert (await b.rec.wait_ack(id_b)).response.success  # decrypted, so auto-acked
    assert (await s.ack(id_c, ec["block"])).startswith("+PASS:")


# --------------------------------------------------------------------------
# real SDKs -> herald.events
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "publisher,options",
    [
        ("grpc", None),
        ("grpc", {"useHybridEncryption": False}),
        ("ws", None),
        ("ws", {"useHybridEncryption": False}),
    ],
    ids=["grpc-hybrid", "grpc-per-recipient", "ws-hybrid", "ws-per-recipient"],
)
async def test_real_sdks_to_herald_events(clients, ids, publisher, options):
    A, B, C = ids["A"], ids["B"], ids["C"]
    name = f"interop/real-to-he/{publisher}/{'hybrid' if options is None else 'per-recipient'}"
    _, sub_b, inbox_b = await events_subscriber(clients, B, name)
    _, sub_c, inbox_c = await events_subscriber(clients, C, name)
    payload = {"from": publisher, "v": [1, 2.5, None], "s": "é"}
    metadata = {"via": publisher, "n": 1}

    if publisher == "grpc":
        a = (await clients.grpc(A)).engine
        single = (await a.publish(name, [B.public_key], {"single": 1}, metadata)).split(",")
        multi = (await a.publish(name, [B.public_key, C.public_key], payload, metadata, options)).split(",")
    else:
        a = await clients.ws(A)
        replies = (await a.publish(name, [B.public_key], {"single": 1}, metadata)).split(",")
        single = [r.removeprefix("+PASS:") for r in replies]
        replies = (await a.publish(name, [B.public_key, C.public_key], payload, metadata, options)).split(",")
        assert all(r.startswith("+PASS:") for r in replies), replies
        multi = [r.removeprefix("+PASS:") for r in replies]

    eb = await inbox_b.wait(2)
    (ec,) = await inbox_c.wait(1)
    assert [e.idem for e in eb] == single + multi[:1]
    assert (eb[0].payload, eb[0].sender, eb[0].metadata) == ({"single": 1}, A.public_key, metadata)
    assert (eb[1].payload, eb[1].sender, eb[1].metadata) == (payload, A.public_key, metadata)
    assert (ec.idem, ec.payload, ec.sender, ec.metadata) == (multi[1], payload, A.public_key, metadata)
    assert eb[1].name == ec.name == name and eb[1].block >= 1
    kind = decode_wire_payload(eb[1].raw_payload).get("type")
    assert kind == ("hybrid" if options is None else None)
    if options is None:
        assert eb[1].raw_payload == ec.raw_payload
    # auto-acked by herald.events: nothing comes back after the ack timeout
    for sub in (sub_b, sub_c):
        await wait_until(lambda sub=sub: sub.stats.acked >= (2 if sub is sub_b else 1), STEP, "herald.events' acks")
        assert sub.stats.undecryptable == 0 and sub.stats.ack_errors == 0


# --------------------------------------------------------------------------
# ack / defer / discard / replay / pause / unsubscribe through herald.events
# --------------------------------------------------------------------------


async def test_herald_events_delivery_control(clients, ids):
    A, B = ids["A"], ids["B"]
    name = "interop/he-control"
    b, sub, inbox = await events_subscriber(clients, B, name, auto_ack=False)
    a = (await clients.grpc(A)).engine  # a real SDK publishes; herald.events controls delivery
    raw = await clients.raw()
    probe_cid = await raw.connect(B)

    async def pub(payload) -> str:
        return await a.publish(name, [B.public_key], payload)

    # ack: Herald answers "acknowledged", the event is closed and not delivered again
    e1_id = await pub({"e": 1})
    (e1,) = await inbox.wait(1)
    assert e1.idem == e1_id and e1.payload == {"e": 1} and e1.sender == A.public_key
    assert await sub.ack(e1) == "acknowledged"
    assert await sub.ack(e1.idem, e1.block) == "acknowledged"  # idempotent
    assert await raw.state(probe_cid, e1_id, name) == "already acknowledged"

    # defer 1500 ms: delivery_time is about now + 1500, redelivered no earlier, same idem and block
    e2_id = await pub({"e": 2})
    (e2,) = (await inbox.wait(2))[1:]
    t_defer, wall = time.monotonic(), now_ms()
    at = await sub.defer(e2, 1500)
    assert abs(at - (wall + 1500)) <= 500, (at, wall)
    (e2b,) = (await inbox.wait(3, timeout=4.0))[2:]
    assert (e2b.idem, e2b.block, e2b.payload) == (e2_id, e2.block, {"e": 2})
    assert 1.5 - 0.1 <= inbox.items[2][0] - t_defer <= 1.5 + 1.0
    await sub.ack(e2b)

    # defer 0 (herald.events allows it, the real SDKs do not): requeued at once
    e3_id = await pub({"e": 3})
    (e3,) = (await inbox.wait(4))[3:]
    t0 = time.monotonic()
    await sub.defer(e3, 0)
    (e3b,) = (await inbox.wait(5, timeout=2.0))[4:]
    assert e3b.idem == e3_id and inbox.items[4][0] - t0 < 1.0
    with pytest.raises(EventsValidationError):
        await sub.defer(e3b, -1)

    # discard: never again; a later ack is refused; replay still works
    await sub.discard(e3b, "rejected")
    await sub.discard(e3b)  # idempotent
    with pytest.raises(EventsDeliveryError) as err:
        await sub.ack(e3b)
    assert "already discarded" in str(err.value)
    replayed = await sub.replay(e3_id)
    assert (replayed.idem, replayed.name, replayed.payload) == (e3_id, name, {"e": 3})
    assert (await sub.replay(e1_id)).payload == {"e": 1}  # acknowledged events replay too
    with pytest.raises(EventNotFoundError):
        await sub.replay("1-0000000000000000")
    with pytest.raises(EventNotFoundError):
        await sub.ack("no-such-id", 1)

    # pause / continue
    await sub.pause("maintenance")
    e4_id = await pub({"e": 4})
    await inbox.stays(5, 1.5)
    await sub.continue_subscription()
    (e4,) = (await inbox.wait(6, timeout=2.0))[5:]
    assert e4.idem == e4_id
    await sub.ack(e4)

    # unsubscribe: the queue stays with the identity; a real SDK engine of B picks the next event up
    await sub.unsubscribe()
    e5_id = await pub({"e": 5})
    await inbox.stays(6, 1.0)
    got = Collector("B gRPC")
    await clients.grpc(B, {name: got})
    (e5,) = await got.wait(1)
    assert (e5["idem"], e5["payload"]) == (e5_id, {"e": 5})

    # nothing that was acked, discarded or deferred-then-acked comes back after the ack timeout
    await asyncio.sleep(0.5)
    for idem in (e1_id, e2_id, e4_id):
        assert await raw.state(probe_cid, idem, name) == "already acknowledged"
    assert await raw.state(probe_cid, e3_id, name) == "already discarded"
    assert [e.idem for e in inbox.events] == [e1_id, e2_id, e2_id, e3_id, e3_id, e4_id]
    assert b.sessions == 1


async def test_herald_events_auto_ack_and_unacked_redelivery(clients, ids):
    """auto_ack=True acknowledges after the handler returns; a raising handler leaves the event to the ack timeout."""
    A, B = ids["A"], ids["B"]
    name = "interop/he-auto-ack"
    client = await clients.events(B)
    sub = await client.subscribe(name)
    calls: list[tuple[float, Event]] = []

    def handler(event: Event) -> None:
        calls.append((time.monotonic(), event))
        if event.payload == {"fail": True} and len(calls) == 1:
            raise RuntimeError("first attempt fails")

    sub.on(handler)
    a = await clients.events(A)
    (idem,) = await a.publish(name, [B.public_key], {"fail": True})
    await wait_until(lambda: len(calls) >= 2, ACK_TIMEOUT + 3, "the redelivery after the failed handler")
    (t1, e1), (t2, e2) = calls[:2]
    assert e1.idem == e2.idem == idem and e1.block == e2.block
    assert ACK_TIMEOUT - 0.25 <= t2 - t1 <= ACK_TIMEOUT + 1.5
    await wait_until(lambda: sub.stats.acked >= 1, STEP, "the auto-ack")
    assert sub.stats.handler_errors == 1
    raw = await clients.raw()
    assert await raw.state(await raw.connect(B), idem, name) == "already acknowledged"


# --------------------------------------------------------------------------
# metadata
# --------------------------------------------------------------------------

TRICKY = {
    "a;b": "x=:y",
    "n": [1, 2.5, -3, None, True, False],
    "u": "é 中文 \u2028 😀",
    "nested": {"deep": {"deeper": ["+RECORD:", "+REPLAY:", "+PASS:x", "-FAIL:y"]}},
    "empty": {},
    "quote": "\"quoted\" \\ back",
    "fields": ";EVENT_NAME=:x;PAYLOAD=:y",
    "big": 2**53 - 1,
}
# The WebSocket PUB frame carries METADATA raw, so a value with ";<KNOWN KEY>=:" cannot be published over it (§4.3).
WS_SAFE = {k: v for k, v in TRICKY.items() if k != "fields"}


async def test_metadata_round_trip(clients, ids):
    A, B, C = ids["A"], ids["B"], ids["C"]
    name = "interop/metadata"
    got_grpc = Collector("B gRPC")
    await clients.grpc(B, {name: got_grpc})
    _, s, got_ws = await ws_subscriber(clients, C, name)
    _, _, inbox_a = await events_subscriber(clients, A, name)

    # herald.events publishes -> ensync-sdk, ensync-sdk-ws and herald.events subscribers
    he_b = await clients.events(B)
    id_b, id_c, id_a = await he_b.publish(
        name, [B.public_key, C.public_key, A.public_key], {"meta": 1}, metadata=TRICKY, hybrid=False
    )
    (eb,) = await got_grpc.wait(1)
    (ec,) = await got_ws.wait(1)
    (ea,) = await inbox_a.wait(1)
    assert (eb["idem"], ec["idem"], ea.idem) == (id_b, id_c, id_a)
    assert eb["metadata"] == TRICKY
    assert ec["metadata"] == TRICKY
    assert ea.metadata == TRICKY
    assert (await s.ack(id_c, ec["block"])).startswith("+PASS:")

    # ensync-sdk (gRPC) publishes -> herald.events
    grpc_pub = (await clients.grpc(C)).engine
    id1 = await grpc_pub.publish(name, [A.public_key], {"meta": 2}, TRICKY)
    # ensync-sdk-ws publishes -> herald.events
    ws_pub = await clients.ws(B)
    id2 = (await ws_pub.publish(name, [A.public_key], {"meta": 3}, WS_SAFE)).removeprefix("+PASS:")
    # no metadata at all -> {}
    id3 = await grpc_pub.publish(name, [A.public_key], {"meta": 4})
    e1, e2, e3 = (await inbox_a.wait(4))[1:]
    assert (e1.idem, e1.metadata, e1.sender) == (id1, TRICKY, C.public_key)
    assert (e2.idem, e2.metadata, e2.sender) == (id2, WS_SAFE, B.public_key)
    assert (e3.idem, e3.metadata) == (id3, {})
