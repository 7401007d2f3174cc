"""Plumbing for the Pulsar Relay compatibility suite (compat/pulsar-relay.md).

The suite proves that Herald's HTTP/WebSocket relay listener behaves like Pulsar Relay 0.2.1, and that every
expectation is what the reference server really does. This module has:

* ``ServerConfig``: the ``PULSAR_*`` environment of one scenario (the contract's §8 defaults plus overrides);
* ``HeraldServer`` / ``ReferenceServer``: start a server on a free loopback port, wait until it serves
  ``/health``, stop it, restart it on the same port and data directory;
* ``Relay``: an httpx client for one server with a token cache per user (the login limit is 5/minute/IP), a user
  factory (``/auth/register`` with the admin token) and small helpers for the routes the scenarios use;
* ``FaultProxy``: an HTTP reverse proxy that can replace an upstream answer (checklist item 14);
* WebSocket helpers on top of the ``websockets`` package, and waiting helpers: nothing waits without a limit.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable

import httpx

REPO_ROOT = Path(__file__).resolve().parents[3]
HERALD_BIN = Path(os.environ.get("HERALD_BIN", REPO_ROOT / "target" / "debug" / "herald"))
REFERENCE_PYTHON = os.environ.get("RELAY_REFERENCE_PYTHON", sys.executable)

START = 40.0  # server start-up limit (seconds)
STEP = 5.0  # one expected server reaction (a frame, a response)
QUIET = 0.5  # how long "nothing else arrives" is watched

JWT_SECRET = "herald-relay-compat-secret-0123456789-abcdefghij"  # ≥ 32 characters (§7.3)
ADMIN_USER = "admin"
ADMIN_PASSWORD = "12345678"
DEFAULT_ORIGIN = "http://localhost:8080"
PLACEHOLDER_SECRET = "your-secret-key-here-change-in-production"

# §8: "default settings plus only what is needed to start". Rate limits on, WebSocket cap 10, query tokens off.
DEFAULT_ENV: dict[str, str] = {
    "PULSAR_JWT_SECRET_KEY": JWT_SECRET,
    "PULSAR_BOOTSTRAP_ADMIN_USERNAME": ADMIN_USER,
    "PULSAR_BOOTSTRAP_ADMIN_PASSWORD": ADMIN_PASSWORD,
    "PULSAR_TRUSTED_HOSTS": '["localhost","127.0.0.1"]',
    "PULSAR_ALLOWED_ORIGINS": json.dumps([DEFAULT_ORIGIN]),
}

# Variables of the shell that would change a server's set-up: removed from every server's environment.
_SCRUB_PREFIXES = ("PULSAR_", "HERALD_")
_SCRUB_NAMES = {"RATELIMIT_ENABLED"}

Z_FORM = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z$")
OFFSET_FORM = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?\+00:00$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
REFRESH_TOKEN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.[A-Za-z0-9_-]{43}$")


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerConfig:
    """Environment overrides of one scenario on top of ``DEFAULT_ENV``. A value ``None`` removes the variable."""

    overrides: tuple[tuple[str, str | None], ...] = ()

    def with_env(self, **kw: str | None) -> "ServerConfig":
        merged = dict(self.overrides)
        merged.update(kw)
        return ServerConfig(tuple(sorted(merged.items())))

    def environment(self) -> dict[str, str]:
        env = dict(DEFAULT_ENV)
        for k, v in self.overrides:
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def label(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.overrides) or "defaults"


DEFAULT_CONFIG = ServerConfig()
NO_LIMITS = DEFAULT_CONFIG.with_env(RATELIMIT_ENABLED="false")


# --------------------------------------------------------------------------
# Server processes
# --------------------------------------------------------------------------


class RelayUnavailable(RuntimeError):
    """The Herald binary has no relay listener (it exited at start-up, or its port file has no "relay" key)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrubbed_environ() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES) and k not in _SCRUB_NAMES
    }


