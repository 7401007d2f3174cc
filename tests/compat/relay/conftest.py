"""Fixtures for the Pulsar Relay compatibility suite (compat/pulsar-relay.md §8, items 1–27).

Every scenario runs against Herald, the reference server (pulsar-relay 0.2.1 under uvicorn), or both:

  RELAY_COMPAT_TARGET      herald (default) | reference | both
  HERALD_BIN               Herald binary (default <repo>/target/debug/herald)
  HERALD_EXTRA_ARGS        extra arguments appended to ``herald serve``
  HERALD_REQUIRE_SERVER=1  a missing Herald binary, a Herald without the relay listener, or a missing client
                           library fails the run instead of skipping it
  RELAY_REFERENCE_PYTHON   Python that has pulsar-relay 0.2.1 installed (default: the one running pytest)
  RELAY_COMPAT_KEEP        keep the servers' temp dirs (server.log, Herald's data dir)

Servers with equal settings are shared by the whole session; most scenarios use the one with
``RATELIMIT_ENABLED=false`` (the login limit is 5/minute/IP). Scenarios that need other settings get a server of
their own, shared with every scenario that needs the same settings.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import relay_compat  # noqa: E402
from relay_compat import DEFAULT_CONFIG, NO_LIMITS, Relay, RelayUnavailable, ServerConfig, ServerProcess, make_server  # noqa: E402

TARGETS = {"herald": ["herald"], "reference": ["reference"], "both": ["herald", "reference"]}
CLIENT_MODULES = ("httpx", "websockets", "jwt", "pulsar_relay_client", "pytest_asyncio")


def _targets() -> list[str]:
    value = os.environ.get("RELAY_COMPAT_TARGET", "herald").strip().lower() or "herald"
    if value not in TARGETS:
        raise pytest.UsageError(f"RELAY_COMPAT_TARGET must be herald, reference or both (got {value!r})")
    return TARGETS[value]


def _require() -> bool:
    return os.environ.get("HERALD_REQUIRE_SERVER") == "1"


def _client_libraries_missing() -> str | None:
    missing = [m for m in CLIENT_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        return (
            f"Pulsar Relay compatibility suite needs {', '.join(CLIENT_MODULES)} (missing: {', '.join(missing)}); "
            "pip install -r tests/compat/relay/requirements.txt"
        )
    return None


def _herald_missing() -> str | None:
    if not relay_compat.HERALD_BIN.is_file():
        return (
            f"herald binary not found at {relay_compat.HERALD_BIN} "
            "(build it with `cargo build -p herald` or set HERALD_BIN)"
        )
    return None


@functools.lru_cache(maxsize=1)
def _reference_missing() -> str | None:
    return relay_compat.reference_missing()


collect_ignore_glob = ["test_*.py"] if _client_libraries_missing() else []


def pytest_configure(config: pytest.Config) -> None:
    _targets()
    config.addinivalue_line("markers", "herald_only(reason): Herald follows the contract where the reference differs")
    config.addinivalue_line("markers", "slow: waits several seconds; still runs by default")


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [f"relay compat targets: {', '.join(_targets())}"]
    if "herald" in _targets():
        lines.append(f"  herald: {_herald_missing() or relay_compat.HERALD_BIN}")
    if "reference" in _targets():
        lines.append(f"  reference: {_reference_missing() or 'pulsar-relay 0.2.1 via ' + relay_compat.REFERENCE_PYTHON}")
    lib = _client_libraries_missing()
    if lib:
        lines.append(f"  {lib}")
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" in metafunc.fixturenames:
        metafunc.parametrize("target", _targets(), ids=lambda t: t)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    lib = _client_libraries_missing()
    if lib and _require():
        raise pytest.UsageError(lib)
    herald_reason = _herald_missing() if "herald" in _targets() else None
    if herald_reason and _require():
        # CI: a missing binary is a failure, not a reason to pass with nothing tested.
        raise pytest.UsageError(herald_reason)
    reference_reason = _reference_missing() if "reference" in _targets() else None
    for item in items:
        if HERE not in Path(str(item.path)).resolve().parents:
            continue
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
    """Shared servers keyed by (target, config); started on first use, stopped at session end.

    The first Herald server started is the probe: if the binary exits at start-up or writes a port file without a
    "relay" key, Herald has no relay listener yet and every Herald scenario is skipped (or fails with
    HERALD_REQUIRE_SERVER=1)."""

    def __init__(self) -> None:
        self.shared: dict[tuple[str, ServerConfig], ServerProcess] = {}
        self.relays: dict[int, Relay] = {}
        self.died: dict[int, str] = {}
        self.herald_unavailable: str | None = None
        self.herald_ok = False

    def _no_herald(self) -> None:
        msg = f"herald has no Pulsar Relay listener: {self.herald_unavailable}"
        if _require():
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg.splitlines()[0])

    def ensure(self, target: str) -> None:
        """Before a Herald scenario starts a server of its own: make sure Herald has a relay at all."""
        if target == "herald" and not self.herald_ok:
            self.get(target, NO_LIMITS)

    def start(self, srv: ServerProcess) -> None:
        try:
            srv.start()
        except RelayUnavailable as e:
            if srv.kind == "herald" and not self.herald_ok:
                self.herald_unavailable = str(e)
                srv.stop()
                _cleanup(srv)
                self._no_herald()
            pytest.fail(str(e), pytrace=False)
        except RuntimeError as e:
            pytest.fail(str(e), pytrace=False)
        if srv.kind == "herald":
            self.herald_ok = True

    def get(self, target: str, config: ServerConfig = NO_LIMITS) -> ServerProcess:
        if target == "herald" and self.herald_unavailable:
            self._no_herald()
        if target == "herald" and not self.herald_ok and config != NO_LIMITS:
            self.get(target, NO_LIMITS)  # probe with the most used settings first
        key = (target, config)
        srv = self.shared.get(key)
        if srv is not None:
            if id(srv) in self.died:
                pytest.fail(f"{target} [{config.label()}] is not running: it exited during {self.died[id(srv)]}", pytrace=False)
            return srv
        srv = make_server(target, config)
        self.start(srv)
        self.shared[key] = srv
        return srv

    def relay(self, srv: ServerProcess) -> Relay:
        r = self.relays.get(id(srv))
        if r is None:
            r = self.relays[id(srv)] = Relay(srv)
        return r

    def close(self) -> None:
        for r in self.relays.values():
            r.close()
        for srv in self.shared.values():
            srv.stop()
            _cleanup(srv)


def _cleanup(srv: ServerProcess) -> None:
    if os.environ.get("RELAY_COMPAT_KEEP"):
        print(f"\n{srv.kind} temp dir kept: {srv.tmp}")
    else:
        srv.cleanup()


@pytest.fixture(scope="session")
def pool():
    p = ServerPool()
    yield p
    p.close()


def _check_alive(pool: ServerPool, servers: list[ServerProcess], request: Any) -> None:
    crashed = [s for s in servers if s.proc is not None and not s.alive() and not s.expect_exit]
    for s in crashed:
        pool.died[id(s)] = request.node.nodeid
    if crashed:
        logs = "\n".join(f"--- {s.describe()} ---\n{s.log_tail()}" for s in crashed)
        pytest.fail(f"server exited unexpectedly during this test\n{logs}", pytrace=False)


@pytest.fixture
def relay(target: str, pool: ServerPool, request) -> Relay:
    """The shared server of this test's target with the contract's defaults and ``RATELIMIT_ENABLED=false``."""
    srv = pool.get(target, NO_LIMITS)
    yield pool.relay(srv)
    _check_alive(pool, [srv], request)


@pytest.fixture
def make(target: str, pool: ServerPool, request):
    """``make(config=NO_LIMITS, private_=False, **env)``: a server of this test's target with those settings, as a
    ``Relay``. Shared with every test that asks for the same settings unless ``private_`` (for scenarios that use up
    a rate-limit budget, restart the server or expect it to exit)."""
    used: list[ServerProcess] = []
    private: list[ServerProcess] = []
    relays: list[Relay] = []

    def factory(config: ServerConfig = NO_LIMITS, private_: bool = False, start: bool = True, **env: str | None) -> Any:
        if env:
            config = config.with_env(**env)
        if not private_:
            srv = pool.get(target, config)
            used.append(srv)
            return pool.relay(srv)
        pool.ensure(target)
        srv = make_server(target, config)
        private.append(srv)
        if not start:
            return srv
        pool.start(srv)
        r = Relay(srv)
        relays.append(r)
        return r

    yield factory
    for r in relays:
        r.close()
    try:
        _check_alive(pool, used + [s for s in private if s.proc is not None], request)
    finally:
        for s in private:
            s.stop()
            _cleanup(s)


@pytest.fixture
def default_relay(make) -> Relay:
    """The shared server with exactly the contract's §8 defaults (rate limits on). Only for scenarios that do not
    spend a rate-limited budget."""
    return make(DEFAULT_CONFIG)
