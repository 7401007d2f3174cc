"""Plumbing for the FlowMesh wire-compatibility suite.

Everything here talks to Herald only through a grpcio client generated, at
session start, from ``proto/flowmesh/v1/flowmesh.proto`` (the contract's proto).
Herald's own Python SDK is deliberately not used: the point of this suite is to
prove that *any* FlowMesh client works against Herald.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import grpc
import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
PROTO_FILE = Path(os.environ.get("FLOWMESH_PROTO", REPO_ROOT / "proto" / "flowmesh" / "v1" / "flowmesh.proto"))
HERALD_BIN = Path(os.environ.get("HERALD_BIN", REPO_ROOT / "target" / "debug" / "herald"))

TOKEN = "test-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
TENANT = "t1"
NAMESPACE = "ns1"

# Default deadline for unary calls. Must exceed the 20 s long-poll cap (C18).
UNARY_TIMEOUT = 40.0

HEX32 = re.compile(r"^[0-9a-f]{32}$")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")

# Resource names provisioned as stream, queue and kv (checklist preamble: one set
# per scenario, plus the extra resources some scenarios name or need to run
# their independent parts in parallel). Nothing named ``missing``.
PROVISIONED_NAMES = [f"c{n:02d}" for n in range(1, 23)] + [
    "c05e",  # C05: empty stream
    "c09b",  # C09: long-poll with a concurrent enqueue
    "c13cap",  # C13: exponential with cap
    "c13lin",  # C13: linear
    "c13fix",  # C13: fixed
    "c15b",  # C15: dead-lettering by visibility expiry
    "c18b",  # C18: long-poll with a concurrent enqueue
    "c22e",  # C22: empty store
    "c28",  # C28: schema validation on write
    "c28b",  # C28: a write after the attached schema version was deleted
    "c29",  # C29: replay sessions
    "c29l",  # C29: session listing by stream (a stream no other scenario replays)
    "c26",  # C26: the /ws live feed (HTTP and gRPC mutations)
    "c27",  # C27: /metrics on the admin and the dedicated metrics listener
]
# The same checklist over the HTTP REST API (test_http_checklist.py): its own resources, so that the gRPC
# scenarios' state is untouched.
PROVISIONED_NAMES += [f"h{n:02d}" for n in range(3, 23)] + [
    "h05e",  # C05: empty stream
    "h09b",  # C09: long-poll with a concurrent enqueue
    "h13cap",  # C13: exponential with cap
    "h13lin",  # C13: linear
    "h13fix",  # C13: fixed
    "h15b",  # C15: dead-lettering by visibility expiry
    "h18b",  # C18: long-poll with a concurrent enqueue
    "h22e",  # C22: empty store
    "hq",  # reserve/receive: query parameters override the body
    "httl",  # KV PUT ?ttl= in Go's duration syntax
    "herr",  # the error paths of every route (malformed bodies and query parameters)
]


# --------------------------------------------------------------------------
# Stub generation
# --------------------------------------------------------------------------


@dataclass
class Wire:
    pb: ModuleType  # flowmesh_pb2
    rpc: ModuleType  # flowmesh_pb2_grpc
    out_dir: Path


def generate_stubs(out_dir: Path) -> Wire:
    """Compile the contract proto with grpc_tools.protoc into ``out_dir`` and import it."""
    from grpc_tools import protoc  # imported lazily: a missing grpcio-tools skips the suite

    if not PROTO_FILE.is_file():
        raise FileNotFoundError(f"contract proto not found: {PROTO_FILE}")
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        import importlib.resources as ir

        wkt = str(ir.files("grpc_tools") / "_proto")
    except Exception:  # pragma: no cover - only the well-known types include
        wkt = None
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_FILE.parent}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
    ]
    if wkt:
        args.append(f"-I{wkt}")
    args.append(str(PROTO_FILE))
    rc = protoc.main(args)
    if rc != 0:
        raise RuntimeError(f"grpc_tools.protoc failed with exit code {rc}: {' '.join(args)}")
    stem = PROTO_FILE.stem
    sys.path.insert(0, str(out_dir))
    importlib.invalidate_caches()
    pb = importlib.import_module(f"{stem}_pb2")
    rpc = importlib.import_module(f"{stem}_pb2_grpc")
    # L1 sanity: the generated client must use the FlowMesh package and service names.
    assert pb.DESCRIPTOR.package == "flowmesh.v1", pb.DESCRIPTOR.package
    services = set(pb.DESCRIPTOR.services_by_name)
    assert {"HealthService", "StreamService", "QueueService", "KVService"} <= services, services
    return Wire(pb=pb, rpc=rpc, out_dir=out_dir)


# --------------------------------------------------------------------------
# Server launcher
# --------------------------------------------------------------------------


def resources_document() -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for name in PROVISIONED_NAMES:
        for kind in ("stream", "queue", "kv"):
            doc[f"{TENANT}/{NAMESPACE}/{kind}/{name}"] = {
                "tenant": TENANT,
                "namespace": NAMESPACE,
                "name": name,
                "type": kind,
                "partitions": 1,
                "retention": {},
            }
    return doc


class HeraldProcess:
    """``herald serve`` on port 0 in a temp dir; SIGTERM on stop."""

    def __init__(self, binary: Path = HERALD_BIN):
        self.binary = binary
        self.tmp = Path(tempfile.mkdtemp(prefix="herald-fm-wire-"))
        self.data_dir = self.tmp / "data"
        self.port_file = self.tmp / "ports.json"
        self.resources_file = self.tmp / "resources.json"
        self.log_path = self.tmp / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, Any] = {}
        self._log = None
        self._listener_args: list[str] = []

    @property
    def grpc_addr(self) -> str:
        return self.ports["grpc"]

    @property
    def admin_addr(self) -> str | None:
        """The admin listener (FlowMesh's HTTP port: REST API, ``/ws``, ``/metrics``)."""
        return self.ports.get("admin")

    @property
    def metrics_addr(self) -> str | None:
        """The dedicated metrics listener (D23), bound to port 0 like every other ``--*-addr``."""
        return self.ports.get("metrics")

    def extra_listener_args(self) -> list[str]:
        """Bind every other ``--*-addr`` listener ``serve --help`` offers to port 0, so the test
        server never competes for default ports (8080, 4222, 9090, ...) with anything else."""
        try:
            out = subprocess.run(
                [str(self.binary), "serve", "--help"], capture_output=True, text=True, timeout=20
            )
            text = out.stdout + out.stderr
        except (OSError, subprocess.TimeoutExpired):
            return []
        flags = sorted(set(re.findall(r"(--[a-z0-9-]+-addr)\b", text)) - {"--grpc-addr", "--admin-addr"})
        args: list[str] = []
        for flag in flags:
            args += [flag, "127.0.0.1:0"]
        return args

    def command(self) -> list[str]:
        cmd = [
            str(self.binary),
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--grpc-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--port-file",
            str(self.port_file),
            "--token",
            TOKEN,
            "--resources",
            str(self.resources_file),
        ]
        extra = os.environ.get("HERALD_EXTRA_ARGS", "").split()
        return cmd + self._listener_args + extra

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True)
        self._listener_args = self.extra_listener_args()
        self.resources_file.write_text(json.dumps(resources_document(), indent=2))
        self._log = open(self.log_path, "wb")
        # `herald serve` reads HERALD_* variables as configuration (HERALD_NO_AUTH, HERALD_AUTO_CREATE, ...);
        # the checklist set-up must not be altered by whatever the caller's shell exports.
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        self.proc = subprocess.Popen(
            self.command(),
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"herald exited with code {self.proc.returncode} before writing its port file\n"
                    f"command: {' '.join(self.command())}\n--- server output ---\n{self.log_tail()}"
                )
            if self.port_file.exists():
                try:
                    ports = json.loads(self.port_file.read_text())
                except (json.JSONDecodeError, OSError):
                    ports = None  # half-written; try again
                if isinstance(ports, dict) and ports.get("grpc"):
                    self.ports = ports
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"herald did not write {self.port_file} within {timeout:.0f} s\n"
            f"command: {' '.join(self.command())}\n--- server output ---\n{self.log_tail()}"
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, limit: int = 8000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return "<no server output>"
        return data[-limit:].decode("utf-8", "replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def cleanup(self) -> None:
        """Remove the temp dir (data, port file, resources file, server log)."""
        shutil.rmtree(self.tmp, ignore_errors=True)


# --------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------

STREAMING_METHODS = {"Subscribe"}


class _BoundStub:
    """Wraps a generated stub so every call carries metadata and a deadline by default."""

    def __init__(self, stub: Any, metadata: tuple[tuple[str, str], ...] | None):
        self._stub = stub
        self._metadata = metadata

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._stub, name)
        streaming = name in STREAMING_METHODS

        def call(request: Any, **kw: Any) -> Any:
            if self._metadata is not None:
                kw.setdefault("metadata", self._metadata)
            if not streaming:
                kw.setdefault("timeout", UNARY_TIMEOUT)
            return method(request, **kw)

        return call


