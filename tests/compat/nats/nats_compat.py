"""Plumbing for the NATS compatibility suite (compat/nats-fluxlib.md §5).

The suite proves that the real Python clients (nats-py 2.16.0, fluxmq 0.15.0) work against Herald's NATS
listener, and that every expectation is what the reference server (nats-server) really does. This module has:

* ``ServerConfig``: the NATS limits a scenario needs, rendered both as a Herald TOML file and as a nats-server
  configuration file (key names follow nats-server, §1.18);
* ``HeraldServer`` / ``ReferenceServer``: start a server on a free loopback port, stop, restart on the same
  port (AC-18), signal (SIGUSR2 = lame duck, AC-21);
* ``Raw``: a hand-written protocol client over an asyncio socket. It answers every server ``PING`` with ``PONG``
  and leaves it out of what it returns (§5.2), unless told not to (AC-16);
* ``RecordingProxy``: a TCP proxy that records both directions, for the "wire" checks;
* ``parse_stream``: splits recorded bytes into operations;
* small waiting helpers: nothing waits without a time limit.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

REPO_ROOT = Path(__file__).resolve().parents[3]
HERALD_BIN = Path(os.environ.get("HERALD_BIN", REPO_ROOT / "target" / "debug" / "herald"))


def _find_nats_server() -> str | None:
    explicit = os.environ.get("NATS_SERVER_BIN")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    found = shutil.which("nats-server")
    if found:
        return found
    for candidate in ("/usr/sbin/nats-server", "/usr/local/bin/nats-server", "/usr/bin/nats-server"):
        if Path(candidate).is_file():
            return candidate
    return None


NATS_SERVER_BIN = _find_nats_server()

# Default time limits (seconds). Everything that waits uses one of these or a scenario-specific bound.
STEP = 2.0  # one expected server reaction (a line, a callback)
QUIET = 0.3  # how long "nothing else arrives" is watched when the contract gives no figure
START = 30.0  # server start-up

DEFAULT_RAW_CONNECT = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True, "protocol": 1}

SEMVER = re.compile(r"^\d+\.\d+\.\d+([-+].*)?$")


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    """NATS settings of one scenario. ``None`` leaves the server's default."""

    max_payload: int | None = None
    max_pending: int | None = None
    max_control_line: int | None = None
    write_deadline: str | None = None
    ping_interval: str | None = None
    ping_max: int | None = None
    auth_timeout: str | None = None  # "2s"
    users: tuple[tuple[str, str], ...] = ()
    token: str | None = None
    lame_duck_duration: str | None = None
    lame_duck_grace_period: str | None = None

    def with_(self, **kw: Any) -> "ServerConfig":
        return replace(self, **kw)

    # -- Herald ----------------------------------------------------------

    def herald_toml(self) -> str:
        lines = ["# written by tests/compat/nats (nats_compat.ServerConfig)", "[nats]"]
        for key in ("max_payload", "max_pending", "max_control_line", "ping_max"):
            v = getattr(self, key)
            if v is not None:
                lines.append(f"{key} = {int(v)}")
        for key in ("write_deadline", "ping_interval", "auth_timeout", "lame_duck_duration", "lame_duck_grace_period"):
            v = getattr(self, key)
            if v is not None:
                lines.append(f"{key} = {json.dumps(v)}")
        for user, password in self.users:
            lines += ["", "[[auth.users]]", f"user = {json.dumps(user)}", f"password = {json.dumps(password)}"]
        if self.token is not None:
            lines += ["", "[[auth.tokens]]", f"token = {json.dumps(self.token)}"]
        return "\n".join(lines) + "\n"

    # -- nats-server -----------------------------------------------------

    def reference_conf(self) -> str:
        lines = ["# written by tests/compat/nats (nats_compat.ServerConfig)"]
        for key in ("max_payload", "max_pending", "max_control_line", "ping_max"):
            v = getattr(self, key)
            if v is not None:
                lines.append(f"{key}: {int(v)}")
        for key in ("write_deadline", "ping_interval", "lame_duck_grace_period"):
            v = getattr(self, key)
            if v is not None:
                lines.append(f"{key}: {json.dumps(v)}")
        if self.lame_duck_duration is not None:
            # nats-server refuses anything below 30 s ("invalid lame_duck_duration ..., minimum is 30 seconds").
            # With a single client it closes it one grace period after entering lame-duck mode anyway.
            secs = max(30.0, parse_duration(self.lame_duck_duration))
            lines.append(f'lame_duck_duration: "{secs:g}s"')
        auth: list[str] = []
        if self.users:
            users = ", ".join(f"{{user: {json.dumps(u)}, password: {json.dumps(p)}}}" for u, p in self.users)
            auth.append(f"  users = [{users}]")
        if self.token is not None:
            auth.append(f"  token: {json.dumps(self.token)}")
        if auth:
            if self.auth_timeout is not None:
                auth.append(f"  timeout: {parse_duration(self.auth_timeout):g}")
            lines += ["authorization {", *auth, "}"]
        return "\n".join(lines) + "\n"


