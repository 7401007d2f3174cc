"""herald.service over the real protocol: publish, subscribe, unsubscribe, request and respond."""

import asyncio
import time
from typing import Any, List

import pytest

from herald.exceptions import (
    HeraldError,
    HeraldInvalidArgumentError,
    HeraldNoRespondersError,
    HeraldTimeoutError,
)
from herald.service import Message, Subscription

from .helpers import eventually, sync

pytestmark = pytest.mark.integration


async def test_publish_encodes_payloads_and_sends_headers(make_service, nc):
    svc = make_service()
    await svc.run()
    topic = f"pub.{svc.service_id}"
    received: List[Any] = []

    async def record(msg: Any) -> None:
        received.append(msg)

    await nc.subscribe(topic, cb=record)
    await sync(nc)
    for value in (b"\x00\x01raw", "text é", {"a": 1}, [1, 2], 42, None, b""):
        await svc.publish(topic, value)
    await svc.publish(topic, b"with headers", headers={"X-Trace": "1", "Content-Type": "text/plain"})
    await eventually(lambda: len(received) == 8, what="8 messages")
    assert [m.data for m in received] == [
        b"\x00\x01raw", "text é".encode(), b'{"a": 1}', b"[1, 2]", b"42", b"null", b"", b"with headers",
    ]
    assert all(not m.headers for m in received[:7])  # no headers given: a plain PUB
    assert received[7].headers == {"X-Trace": "1", "Content-Type": "text/plain"}


async def test_subscribe_delivers_messages_in_order_to_an_async_iterator(make_service, nc):
    svc = make_service()
    await svc.run()
    topic = f"q.{svc.service_id}.*"
    sub = await svc.subscribe(topic)
    assert isinstance(sub, Subscription) and sub.active
    for i in range(5):
        await nc.publish(f"q.{svc.service_id}.{i}", str(i).encode(), headers={"N": str(i)} if i == 4 else None)
    got: List[Message] = []
    async for message in sub:
        got.append(message)
        if len(got) == 5:
            break
    assert [m.payload for m in got] == [b"0", b"1", b"2", b"3", b"4"]
    assert got[0].subject == f"q.{svc.service_id}.0" and got[0].reply == "" and got[4].headers == {"N": "4"}

    with pytest.raises(HeraldTimeoutError, match="no message"):
        await sub.next(timeout=0.05)
    await nc.publish(f"q.{svc.service_id}.x", b"queued")
    assert (await asyncio.wait_for(sub.get(), 5)).payload == b"queued"

    # After unsubscribe, iteration ends and next() says the subscription is closed.
    assert await svc.unsubscribe(sub) == 1
    assert not sub.active
    assert [m async for m in sub] == []
    with pytest.raises(HeraldError, match="is closed"):
        await sub.next(timeout=1)
    assert await svc.unsubscribe(sub) == 0


async def test_unsubscribe_by_topic_stops_delivery(make_service, nc):
    svc = make_service()
    await svc.run()
    topic = f"u.{svc.service_id}"
    marker = f"u.{svc.service_id}.marker"
    got: List[bytes] = []
    markers: List[bytes] = []
    await svc.subscribe_handler(topic, lambda m: got.append(m.payload))
    await svc.subscribe_handler(topic, lambda m: got.append(m.payload))
    await svc.subscribe_handler(marker, lambda m: markers.append(m.payload))
    await nc.publish(topic, b"before")
    await eventually(lambda: got == [b"before", b"before"], what="both subscriptions")

    assert await svc.unsubscribe(topic) == 2
    assert await svc.unsubscribe(topic) == 0
    assert await svc.unsubscribe(f"service.{svc.service_id}.start") == 0  # control subscriptions are kept
    # Published in this order on one connection, so once the marker arrives "after" has been
    # delivered too, had anyone still subscribed.
    await nc.publish(topic, b"after")
    await nc.publish(marker, b"m")
    await eventually(lambda: markers == [b"m"], what="the marker")
    assert got == [b"before", b"before"]


