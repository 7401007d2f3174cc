"""Fixtures for the NATS compatibility suite (compat/nats-fluxlib.md §5, AC-01 … AC-22).

Every scenario runs against Herald, the reference nats-server, or both:

  NATS_COMPAT_TARGET   herald (default) | reference | both
  HERALD_BIN           Herald binary (default <repo>/target/debug/herald)
  HERALD_EXTRA_ARGS    extra arguments appended to ``herald serve``
  HERALD_REQUIRE_SERVER=1  a missing Herald binary or client library fails the run instead of skipping it
  NATS_SERVER_BIN      nats-server binary (default: nats-server on PATH, or /usr/sbin/nats-server)
  NATS_COMPAT_KEEP     keep the servers' temp dirs (configuration, data, server.log)

Servers with the default configuration are shared by the whole session (one per target); scenarios that need
limits (max_payload 1024, ping_interval 1s, ...) or that stop, restart or lame-duck the server get their own.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import nats_compat  # noqa: E402
from nats_compat import DEFAULT_CONFIG, ServerConfig, ServerProcess, make_server  # noqa: E402

TARGETS = {"herald": ["herald"], "reference": ["reference"], "both": ["herald", "reference"]}


def _targets() -> list[str]:
    value = os.environ.get("NATS_COMPAT_TARGET", "herald").strip().lower() or "herald"
    if value not in TARGETS:
        raise pytest.UsageError(f"NATS_COMPAT_TARGET must be herald, reference or both (got {value!r})")
    return TARGETS[value]


def _client_libraries_missing() -> str | None:
    missing = [m for m in ("nats", "fluxmq", "pytest_asyncio") if importlib.util.find_spec(m) is None]
    if missing:
        return (
            f"NATS compatibility suite needs nats-py, fluxmq and pytest-asyncio (missing: {', '.join(missing)}); "
            "pip install -r tests/compat/nats/requirements.txt"
        )
    return None


def _herald_missing() -> str | None:
    if not nats_compat.HERALD_BIN.is_file():
        return (
            f"herald binary not found at {nats_compat.HERALD_BIN} "
            "(build it with `cargo build -p herald` or set HERALD_BIN)"
        )
    return None


def _reference_missing() -> str | None:
    if nats_compat.NATS_SERVER_BIN is None:
        return "reference nats-server not installed (apt-get install nats-server, or set NATS_SERVER_BIN)"
    return None


collect_ignore_glob = ["test_*.py"] if _client_libraries_missing() else []


def pytest_configure(config: pytest.Config) -> None:
    _targets()  # a bad NATS_COMPAT_TARGET is a usage error before collection
    config.addinivalue_line("markers", "herald_only(reason): scenario not run against the reference server")
    config.addinivalue_line("markers", "slow: waits several seconds; still runs by default")


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [f"nats compat targets: {', '.join(_targets())}"]
    for name, reason in (("herald", _herald_missing()), ("reference", _reference_missing())):
        if name in _targets():
            lines.append(f"  {name}: {reason or 'ok'}")
    lib = _client_libraries_missing()
    if lib:
        lines.append(f"  {lib}")
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" in metafunc.fixturenames:
        metafunc.parametrize("target", _targets(), ids=lambda t: t)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    lib = _client_libraries_missing()
    mine = [it for it in items if HERE in Path(str(it.path)).resolve().parents]
    require = os.environ.get("HERALD_REQUIRE_SERVER") == "1"
    if lib and require:
        raise pytest.UsageError(lib)
    herald_reason = _herald_missing()
    if herald_reason and require and "herald" in _targets():
        # CI: a missing binary is a failure, not a reason to pass with nothing tested.
        raise pytest.UsageError(herald_reason)
    reference_reason = _reference_missing()
    for item in mine:
        params = getattr(item, "callspec", None)
        target = params.params.get("target") if params else None
        if target == "herald" and herald_reason:
            item.add_marker(pytest.mark.skip(reason=herald_reason))
        elif target == "reference":
            if reference_reason:
                item.add_marker(pytest.mark.skip(reason=reference_reason))
            for m in item.iter_markers("herald_only"):
                why = m.kwargs.get("reason") or (m.args[0] if m.args else "herald-only scenario")
                item.add_marker(pytest.mark.skip(reason=f"herald only: {why}"))


# --------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------


class ServerPool:
    """Shared servers keyed by (target, config); started on first use, stopped at session end."""

    def __init__(self) -> None:
        self.shared: dict[tuple[str, ServerConfig], ServerProcess] = {}
        self.died: dict[int, str] = {}

    def get(self, target: str, config: ServerConfig = DEFAULT_CONFIG) -> ServerProcess:
        key = (target, config)
        srv = self.shared.get(key)
        if srv is not None:
            if id(srv) in self.died:
                pytest.fail(f"{target} is not running: it exited during {self.died[id(srv)]}", pytrace=False)
            return srv
        srv = make_server(target, config)
        try:
            srv.start()
        except RuntimeError as e:
            pytest.fail(str(e), pytrace=False)
        self.shared[key] = srv
        return srv

    def close(self) -> None:
        for srv in self.shared.values():
            srv.stop()
            _cleanup(srv)


def _cleanup(srv: ServerProcess) -> None:
    if os.environ.get("NATS_COMPAT_KEEP"):
        print(f"\n{srv.kind} temp dir kept: {srv.tmp}")
    else:
        srv.cleanup()


@pytest.fixture(scope="session")
def pool():
    p = ServerPool()
    yield p
    p.close()


@pytest.fixture
def server(target: str, pool: ServerPool, request) -> ServerProcess:
    """The shared default-configuration server of this test's target."""
    srv = pool.get(target)
    yield srv
    if not srv.alive():
        pool.died[id(srv)] = request.node.nodeid
        pytest.fail(
            f"{srv.kind} exited (code {srv.proc.returncode}) during this test\n--- server output ---\n{srv.log_tail()}",
            pytrace=False,
        )


