"""Checklist item C30 of compat/flowmesh.md §8, step by step, written against the FlowMesh names."""

import asyncio
from datetime import datetime, timedelta, timezone

import grpc
import pytest

from flowmesh import Event, FlowMesh, FlowMeshError, FlowMeshNotFoundError
from flowmesh.exceptions import FlowMeshAuthError, FlowMeshConnectionError
from flowmesh.types import Job, RetryPolicy

from .conftest import TOKEN
from .helpers import recorded_subscribe_calls, wait_done

pytestmark = pytest.mark.integration


async def test_c30_python_sdk_behaviour(endpoint):
    async with FlowMesh(endpoint, auth_token=TOKEN) as c:
        assert await c.health_check() is True
        assert await c.readiness_check() is True

        assert await c.stream.write("t1", "ns1", "c30", [Event(payload=b"p")]) == [0]
        (msg,) = await c.stream.read("t1", "ns1", "c30")
        assert isinstance(msg.created_at, datetime) and msg.created_at.tzinfo is None
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        assert abs((now - msg.created_at).total_seconds()) < 60

        with recorded_subscribe_calls(c) as calls:
            async for m in c.stream.subscribe("t1", "ns1", "c30", "g", start_offset=0):
                assert m.offset == 0
                break
        await wait_done(calls[0])
        assert calls[0].cancelled()

        assert await c.queue.reserve("t1", "ns1", "c30") is None
        await c.queue.enqueue("t1", "ns1", "c30", b"job", delay=timedelta(seconds=1))
        assert await c.queue.reserve("t1", "ns1", "c30") is None
        await asyncio.sleep(1.2)
        job = await c.queue.reserve("t1", "ns1", "c30")
        assert isinstance(job, Job) and isinstance(job.reserve_until, datetime)

        await c.queue.set_retry_policy("t1", "ns1", "c30", RetryPolicy(max_attempts=1))
        with pytest.raises(FlowMeshError) as info:
            await c.queue.nack("t1", "ns1", "c30", job.id)
        assert info.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert not isinstance(info.value, FlowMeshNotFoundError)

        with pytest.raises(FlowMeshNotFoundError) as info:
            await c.kv.get("t1", "ns1", "c30", "nope")
        assert str(info.value).startswith("get failed: ")

    async with FlowMesh(endpoint, auth_token="wrong") as bad:
        with pytest.raises(FlowMeshAuthError):
            await bad.stream.read("t1", "ns1", "c30")
        assert await bad.health_check() is True

    async with FlowMesh("127.0.0.1:1") as unreachable:
        with pytest.raises(FlowMeshConnectionError):
            await unreachable.health_check()