class Client:
    """A FlowMesh gRPC client built only from the generated stubs."""

    def __init__(self, channel: grpc.Channel, wire: Wire, metadata=AUTH):
        self.channel = channel
        self.pb = wire.pb
        rpc = wire.rpc
        self.raw_health = rpc.HealthServiceStub(channel)
        self.raw_stream = rpc.StreamServiceStub(channel)
        self.raw_queue = rpc.QueueServiceStub(channel)
        self.raw_kv = rpc.KVServiceStub(channel)
        self.raw_schema = rpc.SchemaServiceStub(channel)
        self.raw_replay = rpc.ReplayServiceStub(channel)
        self.health = _BoundStub(self.raw_health, metadata)
        self.stream = _BoundStub(self.raw_stream, metadata)
        self.queue = _BoundStub(self.raw_queue, metadata)
        self.kv = _BoundStub(self.raw_kv, metadata)
        self.schema = _BoundStub(self.raw_schema, metadata)
        self.replay = _BoundStub(self.raw_replay, metadata)

    def rp(self, resource_type: str, name: str, tenant: str = TENANT, namespace: str = NAMESPACE):
        return self.pb.ResourcePath(tenant=tenant, namespace=namespace, resource_type=resource_type, name=name)

    # Convenience wrappers used by many scenarios -------------------------

    def write(self, name: str, *payloads: bytes, headers: list[dict[str, str]] | None = None):
        events = []
        for i, p in enumerate(payloads):
            h = headers[i] if headers and i < len(headers) else {}
            events.append(self.pb.Event(payload=p, headers=h))
        return self.stream.WriteEvents(self.pb.WriteEventsRequest(resource_path=self.rp("stream", name), events=events))

    def latest(self, name: str, partition: int = 0) -> int:
        return self.stream.GetLatestOffset(
            self.pb.GetLatestOffsetRequest(resource_path=self.rp("stream", name), partition=partition)
        ).offset

    def read(self, name: str, offset: int = 0, max_messages: int = 0, partition: int = 0):
        return self.stream.ReadStream(
            self.pb.ReadStreamRequest(
                resource_path=self.rp("stream", name), partition=partition, offset=offset, max_messages=max_messages
            )
        )

    def commit(self, name: str, group: str, offset: int):
        return self.stream.CommitOffset(
            self.pb.CommitOffsetRequest(resource_path=self.rp("stream", name), consumer_group=group, offset=offset)
        )

    def get_offset(self, name: str, group: str) -> int:
        return self.stream.GetOffset(
            self.pb.GetOffsetRequest(resource_path=self.rp("stream", name), consumer_group=group)
        ).offset

    def group_state(self, name: str, group: str):
        return self.stream.GetConsumerGroupState(
            self.pb.GetConsumerGroupStateRequest(resource_path=self.rp("stream", name), consumer_group=group)
        )

    def subscribe(self, name: str, group: str, start_offset: int, **kw: Any) -> "Subscription":
        call = self.stream.Subscribe(
            self.pb.SubscribeRequest(resource_path=self.rp("stream", name), consumer_group=group, start_offset=start_offset),
            **kw,
        )
        return Subscription(call)

    def enqueue(self, name: str, payload: bytes, delay: int = 0, headers: dict[str, str] | None = None):
        return self.queue.Enqueue(
            self.pb.EnqueueRequest(
                resource_path=self.rp("queue", name), payload=payload, delay_seconds=delay, headers=headers or {}
            )
        )

    def reserve(self, name: str, visibility: int = 0, long_poll: int = 0):
        return self.queue.Reserve(
            self.pb.ReserveRequest(
                resource_path=self.rp("queue", name),
                visibility_timeout_seconds=visibility,
                long_poll_timeout_seconds=long_poll,
            )
        )

    def receive(self, name: str, max_jobs: int = 0, visibility: int = 0, long_poll: int = 0):
        return self.queue.Receive(
            self.pb.ReceiveRequest(
                resource_path=self.rp("queue", name),
                max_jobs=max_jobs,
                visibility_timeout_seconds=visibility,
                long_poll_timeout_seconds=long_poll,
            )
        )

    def ack(self, name: str, job_id: str):
        return self.queue.ACK(self.pb.ACKRequest(resource_path=self.rp("queue", name), job_id=job_id))

    def nack(self, name: str, job_id: str, delay: int = 0):
        return self.queue.NACK(
            self.pb.NACKRequest(resource_path=self.rp("queue", name), job_id=job_id, delay_seconds=delay)
        )

    def stats(self, name: str):
        return self.queue.GetQueueStats(self.pb.GetQueueStatsRequest(resource_path=self.rp("queue", name))).stats

    def policy(self, max_attempts: int, initial: int, maximum: int, multiplier: float, strategy: str):
        return self.pb.RetryPolicy(
            max_attempts=max_attempts,
            initial_backoff_seconds=initial,
            max_backoff_seconds=maximum,
            backoff_multiplier=multiplier,
            backoff_strategy=strategy,
        )

    def set_policy(self, name: str, *policy_fields: Any):
        return self.queue.SetRetryPolicy(
            self.pb.SetRetryPolicyRequest(resource_path=self.rp("queue", name), policy=self.policy(*policy_fields))
        )

    def list_dlq(self, name: str, max_jobs: int = 0):
        return self.queue.ListDLQJobs(self.pb.ListDLQJobsRequest(resource_path=self.rp("queue", name), max_jobs=max_jobs))

    def kv_set(self, name: str, key: str, value: bytes, ttl: int = 0):
        return self.kv.Set(self.pb.SetRequest(resource_path=self.rp("kv", name), key=key, value=value, ttl_seconds=ttl))

    def kv_get(self, name: str, key: str):
        return self.kv.Get(self.pb.GetRequest(resource_path=self.rp("kv", name), key=key))

    def kv_exists(self, name: str, key: str):
        return self.kv.Exists(self.pb.ExistsRequest(resource_path=self.rp("kv", name), key=key))

    def kv_delete(self, name: str, key: str):
        return self.kv.Delete(self.pb.DeleteRequest(resource_path=self.rp("kv", name), key=key))

    def kv_list(self, name: str, prefix: str = ""):
        return self.kv.ListKeys(self.pb.ListKeysRequest(resource_path=self.rp("kv", name), prefix=prefix))


