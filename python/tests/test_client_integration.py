"""Client-level behaviour against a real server: health, auth, connection errors, the FlowMesh names
(compat/flowmesh.md §4.1, §6.2, §6.7; checklist C01, C02, C30)."""

import grpc
import pytest

from herald import Event, Herald, HeraldAuthError, HeraldConnectionError, HeraldError

from .conftest import NAMESPACE, TENANT, TOKEN

pytestmark = pytest.mark.integration

T, NS = TENANT, NAMESPACE


async def test_health_and_readiness(client):
    assert await client.health_check() is True
    assert await client.readiness_check() is True


@pytest.mark.parametrize("token", ["wrong", None])
async def test_bad_or_missing_token_is_an_auth_error_but_health_still_works(endpoint, token):
    async with Herald(endpoint, auth_token=token) as bad:
        assert await bad.health_check() is True
        assert await bad.readiness_check() is True
        with pytest.raises(HeraldAuthError) as info:
            await bad.stream.get_latest_offset(T, NS, "auth")
        assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
        assert str(info.value).startswith("get_latest_offset failed: ")
        with pytest.raises(HeraldAuthError):
            await bad.queue.reserve(T, NS, "worker")
        with pytest.raises(HeraldAuthError):
            await bad.kv.get(T, NS, "basic", "k")
        # Subscribe is authenticated like every other data call (D8).
        with pytest.raises(HeraldAuthError, match="^subscribe failed"):
            async for _ in bad.stream.subscribe(T, NS, "auth", "g", start_offset=0):
                pass


async def test_auth_precedes_validation(endpoint):
    async with Herald(endpoint, auth_token="wrong") as bad:
        with pytest.raises(HeraldAuthError):
            await bad.stream.write("", NS, "auth", [Event(b"x")])


async def test_unreachable_server_is_a_connection_error():
    async with Herald("127.0.0.1:1", auth_token=TOKEN) as unreachable:
        with pytest.raises(HeraldConnectionError) as info:
            await unreachable.stream.read(T, NS, "auth")
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
        assert str(info.value).startswith("read failed")


async def test_calls_after_close_raise_connection_error(endpoint):
    client = Herald(endpoint, auth_token=TOKEN)
    async with client:
        assert await client.health_check()
    await client.close()
    with pytest.raises(HeraldConnectionError):
        await client.health_check()
    # and it can be reconnected
    async with client:
        assert await client.health_check()


async def test_flowmesh_code_runs_unchanged(endpoint):
    from flowmesh import Event as FMEvent
    from flowmesh import FlowMesh, FlowMeshError, FlowMeshNotFoundError

    async with FlowMesh(endpoint, auth_token=TOKEN) as fm:
        assert await fm.health_check()
        offsets = await fm.stream.write(T, NS, "compat", [FMEvent(payload=b"p")])
        assert offsets == [0]
        messages = await fm.stream.read(T, NS, "compat", offset=0)
        assert [m.payload for m in messages] == [b"p"]
        try:
            await fm.kv.get(T, NS, "basic", "nope")
        except FlowMeshNotFoundError as err:
            assert str(err).startswith("get failed: ")
        else:
            pytest.fail("expected FlowMeshNotFoundError")
        with pytest.raises(FlowMeshError):
            await fm.stream.read(T, NS, "missing")
        assert issubclass(FlowMeshError, Exception) and FlowMeshError is HeraldError
