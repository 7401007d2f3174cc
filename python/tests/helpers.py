"""Small helpers shared by the integration tests."""

import asyncio
import contextlib
from typing import Any, Iterator, List


@contextlib.contextmanager
def recorded_subscribe_calls(client: Any) -> Iterator[List[Any]]:
    """Record the grpc.aio call objects that ``client.stream.subscribe`` creates."""
    stub = client._stubs["stream"]
    original = stub.Subscribe
    calls: List[Any] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        call = original(*args, **kwargs)
        calls.append(call)
        return call

    stub.Subscribe = spy
    try:
        yield calls
    finally:
        stub.Subscribe = original


async def wait_done(call: Any, timeout: float = 1.0) -> None:
    """Wait for a call to finish. After ``break`` the generator is closed by asyncio's
    async-generator finalizer on a later loop iteration, so the cancellation is not instantaneous."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not call.done() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
