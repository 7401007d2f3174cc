"""Client behaviour that needs no server."""

import inspect

import pytest

from herald import Herald, HeraldConnectionError
from herald.client import KVClient, QueueClient, StreamClient
from herald.types import Event


def test_constructor_does_no_io_and_no_validation():
    client = Herald(endpoint="localhost:99999")
    assert client.endpoint == "localhost:99999"
    assert client.auth_token is None
    assert isinstance(client.stream, StreamClient)
    assert isinstance(client.queue, QueueClient)
    assert isinstance(client.kv, KVClient)


def test_metadata():
    assert Herald("localhost:50051")._get_metadata() is None
    assert Herald("localhost:50051", auth_token="test-token")._get_metadata() == [
        ("authorization", "Bearer test-token")
    ]


async def test_calls_before_connect_raise_connection_error():
    client = Herald("localhost:50051")
    with pytest.raises(HeraldConnectionError, match="^write failed: client is not connected"):
        await client.stream.write("t", "n", "s", [Event(payload=b"x")])
    with pytest.raises(HeraldConnectionError):
        await client.health_check()
    with pytest.raises(HeraldConnectionError):
        await client.queue.reserve("t", "n", "q")
    with pytest.raises(HeraldConnectionError):
        await client.kv.get("t", "n", "s", "k")
    with pytest.raises(HeraldConnectionError, match="^subscribe failed"):
        async for _ in client.stream.subscribe("t", "n", "s", "g"):
            pass


def test_subscribe_is_an_async_generator_function():
    client = Herald("localhost:50051")
    gen = client.stream.subscribe("t", "n", "s", "g")
    assert inspect.isasyncgen(gen)
    # Never iterated: nothing was started, closing is free.
    gen.aclose().close()


async def test_close_is_idempotent_and_safe_before_connect():
    client = Herald("localhost:50051")
    await client.close()
    await client.connect()
    await client.connect()  # harmless
    await client.close()
    await client.close()
    with pytest.raises(HeraldConnectionError):
        await client.kv.exists("t", "n", "s", "k")


async def test_unreachable_server_enters_and_fails_on_first_call():
    async with Herald("127.0.0.1:1") as client:
        with pytest.raises(HeraldConnectionError) as info:
            await client.health_check()
    assert str(info.value).startswith("health_check failed")
    import grpc

    assert info.value.code == grpc.StatusCode.UNAVAILABLE


async def test_aexit_does_not_swallow_exceptions():
    with pytest.raises(ZeroDivisionError):
        async with Herald("127.0.0.1:1"):
            raise ZeroDivisionError


def test_every_sdk_method_has_a_docstring():
    for cls in (Herald, StreamClient, QueueClient, KVClient):
        for name, member in inspect.getmembers(cls, inspect.isfunction):
            if not name.startswith("_"):
                assert member.__doc__, f"{cls.__name__}.{name} has no docstring"