async def test_a_handler_can_unsubscribe_its_own_subscription(make_service, nc):
    svc = make_service()
    await svc.run()
    topic = f"self.{svc.service_id}"
    steps: List[str] = []
    subs: List[Subscription] = []

    async def once(message: Message) -> None:
        steps.append(f"got {message.payload.decode()}")
        await subs[0].unsubscribe()
        await asyncio.sleep(0)  # the handler goes on after unsubscribing
        steps.append("handler finished")

    subs.append(await svc.subscribe_handler(topic, once))
    for payload in (b"1", b"2", b"3"):
        await nc.publish(topic, payload)
    await eventually(lambda: "handler finished" in steps, what="the handler to finish")
    marker: List[bytes] = []
    await svc.subscribe_handler(topic + ".marker", lambda m: marker.append(m.payload))
    await nc.publish(topic, b"4")
    await nc.publish(topic + ".marker", b"m")
    await eventually(lambda: marker == [b"m"], what="the marker")
    assert steps == ["got 1", "handler finished"]


async def test_request_and_respond_round_trip_with_payload_and_headers(make_service, nc):
    svc = make_service()
    await svc.run()
    topic = f"echo.{svc.service_id}"

    async def responder(message: Message) -> None:
        await svc.respond(message, {"echo": message.text()}, headers={"X-Resp": "1"})

    await svc.subscribe_handler(topic, responder)

    # A plain nats-py client asks the service.
    reply = await nc.request(topic, b"hello", timeout=5, headers={"X-Req": "r"})
    assert reply.data == b'{"echo": "hello"}'
    assert reply.headers == {"X-Req": "r", "X-Resp": "1"}  # request headers copied, then ours

    # The service asks (itself, through the server) and gets a Message back.
    answer = await svc.request(topic, "from the service", timeout=5, headers={"X-Req": "s"})
    assert isinstance(answer, Message)
    assert answer.json() == {"echo": "from the service"} and answer.data == answer.payload
    assert answer.headers == {"X-Req": "s", "X-Resp": "1"}


async def test_request_to_a_plain_nats_responder(make_service, nc):
    svc = make_service()
    await svc.run()
    topic = f"plain.{svc.service_id}"

    async def respond(msg: Any) -> None:
        await msg.respond(b"pong:" + msg.data)

    await nc.subscribe(topic, cb=respond)
    await sync(nc)
    reply = await svc.request(topic, b"ping", timeout=5)
    assert reply.payload == b"pong:ping"


async def test_request_without_responders_fails_fast(make_service):
    svc = make_service()
    await svc.run()
    started = time.monotonic()
    with pytest.raises(HeraldNoRespondersError, match="no responders"):
        await svc.request(f"nobody.{svc.service_id}", b"x", timeout=5)
    assert time.monotonic() - started < 4  # the server says so at once; no timeout involved


async def test_request_times_out_when_nobody_answers(make_service, nc):
    svc = make_service()
    await svc.run()
    topic = f"silent.{svc.service_id}"

    async def ignore(msg: Any) -> None:
        pass

    await nc.subscribe(topic, cb=ignore)
    await sync(nc)
    with pytest.raises(HeraldTimeoutError, match="within 0.2 s") as info:
        await svc.request(topic, b"x", timeout=0.2)
    assert isinstance(info.value, TimeoutError)


async def test_respond_to_a_published_message_raises(make_service, nc):
    svc = make_service()
    await svc.run()
    topic = f"noreply.{svc.service_id}"
    errors: List[BaseException] = []

    async def handler(message: Message) -> None:
        try:
            await svc.respond(message, b"answer")
        except HeraldInvalidArgumentError as e:
            errors.append(e)

    await svc.subscribe_handler(topic, handler)
    await nc.publish(topic, b"fire and forget")
    await eventually(lambda: len(errors) == 1, what="respond to fail")
    assert "has no reply subject" in str(errors[0])


async def test_invalid_subjects_raise_invalid_argument(make_service):
    svc = make_service()
    await svc.run()
    with pytest.raises(HeraldInvalidArgumentError):
        await svc.subscribe("bad..subject")
    with pytest.raises(HeraldInvalidArgumentError):
        await svc.publish("has space", b"x")
