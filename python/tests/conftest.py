"""Shared fixtures.

Unit tests need nothing. Tests marked ``integration`` talk to a real ``herald`` binary
(``$HERALD_BIN``, default ``<repo>/target/debug/herald``) started once per session on port 0 with
the token ``test-token`` and every resource listed below provisioned. When the binary is missing
they are skipped, unless ``HERALD_REQUIRE_SERVER=1`` is set (CI), in which case they fail.

The ``herald.service`` tests use the ``nats_url`` fixture instead: a herald server with a NATS
listener when the binary has one (``serve --help`` lists ``--nats-addr``); otherwise, unless
``HERALD_REQUIRE_SERVER=1`` (then they fail), the reference ``nats-server`` from PATH on a free
port (Debian: ``apt-get install nats-server``); otherwise they are skipped.

Each test uses resources of its own, so tests do not depend on each other's state: add the names a
new test needs to the lists below.
"""

from __future__ import annotations

import os
import shutil
import uuid

# The tests start subprocesses (the server, the examples) from a process that uses grpc.aio. gRPC's
# fork handlers can abort such a child before it execs (grpcio 1.80 on Python 3.9); they are of no
# use to asyncio code, so turn them off before grpc is imported.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
from typing import Any, AsyncIterator, Callable, Iterator, List

import pytest

from herald import Herald
from herald.testing import HeraldServer, default_binary, has_nats_listener

from .helpers import Monitor, nats_server_process

TOKEN = "test-token"
TENANT = "t1"
NAMESPACE = "py"

STREAMS = [
    "write_read",
    "read_edges",
    "sub_break",
    "sub_aclose",
    "sub_resume",
    "sub_tail",
    "groups",
    "groups_empty",
    "stream_errors",
    "compat",
    "auth",
]
QUEUES = [
    "basic",
    "empty",
    "long_poll",
    "delay",
    "visibility",
    "nack_delay",
    "backoff",
    "retry_policy",
    "dlq",
    "dlq_expiry",
    "dlq_none",
    "receive_batch",
    "queue_errors",
    "worker",
]
KV_STORES = [
    "basic",
    "ttl",
    "ttl_replace",
    "listing",
    "listing_empty",
    "kv_errors",
]


# The literal resources of checklist item C30 (test_c30_acceptance.py).
C30_RESOURCES = ["t1/ns1/stream/c30", "t1/ns1/queue/c30", "t1/ns1/kv/c30"]


def resource_paths() -> List[str]:
    """Every resource the session server provisions."""
    return (
        [f"{TENANT}/{NAMESPACE}/stream/{name}" for name in STREAMS]
        + [f"{TENANT}/{NAMESPACE}/queue/{name}" for name in QUEUES]
        + [f"{TENANT}/{NAMESPACE}/kv/{name}" for name in KV_STORES]
        + C30_RESOURCES
    )


def _binary_problem() -> str:
    binary = default_binary()
    if not binary.is_file():
        return (
            f"herald binary not found at {binary}: build it with `cargo build -p herald` "
            "(or set HERALD_BIN) to run the integration tests"
        )
    if not os.access(binary, os.X_OK):
        return f"herald binary at {binary} is not executable"
    return ""


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    problem = _binary_problem()
    if not problem or os.environ.get("HERALD_REQUIRE_SERVER") == "1":
        return
    skip = pytest.mark.skip(reason=problem)
    for item in items:
        # Tests on the nats_url fixture can run on the reference nats-server; the fixture decides.
        if "integration" in item.keywords and "nats_url" not in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def herald_binary() -> str:
    problem = _binary_problem()
    if problem and os.environ.get("HERALD_REQUIRE_SERVER") == "1":
        pytest.fail(problem)
    if problem:
        pytest.skip(problem)
    return str(default_binary())


@pytest.fixture(scope="session")
def herald_server(herald_binary: str) -> Iterator[HeraldServer]:
    """One server for the session: auth on with ``test-token``, the resources above provisioned."""
    server = HeraldServer(herald_binary, tokens=[TOKEN], resources=resource_paths())
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def endpoint(herald_server: HeraldServer) -> str:
    return herald_server.grpc_endpoint


@pytest.fixture
async def client(endpoint: str) -> AsyncIterator[Herald]:
    """A connected client with the valid token."""
    async with Herald(endpoint, auth_token=TOKEN) as c:
        yield c


@pytest.fixture
async def other_client(endpoint: str) -> AsyncIterator[Herald]:
    """A second, independent connection (e.g. to enqueue while ``client`` long-polls)."""
    async with Herald(endpoint, auth_token=TOKEN) as c:
        yield c


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """``nats://host:port`` of a NATS server for the ``herald.service`` tests (see the module doc)."""
    binary = default_binary()
    if not _binary_problem() and has_nats_listener(binary):
        server = HeraldServer(str(binary))
        try:
            server.start()
            yield server.nats_url
        finally:
            server.close()
        return
    if os.environ.get("HERALD_REQUIRE_SERVER") == "1":
        pytest.fail(
            f"HERALD_REQUIRE_SERVER=1, but the herald binary at {binary} has no NATS listener "
            "(its `serve --help` does not list --nats-addr)"
        )
    executable = shutil.which("nats-server")
    if executable is None:
        pytest.skip(
            f"no NATS server: {binary} has no NATS listener and nats-server is not on PATH "
            "(apt-get install nats-server)"
        )
    with nats_server_process(executable) as url:
        yield url


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Any]:
    """A plain nats-py connection (an independent client of the services under test)."""
    import nats

    client = await nats.connect(nats_url)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def monitor(nats_url: str) -> AsyncIterator[Monitor]:
    """A plain nats-py connection subscribed to ``>``, recording everything."""
    import nats

    client = await nats.connect(nats_url)
    try:
        yield await Monitor(client).start()
    finally:
        await client.close()


@pytest.fixture
async def make_service(nats_url: str) -> AsyncIterator[Callable[..., Any]]:
    """``make_service(cls=Service, **kwargs)``: a service with a unique id (``svc-<hex>``) on the
    test NATS server; every one made is shut down after the test."""
    from herald.service import Service

    made: List[Any] = []

    def make(cls: Any = Service, service_id: Any = None, **kwargs: Any) -> Any:
        kwargs.setdefault("servers", nats_url)
        service = cls(service_id or f"svc-{uuid.uuid4().hex[:8]}", **kwargs)
        made.append(service)
        return service

    try:
        yield make
    finally:
        for service in made:
            await service.shutdown()
