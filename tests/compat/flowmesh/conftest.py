"""Fixtures for the FlowMesh wire-compatibility suite (compat/flowmesh.md §8, C01–C22, C26–C28 and C29's gRPC part;
C03–C22 again over HTTP).

Session start:
  1. compile proto/flowmesh/v1/flowmesh.proto with grpc_tools.protoc into a temp dir and import it;
  2. start ``herald serve`` on port 0 with token ``test-token`` and a FlowMesh-format provisioning file
     that creates t1/ns1/{stream,queue,kv}/<name> for every name in fm_wire.PROVISIONED_NAMES.

Environment:
  HERALD_BIN               server binary (default <repo>/target/debug/herald)
  HERALD_EXTRA_ARGS        extra arguments appended to ``herald serve``
  FLOWMESH_COMPAT_TARGET   host:port of an already running, already provisioned server; nothing is started
  FLOWMESH_COMPAT_ADMIN    with FLOWMESH_COMPAT_TARGET: host:port of its HTTP (admin) listener, for C26/C27
  FLOWMESH_COMPAT_METRICS  with FLOWMESH_COMPAT_TARGET: host:port of its dedicated metrics listener, for C27
  FLOWMESH_PROTO           proto file to compile (default <repo>/proto/flowmesh/v1/flowmesh.proto)
  FLOWMESH_COMPAT_KEEP     keep the server's temp dir (data, resources.json, server.log) after the run
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

try:
    import fm_wire  # noqa: E402
except ImportError as exc:  # grpcio missing: every test is skipped by pytest_collection_modifyitems
    fm_wire = None
    _IMPORT_ERROR = str(exc)
else:
    _IMPORT_ERROR = None

# Without grpcio the test modules cannot even be imported; say so in the header instead of erroring.
collect_ignore_glob = ["test_*.py"] if fm_wire is None else []


def pytest_report_header(config: pytest.Config) -> str | None:
    reason = _skip_reason()
    return f"flowmesh wire suite: {reason}" if reason else None

HERE = Path(__file__).resolve().parent
EXTERNAL_TARGET = os.environ.get("FLOWMESH_COMPAT_TARGET")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: waits many seconds; still runs by default (deselect with -m 'not slow')")


def _skip_reason() -> str | None:
    import importlib.util

    missing = [m for m in ("grpc", "grpc_tools") if importlib.util.find_spec(m) is None]
    if missing or fm_wire is None:
        return f"FlowMesh wire suite needs grpcio and grpcio-tools (missing: {', '.join(missing) or _IMPORT_ERROR})"
    if EXTERNAL_TARGET:
        return None
    if not fm_wire.HERALD_BIN.is_file():
        return (
            f"FlowMesh wire suite: herald binary not found at {fm_wire.HERALD_BIN} "
            "(build it with `cargo build -p herald` or set HERALD_BIN)"
        )
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _skip_reason()
    if reason is None:
        return
    if os.environ.get("HERALD_REQUIRE_SERVER") == "1":
        # CI: a missing binary or client library is a failure, not a reason to pass with nothing tested.
        raise pytest.UsageError(reason)
    marker = pytest.mark.skip(reason=reason)
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(marker)


@pytest.fixture(scope="session")
def wire():
    out = Path(tempfile.mkdtemp(prefix="flowmesh-stubs-"))
    yield fm_wire.generate_stubs(out)
    shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="session")
def server():
    if EXTERNAL_TARGET:
        yield None
        return
    proc = fm_wire.HeraldProcess()
    try:
        proc.start()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    yield proc
    proc.stop()
    if os.environ.get("FLOWMESH_COMPAT_KEEP"):
        print(f"\nherald data dir and log kept in {proc.tmp}")
    else:
        proc.cleanup()


@pytest.fixture(scope="session")
def grpc_addr(server, wire) -> str:
    """Address of a server whose ReadinessCheck says ready (waits up to 30 s)."""
    import grpc
    import time

    addr = EXTERNAL_TARGET or server.grpc_addr
    ch = grpc.insecure_channel(addr)
    stub = wire.rpc.HealthServiceStub(ch)
    deadline = time.monotonic() + 30
    last = None
    try:
        while time.monotonic() < deadline:
            try:
                resp = stub.ReadinessCheck(wire.pb.ReadinessCheckRequest(), timeout=2)
                if resp.ready:
                    return addr
                last = resp
            except grpc.RpcError as e:
                last = fm_wire.describe_error(e)
            if server is not None and not server.alive():
                break
            time.sleep(0.1)
    finally:
        ch.close()
    log = f"\n--- server output ---\n{server.log_tail()}" if server is not None else ""
    pytest.fail(f"server at {addr} never reported ready (last answer: {last}){log}", pytrace=False)


def _listener(server, attr: str, env: str) -> str:
    """A listener of the session server (from its port file), or of the external target (from ``env``)."""
    addr = os.environ.get(env) if EXTERNAL_TARGET else getattr(server, attr)
    if not addr:
        if EXTERNAL_TARGET:
            pytest.skip(f"{env} is not set for the external target")
        pytest.fail(f"the port file has no {attr.removesuffix('_addr')} listener: {server.ports}", pytrace=False)
    return addr


@pytest.fixture(scope="session")
def admin_addr(server, grpc_addr) -> str:
    """host:port of the HTTP listener (REST API, ``/ws``, ``/metrics``); the server is ready when this is asked."""
    return _listener(server, "admin_addr", "FLOWMESH_COMPAT_ADMIN")


@pytest.fixture(scope="session")
def metrics_addr(server, grpc_addr) -> str:
    """host:port of the dedicated metrics listener (D23)."""
    return _listener(server, "metrics_addr", "FLOWMESH_COMPAT_METRICS")


def _channel(addr: str):
    import grpc

    ch = grpc.insecure_channel(addr)
    grpc.channel_ready_future(ch).result(timeout=15)
    return ch


@pytest.fixture(scope="session")
def fm(wire, grpc_addr):
    """Client sending ``authorization: Bearer test-token`` on every call."""
    ch = _channel(grpc_addr)
    yield fm_wire.Client(ch, wire)
    ch.close()


@pytest.fixture(scope="session")
def fm_other(wire, grpc_addr):
    """A second, independent client (own channel), for 'another client enqueues' steps."""
    ch = _channel(grpc_addr)
    yield fm_wire.Client(ch, wire)
    ch.close()


@pytest.fixture(scope="session")
def fm_noauth(wire, grpc_addr):
    """Client that sends no metadata at all (tests may still pass metadata= explicitly)."""
    ch = _channel(grpc_addr)
    yield fm_wire.Client(ch, wire, metadata=None)
    ch.close()


_death: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _server_still_running(request):
    """Turn a server crash into a clear error on the test that caused it, and fail later tests fast."""
    if EXTERNAL_TARGET or "server" not in request.fixturenames:
        yield
        return
    proc = request.getfixturevalue("server")
    if _death:
        pytest.fail(f"herald is not running: it exited during {_death['test']}", pytrace=False)
    yield
    if proc is not None and not proc.alive():
        _death["test"] = request.node.nodeid
        pytest.fail(
            f"herald exited (code {proc.proc.returncode}) during this test\n--- server output ---\n{proc.log_tail()}",
            pytrace=False,
        )