# --------------------------------------------------------------------------
# Subscribe helper
# --------------------------------------------------------------------------


class Subscription:
    """Reads a server-streaming call on a thread so tests can wait with timeouts."""

    def __init__(self, call: Any):
        self.call = call
        self._q: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._t = threading.Thread(target=self._pump, daemon=True)
        self._t.start()

    def _pump(self) -> None:
        try:
            for frame in self.call:
                self._q.put(("frame", frame))
            self._q.put(("end", None))
        except grpc.RpcError as e:
            self._q.put(("error", e))
        except Exception as e:  # pragma: no cover
            self._q.put(("error", e))

    def _get(self, timeout: float) -> tuple[str, Any] | None:
        try:
            return self._q.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None

    def next_frame(self, timeout: float):
        item = self._get(timeout)
        if item is None:
            raise AssertionError(f"no Subscribe frame within {timeout:.2f} s")
        kind, value = item
        if kind == "frame":
            return value
        if kind == "end":
            raise AssertionError("Subscribe call ended (OK) while a frame was expected")
        raise AssertionError(f"Subscribe call failed while a frame was expected: {describe_error(value)}")

    def expect_silence(self, duration: float) -> None:
        item = self._get(duration)
        if item is not None:
            kind, value = item
            detail = value if kind == "frame" else describe_error(value) if kind == "error" else "end of call"
            raise AssertionError(f"expected no Subscribe frame for {duration:.2f} s, got {kind}: {detail}")

    def expect_error(self, timeout: float) -> grpc.RpcError:
        item = self._get(timeout)
        if item is None:
            raise AssertionError(f"Subscribe call neither failed nor produced a frame within {timeout:.2f} s")
        kind, value = item
        if kind == "error" and isinstance(value, grpc.RpcError):
            return value
        raise AssertionError(f"expected the Subscribe call to fail, got {kind}: {value}")

    def cancel(self) -> None:
        self.call.cancel()
        self._t.join(timeout=5)

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.cancel()


