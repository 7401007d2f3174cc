"""Streams against a real server (compat/flowmesh.md §3.3, §6.4; checklist C03–C06, C30)."""

import asyncio
import re
from datetime import datetime, timezone

import grpc
import pytest

from herald import (
    ConsumerGroupState,
    Event,
    HeraldError,
    HeraldInvalidArgumentError,
    HeraldNotFoundError,
    Message,
)

from .conftest import NAMESPACE, TENANT
from .helpers import recorded_subscribe_calls, wait_done

pytestmark = pytest.mark.integration

T, NS = TENANT, NAMESPACE


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


async def next_message(gen, timeout: float = 5.0) -> Message:
    return await asyncio.wait_for(gen.__anext__(), timeout)


async def test_write_and_read(client):
    offsets = await client.stream.write(
        T, NS, "write_read",
        [Event(payload=b"a", headers={"k": "1"}), Event(payload=b"b"), Event(payload=b"c", headers=None)],
    )
    assert offsets == [0, 1, 2]

    messages = await client.stream.read(T, NS, "write_read", offset=0, max_messages=10)
    assert [m.offset for m in messages] == [0, 1, 2]
    assert [m.payload for m in messages] == [b"a", b"b", b"c"]
    assert messages[0].headers["k"] == "1"
    ids = {m.id for m in messages}
    assert len(ids) == 3
    now = utc_now()
    for m in messages:
        assert isinstance(m, Message)
        assert re.fullmatch(r"[0-9a-f]{32}", m.id)
        assert m.resource_path == f"{T}/{NS}/stream/write_read"
        assert m.partition == 0
        assert m.schema_version == 0
        assert m.created_at.tzinfo is None
        assert abs((now - m.created_at).total_seconds()) < 60
    assert messages[0].created_at <= messages[1].created_at <= messages[2].created_at

    assert await client.stream.write(T, NS, "write_read", [Event(b"d"), Event(b"e")]) == [3, 4]
    assert await client.stream.get_latest_offset(T, NS, "write_read") == 4


async def test_read_edges(client):
    await client.stream.write(T, NS, "read_edges", [Event(payload=str(i).encode()) for i in range(12)])
    # default max_messages is 10
    assert [m.offset for m in await client.stream.read(T, NS, "read_edges")] == list(range(10))
    assert [m.offset for m in await client.stream.read(T, NS, "read_edges", offset=1, max_messages=1)] == [1]
    assert await client.stream.read(T, NS, "read_edges", offset=12) == []
    # max_messages <= 0 means the server default of 100
    assert len(await client.stream.read(T, NS, "read_edges", max_messages=0)) == 12
    # partition 1 is always empty
    assert await client.stream.read(T, NS, "read_edges", partition=1) == []
    assert await client.stream.get_latest_offset(T, NS, "read_edges", partition=1) == -1


async def test_subscribe_from_zero_and_break_cancels_the_call(client):
    await client.stream.write(T, NS, "sub_break", [Event(b"p0"), Event(b"p1")])

    with recorded_subscribe_calls(client) as calls:
        first = None
        async for msg in client.stream.subscribe(T, NS, "sub_break", "g", start_offset=0):
            first = msg
            break
    assert first is not None and first.offset == 0 and first.payload == b"p0"
    assert len(calls) == 1
    await wait_done(calls[0])
    assert calls[0].cancelled()
    # The connection is still usable after the cancellation.
    assert await client.stream.get_latest_offset(T, NS, "sub_break") == 1


async def test_subscribe_aclose_cancels_and_follows_new_writes(client, other_client):
    gen = client.stream.subscribe(T, NS, "sub_aclose", "g", start_offset=0)
    waiter = asyncio.ensure_future(next_message(gen))
    await asyncio.sleep(0.3)
    assert not waiter.done()  # empty stream: the subscription waits
    await other_client.stream.write(T, NS, "sub_aclose", [Event(b"late")])
    msg = await waiter
    assert (msg.offset, msg.payload) == (0, b"late")
    await gen.aclose()
    with pytest.raises(StopAsyncIteration):
        await gen.__anext__()


async def test_subscribe_resumes_after_committed_offset_without_auto_commit(client, other_client):
    await client.stream.write(T, NS, "sub_resume", [Event(str(i).encode()) for i in range(5)])
    await client.stream.commit_offset(T, NS, "sub_resume", "g", 0, 2)

    gen = client.stream.subscribe(T, NS, "sub_resume", "g")  # start_offset defaults to -1
    try:
        assert (await next_message(gen)).offset == 3
        assert (await next_message(gen)).offset == 4
        await other_client.stream.write(T, NS, "sub_resume", [Event(b"5")])
        msg = await next_message(gen)
        assert (msg.offset, msg.payload) == (5, b"5")
    finally:
        await gen.aclose()
    assert await client.stream.get_offset(T, NS, "sub_resume", "g") == 2

    fresh = client.stream.subscribe(T, NS, "sub_resume", "never-committed", start_offset=-1)
    try:
        assert (await next_message(fresh)).offset == 0
    finally:
        await fresh.aclose()