class ServerProcess:
    """One relay server on 127.0.0.1. Subclasses fill in ``_command`` and ``_wait_port``."""

    kind = "?"

    def __init__(self, config: ServerConfig = DEFAULT_CONFIG):
        self.config = config
        self.tmp = Path(tempfile.mkdtemp(prefix=f"relay-compat-{self.kind}-"))
        self.log_path = self.tmp / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.starts = 0
        self.expect_exit = False
        self._log = None
        self._cmd: list[str] = []
        # Shared state of the tests that use this server (per server, so per process of the reference).
        self.tokens: dict[str, str] = {}
        self.users: dict[str, Any] = {}
        self.lock = threading.Lock()

    # -- addresses -------------------------------------------------------

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    # -- life cycle ------------------------------------------------------

    def _command(self, port: int) -> list[str]:
        raise NotImplementedError

    def _cwd(self) -> str:
        return str(self.tmp)

    def _env(self) -> dict[str, str]:
        env = _scrubbed_environ()
        env.update(self.config.environment())
        return env

    def _initial_port(self) -> int:
        return 0

    def _wait_port(self, deadline: float) -> None:
        raise NotImplementedError

    def spawn(self, port: int | None = None) -> None:
        """Start the process without waiting for it (the start-up guard scenarios expect it to exit)."""
        self._log = open(self.log_path, "ab")
        self._log.write(f"\n===== start #{self.starts + 1} =====\n".encode())
        self._log.flush()
        self._cmd = self._command(port if port is not None else self._initial_port())
        self.proc = subprocess.Popen(
            self._cmd,
            env=self._env(),
            cwd=self._cwd(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.starts += 1

    def start(self, port: int | None = None) -> "ServerProcess":
        self.spawn(port)
        try:
            deadline = time.monotonic() + START
            self._wait_port(deadline)
            self._wait_http(deadline)
        except Exception:
            self.stop()
            raise
        return self

    def _wait_http(self, deadline: float) -> None:
        """Any HTTP answer to GET /health means the listener serves (an empty trusted-host list answers 400)."""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise self._exited("while starting to serve HTTP")
            try:
                r = httpx.get(f"{self.base_url}/health", timeout=2)
                if r.status_code:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise self._fail("did not answer GET /health in time")

    def _exited(self, when: str) -> RuntimeError:
        return self._fail(f"exited with code {self.proc.returncode} {when}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

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

    def restart(self) -> None:
        """Stop, then start again on the same port (and, for Herald, the same data directory)."""
        port = self.port
        self.stop()
        self.start(port=port)

    def wait_exit(self, timeout: float) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def output(self) -> str:
        try:
            return self.log_path.read_bytes().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, limit: int = 6000) -> str:
        return self.output()[-limit:] or "<no server output>"

    def describe(self) -> str:
        return f"{self.kind} on {self.host}:{self.port} [{self.config.label()}] (command: {' '.join(self._cmd)})"

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _fail(self, what: str) -> RuntimeError:
        return RuntimeError(
            f"{self.kind}: {what}\ncommand: {' '.join(self._cmd)}\nsettings: {self.config.label()}\n"
            f"--- server output ---\n{self.log_tail()}"
        )


_EXTRA_LISTENER_ARGS: list[str] | None = None
_OWN_LISTENERS = {"--grpc-addr", "--admin-addr", "--nats-addr", "--relay-addr"}


def _herald_extra_listener_args(binary: Path) -> list[str]:
    """Bind every other ``--*-addr`` listener that ``serve --help`` lists to port 0, as the other suites do."""
    global _EXTRA_LISTENER_ARGS
    if _EXTRA_LISTENER_ARGS is None:
        try:
            out = subprocess.run([str(binary), "serve", "--help"], capture_output=True, text=True, timeout=20)
            text = out.stdout + out.stderr
        except (OSError, subprocess.TimeoutExpired):
            text = ""
        flags = sorted(set(re.findall(r"(--[a-z0-9-]+-addr)\b", text)) - _OWN_LISTENERS)
        _EXTRA_LISTENER_ARGS = [a for f in flags for a in (f, "127.0.0.1:0")]
    return _EXTRA_LISTENER_ARGS


class HeraldServer(ServerProcess):
    """``herald serve`` with its relay listener on 127.0.0.1 (port 0 at first, the same port on restart). The
    scenario's ``PULSAR_*`` settings are passed as environment variables; every ``HERALD_*`` variable of the shell is
    removed. No storage backend is named: Herald keeps everything in its data directory."""

    kind = "herald"

    def __init__(self, config: ServerConfig = DEFAULT_CONFIG, binary: Path = HERALD_BIN):
        super().__init__(config)
        self.binary = binary
        self.data_dir = self.tmp / "data"
        self.port_file = self.tmp / "ports.json"

    def _command(self, port: int) -> list[str]:
        cmd = [
            str(self.binary),
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--grpc-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--nats-addr",
            "",
            "--relay-addr",
            f"127.0.0.1:{port}",
            "--port-file",
            str(self.port_file),
        ]
        return cmd + _herald_extra_listener_args(self.binary) + os.environ.get("HERALD_EXTRA_ARGS", "").split()

    def spawn(self, port: int | None = None) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port_file.unlink(missing_ok=True)
        super().spawn(port)

    def _wait_port(self, deadline: float) -> None:
        seen_without_relay: float | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RelayUnavailable(
                    f"herald exited with code {self.proc.returncode} at start-up (no relay listener?)\n"
                    f"command: {' '.join(self._cmd)}\n--- server output ---\n{self.log_tail(3000)}"
                )
            ports = None
            if self.port_file.exists():
                try:
                    ports = json.loads(self.port_file.read_text())
                except (json.JSONDecodeError, OSError):
                    ports = None  # half-written
            if isinstance(ports, dict):
                if ports.get("relay"):
                    _, _, port = str(ports["relay"]).rpartition(":")
                    self.port = int(port)
                    return
                # The other listeners are up but there is no relay key: give it a moment, then give up.
                seen_without_relay = seen_without_relay or time.monotonic()
                if time.monotonic() - seen_without_relay > 3.0:
                    raise RelayUnavailable(f"herald's port file {self.port_file} has no 'relay' key: {ports}")
            time.sleep(0.02)
        raise self._fail(f"did not write a port file with a 'relay' key to {self.port_file} in time")


class ReferenceServer(ServerProcess):
    """The oracle: ``python -m uvicorn pulsar_relay.main:app --host 127.0.0.1 --port <free port>`` (pulsar-relay
    0.2.1, in-memory backend), run in its temp dir so that no stray config.toml or .env is read."""

    kind = "reference"

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env["PULSAR_STORAGE_BACKEND"] = "memory"
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _initial_port(self) -> int:
        return free_port()

    def _command(self, port: int) -> list[str]:
        self.port = port
        return [
            REFERENCE_PYTHON,
            "-m",
            "uvicorn",
            "pulsar_relay.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
        ]

    def _wait_port(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise self._exited("during start-up")
            try:
                with socket.create_connection((self.host, self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise self._fail("did not accept connections in time")


def make_server(kind: str, config: ServerConfig = DEFAULT_CONFIG) -> ServerProcess:
    if kind == "herald":
        return HeraldServer(config)
    if kind == "reference":
        return ReferenceServer(config)
    raise ValueError(kind)


def reference_missing() -> str | None:
    """Why the reference server cannot run here (None when it can)."""
    probe = subprocess.run(
        [REFERENCE_PYTHON, "-c", "import pulsar_relay.main, uvicorn"], capture_output=True, text=True, timeout=60
    )
    if probe.returncode != 0:
        return (
            "reference pulsar-relay 0.2.1 is not importable by "
            f"{REFERENCE_PYTHON} (pip install -r tests/compat/relay/requirements-reference.txt): "
            f"{probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else probe.returncode}"
        )
    return None


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def uniq(prefix: str) -> str:
    """A fresh name (topic, user) so that scenarios sharing a server never see each other's data."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def wait_until(cond: Callable[[], Any], timeout: float = STEP, interval: float = 0.02, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def json_body(resp: httpx.Response, status: int | None = None) -> Any:
    """The JSON body of ``resp`` after checking the status and the encoding conventions (§0): exactly
    ``application/json`` and compact separators, non-ASCII raw."""
    if status is not None:
        assert resp.status_code == status, f"expected HTTP {status}, got {resp.status_code}: {resp.text[:600]}"
    ctype = resp.headers.get("content-type", "")
    assert ctype == "application/json", f"content-type {ctype!r} (body {resp.text[:200]!r})"
    body = resp.json()
    assert resp.content.decode("utf-8") == compact(body), f"body not compact JSON: {resp.text[:300]!r}"
    return body


def assert_detail(resp: httpx.Response, status: int, detail: str) -> None:
    assert json_body(resp, status) == {"detail": detail}


def validation_errors(resp: httpx.Response) -> list[dict[str, Any]]:
    """The list of a 422 answer, each with type, loc, msg, input (§2.1)."""
    body = json_body(resp, 422)
    assert set(body) == {"detail"} and isinstance(body["detail"], list) and body["detail"], body
    for err in body["detail"]:
        assert {"type", "loc", "msg", "input"} <= set(err), err
        assert err["loc"][0] in ("body", "query", "path"), err
    return body["detail"]


def find_error(errors: list[dict[str, Any]], loc: list[Any]) -> dict[str, Any]:
    for err in errors:
        if list(err["loc"]) == loc:
            return err
    raise AssertionError(f"no validation error at {loc}: {errors}")


def id_order_key(message_id: str) -> tuple[int, ...]:
    """Ids that the contract lets a client order: stream ids ``<ms>-<seq>`` (§4.5)."""
    m = re.fullmatch(r"(\d+)-(\d+)", message_id)
    assert m, f"message id {message_id!r} is not a stream id <ms>-<seq> (§4.5), so it has no order"
    return int(m.group(1)), int(m.group(2))


def avoid_minute_boundary(needed: float) -> None:
    """Rate-limit windows are one minute long. A server may align them to the clock, so a burst that must land in one
    window starts only when at least ``needed`` seconds are left in the current minute."""
    left = 60.0 - (time.time() % 60.0)
    if left < needed:
        time.sleep(left + 0.2)


# --------------------------------------------------------------------------
# HTTP access to one server
# --------------------------------------------------------------------------


@dataclass
class User:
    relay: "Relay"
    username: str
    password: str
    user_id: str
    permissions: tuple[str, ...]
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def token(self) -> str:
        return self.relay.token(self.username, self.password)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Relay:
    """One server seen over HTTP. Access tokens are cached per (server, user) on the server object, so the shared
    servers log each user in once per session."""

    def __init__(self, server: ServerProcess):
        self.server = server
        self.http = httpx.Client(base_url=server.base_url, timeout=30)

    def close(self) -> None:
        self.http.close()

    # -- addresses -------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def ws_url(self) -> str:
        return self.server.ws_url

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port

    # -- raw requests ----------------------------------------------------

    def request(self, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", None) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.request(method, path, headers=headers, **kw)

    def get(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return self.request("GET", path, token, **kw)

    def post(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return self.request("POST", path, token, **kw)

    def put(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return self.request("PUT", path, token, **kw)

    def patch(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return self.request("PATCH", path, token, **kw)

    def delete(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, token, **kw)

    # -- authentication --------------------------------------------------

    def login(self, username: str, password: str, **extra: str) -> httpx.Response:
        return self.post("/auth/login", data={"username": username, "password": password, **extra})

    def login_ok(self, username: str, password: str) -> dict[str, Any]:
        body = json_body(self.login(username, password), 200)
        with self.server.lock:
            self.server.tokens[username] = body["access_token"]
        return body

    def token(self, username: str = ADMIN_USER, password: str = ADMIN_PASSWORD) -> str:
        with self.server.lock:
            cached = self.server.tokens.get(username)
        if cached:
            return cached
        return self.login_ok(username, password)["access_token"]

    @property
    def admin_token(self) -> str:
        return self.token(ADMIN_USER, ADMIN_PASSWORD)

    def admin(self) -> User:
        me = json_body(self.get("/auth/me", self.admin_token), 200)
        return User(self, ADMIN_USER, ADMIN_PASSWORD, me["user_id"], tuple(me["permissions"]), me)

    def register(self, username: str, password: str, permissions: Iterable[str], **extra: Any) -> httpx.Response:
        body = {"username": username, "password": password, "permissions": list(permissions), **extra}
        return self.post("/auth/register", self.admin_token, json=body)

    def new_user(self, permissions: Iterable[str] = ("read", "write"), prefix: str = "u", login: bool = True) -> User:
        username = uniq(prefix)
        password = "pw-" + uuid.uuid4().hex[:12]
        record = json_body(self.register(username, password, permissions), 201)
        user = User(self, username, password, record["user_id"], tuple(permissions), record)
        if login:
            user.token  # noqa: B018 — log in now, outside the timings of the scenario
        return user

    def shared_user(self, role: str, permissions: Iterable[str]) -> User:
        """A user shared by every test on this server that only reads or publishes to its own fresh topics."""
        with self.server.lock:
            user = self.server.users.get(role)
        if user is None:
            user = self.new_user(permissions, prefix=role)
            with self.server.lock:
                self.server.users[role] = user
        user.relay = self
        return user

    # -- messages ----------------------------------------------------------

    def publish_raw(self, user: User, topic: str, payload: Any, **extra: Any) -> httpx.Response:
        headers = extra.pop("headers", None)
        return self.post("/api/v1/messages", user.token, json={"topic": topic, "payload": payload, **extra}, headers=headers)

    def publish(self, user: User, topic: str, payload: Any, **extra: Any) -> dict[str, Any]:
        return json_body(self.publish_raw(user, topic, payload, **extra), 201)

    def bulk(self, user: User, messages: list[dict[str, Any]], headers: dict[str, str] | None = None) -> dict[str, Any]:
        return json_body(self.post("/api/v1/messages/bulk", user.token, json={"messages": messages}, headers=headers), 207)

    def history(self, user: User, topic: str, **params: Any) -> dict[str, Any]:
        return json_body(self.get(f"/api/v1/topics/{topic}/messages", user.token, params=params), 200)

    def all_history(self, user: User, topic: str) -> list[dict[str, Any]]:
        """Every retained message, oldest first (ascending pages of 100)."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"order": "asc", "limit": 100}
            if cursor:
                params["cursor"] = cursor
            page = self.history(user, topic, **params)
            items += page["messages"]
            if len(page["messages"]) < 100:
                return items
            cursor = page["next_cursor"]

    def poll(self, user: User, topics: list[str], since: dict[str, str] | None = None, timeout: int = 1, **kw: Any) -> httpx.Response:
        body: dict[str, Any] = {"topics": topics, "timeout": timeout}
        if since is not None:
            body["since"] = since
        return self.post("/messages/poll", user.token, json=body, timeout=timeout + 10, **kw)

    # -- pulsar-relay-client ---------------------------------------------

    def transport(self, user: User | None = None, **kw: Any):
        from pulsar_relay_client import RelayTransport

        if user is not None:
            kw.setdefault("username", user.username)
            kw.setdefault("password", user.password)
        kw.setdefault("sleep", lambda s: time.sleep(min(s, 0.2)))
        return RelayTransport(kw.pop("relay_url", self.base_url), **kw)

    def client(self):
        from pulsar_relay_client import HttpRelayClient

        return HttpRelayClient(self.base_url)


# --------------------------------------------------------------------------
# Fault-injecting reverse proxy (checklist item 14)
# --------------------------------------------------------------------------

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"}


class FaultProxy:
    """A threaded HTTP reverse proxy on 127.0.0.1 in front of ``upstream``. Every request is forwarded. The first
    request for which ``fault(method, path, status)`` is true (evaluated on the upstream's answer) is answered with
    503 instead, after the upstream has processed it. Records (method, path, headers, upstream status, sent status)."""

    def __init__(self, upstream_port: int, fault: Callable[[str, str, int], bool]):
        self.upstream_port = upstream_port
        self.fault = fault
        self.faulted = False
        self.log: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP and k.lower() != "host"}
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    status, resp_headers = resp.status, resp.getheaders()
                finally:
                    conn.close()
                with proxy._lock:
                    inject = not proxy.faulted and proxy.fault(self.command, self.path, status)
                    if inject:
                        proxy.faulted = True
                    proxy.log.append(
                        {
                            "method": self.command,
                            "path": self.path,
                            "headers": dict(self.headers.items()),
                            "upstream_status": status,
                            "upstream_body": data,
                            "sent_status": 503 if inject else status,
                        }
                    )
                if inject:
                    data = b'{"detail":"injected fault"}'
                    status, resp_headers = 503, [("Content-Type", "application/json")]
                self.send_response(status)
                for k, v in resp_headers:
                    if k.lower() not in _HOP_BY_HOP and k.lower() not in ("content-length", "date", "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> "FaultProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


# --------------------------------------------------------------------------
# WebSocket helpers
# --------------------------------------------------------------------------


def ws_subprotocols(token: str) -> list[str]:
    return ["bearer", f"bearer.{token}"]


async def ws_open(relay: Relay, token: str | None = None, *, subprotocols: list[str] | None = None, origin: str | None = None, query: str = "", **kw: Any):
    """Open ``/ws``. With ``token`` and no explicit ``subprotocols`` it offers ``["bearer", "bearer.<jwt>"]``."""
    from websockets.asyncio.client import connect

    if subprotocols is None and token is not None:
        subprotocols = ws_subprotocols(token)
    kw.setdefault("open_timeout", STEP)
    kw.setdefault("ping_interval", None)  # the scenarios send protocol pings themselves where they matter
    kw.setdefault("close_timeout", 2)
    return await connect(relay.ws_url + query, subprotocols=subprotocols, origin=origin, **kw)


async def ws_rejected_status(relay: Relay, token: str | None = None, **kw: Any) -> int:
    """The HTTP status of a handshake that must fail (§3.1: rejections are HTTP 403 before the upgrade)."""
    from websockets.exceptions import InvalidStatus

    try:
        ws = await ws_open(relay, token, **kw)
    except InvalidStatus as e:
        return e.response.status_code
    await ws.close()
    raise AssertionError("the WebSocket handshake succeeded but should have been rejected")


async def ws_recv_json(ws: Any, timeout: float = STEP) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(raw, str), f"binary frame {raw!r}: every frame must be a JSON text frame (§3.2)"
    obj = json.loads(raw)
    assert raw == compact(obj), f"frame not compact JSON: {raw!r}"
    return obj


async def ws_send_json(ws: Any, obj: Any) -> None:
    await ws.send(json.dumps(obj))


async def ws_subscribe(ws: Any, topics: list[str], client_id: str = "compat") -> dict[str, Any]:
    await ws_send_json(ws, {"type": "subscribe", "topics": topics, "client_id": client_id})
    frame = await ws_recv_json(ws)
    assert frame.get("type") == "subscribed", frame
    return frame


async def ws_expect_silence(ws: Any, quiet: float = QUIET) -> None:
    """Nothing arrives for ``quiet`` seconds (used only after a fence has proven the earlier frames arrived)."""
    try:
        raw = await asyncio.wait_for(ws.recv(), quiet)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected frame {raw!r}")


async def ws_ping_fence(ws: Any) -> dict[str, Any]:
    """Send an application ping and return the next frame, which must be the pong: proves that the server handled
    every earlier client frame without sending anything for it (frames on one connection are handled in order)."""
    await ws_send_json(ws, {"type": "ping"})
    frame = await ws_recv_json(ws)
    assert frame.get("type") == "pong", f"expected the pong, got {frame}"
    return frame


async def ws_wait_closed(ws: Any, timeout: float) -> tuple[int | None, str | None, list[Any]]:
    """Read until the server closes; returns (close code, reason, frames received before the close)."""
    from websockets.exceptions import ConnectionClosed

    frames: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"connection still open after {timeout}s (frames: {frames})")
            frames.append(await asyncio.wait_for(ws.recv(), left))
    except ConnectionClosed as e:
        rcvd = e.rcvd
        return (rcvd.code if rcvd else None), (rcvd.reason if rcvd else None), frames


def raw_http(port: int, request: bytes, timeout: float = STEP) -> tuple[int, dict[str, str], bytes]:
    """Send raw request bytes and return (status, headers, body so far) — for Host headers and upgrades that the
    client libraries will not send."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0") or 0)
        while len(rest) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, headers, rest
