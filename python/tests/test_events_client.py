"""herald.events.EventClient / Subscription against the in-process fake EnSync server (events_fake).

Three identities A, B, C with access keys key-A, key-B, key-C. Reconnect delays are shortened so
the restart tests take well under a second each.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, List, Tuple

import grpc
import pytest

from herald.exceptions import HeraldAuthError, HeraldConnectionError, HeraldError, HeraldNotFoundError
from herald.events import (
    MAX_DEFER_MS,
    Event,
    EventClient,
    EventDecryptionError,
    EventHandlerError,
    EventNotFoundError,
    EventsAuthError,
    EventsDeliveryError,
    EventsError,
    EventsPublishError,
    EventsSubscriptionError,
    EventsValidationError,
    InvalidKeyError,
    Subscription,
    crypto,
    generate_identity,
    parse_url,
)

from .events_fake import FakeEnSync

FAST = {"reconnect_initial_delay": 0.05, "reconnect_max_delay": 0.4}


@dataclass
class Env:
    fake: FakeEnSync
    keys: Dict[str, Tuple[str, str]]  # "A" -> (public, secret)
    make: Callable[..., Awaitable[EventClient]]

    def pk(self, who: str) -> str:
        return self.keys[who][0]


@pytest.fixture
async def env():
    keys = {who: generate_identity() for who in "ABC"}
    fake = FakeEnSync({f"key-{who}": pair[0] for who, pair in keys.items()})
    await fake.start()
    clients: List[EventClient] = []

    async def make(who: str, **options: Any) -> EventClient:
        settings = dict(FAST)
        settings.update(options)
        client = await EventClient.connect(
            fake.url, access_key=f"key-{who}", secret_key=keys[who][1], **settings
        )
        clients.append(client)
        return client

    try:
        yield Env(fake, keys, make)
    finally:
        for client in clients:
            await client.close()
        await fake.stop()


async def eventually(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def publish_when_up(client: EventClient, *args: Any, **kwargs: Any) -> List[str]:
    """Publish, retrying while the (just restarted) server is not reachable yet."""
    deadline = time.monotonic() + 5
    while True:
        try:
            return await client.publish(*args, **kwargs)
        except HeraldConnectionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


def collector(sub: Subscription) -> List[Event]:
    received: List[Event] = []
    sub.on(received.append)
    return received


# -- URLs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, target, secure",
    [
        ("grpc://127.0.0.1:50051", "127.0.0.1:50051", False),
        ("grpc://example.com", "example.com:50051", False),
        ("grpc://h:1234/", "h:1234", False),
        ("grpcs://node.example.com", "node.example.com:443", True),
        ("grpcs://node.example.com:8443", "node.example.com:8443", True),
        ("GRPCS://node.example.com", "node.example.com:443", True),
        ("localhost:50051", "localhost:50051", False),
        ("localhost", "localhost:50051", False),
        ("127.0.0.1:7000", "127.0.0.1:7000", False),
        ("[::1]:50051", "[::1]:50051", False),
        ("::1", "[::1]:50051", False),
        ("node.example.com:50051", "node.example.com:50051", True),
        ("node.example.com", "node.example.com:443", True),
        ("mylocalhost.example.com:1", "mylocalhost.example.com:1", True),
        ("grpc://[::1]:9", "[::1]:9", False),
    ],
)
def test_parse_url(url, target, secure):
    endpoint = parse_url(url)
    assert (endpoint.target, endpoint.secure) == (target, secure)


@pytest.mark.parametrize(
    "url", ["https://h:1", "ws://h", "grpc://h:1/path", "grpc://", "h:0", "h:99999", "h:abc", "[::1"]
)
def test_parse_url_rejects(url):
    with pytest.raises(EventsValidationError):
        parse_url(url)


def test_constructor_validates_without_io():
    _, secret = generate_identity()
    with pytest.raises(InvalidKeyError):
        EventClient("grpc://127.0.0.1:1", access_key="k", secret_key=base64.b64encode(b"x" * 20).decode())
    with pytest.raises(EventsValidationError):
        EventClient("ftp://h", access_key="k", secret_key=secret)
    client = EventClient("grpc://127.0.0.1:1", access_key="k", secret_key=secret)
    assert not client.is_connected and client.client_id is None
    assert "not connected" in repr(client)


# -- connect ------------------------------------------------------------------------------------


async def test_connect(env):
    b = await env.make("B")
    assert b.client_id and b.public_key == env.pk("B")
    assert b.is_connected and b.sessions == 1
    b2 = await env.make("B")
    assert b2.client_id != b.client_id and b2.public_key == b.public_key
    assert [r.access_key for r in env.fake.state.calls_of("Connect")] == ["key-B", "key-B"]


async def test_connect_refused(env):
    with pytest.raises(EventsAuthError) as info:
        await EventClient.connect(env.fake.url, access_key="bad-key")
    err = info.value
    assert err.details == "invalid access key"
    assert str(err) == "connect failed: invalid access key"
    assert isinstance(err, HeraldAuthError) and isinstance(err, EventsError)


async def test_connect_unreachable():
    with pytest.raises(HeraldConnectionError):
        await EventClient.connect("grpc://127.0.0.1:1", access_key="k", rpc_timeout=2)


async def test_async_with_and_close(env):
    async with EventClient(env.fake.url, access_key="key-B", secret_key=env.keys["B"][1], **FAST) as b:
        sub = await b.subscribe("close/x")
        assert env.fake.state.open_streams("close/x")
    assert b.closed and not b.is_connected and not sub.active
    await eventually(lambda: not env.fake.state.open_streams("close/x"), what="the stream to end")
    await b.close()  # idempotent
    with pytest.raises(HeraldConnectionError, match="closed"):
        await b.publish("close/x", [env.pk("A")], {"x": 1})
    assert not env.fake.state.calls_of("Unsubscribe")  # close() does not unsubscribe


# -- publish ------------------------------------------------------------------------------------


async def test_publish_single_recipient(env):
    a = await env.make("A")
    payload = {"s": "é", "i": 1, "big": 2**40, "f": 1.5, "b": False, "o": {}, "l": [1], "n": None}
    ids = await a.publish("orders/created", [env.pk("B")], payload, metadata={"k": "v", "u": "é"})
    assert len(ids) == 1 and ids[0]
    (request,) = env.fake.state.calls_of("PublishMessage")
    assert request.client_id == a.client_id
    assert request.message_name == "orders/created"
    assert request.delivery_to == env.pk("B")
    assert request.metadata == json.dumps({"k": "v", "u": "é"})
    assert request.HasField("payload_metadata")
    assert json.loads(request.payload_metadata) == {
        "byte_size": len(json.dumps(payload).encode()),
        "skeleton": {
            "s": "string",
            "i": "integer",
            "big": "long",
            "f": "double",
            "b": "boolean",
            "o": "object",
            "l": "array",
            "n": "null",
        },
    }
    envelope = json.loads(base64.b64decode(request.payload))
    assert set(envelope) == {"nonce", "ciphertext", "ephemeralPublicKey"}  # single format
    assert crypto.decrypt_payload(request.payload, env.keys["B"][1]) == payload


async def test_publish_metadata_defaults_and_non_object_payload(env):
    a = await env.make("A")
    await a.publish("p/meta", [env.pk("B")], [1, 2, 3])
    (request,) = env.fake.state.calls_of("PublishMessage")
    assert request.metadata == "{}"
    assert json.loads(request.payload_metadata) == {"byte_size": len(b"[1, 2, 3]"), "skeleton": {}}


async def test_publish_several_recipients_hybrid_by_default(env):
    a = await env.make("A")
    ids = await a.publish("p/multi", [env.pk("B"), env.pk("C")], {"m": 2})
    assert len(set(ids)) == 2
    first, second = env.fake.state.calls_of("PublishMessage")
    assert [first.delivery_to, second.delivery_to] == [env.pk("B"), env.pk("C")]
    assert first.payload == second.payload
    assert json.loads(base64.b64decode(first.payload))["type"] == "hybrid"
    for who in "BC":
        assert crypto.decrypt_payload(first.payload, env.keys[who][1]) == {"m": 2}


async def test_publish_per_recipient_encryption(env):
    a = await env.make("A")
    await a.publish("p/multi", [env.pk("B"), env.pk("C")], {"m": 2}, hybrid=False)
    first, second = env.fake.state.calls_of("PublishMessage")
    assert first.payload != second.payload
    assert crypto.decrypt_payload(first.payload, env.keys["B"][1]) == {"m": 2}
    assert crypto.decrypt_payload(second.payload, env.keys["C"][1]) == {"m": 2}
    with pytest.raises(EventDecryptionError):
        crypto.decrypt_payload(first.payload, env.keys["C"][1])
    # hybrid=True with one recipient is honoured
    await a.publish("p/multi", [env.pk("B")], {"m": 3}, hybrid=True)
    third = env.fake.state.calls_of("PublishMessage")[-1]
    assert json.loads(base64.b64decode(third.payload))["type"] == "hybrid"


@pytest.mark.parametrize(
    "recipients, payload, metadata, error",
    [
        ([], {"x": 1}, None, EventsValidationError),
        ("not-a-list", {"x": 1}, None, EventsValidationError),
        (["abc"], {"x": 1}, None, InvalidKeyError),
        ([b"raw bytes"], {"x": 1}, None, EventsValidationError),
        (None, None, None, EventsValidationError),  # payload None (recipients filled in below)
        (None, {"x": object()}, None, EventsValidationError),
        (None, {"x": 1}, ["not", "a", "mapping"], EventsValidationError),
    ],
)
async def test_publish_validation_sends_nothing(env, recipients, payload, metadata, error):
    a = await env.make("A")
    if recipients is None:
        recipients = [env.pk("B")]
    with pytest.raises(error):
        await a.publish("p/validation", recipients, payload, metadata=metadata)
    with pytest.raises(EventsValidationError):
        await a.publish("", [env.pk("B")], {"x": 1})
    assert not env.fake.state.calls_of("PublishMessage")


async def test_publish_invalid_recipient_among_valid_ones_sends_nothing(env):
    a = await env.make("A")
    with pytest.raises(InvalidKeyError):
        await a.publish("p/validation", [env.pk("B"), "abc"], {"x": 1}, hybrid=False)
    assert not env.fake.state.calls_of("PublishMessage")


async def test_publish_refused(env):
    a = await env.make("A")
    unregistered, _ = generate_identity()
    with pytest.raises(EventsPublishError) as info:
        await a.publish("p/refused", [env.pk("B"), unregistered], {"x": 1}, hybrid=False)
    err = info.value
    assert err.details == "recipient not found"
    assert str(err) == "publish failed: recipient not found"
    assert len(err.published) == 1  # B's event exists, no rollback
    assert env.fake.state.event(err.published[0]).name == "p/refused"


# -- subscribe and deliver ----------------------------------------------------------------------


async def test_subscribe_on_delivers_event_and_auto_acks(env):
    a, b = await env.make("A"), await env.make("B")
    sub = await b.subscribe("orders/created")
    received = collector(sub)
    (idem,) = await a.publish("orders/created", [env.pk("B")], {"x": 1, "s": "é"}, metadata={"k": "v"})
    await eventually(lambda: received, what="delivery")
    (event,) = received
    assert event.idem == idem
    assert event.name == "orders/created"
    assert isinstance(event.block, int) and event.block >= 1
    assert event.payload == {"x": 1, "s": "é"}
    assert event.sender == env.pk("A")
    assert event.metadata == {"k": "v"}
    assert event.timestamp is None
    assert event.raw_payload == env.fake.state.event(idem).payload
    await eventually(lambda: env.fake.state.event(idem).state == "acked", what="the auto-ack")
    (ack,) = env.fake.state.calls_of("AcknowledgeMessage")
    assert (ack.client_id, ack.message_idem, ack.message_name, ack.partition_block) == (
        b.client_id,
        idem,
        "orders/created",
        event.block,
    )
    assert sub.stats.received == 1 and sub.stats.delivered == 1 and sub.stats.acked == 1
    assert event.to_dict() == {
        "idem": idem,
        "messageName": "orders/created",
        "block": event.block,
        "timestamp": None,
        "payload": {"x": 1, "s": "é"},
        "sender": env.pk("A"),
        "metadata": {"k": "v"},
    }
    with pytest.raises(Exception):
        event.idem = "changed"  # frozen


async def test_backlog_in_order_async_and_sync_handlers(env):
    a, b = await env.make("A"), await env.make("B")
    for n in (1, 2, 3):
        await a.publish("backlog", [env.pk("B")], {"n": n})
    sub = await b.subscribe("backlog")
    seen_async: List[int] = []
    seen_sync: List[int] = []

    @sub.on
    async def handle(event: Event) -> None:
        await asyncio.sleep(0.01)
        seen_async.append(event.payload["n"])

    returned = sub.on(lambda event: seen_sync.append(event.payload["n"]))
    assert callable(returned)
    await eventually(lambda: len(seen_sync) == 3, what="three deliveries")
    assert seen_async == seen_sync == [1, 2, 3]
    await eventually(lambda: sub.stats.acked == 3, what="three acks")


async def test_events_wait_for_a_consumer(env):
    a, b = await env.make("A"), await env.make("B")
    sub = await b.subscribe("late-handler")
    await a.publish("late-handler", [env.pk("B")], {"x": 1})
    await asyncio.sleep(0.2)
    assert sub.stats.received == 1 and sub.stats.delivered == 0
    received = collector(sub)
    await eventually(lambda: received, what="delivery after on()")


async def test_manual_ack(env):
    a, b = await env.make("A"), await env.make("B")
    sub = await b.subscribe("manual", auto_ack=False)
    received = collector(sub)
    first, second = [
        (await a.publish("manual", [env.pk("B")], {"n": n}))[0] for n in (1, 2)
    ]
    await eventually(lambda: received, what="the first delivery")
    await asyncio.sleep(0.2)
    assert len(received) == 1  # window 1: the second waits for the ack
    assert env.fake.state.event(first).state == "inflight"
    assert not env.fake.state.calls_of("AcknowledgeMessage")
    assert await sub.ack(received[0]) == "acknowledged"
    await eventually(lambda: len(received) == 2, what="the second delivery")
    assert await sub.ack(second, received[1].block) == "acknowledged"
    assert env.fake.state.event(first).state == env.fake.state.event(second).state == "acked"
    # idempotent
    assert await sub.ack(first) == "acknowledged"


async def test_handler_exception_is_reported_and_not_acked(env):
    a, b = await env.make("A"), await env.make("B")
    sub = await b.subscribe("failing")
    errors: List[EventsError] = []
    sub.on_error(errors.append)
    calls: List[str] = []

    def bad(event: Event) -> None:
        calls.append("bad")
        raise RuntimeError("boom")

    sub.on(bad)
    sub.on(lambda event: calls.append("good"))
    (idem,) = await a.publish("failing", [env.pk("B")], {"x": 1})
    await eventually(lambda: errors, what="the error report")
    assert calls == ["bad", "good"]  # the other handlers still run
    (error,) = errors
    assert isinstance(error, EventHandlerError)
    assert error.event.idem == idem and isinstance(error.original, RuntimeError)
    assert error.__cause__ is error.original
    await asyncio.sleep(0.1)
    assert env.fake.state.event(idem).state == "inflight"
    assert not env.fake.state.calls_of("AcknowledgeMessage")
    assert sub.stats.handler_errors == 1 and sub.stats.acked == 0


async def test_async_error_callback_and_raising_callback(env):
    a, b = await env.make("A"), await env.make("B")
    sub = await b.subscribe("failing2")
    errors: List[EventsError] = []

    @sub.on_error
    async def record(error: EventsError) -> None:
        errors.append(error)

    sub.on_error(lambda error: 1 / 0)  # a broken callback is logged, nothing else

    @sub.on
    async def bad(event: Event) -> None:
        raise ValueError("nope")

    await a.publish("failing2", [env.pk("B")], {"x": 1})
    await eventually(lambda: errors, what="the error report")
    assert sub.active


async def test_undecryptable_event_is_reported_not_delivered(env):
    b = await env.make("B")
    sub = await b.subscribe("secret")
    received = collector(sub)
    errors: List[EventsError] = []
    sub.on_error(errors.append)
    # Encrypted for C, queued for B (as a buggy publisher would do).
    foreign = crypto.encrypt_payload({"x": 1}, env.pk("C"))
    recipient = base64.b64decode(env.pk("B"))
    event = env.fake.state.store(recipient, "secret", foreign, env.pk("A"), "{}")
    await eventually(lambda: errors, what="the decryption error")
    (error,) = errors
    assert isinstance(error, EventDecryptionError)
    assert (error.idem, error.name, error.block, error.sender, error.raw_payload) == (
        event.idem,
        "secret",
        event.block,
        env.pk("A"),
        foreign,
    )
    await asyncio.sleep(0.1)
    assert received == []
    assert sub.stats.undecryptable == 1 and sub.stats.delivered == 0
    assert env.fake.state.event(event.idem).state == "inflight"  # not acked: redelivered later
    assert not env.fake.state.calls_of("AcknowledgeMessage")


async def test_malformed_metadata_is_reported_not_delivered(env):
    b = await env.make("B")
    sub = await b.subscribe("badmeta")
    received = collector(sub)
    errors: List[EventsError] = []
    sub.on_error(errors.append)
    payload = crypto.encrypt_payload({"x": 1}, env.pk("B"))
    env.fake.state.store(base64.b64decode(env.pk("B")), "badmeta", payload, env.pk("A"), "{not json")
    await eventually(lambda: errors, what="the error report")
    assert isinstance(errors[0], EventDecryptionError)
    assert received == [] and sub.active
    # the next event still flows once the bad one is dealt with
    await sub.discard(errors[0].idem)
    ok = crypto.encrypt_payload({"x": 2}, env.pk("B"))
    env.fake.state.store(base64.b64decode(env.pk("B")), "badmeta", ok, env.pk("A"), "")
    await eventually(lambda: received, what="the good event")
    assert received[0].payload == {"x": 2} and received[0].metadata == {}


async def test_hybrid_publish_delivered_to_both(env):
    a, b, c = await env.make("A"), await env.make("B"), await env.make("C")
    got_b = collector(await b.subscribe("fanout"))
    got_c = collector(await c.subscribe("fanout"))
    ids = await a.publish("fanout", [env.pk("B"), env.pk("C")], {"m": 2})
    await eventually(lambda: got_b and got_c, what="both deliveries")
    assert got_b[0].payload == got_c[0].payload == {"m": 2}
    assert {got_b[0].idem, got_c[0].idem} == set(ids)


async def test_duplicate_subscribe_and_missing_secret(env):
    b = await env.make("B")
    await b.subscribe("dup")
    with pytest.raises(EventsSubscriptionError, match="already subscribed"):
        await b.subscribe("dup")
    publisher = await EventClient.connect(env.fake.url, access_key="key-A")
    try:
        with pytest.raises(EventsValidationError, match="secret_key"):
            await publisher.subscribe("dup")
        # a publish-only client works without a secret key
        assert await publisher.publish("dup", [env.pk("B")], {"x": 1})
    finally:
        await publisher.close()


async def test_refused_subscription(env):
    env.fake.state.refused_names.add("forbidden")
    b = await env.make("B")
    with pytest.raises(EventsSubscriptionError) as info:
        await b.subscribe("forbidden")
    assert info.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert "forbidden" not in b.subscriptions
    # the name is free again
    env.fake.state.refused_names.clear()
    assert (await b.subscribe("forbidden")).active


# -- async for ----------------------------------------------------------------------------------


async def test_async_for_acks_when_asking_for_the_next(env):
    a, b = await env.make("A"), await env.make("B")
    sub = await b.subscribe("iterate")
    ids = [(await a.publish("iterate", [env.pk("B")], {"n": n}))[0] for n in (1, 2, 3)]
    seen: List[int] = []
    async for event in sub:
        seen.append(event.payload["n"])
        if len(seen) == 1:
            await asyncio.sleep(0.1)
            assert env.fake.state.event(ids[0]).state == "inflight"  # not yet: still processing
        if len(seen) == 3:
            break
    assert seen == [1, 2, 3]
    assert [env.fake.state.event(i).state for i in ids] == ["acked", "acked", "inflight"]
    # the abandoned event is not acked by starting a new loop either
    sub.on(lambda event: None)
    await asyncio.sleep(0.1)
    assert env.fake.state.event(ids[2]).state == "inflight"


async def test_async_for_ends_on_unsubscribe_and_handlers_win(env):
    a, b = await env.make("A"), await env.make("B")
    sub = await b.subscribe("iterate2")
    handled: List[Event] = []
    looped: List[Event] = []

    async def loop() -> None:
        async for event in sub:
            looped.append(event)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.05)
    sub.on(handled.append)  # from now on handlers win
    await a.publish("iterate2", [env.pk("B")], {"x": 1})
    await eventually(lambda: handled, what="the handler delivery")
    assert looped == []
    await sub.unsubscribe()
    await asyncio.wait_for(task, 2)  # the loop ended with StopAsyncIteration
    assert not sub.active
    with pytest.raises(StopAsyncIteration):
        await sub.__aiter__().__anext__()


# -- ack / defer / discard / replay / pause / continue ---------------------------------------------


async def test_defer(env):
    a, b = await env.make("A"), await env.make("B")
    sub = await b.subscribe("defer", auto_ack=False)
    received = collector(sub)
    (idem,) = await a.publish("defer", [env.pk("B")], {"x": 1})
    await eventually(lambda: received, what="delivery")
    before = int(time.time() * 1000)
    delivery_time = await sub.defer(received[0], delay_ms=200, reason="later")
    assert before + 150 <= delivery_time <= int(time.time() * 1000) + 250
    (request,) = env.fake.state.calls_of("DeferMessage")
    assert (request.message_idem, request.delay_ms, request.reason, request.message_name) == (
        idem,
        200,
        "later",
        "defer",
    )
    await eventually(lambda: len(received) == 2, what="the redelivery")
    assert received[1].idem == idem and received[1].block == received[0].block
    # 0 requeues at once
    await sub.defer(idem, delay_ms=0)
    await eventually(lambda: len(received) == 3, what="the immediate redelivery")


@pytest.mark.parametrize("delay", [-1, MAX_DEFER_MS + 1, 1.5, True, "1000"])
async def test_defer_bounds_are_checked_client_side(env, delay):
    b = await env.make("B")
    sub = await b.subscribe("defer-bounds")
    with pytest.raises(EventsValidationError, match="delay_ms"):
        await sub.defer("some-id", delay_ms=delay)
    assert not env.fake.state.calls_of("DeferMessage")


async def test_defer_accepts_the_maximum(env):
    a, b = await env.make("A"), await env.make("B")
    sub = await b.subscribe("defer-max", auto_ack=False)
    (idem,) = await a.publish("defer-max", [env.pk("B")], {"x": 1})
    assert await sub.defer(idem, delay_ms=MAX_DEFER_MS) > time.time() * 1000 + MAX_DEFER_MS - 5000


async def test_discard_then_ack_and_replay(env):
    a, b = await env.make("A"), await env.make("B")
    sub = await b.subscribe("discard", auto_ack=False)
    received = collector(sub)
    (idem,) = await a.publish("discard", [env.pk("B")], {"d": 1})
    await eventually(lambda: received, what="delivery")
    assert await sub.discard(idem, reason="bad") is None
    assert env.fake.state.event(idem).state == "discarded"
    with pytest.raises(EventsDeliveryError) as info:
        await sub.ack(idem, received[0].block)
    assert info.value.details == "already discarded"
    assert not isinstance(info.value, EventNotFoundError)
    with pytest.raises(EventsDeliveryError, match="already discarded"):
        await sub.defer(idem, 1000)
    replayed = await sub.replay(idem)
    assert replayed.payload == {"d": 1}


async def test_replay(env):
    a, b, c = await env.make("A"), await env.make("B"), await env.make("C")
    sub = await b.subscribe("replay")
    received = collector(sub)
    (idem,) = await a.publish("replay", [env.pk("B")], {"r": [1, "é"]}, metadata={"m": 1})
    await eventually(lambda: env.fake.state.event(idem).state == "acked", what="the ack")
    replayed = await sub.replay(idem)
    assert replayed == Event(idem=idem, name="replay", block=0, payload={"r": [1, "é"]},
                             raw_payload=env.fake.state.event(idem).payload)
    assert replayed.sender == "" and replayed.metadata == {} and replayed.timestamp is None
    await asyncio.sleep(0.1)
    assert len(received) == 1  # replay sends nothing on the stream
    with pytest.raises(EventNotFoundError) as info:
        await sub.replay("no-such-id")
    assert info.value.details == "event not found"
    assert isinstance(info.value, HeraldNotFoundError) and isinstance(info.value, EventsDeliveryError)
    # an event addressed to C is not B's to replay
    (for_c,) = await a.publish("replay", [env.pk("C")], {"c": 1})
    with pytest.raises(EventNotFoundError):
        await sub.replay(for_c)
    c_sub = await c.subscribe("replay", auto_ack=False)
    assert (await c_sub.replay(for_c)).payload == {"c": 1}
    with pytest.raises(EventsValidationError):
        await sub.replay("")


async def test_replay_undecryptable(env):
    b = await env.make("B")
    sub = await b.subscribe("replay-bad")
    foreign = crypto.encrypt_payload({"x": 1}, env.pk("C"))
    event = env.fake.state.store(base64.b64decode(env.pk("B")), "replay-bad", foreign, env.pk("A"), "")
    with pytest.raises(EventDecryptionError) as info:
        await sub.replay(event.idem)
    assert info.value.idem == event.idem and info.value.raw_payload == foreign


async def test_pause_and_continue(env):
    a, b = await env.make("A"), await env.make("B")
    sub = await b.subscribe("pause")
    received = collector(sub)
    await sub.pause(reason="maintenance")
    assert sub.paused
    (request,) = env.fake.state.calls_of("PauseMessages")
    assert (request.client_id, request.message_name, request.reason) == (b.client_id, "pause", "maintenance")
    for n in (1, 2):
        await a.publish("pause", [env.pk("B")], {"p": n})
    await asyncio.sleep(0.3)
    assert received == []
    await sub.continue_subscription()
    assert not sub.paused
    await eventually(lambda: len(received) == 2, what="the deliveries after continue")
    assert [e.payload["p"] for e in received] == [1, 2]
    assert sub.resume == sub.continue_subscription  # the real SDK's name works too


async def test_unsubscribe(env):
    a, b = await env.make("A"), await env.make("B")
    sub = await b.subscribe("unsub")
    received = collector(sub)
    assert await sub.unsubscribe() is None
    assert not sub.active and "unsub" not in b.subscriptions
    (request,) = env.fake.state.calls_of("Unsubscribe")
    assert (request.client_id, request.message_name) == (b.client_id, "unsub")
    await eventually(lambda: not env.fake.state.open_streams("unsub"), what="the stream to end")
    (idem,) = await a.publish("unsub", [env.pk("B")], {"u": 1})
    await asyncio.sleep(0.3)
    assert received == []
    with pytest.raises(EventsSubscriptionError, match="unsubscribed"):
        await sub.pause()
    # ack / replay still work on an unsubscribed subscription (any session of the identity may)
    assert (await sub.replay(idem)).payload == {"u": 1}
    # the queue belongs to the identity: a new subscription gets the event
    again = collector(await b.subscribe("unsub"))
    await eventually(lambda: again, what="delivery to the new subscription")
    assert again[0].idem == idem


async def test_unsubscribe_from_inside_a_handler(env):
    a, b = await env.make("A"), await env.make("B")
    sub = await b.subscribe("unsub-inside")
    done: List[str] = []

    @sub.on
    async def handle(event: Event) -> None:
        await sub.unsubscribe()
        done.append(event.idem)

    (idem,) = await a.publish("unsub-inside", [env.pk("B")], {"x": 1})
    await eventually(lambda: done, what="the handler to finish")
    assert not sub.active
    await eventually(lambda: env.fake.state.event(idem).state == "acked", what="the ack of the handled event")


async def test_close_from_inside_a_handler(env):
    a, b = await env.make("A"), await env.make("B")
    sub = await b.subscribe("close-inside")
    done: List[bool] = []

    @sub.on
    async def handle(event: Event) -> None:
        await b.close()
        done.append(True)

    await a.publish("close-inside", [env.pk("B")], {"x": 1})
    await eventually(lambda: done, what="the handler to finish")
    assert b.closed and not sub.active


# -- errors of unary calls -------------------------------------------------------------------------


async def test_error_texts_and_types(env):
    b = await env.make("B")
    sub = await b.subscribe("errors", auto_ack=False)
    with pytest.raises(EventNotFoundError, match="^ack failed: event not found$"):
        await sub.ack("nope", 1)
    with pytest.raises(EventNotFoundError, match="^defer failed: event not found$"):
        await sub.defer("nope", 1000)
    with pytest.raises(EventNotFoundError, match="^discard failed: event not found$"):
        await sub.discard("nope")
    with pytest.raises(EventsValidationError):
        await sub.ack("", 1)
    assert issubclass(EventsError, HeraldError)


async def test_grpc_status_errors_map_through_handle_grpc_error(env):
    b = await env.make("B", rpc_timeout=2)
    sub = await b.subscribe("down")
    await env.fake.stop()
    with pytest.raises(HeraldConnectionError) as info:
        await sub.ack("x", 1)
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert str(info.value).startswith("ack failed")


# -- heartbeat ------------------------------------------------------------------------------------


async def test_heartbeats(env):
    b = await env.make("B", heartbeat_interval=0.05)
    await eventually(lambda: len(env.fake.state.calls_of("Heartbeat")) >= 3, what="three heartbeats")
    assert {r.client_id for r in env.fake.state.calls_of("Heartbeat")} == {b.client_id}
    env.fake.state.fail_heartbeats = True
    failing_from = len(env.fake.state.calls_of("Heartbeat"))
    await eventually(lambda: len(env.fake.state.calls_of("Heartbeat")) >= failing_from + 3, what="failing heartbeats")
    env.fake.state.fail_heartbeats = False
    after = len(env.fake.state.calls_of("Heartbeat"))
    await eventually(lambda: len(env.fake.state.calls_of("Heartbeat")) >= after + 2, what="heartbeats to go on")
    assert b.sessions == 1


async def test_heartbeat_notices_a_lost_session(env):
    b = await env.make("B", heartbeat_interval=0.05)
    old = b.client_id
    env.fake.state.forget_sessions()
    await eventually(lambda: b.client_id != old, what="a new session")
    assert b.sessions == 2 and b.client_id in env.fake.state.sessions


# -- reconnect ------------------------------------------------------------------------------------


async def test_reconnect_after_restart_keeps_the_session(env):
    a, b = await env.make("A"), await env.make("B")
    sub = await b.subscribe("restart")
    received = collector(sub)
    await a.publish("restart", [env.pk("B")], {"n": 1})
    # (an ack lost in the restart would make the server redeliver: at least once)
    await eventually(lambda: sub.stats.acked == 1, what="the first delivery and its ack")
    client_id = b.client_id
    await env.fake.restart(keep_sessions=True)
    await publish_when_up(a, "restart", [env.pk("B")], {"n": 2})
    await eventually(lambda: len(received) >= 2, what="delivery after the restart")
    assert b.client_id == client_id and b.sessions == 1  # same session, no new Connect
    assert sub.stats.stream_restarts >= 1
    assert [e.payload["n"] for e in received] == [1, 2]
    await eventually(lambda: sub.stats.acked == 2, what="the second ack")
    assert len(env.fake.state.calls_of("Connect")) == 2  # A and B, once each


async def test_pause_is_reapplied_after_a_restart(env):
    a, b = await env.make("A"), await env.make("B")
    sub = await b.subscribe("restart-paused")
    received = collector(sub)
    await sub.pause()
    await env.fake.restart(keep_sessions=True)  # the fake forgets pause flags on restart
    await eventually(lambda: env.fake.state.open_streams("restart-paused"), what="the stream to come back")
    assert (b.client_id, "restart-paused") in env.fake.state.paused
    await publish_when_up(a, "restart-paused", [env.pk("B")], {"x": 1})
    await asyncio.sleep(0.3)
    assert received == []
    await sub.continue_subscription()
    await eventually(lambda: received, what="delivery after continue")


async def test_reconnect_after_restart_that_lost_the_sessions(env):
    a, b = await env.make("A"), await env.make("B")
    sub_one = await b.subscribe("lost-1")
    sub_two = await b.subscribe("lost-2")
    paused = await b.subscribe("lost-3")
    await paused.pause()
    got_one, got_two, got_paused = collector(sub_one), collector(sub_two), collector(paused)
    old = b.client_id
    await env.fake.restart(keep_sessions=False)
    await eventually(lambda: b.client_id != old, what="a new Connect")
    assert b.sessions == 2 and b.client_id in env.fake.state.sessions
    await eventually(
        lambda: {k for k in env.fake.state.streams if k[0] == b.client_id}
        == {(b.client_id, "lost-1"), (b.client_id, "lost-2"), (b.client_id, "lost-3")},
        what="every stream re-opened on the new session",
    )
    assert (b.client_id, "lost-3") in env.fake.state.paused  # pause flags re-applied
    # A's session is gone too: its publish Connects again and is retried once
    await publish_when_up(a, "lost-1", [env.pk("B")], {"n": 1})
    await a.publish("lost-2", [env.pk("B")], {"n": 2})
    await a.publish("lost-3", [env.pk("B")], {"n": 3})
    assert a.sessions == 2
    await eventually(lambda: got_one and got_two, what="deliveries on the new session")
    await asyncio.sleep(0.2)
    assert got_paused == []
    await paused.continue_subscription()
    await eventually(lambda: got_paused, what="the paused one after continue")


async def test_sessions_forgotten_while_running(env):
    """Session expiry: the server ends the streams with OK and answers 'unknown client'."""
    a, b = await env.make("A"), await env.make("B")
    sub = await b.subscribe("expired")
    received = collector(sub)
    old_b, old_a = b.client_id, a.client_id
    env.fake.state.forget_sessions()
    await eventually(lambda: b.client_id != old_b, what="B to connect again")
    await eventually(lambda: env.fake.state.open_streams("expired"), what="the stream to be re-opened")
    ids = await a.publish("expired", [env.pk("B")], {"x": 1})
    assert a.client_id != old_a
    await eventually(lambda: received, what="delivery")
    assert received[0].idem == ids[0]


async def test_unknown_client_on_a_unary_call_connects_again_once(env):
    b = await env.make("B")
    sub = await b.subscribe("unary-renew", auto_ack=False)
    old = b.client_id
    env.fake.state.sessions.pop(old)  # forgotten without ending the stream
    with pytest.raises(EventNotFoundError):
        await sub.ack("missing", 1)  # first answer "unknown client" -> Connect -> retry
    assert b.client_id != old and b.sessions == 2
    acks = env.fake.state.calls_of("AcknowledgeMessage")
    assert [r.client_id for r in acks] == [old, b.client_id]
    # the stream of the stale session was replaced by one on the new session
    await eventually(
        lambda: (b.client_id, "unary-renew") in env.fake.state.streams, what="the stream on the new session"
    )


async def test_superseded_stream_is_reopened(env):
    """The server ending a live subscription's stream with OK (e.g. superseded) -> re-open."""
    a, b = await env.make("A"), await env.make("B")
    sub = await b.subscribe("superseded")
    received = collector(sub)
    subscribes = len(env.fake.state.calls_of("Subscribe"))
    env.fake.state.end_streams(b.client_id, "superseded")
    await eventually(lambda: len(env.fake.state.calls_of("Subscribe")) > subscribes, what="a new Subscribe")
    await eventually(lambda: env.fake.state.open_streams("superseded"), what="the stream to be back")
    await a.publish("superseded", [env.pk("B")], {"x": 1})
    await eventually(lambda: received, what="delivery")
    assert b.sessions == 1