def parse_duration(s: str) -> float:
    m = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s|m|h)?\s*", s)
    if not m:
        raise ValueError(f"bad duration {s!r}")
    n = float(m.group(1))
    return n * {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600}[m.group(2)]


DEFAULT_CONFIG = ServerConfig()


# --------------------------------------------------------------------------
# Server processes
# --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """One server on 127.0.0.1. Subclasses fill in ``_command`` and ``_wait_ready``."""

    kind = "?"

    def __init__(self, config: ServerConfig = DEFAULT_CONFIG):
        self.config = config
        self.tmp = Path(tempfile.mkdtemp(prefix=f"nats-compat-{self.kind}-"))
        self.log_path = self.tmp / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.expect_exit = False  # set by tests that make the server exit on purpose (lame duck)
        self.starts = 0
        self._log = None

    # -- addresses -------------------------------------------------------

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def addr(self) -> tuple[str, int]:
        assert self.port is not None, "server not started"
        return (self.host, self.port)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def url_with(self, userinfo: str) -> str:
        return f"nats://{userinfo}@{self.host}:{self.port}"

    # -- life cycle ------------------------------------------------------

    def _command(self, port: int) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def _wait_ready(self, deadline: float) -> None:
        raise NotImplementedError

    def start(self, port: int | None = None) -> "ServerProcess":
        self._log = open(self.log_path, "ab")
        self._log.write(f"\n===== start #{self.starts + 1} =====\n".encode())
        self._log.flush()
        cmd = self._command(port if port is not None else self._initial_port())
        self.proc = subprocess.Popen(
            cmd,
            env=self._env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.starts += 1
        self._cmd = cmd
        try:
            self._wait_ready(time.monotonic() + START)
        except Exception:
            self.stop()
            raise
        return self

    def _initial_port(self) -> int:
        return 0

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def lame_duck(self) -> None:
        """Both servers enter lame-duck mode on SIGUSR2 (`nats-server --signal ldm` sends exactly that)."""
        self.send_signal(signal.SIGUSR2)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self, pause: float = 0.0) -> None:
        """Stop, then start again on the same port (AC-18)."""
        port = self.port
        self.stop()
        if pause:
            time.sleep(pause)
        self.start(port=port)

    def wait_exit(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def log_tail(self, limit: int = 6000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return "<no server output>"
        return data[-limit:].decode("utf-8", "replace")

    def describe(self) -> str:
        return f"{self.kind} on {self.host}:{self.port} (command: {' '.join(getattr(self, '_cmd', []))})"

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _fail(self, what: str) -> RuntimeError:
        return RuntimeError(f"{self.kind}: {what}\ncommand: {' '.join(self._cmd)}\n--- server output ---\n{self.log_tail()}")


_EXTRA_LISTENER_ARGS: list[str] | None = None


def _herald_extra_listener_args(binary: Path) -> list[str]:
    """Bind every ``--*-addr`` listener other than gRPC, admin and NATS to port 0 (as the FlowMesh suite does), so
    a test server never competes for default ports with anything else."""
    global _EXTRA_LISTENER_ARGS
    if _EXTRA_LISTENER_ARGS is None:
        try:
            out = subprocess.run([str(binary), "serve", "--help"], capture_output=True, text=True, timeout=20)
            text = out.stdout + out.stderr
        except (OSError, subprocess.TimeoutExpired):
            text = ""
        flags = sorted(set(re.findall(r"(--[a-z0-9-]+-addr)\b", text)) - {"--grpc-addr", "--admin-addr", "--nats-addr"})
        _EXTRA_LISTENER_ARGS = [a for f in flags for a in (f, "127.0.0.1:0")]
    return _EXTRA_LISTENER_ARGS


class HeraldServer(ServerProcess):
    """``herald serve`` with its NATS listener on 127.0.0.1 (port 0 at first, then the same port on restart)."""

    kind = "herald"

    def __init__(self, config: ServerConfig = DEFAULT_CONFIG, binary: Path = HERALD_BIN):
        super().__init__(config)
        self.binary = binary
        self.data_dir = self.tmp / "data"
        self.port_file = self.tmp / "ports.json"
        self.config_file = self.tmp / "herald.toml"
        self.config_file.write_text(config.herald_toml())

    def _command(self, port: int) -> list[str]:
        cmd = [
            str(self.binary),
            "serve",
            "--config",
            str(self.config_file),
            "--data-dir",
            str(self.data_dir),
            "--grpc-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--nats-addr",
            f"127.0.0.1:{port}",
            "--port-file",
            str(self.port_file),
        ]
        return cmd + _herald_extra_listener_args(self.binary) + os.environ.get("HERALD_EXTRA_ARGS", "").split()

    def _env(self) -> dict[str, str]:
        # `herald serve` reads HERALD_* variables as configuration; the scenario set-up must not depend on the shell.
        return {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}

    def start(self, port: int | None = None) -> "HeraldServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port_file.unlink(missing_ok=True)
        super().start(port)
        return self

    def _wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise self._fail(f"exited with code {self.proc.returncode} before writing its port file")
            if self.port_file.exists():
                try:
                    ports = json.loads(self.port_file.read_text())
                except (json.JSONDecodeError, OSError):
                    ports = None  # half-written
                if isinstance(ports, dict) and ports.get("nats"):
                    host, _, port = str(ports["nats"]).rpartition(":")
                    self.port = int(port)
                    return
            time.sleep(0.02)
        raise self._fail(f"did not write a port file with a 'nats' key to {self.port_file} in time")


class ReferenceServer(ServerProcess):
    """The oracle: ``nats-server -a 127.0.0.1 -p <free port> -c <conf>``."""

    kind = "reference"

    def __init__(self, config: ServerConfig = DEFAULT_CONFIG, binary: str | None = NATS_SERVER_BIN):
        super().__init__(config)
        if not binary:
            raise RuntimeError("nats-server not found (install it, or set NATS_SERVER_BIN)")
        self.binary = binary
        self.conf_file = self.tmp / "nats-server.conf"
        self.conf_file.write_text(config.reference_conf())

    def _initial_port(self) -> int:
        return free_port()

    def _command(self, port: int) -> list[str]:
        self.port = port
        return [self.binary, "-a", "127.0.0.1", "-p", str(port), "-c", str(self.conf_file)]

    def _wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise self._fail(f"exited with code {self.proc.returncode} during start-up")
            try:
                with socket.create_connection(self.addr, timeout=1) as s:
                    s.settimeout(1)
                    if s.recv(5) == b"INFO ":
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise self._fail("did not accept connections in time")


def make_server(kind: str, config: ServerConfig = DEFAULT_CONFIG) -> ServerProcess:
    if kind == "herald":
        return HeraldServer(config)
    if kind == "reference":
        return ReferenceServer(config)
    raise ValueError(kind)


# --------------------------------------------------------------------------
# Protocol operations
# --------------------------------------------------------------------------


@dataclass
class Op:
    """One protocol operation: its control line (without CRLF) and, for MSG/HMSG/PUB/HPUB, its block."""

    line: bytes
    payload: bytes | None = None

    @property
    def kind(self) -> str:
        return self.line.split(None, 1)[0].decode("latin-1").upper() if self.line.strip() else ""

    @property
    def args(self) -> list[str]:
        return self.line.decode("latin-1").split()[1:]

    @property
    def raw(self) -> bytes:
        out = self.line + b"\r\n"
        if self.payload is not None:
            out += self.payload + b"\r\n"
        return out

    def __repr__(self) -> str:
        if self.payload is None:
            return f"Op({self.line!r})"
        p = self.payload if len(self.payload) <= 80 else self.payload[:80] + b"..."
        return f"Op({self.line!r}, {p!r})"


def _block_size(line: bytes) -> int | None:
    parts = line.split()
    if not parts:
        return None
    op = parts[0].upper()
    if op in (b"MSG", b"PUB", b"HMSG", b"HPUB"):
        try:
            return int(parts[-1])
        except ValueError:
            return None
    return None


def parse_stream(data: bytes) -> list[Op]:
    """Split a recorded byte stream (either direction) into operations. A trailing incomplete operation is
    returned with its partial block (``Op.line`` ends the list)."""
    ops: list[Op] = []
    i = 0
    while i < len(data):
        j = data.find(b"\n", i)
        if j < 0:
            ops.append(Op(data[i:]))
            break
        line = data[i:j].rstrip(b"\r")
        i = j + 1
        n = _block_size(line)
        if n is None:
            ops.append(Op(line))
            continue
        ops.append(Op(line, data[i : i + n]))
        i += n + 2
    return ops


def raws(ops: Iterable[Op]) -> list[bytes]:
    return [o.raw for o in ops]


# --------------------------------------------------------------------------
# Raw protocol client
# --------------------------------------------------------------------------


class Raw:
    """A hand-written NATS client on an asyncio socket.

    ``next_op`` answers a server ``PING`` with ``PONG`` and does not return it (§5.2: the reference sends an early
    RTT PING, Herald may too), unless ``answer_pings`` is False (then PINGs are returned and never answered).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, answer_pings: bool = True):
        self.reader = reader
        self.writer = writer
        self.answer_pings = answer_pings
        self.info_line: bytes = b""
        self.info: dict[str, Any] = {}
        self.pings_answered = 0
        self.eof_kind: str | None = None  # "eof" or "reset" once the server closed
        self.tail = b""  # bytes read after the last complete operation when the stream ended

    # -- opening ---------------------------------------------------------

    @classmethod
    async def open(cls, addr: tuple[str, int], rcvbuf: int | None = None, answer_pings: bool = True,
                   read_info: bool = True) -> "Raw":
        if rcvbuf is not None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.sock_connect(sock, addr), STEP)
            reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 22)
        else:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(*addr, limit=1 << 22), STEP)
        raw = cls(reader, writer, answer_pings)
        if read_info:
            line = await raw.readline(STEP)
            assert line is not None, "server closed the connection before sending INFO"
            raw.info_line = line
            assert line.startswith(b"INFO "), f"first line is not INFO: {line!r}"
            raw.info = json.loads(line[5:].decode("utf-8"))
        return raw

    @classmethod
    async def connected(cls, addr: tuple[str, int], connect: dict[str, Any] | None = None, **kw: Any) -> "Raw":
        """Open, send ``CONNECT <json>`` + ``PING`` and require ``PONG`` (``+OK`` first when verbose)."""
        raw = await cls.open(addr, **kw)
        opts = DEFAULT_RAW_CONNECT if connect is None else connect
        await raw.send(b"CONNECT " + json.dumps(opts, separators=(",", ":")).encode() + b"\r\nPING\r\n")
        if opts.get("verbose", True):
            op = await raw.next_op(STEP)
            assert op is not None and op.raw == b"+OK\r\n", f"verbose CONNECT: expected +OK, got {op!r}"
        op = await raw.next_op(STEP)
        assert op is not None and op.raw == b"PONG\r\n", f"handshake: expected PONG, got {op!r}"
        return raw

    # -- I/O -------------------------------------------------------------

    async def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), STEP)

    async def readline(self, timeout: float) -> bytes | None:
        """One line including its terminator; None at EOF/reset (a partial line is kept in ``tail``)."""
        try:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
        except (ConnectionResetError, BrokenPipeError):
            self.eof_kind = "reset"
            return None
        if not line:
            self.eof_kind = self.eof_kind or "eof"
            return None
        if not line.endswith(b"\n"):
            self.tail = line
            self.eof_kind = self.eof_kind or "eof"
            return None
        return line

    async def readexactly(self, n: int, timeout: float) -> bytes | None:
        try:
            return await asyncio.wait_for(self.reader.readexactly(n), timeout)
        except asyncio.IncompleteReadError as e:
            self.tail = e.partial
            self.eof_kind = "eof"
            return None
        except (ConnectionResetError, BrokenPipeError):
            self.eof_kind = "reset"
            return None

    async def next_op(self, timeout: float = STEP) -> Op | None:
        """The next operation (PINGs answered and skipped, see the class doc); None once the server closed.
        Raises asyncio.TimeoutError if nothing arrives in ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.0, deadline - time.monotonic())
            line = await self.readline(left)
            if line is None:
                return None
            stripped = line.rstrip(b"\r\n")
            if stripped.upper() == b"PING" and self.answer_pings:
                self.pings_answered += 1
                try:
                    await self.send(b"PONG\r\n")
                except (ConnectionError, OSError):
                    pass
                continue
            n = _block_size(stripped)
            if n is None:
                return Op(stripped)
            block = await self.readexactly(n + 2, max(0.5, deadline - time.monotonic()))
            if block is None:
                return Op(stripped, self.tail)
            return Op(stripped, block[:-2]) if block.endswith(b"\r\n") else Op(stripped, block)

    async def ops_until_pong(self, timeout: float = STEP) -> list[Op]:
        """Operations up to (not including) the next PONG. Fails if the server closes or nothing comes in time."""
        ops: list[Op] = []
        deadline = time.monotonic() + timeout
        while True:
            op = await self.next_op(max(0.0, deadline - time.monotonic()))
            assert op is not None, f"server closed the connection ({self.eof_kind}) before PONG; got {ops!r}"
            if op.raw == b"PONG\r\n":
                return ops
            ops.append(op)

    async def ping_barrier(self, timeout: float = STEP) -> list[Op]:
        """Send PING and return everything that arrives before its PONG."""
        await self.send(b"PING\r\n")
        return await self.ops_until_pong(timeout)

    async def ops_for(self, duration: float) -> list[Op]:
        """Everything that arrives within ``duration`` (stops early at EOF)."""
        ops: list[Op] = []
        deadline = time.monotonic() + duration
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return ops
            try:
                op = await self.next_op(left)
            except asyncio.TimeoutError:
                return ops
            if op is None:
                return ops
            ops.append(op)

    async def until_closed(self, timeout: float) -> list[Op]:
        """Everything that arrives until the server closes; fails if it is still open after ``timeout``."""
        ops: list[Op] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                op = await self.next_op(max(0.0, left))
            except asyncio.TimeoutError:
                raise AssertionError(f"server did not close the connection within {timeout} s; received {ops!r}")
            if op is None:
                return ops
            ops.append(op)

    async def close(self) -> None:
        try:
            self.writer.close()
            await asyncio.wait_for(self.writer.wait_closed(), 1)
        except (Exception, asyncio.CancelledError):  # already reset, or the loop is going away
            pass


# --------------------------------------------------------------------------
# Recording proxy
# --------------------------------------------------------------------------


@dataclass
class Session:
    """One client connection through the proxy."""

    c2s: bytearray = field(default_factory=bytearray)
    s2c: bytearray = field(default_factory=bytearray)
    closed: bool = False

    def client_ops(self) -> list[Op]:
        return parse_stream(bytes(self.c2s))

    def server_ops(self) -> list[Op]:
        return parse_stream(bytes(self.s2c))


class RecordingProxy:
    """Forwards 127.0.0.1:<port> to the server and records every byte per connection. If the server is down, a
    client connection is closed at once (so clients see a failed reconnect attempt, as with the server itself)."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.sessions: list[Session] = []
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> "RecordingProxy":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, limit=1 << 22)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        self._writers.append(cwriter)
        try:
            sreader, swriter = await asyncio.wait_for(asyncio.open_connection(*self.upstream, limit=1 << 22), STEP)
        except (OSError, asyncio.TimeoutError):
            cwriter.close()
            return
        self._writers.append(swriter)
        session = Session()
        self.sessions.append(session)

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, record: bytearray) -> None:
            try:
                while True:
                    data = await r.read(65536)
                    if not data:
                        break
                    record += data
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError, asyncio.CancelledError):
                pass
            finally:
                session.closed = True
                for x in (cwriter, swriter):
                    try:
                        x.close()
                    except Exception:
                        pass

        for coro in (pump(creader, swriter, session.c2s), pump(sreader, cwriter, session.s2c)):
            t = asyncio.ensure_future(coro)
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for w in self._writers:
            try:
                w.close()
            except Exception:
                pass
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)


# --------------------------------------------------------------------------
# Waiting helpers
# --------------------------------------------------------------------------


async def wait_until(pred: Callable[[], bool], timeout: float, what: str | Callable[[], str] = "condition",
                     interval: float = 0.005) -> float:
    """Poll ``pred`` until true; returns the time it took. Fails with ``what`` after ``timeout``."""
    start = time.monotonic()
    deadline = start + timeout
    while not pred():
        if time.monotonic() > deadline:
            text = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout} s waiting for {text}")
        await asyncio.sleep(interval)
    return time.monotonic() - start


class Collector:
    """A nats-py subscription callback that records messages and lets a test wait for a count."""

    def __init__(self, name: str = "subscription"):
        self.name = name
        self.msgs: list[Any] = []

    async def cb(self, msg: Any) -> None:
        """The callback to pass as ``cb=`` (nats-py requires a coroutine function)."""
        self.msgs.append(msg)

    def __len__(self) -> int:
        return len(self.msgs)

    @property
    def data(self) -> list[bytes]:
        return [m.data for m in self.msgs]

    async def wait(self, n: int, timeout: float = STEP) -> list[Any]:
        await wait_until(lambda: len(self.msgs) >= n, timeout, lambda: f"{n} messages on {self.name} (have {len(self.msgs)})")
        return self.msgs


# --------------------------------------------------------------------------
# nats-py helpers
# --------------------------------------------------------------------------


async def settle(nc: Any, timeout: float = STEP) -> None:
    """Make sure every command ``nc`` has issued so far has been processed by the server.

    nats-py's ``flush()`` writes its PING straight to the socket while earlier commands may still sit in the
    client's pending buffer (§2.1: the PING may overtake them), so one PONG proves nothing about a SUB issued just
    before. By the time the first PONG is back the client's flusher has written those commands, so the PONG of a
    second PING is behind them (§1.11, per-connection order and the PING barrier)."""
    await nc.flush(timeout=timeout)
    await nc.flush(timeout=timeout)


async def drained(*subs: Any, timeout: float = STEP) -> None:
    """Wait until each nats-py subscription has run its callback for every message it has received."""
    for sub in subs:
        await asyncio.wait_for(sub._pending_queue.join(), timeout)


class Fence:
    """Proof that nothing more is on its way from one publisher to one subscriber connection.

    The receiver subscribes a private subject up front. ``cross(sender)`` publishes a sentinel from ``sender`` and
    waits for it: the server delivers one publisher's messages to one connection in order (§1.11), so once the
    sentinel is in, every earlier message from ``sender`` to the receiver has reached the client too. Then it
    waits until the given subscriptions' callbacks have processed all of them. A following exact count is final.
    """

    _n = 0

    def __init__(self, receiver: Any):
        Fence._n += 1
        self.receiver = receiver
        self.subject = f"fence.{os.getpid()}.{Fence._n}"
        self._got: asyncio.Queue = asyncio.Queue()
        self.sub = None

    @classmethod
    async def create(cls, receiver: Any) -> "Fence":
        f = cls(receiver)

        async def cb(msg: Any) -> None:
            f._got.put_nowait(msg.data)

        f.sub = await receiver.subscribe(f.subject, cb=cb)
        return f

    async def cross(self, sender: Any, *subs: Any, timeout: float = STEP) -> None:
        token = os.urandom(6).hex().encode()
        await sender.publish(self.subject, token)
        deadline = time.monotonic() + timeout
        while True:
            got = await asyncio.wait_for(self._got.get(), max(0.01, deadline - time.monotonic()))
            if got == token:
                break
        await drained(*subs, timeout=timeout)