@pytest.fixture
def make(target: str, pool: ServerPool, request):
    """``make(config, private=False)``: a server of this test's target with ``config``. Shared across tests with the
    same configuration unless ``private`` (for scenarios that stop, restart or lame-duck it)."""
    private: list[ServerProcess] = []
    used: list[ServerProcess] = []

    def factory(config: ServerConfig = DEFAULT_CONFIG, private_: bool = False, **kw: Any) -> ServerProcess:
        if kw:
            config = config.with_(**kw)
        if not private_:
            srv = pool.get(target, config)
            used.append(srv)
            return srv
        srv = make_server(target, config)
        private.append(srv)
        try:
            srv.start()
        except RuntimeError as e:
            pytest.fail(str(e), pytrace=False)
        return srv

    yield factory
    crashed = [s for s in used + private if not s.alive() and not s.expect_exit and s.proc is not None]
    logs = "\n".join(f"--- {s.describe()} ---\n{s.log_tail()}" for s in crashed)
    for s in used:
        if not s.alive():
            pool.died[id(s)] = request.node.nodeid
    for s in private:
        s.stop()
        _cleanup(s)
    if crashed:
        pytest.fail(f"server exited unexpectedly during this test\n{logs}", pytrace=False)


# --------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------


class Clients:
    """Creates nats-py connections (with a hard time limit on connecting) and closes them all after the test."""

    CONNECT_LIMIT = 10.0

    def __init__(self) -> None:
        self.ncs: list[Any] = []
        self.raws: list[nats_compat.Raw] = []
        self.proxies: list[nats_compat.RecordingProxy] = []

    async def nats(self, url: str | list[str], **kw: Any):
        import nats

        kw.setdefault("connect_timeout", 2)
        nc = await asyncio.wait_for(nats.connect(url, **kw), self.CONNECT_LIMIT)
        self.ncs.append(nc)
        return nc

    def track(self, nc: Any) -> Any:
        self.ncs.append(nc)
        return nc

    async def raw(self, srv_or_addr: Any, connect: dict[str, Any] | None = None, handshake: bool = True, **kw: Any):
        addr = srv_or_addr.addr if hasattr(srv_or_addr, "addr") else srv_or_addr
        if handshake:
            r = await nats_compat.Raw.connected(addr, connect, **kw)
        else:
            r = await nats_compat.Raw.open(addr, **kw)
        self.raws.append(r)
        return r

    async def proxy(self, srv: ServerProcess) -> nats_compat.RecordingProxy:
        p = await nats_compat.RecordingProxy(srv.addr).start()
        self.proxies.append(p)
        return p

    async def close(self) -> None:
        for nc in self.ncs:
            if not nc.is_closed:
                try:
                    await asyncio.wait_for(nc.close(), 5)
                except (Exception, asyncio.CancelledError):
                    pass
        for r in self.raws:
            await r.close()
        for p in self.proxies:
            await p.close()


@pytest.fixture
async def clients():
    c = Clients()
    yield c
    await c.close()
