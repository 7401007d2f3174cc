"""The HeraldServer helper itself: provisioning, auth off, auto-create, restart and SIGKILL."""

import json

import pytest

from herald import Event, Herald, HeraldNotFoundError
from herald.testing import HeraldServer, HeraldServerError, resource_config


def test_resource_config():
    assert resource_config("t1/ns1/stream/orders") == {
        "tenant": "t1", "namespace": "ns1", "name": "orders", "type": "stream", "partitions": 1, "retention": {},
    }
    for bad in ("t1/ns1/orders", "t1/ns1/topic/x", "a/b/c/d/e"):
        with pytest.raises(ValueError):
            resource_config(bad)


def test_missing_binary_is_a_clear_error(tmp_path):
    server = HeraldServer(tmp_path / "no-such-herald")
    with pytest.raises(HeraldServerError, match="not found"):
        server.start()
    server.close()


@pytest.mark.integration
def test_server_that_exits_reports_its_output(herald_binary):
    server = HeraldServer(herald_binary, extra_args=["--no-such-flag-for-herald"], startup_timeout=10)
    try:
        with pytest.raises(HeraldServerError) as info:
            server.start()
        assert "exited" in str(info.value)
        assert "--no-such-flag-for-herald" in str(info.value)
    finally:
        server.close()


@pytest.mark.integration
async def test_restart_keeps_data_and_kill_keeps_acknowledged_writes(herald_binary):
    server = HeraldServer(herald_binary, resources=["t1/ns1/stream/persist"], fsync="always")
    try:
        server.start()
        assert json.loads((server._port_file).read_text())["grpc"] == server.grpc_endpoint
        # No --token: authentication is off on loopback.
        async with Herald(server.grpc_endpoint) as client:
            assert await client.stream.write("t1", "ns1", "persist", [Event(b"one")]) == [0]

        server.restart()
        async with Herald(server.grpc_endpoint) as client:
            assert await client.stream.write("t1", "ns1", "persist", [Event(b"two")]) == [1]

        server.kill()
        assert not server.is_running()
        server.start()
        async with Herald(server.grpc_endpoint) as client:
            messages = await client.stream.read("t1", "ns1", "persist")
            assert [m.payload for m in messages] == [b"one", b"two"]
        assert server.stop() is not None
    finally:
        server.close()


@pytest.mark.integration
async def test_auto_create(herald_binary):
    with HeraldServer(herald_binary, auto_create=True) as server:
        async with Herald(server.grpc_endpoint) as client:
            assert await client.stream.write("t9", "auto", "made", [Event(b"x")]) == [0]
            await client.kv.set("t9", "auto", "cache", "k", b"v")
            assert await client.kv.get("t9", "auto", "cache", "k") == b"v"
            job_id, seq = await client.queue.enqueue("t9", "auto", "jobs", b"j")
            assert seq == 0
            # Reads never create anything.
            with pytest.raises(HeraldNotFoundError):
                await client.stream.read("t9", "auto", "never-written")
