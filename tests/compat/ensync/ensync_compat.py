"""Plumbing for the EnSync wire-compatibility suite (compat/ensync.md §9).

* ``Identity`` / ``new_identity``: Ed25519 keypairs in the forms the SDKs want (§5.5);
* ``HeraldServer``: ``herald serve`` with an ``[events]`` configuration on loopback port 0, stopped with SIGTERM or
  SIGKILL and started again on the same ports and data directory;
* ``Recorder``: a gRPC client interceptor that records every RPC an ``ensync-sdk`` engine makes (request, response,
  status) and every message of its ``Subscribe`` streams, with the stream's final status. It is how the suite sees
  "Herald answered the ack", "no DeferMessage was sent", "the superseded stream ended with OK" from the client side
  of the wire. ``recording(rec)`` installs it into the channel the SDK creates inside ``create_client``; the SDK's own
  code is not changed (its module-level ``grpc`` is replaced by a forwarding shim whose ``aio.insecure_channel`` adds
  the interceptor while a ``recording`` block is active, and is the real function otherwise);
* ``RawGrpc`` / ``RawStream``: ``ensync.EnSyncService`` through Herald's own generated stubs, for raw checks;
* ``RawWs``: a plain ``websockets`` client of the text protocol;
* ``Collector``: a non-blocking handler that records each call with its arrival time;
* ``wait_until``: every wait in the suite has a limit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import copy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import grpc
import grpc.aio
import nacl.signing

from herald._generated import ensync_pb2 as pb
from herald._generated import ensync_pb2_grpc as pb_grpc

REPO_ROOT = Path(__file__).resolve().parents[3]
HERALD_BIN = Path(os.environ.get("HERALD_BIN", REPO_ROOT / "target" / "debug" / "herald"))

START = 40.0  # server start-up limit (seconds)
STEP = 5.0  # one expected reaction (a delivery, a reply)
ACK_TIMEOUT = 5.0  # [events] ack_timeout of the shared server (scenarios 6, 7, 9 assume 5 s)
MAX_DEFER_MS = 86_400_000

IDEM_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HERALD_IDEM_RE = re.compile(r"^([1-9][0-9]*)-[0-9a-f]{16}$")  # Herald decision: <block>-<16 hex>


# --------------------------------------------------------------------------
# Identities
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    name: str
    public_key: str  # b64 of the 32-byte Ed25519 public key (what goes into recipients, sender, client_hash)
    secret_key: str  # b64 of the 64-byte Ed25519 secret key (seed ‖ public key), the SDKs' appSecretKey
    access_key: str

    @property
    def public_key_bytes(self) -> bytes:
        return base64.b64decode(self.public_key)


def new_identity(name: str, access_key: str | None = None) -> Identity:
    signing = nacl.signing.SigningKey.generate()
    pk = bytes(signing.verify_key)
    return Identity(
        name=name,
        public_key=base64.b64encode(pk).decode(),
        secret_key=base64.b64encode(bytes(signing) + pk).decode(),
        access_key=access_key or f"key-{name}",
    )


def block_of_idem(idem: str) -> int:
    """The block Herald encodes in its idems (``<block>-<16 hex>``, a Herald decision the brief lets tests use)."""
    m = HERALD_IDEM_RE.match(idem)
    assert m, f"not a Herald idem: {idem!r}"
    return int(m.group(1))


def decode_wire_payload(payload: str) -> Any:
    """The JSON document inside a wire payload (b64 of JSON, §5.2/§5.3)."""
    return json.loads(base64.b64decode(payload))


def now_ms() -> int:
    return int(time.time() * 1000)


# --------------------------------------------------------------------------
# Herald
# --------------------------------------------------------------------------

_SCRUB_PREFIXES = ("HERALD_", "PULSAR_", "RUST_LOG")
_OWN_LISTENERS = {"--grpc-addr", "--admin-addr", "--nats-addr", "--relay-addr"}
_EXTRA_LISTENERS: list[str] | None = None


def _extra_listener_args() -> list[str]:
    """Any other ``--*-addr`` listener ``serve --help`` lists goes to port 0 too, so no default port is taken."""
    global _EXTRA_LISTENERS
    if _EXTRA_LISTENERS is None:
        try:
            out = subprocess.run([str(HERALD_BIN), "serve", "--help"], capture_output=True, text=True, timeout=20)
            text = out.stdout + out.stderr
        except (OSError, subprocess.TimeoutExpired):
            text = ""
        flags = sorted(set(re.findall(r"(--[a-z0-9-]+-addr)\b", text)) - _OWN_LISTENERS)
        _EXTRA_LISTENERS = [a for f in flags for a in (f, "127.0.0.1:0")]
    return _EXTRA_LISTENERS


def _child_env() -> dict[str, str]:
    # HERALD_* would override the command line (HERALD_CONFIG, HERALD_TOKENS, ...); PULSAR_* would configure the
    # relay listener away from its loopback development defaults.
    return {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}


def _port(addr: Any) -> int | None:
    if not addr:
        return None
    return int(str(addr).rpartition(":")[2])


class HeraldServer:
    """``herald serve`` on 127.0.0.1 with an ``[events]`` section registering ``identities``.

    The first start binds every listener to port 0 and reads the ports from ``--port-file``; ``restart`` stops the
    process (SIGTERM, or SIGKILL) and starts it again with the same data directory, configuration and ports."""

    def __init__(
        self,
        identities: list[Identity],
        *,
        ack_timeout: str | None = "5s",
        fsync: str | None = None,
        label: str = "herald",
    ) -> None:
        self.identities = list(identities)
        self.ack_timeout = ack_timeout
        self.fsync = fsync
        self.label = label
        self.tmp = Path(tempfile.mkdtemp(prefix=f"ensync-compat-{label}-"))
        self.data_dir = self.tmp / "data"
        self.config_path = self.tmp / "herald.toml"
        self.port_file = self.tmp / "ports.json"
        self.log_path = self.tmp / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, int] = {}
        self.starts = 0
        self.expect_exit = False
        self._cmd: list[str] = []
        self._log = None
        self._write_config()

    # -- configuration ------------------------------------------------------

    def _write_config(self) -> None:
        lines = ["[events]"]
        if self.ack_timeout is not None:
            lines.append(f'ack_timeout = "{self.ack_timeout}"')
        for ident in self.identities:
            lines += [
                "",
                "[[events.identities]]",
                f'name = "{ident.name}"',
                f'public_key = "{ident.public_key}"',
                f'access_key = "{ident.access_key}"',
            ]
        if self.fsync is not None:
            lines += ["", "[storage]", f'fsync = "{self.fsync}"']
        self.config_path.write_text("\n".join(lines) + "\n")

    # -- addresses ------------------------------------------------------------

    @property
    def grpc_port(self) -> int:
        return self.ports["grpc"]

    @property
    def relay_port(self) -> int:
        return self.ports["relay"]

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def grpc_url(self) -> str:
        """The URL for ``ensync_sdk.EnSyncEngine`` and ``herald.events`` (plaintext h2c)."""
        return f"grpc://127.0.0.1:{self.grpc_port}"

    @property
    def ws_url(self) -> str:
        """The URL for ``ensync_sdk_ws.EnSyncEngine`` (the SDK appends ``/message``)."""
        return f"ws://127.0.0.1:{self.relay_port}"

    @property
    def ws_message_url(self) -> str:
        return f"{self.ws_url}/message"

    # -- life cycle -----------------------------------------------------------

    def _command(self, reuse_ports: bool) -> list[str]:
        def addr(key: str) -> str:
            return f"127.0.0.1:{self.ports[key]}" if reuse_ports and self.ports.get(key) else "127.0.0.1:0"

        cmd = [
            str(HERALD_BIN),
            "serve",
            "--config",
            str(self.config_path),
            "--data-dir",
            str(self.data_dir),
            "--grpc-addr",
            addr("grpc"),
            "--admin-addr",
            addr("admin"),
            "--nats-addr",
            "",
            "--relay-addr",
            addr("relay"),
            "--port-file",
            str(self.port_file),
            "--log",
            "warn",
        ]
        return cmd + _extra_listener_args() + os.environ.get("HERALD_EXTRA_ARGS", "").split()

    def start(self, reuse_ports: bool = False) -> "HeraldServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        attempts = 20 if reuse_ports else 1
        for attempt in range(attempts):
            self._spawn(reuse_ports)
            try:
                self._wait_ready(time.monotonic() + START)
                return self
            except _ExitedEarly as e:
                # The old process's ports can take a moment to become free again.
                if attempt + 1 < attempts and "in use" in self.log_tail(2000).lower():
                    time.sleep(0.25)
                    continue
                raise RuntimeError(str(e)) from None
        raise AssertionError("unreachable")

    def _spawn(self, reuse_ports: bool) -> None:
        self.port_file.unlink(missing_ok=True)
        self._log = open(self.log_path, "ab")
        self._log.write(f"\n===== start #{self.starts + 1} =====\n".encode())
        self._log.flush()
        self._cmd = self._command(reuse_ports)
        self.proc = subprocess.Popen(
            self._cmd,
            env=_child_env(),
            cwd=str(self.tmp),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.starts += 1

    def _wait_ready(self, deadline: float) -> None:
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise _ExitedEarly(self._describe_failure(f"exited with code {self.proc.returncode} at start-up"))
            ports = None
            if self.port_file.exists():
                try:
                    ports = json.loads(self.port_file.read_text())
                except (json.JSONDecodeError, OSError):
                    ports = None  # half-written
            if isinstance(ports, dict) and ports.get("grpc"):
                if not ports.get("relay"):
                    self.stop()
                    raise RuntimeError(self._describe_failure(f"port file has no 'relay' listener: {ports}"))
                new = {k: _port(v) for k, v in ports.items() if k in ("grpc", "relay", "admin")}
                self.ports = {k: v for k, v in new.items() if v}
                for key in ("grpc", "relay"):
                    _wait_tcp(self.ports[key], deadline)
                return
            time.sleep(0.02)
        self.stop(signal.SIGKILL)
        raise RuntimeError(self._describe_failure("did not write its port file in time"))

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        """Stop the process with ``sig`` (SIGTERM: graceful; SIGKILL: crash) and wait for it; returns its code."""
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
            code = self.proc.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def restart(self, sig: int = signal.SIGTERM) -> int | None:
        """Stop with ``sig``, then start again on the same data directory and the same ports."""
        old = dict(self.ports)
        code = self.stop(sig)
        self.start(reuse_ports=True)
        assert self.ports.get("grpc") == old.get("grpc") and self.ports.get("relay") == old.get("relay"), (
            f"restart did not keep the ports: {old} -> {self.ports}"
        )
        return code

    def cleanup(self) -> None:
        self.stop()
        if os.environ.get("ENSYNC_COMPAT_KEEP"):
            print(f"\nherald temp dir kept: {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def log_tail(self, limit: int = 6000) -> str:
        try:
            text = self.log_path.read_bytes().decode("utf-8", "replace")
        except OSError:
            text = ""
        return text[-limit:] or "<no server output>"

    def describe(self) -> str:
        return f"{self.label} ports={self.ports} (command: {' '.join(self._cmd)})"

    def _describe_failure(self, what: str) -> str:
        return f"herald ({self.label}): {what}\ncommand: {' '.join(self._cmd)}\n--- server output ---\n{self.log_tail()}"


class _ExitedEarly(Exception):
    pass


def _wait_tcp(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


# --------------------------------------------------------------------------
# Waiting
# --------------------------------------------------------------------------


async def wait_until(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll ``pred`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        await asyncio.sleep(interval)


async def sleep_until(t: float) -> None:
    """Sleep until the monotonic time ``t``."""
    delay = t - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


# --------------------------------------------------------------------------
# Handler collector
# --------------------------------------------------------------------------


class Collector:
    """An application handler that only records: ``(monotonic arrival time, deep copy of the event dict)``.

    Usable as a gRPC decorated handler and as a WebSocket ``.on`` handler (it never awaits anything, so it cannot block
    the WebSocket client's reader, §8 W5)."""

    def __init__(self, label: str = "") -> None:
        self.label = label
        self.calls: list[tuple[float, dict]] = []

    async def __call__(self, event: dict) -> None:
        self.calls.append((time.monotonic(), copy.deepcopy(event)))

    @property
    def events(self) -> list[dict]:
        return [e for _, e in self.calls]

    @property
    def idems(self) -> list[str]:
        return [e["idem"] for _, e in self.calls]

    def __len__(self) -> int:
        return len(self.calls)

    async def wait(self, n: int, timeout: float = STEP) -> list[dict]:
        await wait_until(lambda: len(self.calls) >= n, timeout, f"{n} handler call(s) {self.label} (got {len(self.calls)}: {self.events})")
        return self.events

    async def stays(self, n: int, seconds: float, what: str = "") -> None:
        """Over the next ``seconds``, the handler is called no more than ``n`` times in total."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert len(self.calls) <= n, f"unexpected handler call {self.label} {what}: {self.events[n:]}"
            await asyncio.sleep(0.02)
        assert len(self.calls) == n, f"handler calls {self.label} {what}: expected {n}, got {self.events}"


# --------------------------------------------------------------------------
# Recording gRPC interceptor
# --------------------------------------------------------------------------


def _method(details: Any) -> str:
    m = details.method
    if isinstance(m, bytes):
        m = m.decode()
    return m.rsplit("/", 1)[-1]


@dataclass
class UnaryRecord:
    method: str
    request: Any
    t: float
    response: Any = None
    code: grpc.StatusCode | None = None
    details: str | None = None
    t_done: float | None = None
    wall_ms: int = 0  # epoch ms when the call was made


@dataclass
class StreamRecord:
    method: str
    request: Any
    t: float
    messages: list[tuple[float, Any]] = field(default_factory=list)
    code: grpc.StatusCode | None = None
    details: str | None = None
    t_end: float | None = None

    @property
    def done(self) -> bool:
        return self.t_end is not None


class _UnaryInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, recorder: "Recorder") -> None:
        self.recorder = recorder

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        rec = UnaryRecord(method=_method(client_call_details), request=request, t=time.monotonic(), wall_ms=now_ms())
        self.recorder.unary.append(rec)
        call = await continuation(client_call_details, request)
        try:
            rec.response = await call
            rec.code = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as e:
            rec.code, rec.details = e.code(), e.details()
        except asyncio.CancelledError:
            rec.code = grpc.StatusCode.CANCELLED
            raise
        finally:
            rec.t_done = time.monotonic()
        return call


class _StreamInterceptor(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, recorder: "Recorder") -> None:
        self.recorder = recorder

    async def intercept_unary_stream(self, continuation, client_call_details, request):
        rec = StreamRecord(method=_method(client_call_details), request=request, t=time.monotonic())
        self.recorder.streams.append(rec)
        call = await continuation(client_call_details, request)

        async def responses():
            try:
                async for message in call:
                    rec.messages.append((time.monotonic(), message))
                    yield message
                rec.code = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as e:
                rec.code, rec.details = e.code(), e.details()
                raise
            except (asyncio.CancelledError, GeneratorExit):
                rec.code = grpc.StatusCode.CANCELLED
                call.cancel()
                raise
            finally:
                if rec.code is None:
                    rec.code = grpc.StatusCode.UNKNOWN
                rec.t_end = time.monotonic()

        return responses()


class Recorder:
    """Records the RPCs of one channel (see the module doc). grpc.aio files an interceptor under one kind only, so
    there is one interceptor object per kind."""

    def __init__(self) -> None:
        self.unary: list[UnaryRecord] = []
        self.streams: list[StreamRecord] = []
        self.interceptors = [_UnaryInterceptor(self), _StreamInterceptor(self)]

    # -- queries ----------------------------------------------------------------

    def calls(self, method: str) -> list[UnaryRecord]:
        return [r for r in self.unary if r.method == method]

    def subscribe_streams(self, name: str | None = None) -> list[StreamRecord]:
        return [
            s for s in self.streams if s.method == "Subscribe" and (name is None or s.request.message_name == name)
        ]

    def delivered(self, name: str | None = None) -> list[tuple[float, Any]]:
        """Every stream message of every Subscribe stream (of ``name``), in arrival order."""
        out = [m for s in self.subscribe_streams(name) for m in s.messages]
        return sorted(out, key=lambda x: x[0])

    def acks(self, idem: str) -> list[UnaryRecord]:
        return [r for r in self.calls("AcknowledgeMessage") if r.request.message_idem == idem]

    async def wait_ack(self, idem: str, timeout: float = STEP) -> UnaryRecord:
        """Wait until an AcknowledgeMessage for ``idem`` was answered; return that answer's record."""

        def answered():
            return next((r for r in self.acks(idem) if r.t_done is not None), None)

        return await wait_until(answered, timeout, f"an AcknowledgeMessage answer for {idem}")


_RECORDER: contextvars.ContextVar[Recorder | None] = contextvars.ContextVar("ensync_recorder", default=None)


class _AioShim(types.SimpleNamespace):
    def __getattr__(self, name: str) -> Any:
        return getattr(grpc.aio, name)

    @staticmethod
    def insecure_channel(target: str, options: Any = None, compression: Any = None, interceptors: Any = None):
        rec = _RECORDER.get()
        if rec is not None:
            interceptors = list(interceptors or []) + rec.interceptors
        return grpc.aio.insecure_channel(target, options=options, compression=compression, interceptors=interceptors)


class _GrpcShim(types.SimpleNamespace):
    aio = _AioShim()

    def __getattr__(self, name: str) -> Any:
        return getattr(grpc, name)


def install_recording_shim() -> None:
    import ensync_sdk.grpc_client as gc

    if not isinstance(gc.grpc, _GrpcShim):
        gc.grpc = _GrpcShim()


@contextlib.contextmanager
def recording(rec: Recorder | None) -> Iterator[None]:
    """Channels the SDK creates inside this block (in this task) carry ``rec``."""
    token = _RECORDER.set(rec)
    try:
        yield
    finally:
        _RECORDER.reset(token)


# --------------------------------------------------------------------------
# Raw gRPC
# --------------------------------------------------------------------------


class RawStream:
    """One raw ``Subscribe`` stream, read by a task into a queue of ``(monotonic time, message)``."""

    def __init__(self, stub: pb_grpc.EnSyncServiceStub, client_id: str, name: str) -> None:
        self.call = stub.Subscribe(pb.SubscribeRequest(client_id=client_id, message_name=name))
        self.messages: list[tuple[float, Any]] = []
        self.code: grpc.StatusCode | None = None
        self.details: str | None = None
        self.task = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        try:
            async for m in self.call:
                self.messages.append((time.monotonic(), m))
            self.code = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as e:
            self.code, self.details = e.code(), e.details()
        except asyncio.CancelledError:
            self.code = grpc.StatusCode.CANCELLED
            self.call.cancel()
            raise

    async def wait(self, n: int, timeout: float = STEP) -> list[Any]:
        await wait_until(lambda: len(self.messages) >= n or self.code is not None, timeout, f"{n} stream message(s)")
        assert len(self.messages) >= n, f"stream ended with {self.code} ({self.details}) after {len(self.messages)}"
        return [m for _, m in self.messages]

    async def ended(self, timeout: float = STEP) -> grpc.StatusCode:
        await wait_until(lambda: self.code is not None, timeout, "the end of the stream")
        return self.code

    async def cancel(self) -> None:
        self.call.cancel()
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task


class RawGrpc:
    """``ensync.EnSyncService`` with Herald's generated stubs (grpc.aio, created in the running loop)."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.aio.insecure_channel(target)
        self.stub = pb_grpc.EnSyncServiceStub(self.channel)
        self.streams: list[RawStream] = []

    async def connect(self, ident: Identity) -> str:
        r = await self.stub.Connect(pb.ConnectRequest(access_key=ident.access_key))
        assert r.success, f"Connect {ident.name} failed: {r.error_message}"
        assert r.client_hash == ident.public_key
        return r.client_id

    async def unary(self, method: str, request: Any) -> tuple[Any, grpc.StatusCode]:
        """Call a unary RPC; return ``(response, status code)`` (the response is None on an error status)."""
        call = getattr(self.stub, method)(request)
        try:
            response = await call
        except grpc.aio.AioRpcError as e:
            return None, e.code()
        return response, await call.code()

    def subscribe(self, client_id: str, name: str) -> RawStream:
        s = RawStream(self.stub, client_id, name)
        self.streams.append(s)
        return s

    async def state(self, ident_client_id: str, idem: str, name: str) -> str:
        """Herald's view of an event, read through DeferMessage (§7.4): on an acknowledged or discarded event it
        answers ``already acknowledged`` / ``already discarded`` and changes nothing. On an open event it *defers*
        it for a day and this returns ``open (deferred now)``: only call it where the event must be closed."""
        r, code = await self.unary(
            "DeferMessage",
            pb.DeferRequest(client_id=ident_client_id, message_idem=idem, message_name=name, delay_ms=MAX_DEFER_MS),
        )
        assert code == grpc.StatusCode.OK, code
        return "open (deferred now)" if r.success else r.message

    async def close(self) -> None:
        for s in self.streams:
            await s.cancel()
        await self.channel.close()


# --------------------------------------------------------------------------
# Raw WebSocket
# --------------------------------------------------------------------------


class RawWs:
    """A plain ``websockets`` client of ``/message``."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.client_id: str | None = None

    @classmethod
    async def open(cls, url: str) -> "RawWs":
        import websockets

        return cls(await websockets.connect(url, max_size=None, open_timeout=STEP))

    async def send(self, frame: str | bytes) -> None:
        await self.ws.send(frame)

    async def recv(self, timeout: float = STEP) -> str:
        frame = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(frame, str), f"server sent a binary frame: {frame[:80]!r}"
        return frame

    async def recv_reply(self, timeout: float = STEP, records: list[str] | None = None) -> str:
        """The next correlated reply (``+PASS:``, ``-FAIL:``, ``+REPLAY:``); ``+RECORD:`` pushes go to ``records``."""
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.recv(max(0.01, deadline - time.monotonic()))
            if frame.startswith("+RECORD:"):
                if records is None:
                    raise AssertionError(f"unexpected push: {frame[:200]}")
                records.append(frame)
                continue
            return frame

    async def command(self, frame: str | bytes, timeout: float = STEP) -> str:
        await self.send(frame)
        return await self.recv_reply(timeout)

    async def silent(self, seconds: float) -> None:
        try:
            frame = await asyncio.wait_for(self.ws.recv(), seconds)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"unexpected frame: {str(frame)[:200]!r}")

    async def conn(self, ident: Identity) -> str:
        reply = await self.command(f"CONN;ACCESS_KEY=:{ident.access_key}")
        m = re.fullmatch(r"\+PASS:\{(.*)\}", reply)
        assert m, reply
        fields = dict(item.split("=", 1) for item in m.group(1).split(","))
        assert fields["clientHash"] == ident.public_key, reply
        self.client_id = fields["clientId"]
        return self.client_id

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 5)


def record_json(frame: str, prefix: str = "+RECORD:") -> dict:
    assert frame.startswith(prefix), frame[:200]
    return json.loads(frame[len(prefix):])