# --------------------------------------------------------------------------
# Assertion helpers
# --------------------------------------------------------------------------


def describe_error(e: Any) -> str:
    if isinstance(e, grpc.RpcError) and hasattr(e, "code"):
        return f"{e.code().name} {e.details()!r}"
    return repr(e)


def call_error(fn: Callable[[], Any]) -> grpc.RpcError:
    """Run ``fn`` and return the gRPC error it raises; fail if it succeeds."""
    try:
        resp = fn()
    except grpc.RpcError as e:
        return e
    pytest.fail(f"expected the call to fail, but it succeeded with: {resp!r}")


def expect_error(fn: Callable[[], Any], code: str, details: str | None = None) -> grpc.RpcError:
    """Assert that ``fn`` fails with gRPC code ``code`` (name) and, if given, exactly ``details``."""
    e = call_error(fn)
    if details is None:
        assert e.code().name == code, f"expected {code}, got {describe_error(e)}"
    else:
        assert (e.code().name, e.details()) == (code, details), f"expected {code} {details!r}, got {describe_error(e)}"
    return e


def assert_status(resp: Any, message: str, code: int = 0) -> None:
    """A successful unary response carries status {code, message, details ""} (contract §3.1)."""
    assert resp.HasField("status"), f"response has no status: {resp!r}"
    s = resp.status
    assert (s.code, s.message, s.details) == (code, message, ""), f"status = {{{s.code}, {s.message!r}, {s.details!r}}}"


TRACE_HEADERS = {"traceparent", "tracestate"}


def user_headers(headers: Any) -> dict[str, str]:
    """Headers minus W3C trace context, which the contract lets servers add (§1.3)."""
    return {k: v for k, v in dict(headers).items() if k.lower() not in TRACE_HEADERS}


def now_ns() -> int:
    return time.time_ns()


def secs(ns: int) -> float:
    return ns / 1e9


def run_parallel(*fns: Callable[[], Any]) -> list[Any]:
    """Run the callables on threads; return their results; re-raise the first failure."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(fns)) as ex:
        futures = [ex.submit(f) for f in fns]
        return [f.result() for f in futures]


def later(delay: float, fn: Callable[[], Any]) -> concurrent.futures.Future:
    """Run ``fn`` on a thread after ``delay`` seconds; returns a future with its result."""
    fut: concurrent.futures.Future = concurrent.futures.Future()

    def run() -> None:
        time.sleep(delay)
        try:
            fut.set_result(fn())
        except BaseException as e:  # noqa: BLE001
            fut.set_exception(e)

    threading.Thread(target=run, daemon=True).start()
    return fut