async def test_subscribe_tail_starts_after_the_last_message(client, other_client):
    await client.stream.write(T, NS, "sub_tail", [Event(b"old0"), Event(b"old1")])
    gen = client.stream.subscribe(T, NS, "sub_tail", "g", start_offset=-2)
    try:
        waiter = asyncio.ensure_future(next_message(gen))
        await asyncio.sleep(0.5)  # let the subscription start before writing
        assert not waiter.done()
        await other_client.stream.write(T, NS, "sub_tail", [Event(b"new")])
        msg = await waiter
        assert (msg.offset, msg.payload) == (2, b"new")
    finally:
        await gen.aclose()


async def test_offsets_and_consumer_group_state(client):
    stream = "groups"
    await client.stream.write(T, NS, stream, [Event(str(i).encode()) for i in range(5)])
    assert await client.stream.get_offset(T, NS, stream, "g1") == -1
    state = await client.stream.get_consumer_group_state(T, NS, stream, "g1")
    assert state == ConsumerGroupState(
        stream=f"{T}/{NS}/stream/{stream}", group="g1", partition=0, committed_offset=-1, latest_offset=4, lag=5,
    )

    async def commit_and_lag(offset):
        await client.stream.commit_offset(T, NS, stream, "g1", 0, offset)
        return (await client.stream.get_consumer_group_state(T, NS, stream, "g1")).lag

    assert await commit_and_lag(2) == 2
    assert await client.stream.get_offset(T, NS, stream, "g1") == 2
    assert await commit_and_lag(4) == 0
    assert await commit_and_lag(1) == 3  # backwards is allowed
    assert await commit_and_lag(10) == 0  # past the end too
    assert await commit_and_lag(-1) == 5  # reset
    assert await client.stream.get_offset(T, NS, stream, "g1") == -1

    with pytest.raises(HeraldInvalidArgumentError) as info:
        await client.stream.commit_offset(T, NS, stream, "g1", 0, -2)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(HeraldInvalidArgumentError):
        await client.stream.get_offset(T, NS, stream, "")

    empty = await client.stream.get_consumer_group_state(T, NS, "groups_empty", "g")
    assert (empty.committed_offset, empty.latest_offset, empty.lag) == (-1, -1, -1)
    assert await client.stream.get_latest_offset(T, NS, "groups_empty") == -1


async def test_invalid_requests(client):
    with pytest.raises(HeraldInvalidArgumentError, match="^write failed: at least one event is required"):
        await client.stream.write(T, NS, "stream_errors", [])
    with pytest.raises(HeraldInvalidArgumentError, match="event 1: payload cannot be empty"):
        await client.stream.write(T, NS, "stream_errors", [Event(b"x"), Event(b"")])
    assert await client.stream.get_latest_offset(T, NS, "stream_errors") == -1
    with pytest.raises(HeraldInvalidArgumentError, match="offset cannot be negative"):
        await client.stream.read(T, NS, "stream_errors", offset=-1)
    with pytest.raises(HeraldInvalidArgumentError, match="tenant cannot be empty"):
        await client.stream.read("  ", NS, "stream_errors")
    with pytest.raises(HeraldError) as info:
        async for _ in client.stream.subscribe(T, NS, "stream_errors", "g", start_offset=-3):
            pass
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert str(info.value).startswith("subscribe failed")
    with pytest.raises(HeraldInvalidArgumentError, match="consumer_group is required"):
        async for _ in client.stream.subscribe(T, NS, "stream_errors", ""):
            pass


async def test_unprovisioned_stream_is_not_found(client):
    missing = "missing"
    path = f"{T}/{NS}/stream/{missing}"
    calls = {
        "write": lambda: client.stream.write(T, NS, missing, [Event(b"x")]),
        "read": lambda: client.stream.read(T, NS, missing),
        "get_latest_offset": lambda: client.stream.get_latest_offset(T, NS, missing),
        "commit_offset": lambda: client.stream.commit_offset(T, NS, missing, "g", 0, 0),
        "get_offset": lambda: client.stream.get_offset(T, NS, missing, "g"),
        "get_consumer_group_state": lambda: client.stream.get_consumer_group_state(T, NS, missing, "g"),
    }
    for operation, call in calls.items():
        with pytest.raises(HeraldNotFoundError) as info:
            await call()
        assert str(info.value) == f"{operation} failed: stream not found: {path}", operation
        assert info.value.code == grpc.StatusCode.NOT_FOUND
    for start in (0, -1, -2):
        with pytest.raises(HeraldNotFoundError, match="^subscribe failed: stream not found"):
            async for _ in client.stream.subscribe(T, NS, missing, "g", start_offset=start):
                pass
