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


@contextlib.contextmanager
def nats_server_process(executable: str, startup_timeout: float = 10.0) -> Iterator[str]:
    """Run the reference ``nats-server`` on a free loopback port; yield its ``nats://`` URL.

    Used by the ``nats_url`` fixture when the herald binary has no NATS listener yet. The port is
    picked by binding port 0 and releasing it, so another process may grab it first: a start that
    fails is retried on a new port (three attempts).
    """
    import socket
    import subprocess
    import tempfile
    import time

    last_output = ""
    for _attempt in range(3):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        log = tempfile.TemporaryFile()
        process = subprocess.Popen(
            [executable, "-a", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + startup_timeout
            ready = False
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
                        conn.settimeout(1.0)
                        if conn.recv(5) == b"INFO ":
                            ready = True
                            break
                except OSError:
                    pass
                time.sleep(0.05)
            if ready:
                yield f"nats://127.0.0.1:{port}"
                return
            log.seek(0)
            last_output = log.read().decode("utf-8", "replace")[-2000:]
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            log.close()
    raise RuntimeError(f"nats-server did not start on a free port:\n{last_output}")


async def sync(nc: Any) -> None:
    """After this, the server has processed everything ``nc`` sent before (its subscriptions are
    in place). A bare ``nc.flush()`` does not promise that: nats-py's PING can overtake commands
    still in its write buffer."""
    from herald.service._util import flush_connection

    await flush_connection(nc)


async def eventually(predicate: Any, timeout: float = 5.0, what: str = "condition") -> None:
    """Wait until ``predicate()`` is true, checking every 10 ms; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


class Monitor:
    """A plain nats-py connection subscribed to ``>`` that records every message it sees."""

    def __init__(self, nc: Any) -> None:
        self.nc = nc
        self.messages: List[Any] = []

    async def start(self) -> "Monitor":
        async def record(msg: Any) -> None:
            self.messages.append(msg)

        await self.nc.subscribe(">", cb=record)
        await sync(self.nc)
        return self

    def payloads(self, subject: str) -> List[bytes]:
        """Payloads seen on ``subject``, in arrival order."""
        return [m.data for m in self.messages if m.subject == subject]

    async def wait_for(self, subject: str, payload: Any = None, timeout: float = 5.0) -> Any:
        """The first message on ``subject`` (with ``payload``, when given); fail after ``timeout``."""

        def find() -> Any:
            for m in self.messages:
                if m.subject == subject and (payload is None or m.data == payload):
                    return m
            return None

        await eventually(lambda: find() is not None, timeout, f"{payload!r} on {subject!r}")
        return find()