async def test_subscribe_while_the_server_is_down_delivers_once_it_is_back(env):
    a, b = await env.make("A"), await env.make("B")
    await env.fake.stop()
    sub = await b.subscribe("down-then-up", open_timeout=1)
    received = collector(sub)
    assert sub.active
    await asyncio.sleep(0.2)
    await env.fake.start()
    await publish_when_up(a, "down-then-up", [env.pk("B")], {"x": 1})
    await eventually(lambda: received, what="delivery once the server is back")


# -- interoperability with the real ensync-sdk over the fake server ------------------------------


async def test_interop_with_the_real_grpc_sdk(env):
    sdk = pytest.importorskip("ensync_sdk", reason="ensync-sdk is not installed (dev extra)")
    ours = await env.make("B")
    sub = await ours.subscribe("interop")
    received = collector(sub)

    engine = sdk.EnSyncEngine(env.fake.url)
    real_received: List[dict] = []
    decorator = engine.subscribe("interop", auto_ack=True)

    @decorator.handler
    async def real_handler(event: dict) -> None:
        real_received.append(event)

    await engine.create_client("key-A", {"appSecretKey": env.keys["A"][1]})
    try:
        # real SDK -> herald.events (single format; its hybrid format is unreadable by design)
        ids = await engine.publish("interop", [env.pk("B")], {"from": "real"}, {"k": "v"}, {"useHybridEncryption": False})
        await eventually(lambda: received, what="delivery of the real SDK's event")
        assert received[0].idem == ids and received[0].payload == {"from": "real"}
        assert received[0].sender == env.pk("A") and received[0].metadata == {"k": "v"}
        # herald.events (hybrid, interoperable variant) -> real SDK
        await ours.publish("interop", [env.pk("A"), env.pk("C")], {"from": "herald"})
        await eventually(lambda: real_received, what="delivery to the real SDK")
        assert real_received[0]["payload"] == {"from": "herald"}
        assert real_received[0]["sender"] == env.pk("B")
    finally:
        await engine.close()
