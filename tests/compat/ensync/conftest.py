"""Fixtures for the EnSync wire-compatibility suite (compat/ensync.md §9, scenarios 1–20, plus interop with
``herald.events``, restart durability and bad input).

  HERALD_BIN               Herald binary (default <repo>/target/debug/herald)
  HERALD_EXTRA_ARGS        extra arguments appended to ``herald serve``
  HERALD_REQUIRE_SERVER=1  a missing Herald binary or client library fails the run instead of skipping it
  ENSYNC_COMPAT_KEEP       keep the servers' temp dirs (herald.toml, data dir, server.log)

Servers:

* ``herald``: shared by the whole session. ``[events] ack_timeout = "5s"`` (scenarios 6, 7 and 9 assume it) and
  three identities A, B and C (access keys ``key-A``, ``key-B``, ``key-C``) with fresh keypairs. ``ids["X"]`` is a
  fourth keypair that is *not* registered (scenario 15's ``pkX``).
* scenario 20 needs the default 60 s ack timeout and takes more than 90 s by definition. When it is selected, a
  server of its own is started at the beginning of the session and the scenario runs in a background thread (its own
  event loop) while the other tests run; ``test_s20_*`` collects its result.
* ``make_server(...)``: a private server (restart scenarios), stopped at the end of the test.

Every test uses its own event names, so tests do not see each other's events on the shared server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib.util
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

HERALD_BIN = Path(os.environ.get("HERALD_BIN", HERE.parents[2] / "target" / "debug" / "herald"))
CLIENT_MODULES = (
    "grpc",
    "nacl",
    "websockets",
    "ensync_sdk",
    "ensync_sdk_ws",
    "ensync_core",
    "pytest_asyncio",
    "herald.events",
)


def _require() -> bool:
    return os.environ.get("HERALD_REQUIRE_SERVER") == "1"


def _client_libraries_missing() -> str | None:
    missing = []
    for m in CLIENT_MODULES:
        try:
            found = importlib.util.find_spec(m) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(m)
    if missing:
        return (
            f"EnSync compatibility suite needs {', '.join(CLIENT_MODULES)} (missing: {', '.join(missing)}); "
            "pip install -r tests/compat/ensync/requirements.txt (and the SDK: pip install -e python)"
        )
    return None


def _herald_missing() -> str | None:
    if not HERALD_BIN.is_file():
        return f"herald binary not found at {HERALD_BIN} (build it with `cargo build -p herald` or set HERALD_BIN)"
    return None


if _client_libraries_missing():
    # Nothing to run (or, with HERALD_REQUIRE_SERVER=1, a usage error from pytest_collection_modifyitems).
    collect_ignore_glob = ["test_*.py", "scenario20.py", "ensync_compat.py"]
else:
    collect_ignore_glob = []
    import ensync_compat  # noqa: E402
    from ensync_compat import HeraldServer, Identity, RawGrpc, RawWs, Recorder, new_identity, recording  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: waits several seconds; still runs by default")


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [f"ensync compat: herald {_herald_missing() or HERALD_BIN}"]
    lib = _client_libraries_missing()
    if lib:
        lines.append(f"  {lib}")
    return lines


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    lib = _client_libraries_missing()
    if lib and _require():
        raise pytest.UsageError(lib)
    reason = _herald_missing()
    if reason and _require():
        # CI: a missing binary is a failure, not a reason to pass with nothing tested.
        raise pytest.UsageError(reason)
    if reason:
        for item in items:
            if HERE in Path(str(item.path)).resolve().parents:
                item.add_marker(pytest.mark.skip(reason=reason))


# --------------------------------------------------------------------------
# Identities and servers
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ids() -> dict[str, Identity]:
    """A, B and C are registered in every server of the suite; X is a valid keypair nobody registered."""
    return {n: new_identity(n) for n in ("A", "B", "C", "X")}


def _registered(ids: dict[str, Identity]) -> list[Identity]:
    return [ids[n] for n in ("A", "B", "C")]


def _start(srv: HeraldServer) -> HeraldServer:
    try:
        srv.start()
    except RuntimeError as e:
        srv.cleanup()
        pytest.fail(str(e), pytrace=False)
    return srv


@pytest.fixture(scope="session")
def herald(ids) -> HeraldServer:
    """The shared server: ack timeout 5 s, identities A, B, C."""
    srv = _start(HeraldServer(_registered(ids), ack_timeout=f"{int(ensync_compat.ACK_TIMEOUT)}s", label="shared"))
    yield srv
    srv.cleanup()


@pytest.fixture(autouse=True)
def _shared_server_alive(request):
    yield
    if "herald" in request.fixturenames:
        srv: HeraldServer = request.getfixturevalue("herald")
        if not srv.alive():
            pytest.fail(
                f"the shared herald exited (code {srv.proc.returncode}) during this test\n{srv.log_tail()}",
                pytrace=False,
            )


@pytest.fixture
def make_server(ids):
    """``make_server(ack_timeout="5s", fsync=None)``: a private, started server with identities A, B, C."""
    made: list[HeraldServer] = []

    def factory(*, ack_timeout: str | None = "5s", fsync: str | None = None, label: str = "private") -> HeraldServer:
        srv = HeraldServer(_registered(ids), ack_timeout=ack_timeout, fsync=fsync, label=label)
        made.append(srv)
        return _start(srv)

    yield factory
    for srv in made:
        crashed = srv.proc is not None and srv.proc.poll() is not None and srv.proc.returncode not in (0, -9, -15)
        tail = srv.log_tail() if crashed else ""
        srv.cleanup()
        if crashed:
            pytest.fail(f"private herald exited with code {srv.proc.returncode}\n{tail}", pytrace=False)


# --------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------


@dataclass
class GrpcClient:
    """An ``ensync_sdk.EnSyncEngine`` plus its decorator objects (by event name) and its RPC recorder."""

    engine: Any
    subs: dict[str, Any] = field(default_factory=dict)
    rec: Recorder | None = None

    @property
    def sub(self) -> Any:
        (only,) = self.subs.values()
        return only


class Clients:
    """Creates SDK engines and raw clients against one server; everything is closed at the end of the test."""

    def __init__(self, server: HeraldServer, closers: list[Callable[[], Any]]) -> None:
        self.server = server
        self._closers = closers

    def on(self, server: HeraldServer) -> "Clients":
        return Clients(server, self._closers)

    def engine(self, options: dict | None = None) -> Any:
        """A gRPC engine that is not connected yet (for the handlers-before-create_client idiom)."""
        from ensync_sdk import EnSyncEngine

        eng = EnSyncEngine(self.server.grpc_url, options)
        self._closers.append(eng.close)
        return eng

    async def grpc(
        self,
        ident: Identity | str,
        handlers: dict[str, Any] | None = None,
        *,
        auto_ack: bool = True,
        options: dict | None = None,
        record: bool = True,
    ) -> GrpcClient:
        """§9.1 gRPC idiom: ``sub = eng.subscribe(name, auto_ack=…)``, ``@sub.handler``, then ``create_client``.

        ``handlers`` maps event names to a handler or ``(handler, auto_ack)``. ``ident`` may be an access key string
        (then no appSecretKey is passed)."""
        eng = self.engine(options)
        client = GrpcClient(engine=eng, rec=Recorder() if record else None)
        for name, h in (handlers or {}).items():
            fn, ack = h if isinstance(h, tuple) else (h, auto_ack)
            sub = eng.subscribe(name, auto_ack=ack)
            sub.handler(fn)
            client.subs[name] = sub
        with recording(client.rec):
            if isinstance(ident, Identity):
                res = await asyncio.wait_for(eng.create_client(ident.access_key, {"appSecretKey": ident.secret_key}), 10)
            else:
                res = await asyncio.wait_for(eng.create_client(ident), 10)
        assert res is eng
        return client

    async def ws(self, ident: Identity | str, options: dict | None = None) -> Any:
        """A connected ``ensync_sdk_ws.EnSyncEngine``."""
        from ensync_sdk_ws import EnSyncEngine as WsEngine

        eng = WsEngine(self.server.ws_url, options)
        self._closers.append(eng.close)
        if isinstance(ident, Identity):
            res = await asyncio.wait_for(eng.create_client(ident.access_key, {"appSecretKey": ident.secret_key}), 10)
        else:
            res = await asyncio.wait_for(eng.create_client(ident), 10)
        assert res is eng
        return eng

    async def raw(self) -> RawGrpc:
        raw = RawGrpc(self.server.grpc_target)
        self._closers.append(raw.close)
        return raw

    async def raw_ws(self, path: str = "/message") -> RawWs:
        ws = await RawWs.open(f"ws://127.0.0.1:{self.server.relay_port}{path}")
        self._closers.append(ws.close)
        return ws

    async def events(self, ident: Identity, **options: Any) -> Any:
        """A connected ``herald.events.EventClient`` (Herald's own SDK)."""
        from herald.events import EventClient

        client = await asyncio.wait_for(
            EventClient.connect(
                self.server.grpc_url, access_key=ident.access_key, secret_key=ident.secret_key, **options
            ),
            10,
        )
        self._closers.append(client.close)
        return client


@pytest.fixture
async def clients(herald):
    ensync_compat.install_recording_shim()
    closers: list[Callable[[], Any]] = []
    yield Clients(herald, closers)
    for close in reversed(closers):
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(close(), 10)


@pytest.fixture
async def private_clients():
    """Clients for private servers: ``private_clients.on(server)``."""
    ensync_compat.install_recording_shim()
    closers: list[Callable[[], Any]] = []
    yield Clients(None, closers)  # type: ignore[arg-type]
    for close in reversed(closers):
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(close(), 10)


# --------------------------------------------------------------------------
# Scenario 20 in the background
# --------------------------------------------------------------------------


class Background:
    """Scenario 20 running in its own thread and event loop against its own server (default 60 s ack timeout)."""

    def __init__(self, ids: dict[str, Identity]) -> None:
        self.ids = ids
        self.server = HeraldServer(_registered(ids), ack_timeout=None, label="s20-default-ack-timeout")
        self.future: concurrent.futures.Future = concurrent.futures.Future()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.task: asyncio.Task | None = None
        self.thread = threading.Thread(target=self._run, name="ensync-s20", daemon=True)

    def start(self) -> None:
        try:
            self.server.start()
        except RuntimeError as e:
            self.future.set_exception(RuntimeError(str(e)))
            return
        self.thread.start()

    def _run(self) -> None:
        import scenario20

        async def main():
            self.task = asyncio.current_task()
            return await scenario20.run(self.server, self.ids)

        loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            self.future.set_result(loop.run_until_complete(main()))
        except BaseException as e:  # noqa: BLE001 - handed to the test
            self.future.set_exception(e)
        finally:
            with contextlib.suppress(Exception):
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for t in pending:
                    t.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    def stop(self) -> None:
        if self.thread.is_alive() and self.loop is not None and self.task is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)
            self.thread.join(20)
        self.server.cleanup()


@pytest.fixture(scope="session", autouse=True)
def _scenario20_background(request, ids):
    """Starts scenario 20 at the beginning of the session if it is selected (it needs > 90 s of wall time)."""
    wanted = any(item.name.startswith("test_s20") for item in request.session.items) and not _herald_missing()
    if not wanted:
        yield None
        return
    bg = Background(ids)
    bg.start()
    yield bg
    bg.stop()


@pytest.fixture
def scenario20(_scenario20_background) -> Background:
    assert _scenario20_background is not None
    return _scenario20_background
