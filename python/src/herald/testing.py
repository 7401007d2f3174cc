"""Run a real ``herald`` server for tests and examples.

:class:`HeraldServer` starts the built binary on port 0 in a temporary directory, waits until it
has written its port file (and, by default, reports ready), and stops it again::

    from herald.testing import HeraldServer

    with HeraldServer(tokens=["t0k"], resources=["default/test/stream/orders"]) as server:
        async with Herald(server.grpc_endpoint, auth_token="t0k") as client:
            ...

A build with a NATS listener gets one on a free port too; :attr:`HeraldServer.nats_url` gives its
``nats://`` URL.

The binary is taken from ``$HERALD_BIN``, else ``<repo>/target/debug/herald`` when running from a
source checkout, else ``herald`` on ``PATH``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

__all__ = [
    "HeraldServer",
    "HeraldServerError",
    "default_binary",
    "find_binary",
    "has_nats_listener",
    "resource_config",
    "serve_help",
]

# Listener flags some builds of `herald serve` accept besides --grpc-addr and --admin-addr. When the
# binary lists one in `serve --help`, the helper binds it to a free loopback port too, so several
# test servers can run side by side without fighting over the default ports.
_OPTIONAL_LISTENER_FLAGS = ("--relay-addr", "--nats-addr", "--metrics-addr")

# Start children with close_fds=False so that CPython can use posix_spawn instead of fork(): a fork()
# runs gRPC's fork handlers, which in a process that has used grpc.aio can abort the child before it
# execs (seen with grpcio 1.80 on Python 3.9, where subprocess does not use vfork). Python's own file
# descriptors are non-inheritable anyway (PEP 446), so nothing leaks into the server.
_CLOSE_FDS = False

Resources = Union[Mapping[str, Mapping[str, Any]], Iterable[str]]


class HeraldServerError(RuntimeError):
    """The server could not be started, or died while starting."""


def default_binary() -> Path:
    """Where the binary is expected: ``$HERALD_BIN`` or ``<repo>/target/debug/herald``."""
    env = os.environ.get("HERALD_BIN")
    if env:
        return Path(env)
    # python/src/herald/testing.py -> the repository root is three levels above the package.
    return Path(__file__).resolve().parents[3] / "target" / "debug" / "herald"


def find_binary() -> Optional[Path]:
    """Return the herald binary to use, or ``None`` if none can be found."""
    candidate = default_binary()
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    if "HERALD_BIN" in os.environ:
        return None
    on_path = shutil.which("herald")
    return Path(on_path) if on_path else None


def serve_help(binary: Union[str, Path]) -> str:
    """The output of ``<binary> serve --help`` (``""`` when it cannot be run)."""
    try:
        result = subprocess.run(
            [str(binary), "serve", "--help"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            close_fds=_CLOSE_FDS,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout + result.stderr


def has_nats_listener(binary: Union[str, Path]) -> bool:
    """Whether this build of ``herald serve`` has a NATS listener (``--nats-addr`` in its help)."""
    return "--nats-addr" in serve_help(binary)


def resource_config(path: str) -> Dict[str, Any]:
    """The provisioning entry for ``tenant/namespace/type/name`` (type: stream, queue or kv)."""
    parts = path.split("/")
    if len(parts) != 4 or parts[2] not in ("stream", "queue", "kv"):
        raise ValueError(f"not a resource path (tenant/namespace/stream|queue|kv/name): {path!r}")
    tenant, namespace, kind, name = parts
    return {
        "tenant": tenant,
        "namespace": namespace,
        "name": name,
        "type": kind,
        "partitions": 1,
        "retention": {},
    }


def _child_env() -> Dict[str, str]:
    """The environment for the server: ours without ``HERALD_*`` settings (``herald serve`` reads
    e.g. ``HERALD_TOKENS`` and ``HERALD_CONFIG``), so only the arguments given here apply.
    ``HERALD_LOG`` is kept to allow turning up the server's logging in a test run."""
    return {k: v for k, v in os.environ.items() if not k.startswith("HERALD_") or k == "HERALD_LOG"}


def _resources_document(resources: Resources) -> Dict[str, Dict[str, Any]]:
    if isinstance(resources, Mapping):
        return {path: dict(config) for path, config in resources.items()}
    return {path: resource_config(path) for path in resources}


class HeraldServer:
    """A ``herald serve`` child process bound to free loopback ports.

    Args:
        binary: path of the ``herald`` executable (default: :func:`find_binary`).
        tokens: gRPC bearer tokens to accept; with none, authentication is off.
        resources: resources to provision, either resource paths
            (``"t1/ns1/queue/jobs"``) or a full FlowMesh ``resources.json`` mapping.
        auto_create: let writes, enqueues and KV sets create missing resources.
        fsync: ``"always"``, ``"never"`` or ``"interval:MS"`` (server default when ``None``).
        extra_args: more arguments for ``herald serve``.
        data_dir: data directory to use (default: a fresh temporary directory, removed by
            :meth:`close`). It is kept across :meth:`restart`.
        startup_timeout: seconds to wait for the port file (and readiness).
        wait_ready: after the port file appears, also wait until the gRPC readiness check says ready.
    """

    def __init__(
        self,
        binary: Optional[Union[str, Path]] = None,
        *,
        tokens: Sequence[str] = (),
        resources: Optional[Resources] = None,
        auto_create: bool = False,
        fsync: Optional[str] = None,
        extra_args: Sequence[str] = (),
        data_dir: Optional[Union[str, Path]] = None,
        startup_timeout: float = 30.0,
        wait_ready: bool = True,
    ) -> None:
        found = Path(binary) if binary is not None else find_binary()
        if found is None:
            raise HeraldServerError(
                f"herald binary not found (looked at {default_binary()} and PATH); "
                "build it with `cargo build -p herald` or set HERALD_BIN"
            )
        self.binary = found
        self.tokens: List[str] = list(tokens)
        self.resources: Optional[Dict[str, Dict[str, Any]]] = (
            _resources_document(resources) if resources is not None else None
        )
        self.auto_create = auto_create
        self.fsync = fsync
        self.extra_args: List[str] = list(extra_args)
        self.startup_timeout = startup_timeout
        self.wait_ready = wait_ready

        self._work_dir = Path(tempfile.mkdtemp(prefix="herald-test-"))
        self._data_dir = Path(data_dir) if data_dir is not None else self._work_dir / "data"
        self._port_file = self._work_dir / "ports.json"
        self._log_path = self._work_dir / "server.log"
        self._process: Optional[subprocess.Popen] = None
        self._addresses: Dict[str, str] = {}
        self._help_text: Optional[str] = None
        self._last_command: List[str] = []

    # ---- properties ---------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """The server's data directory (kept across restarts)."""
        return self._data_dir

    @property
    def addresses(self) -> Dict[str, str]:
        """Listener addresses from the port file, e.g. ``{"grpc": "127.0.0.1:40123", ...}``."""
        if not self._addresses:
            raise HeraldServerError("server is not running")
        return dict(self._addresses)

    @property
    def grpc_endpoint(self) -> str:
        """``host:port`` of the gRPC listener, for ``Herald(endpoint)``."""
        return self.addresses["grpc"]

    @property
    def admin_url(self) -> str:
        """Base URL of the admin HTTP listener (FlowMesh REST API)."""
        return f"http://{self.addresses['admin']}"

    @property
    def has_nats(self) -> bool:
        """Whether the running server has a NATS listener (a ``"nats"`` address in its port file)."""
        return "nats" in self.addresses

    @property
    def nats_url(self) -> str:
        """``nats://host:port`` of the NATS listener, for nats-py and :mod:`herald.service`.

        Raises :class:`HeraldServerError` when the server has no NATS listener (a build whose
        ``serve`` has no ``--nats-addr``).
        """
        addresses = self.addresses
        if "nats" not in addresses:
            raise HeraldServerError(
                f"this herald server has no NATS listener (port file keys: {sorted(addresses)}); "
                f"{self.binary} serve --help does not list --nats-addr"
            )
        return f"nats://{addresses['nats']}"

    @property
    def log_path(self) -> Path:
        """File receiving the server's stdout and stderr."""
        return self._log_path

    @property
    def pid(self) -> Optional[int]:
        return self._process.pid if self._process is not None else None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log_text(self, max_chars: int = 8000) -> str:
        """The last ``max_chars`` characters the server printed."""
        try:
            text = self._log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return text[-max_chars:]

    # ---- lifecycle ----------------------------------------------------------------------------

    def start(
        self,
        *,
        tokens: Optional[Sequence[str]] = None,
        resources: Optional[Resources] = None,
        auto_create: Optional[bool] = None,
        fsync: Optional[str] = None,
        extra_args: Optional[Sequence[str]] = None,
    ) -> "HeraldServer":
        """Start the server (arguments override the constructor's) and wait until it listens."""
        if self.is_running():
            raise HeraldServerError("server is already running")
        if not self.binary.is_file():
            raise HeraldServerError(
                f"herald binary not found at {self.binary}; build it with `cargo build -p herald` or set HERALD_BIN"
            )
        if tokens is not None:
            self.tokens = list(tokens)
        if resources is not None:
            self.resources = _resources_document(resources)
        if auto_create is not None:
            self.auto_create = auto_create
        if fsync is not None:
            self.fsync = fsync
        if extra_args is not None:
            self.extra_args = list(extra_args)

        self._data_dir.mkdir(parents=True, exist_ok=True)
        if self._port_file.exists():
            self._port_file.unlink()
        self._addresses = {}

        self._last_command = self._command()
        log = open(self._log_path, "ab")
        try:
            self._process = subprocess.Popen(
                self._last_command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                close_fds=_CLOSE_FDS,
                env=_child_env(),
            )
        finally:
            log.close()
        try:
            self._addresses = self._wait_for_port_file()
            if self.wait_ready:
                self._wait_until_ready()
        except BaseException:
            self._terminate(timeout=5.0)
            raise
        return self

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """Stop with SIGTERM, then SIGKILL after ``timeout`` seconds; return the exit code."""
        return self._terminate(timeout)

    def kill(self) -> Optional[int]:
        """Stop at once with SIGKILL (a crash, as far as the server can tell)."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.kill()
        code = process.wait()
        self._process = None
        self._addresses = {}
        return code

    def restart(self, **overrides: Any) -> "HeraldServer":
        """Stop gracefully and start again on the same data directory (new ports)."""
        self.stop()
        return self.start(**overrides)

    def close(self) -> None:
        """Stop the server and remove the temporary directory (and the data dir if it is ours)."""
        self.stop()
        shutil.rmtree(self._work_dir, ignore_errors=True)

    def __enter__(self) -> "HeraldServer":
        if not self.is_running():
            self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = self._addresses.get("grpc", "stopped") if self.is_running() else "stopped"
        return f"HeraldServer({self.binary}, {state})"

    # ---- internals ----------------------------------------------------------------------------

    def _command(self) -> List[str]:
        cmd = [
            str(self.binary),
            "serve",
            "--data-dir",
            str(self._data_dir),
            "--grpc-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--port-file",
            str(self._port_file),
        ]
        help_text = self._serve_help()
        for flag in _OPTIONAL_LISTENER_FLAGS:
            if flag in help_text and flag not in self.extra_args:
                cmd += [flag, "127.0.0.1:0"]
        for token in self.tokens:
            cmd += ["--token", token]
        if self.resources is not None:
            resources_file = self._work_dir / "resources.json"
            resources_file.write_text(json.dumps(self.resources, indent=2), encoding="utf-8")
            cmd += ["--resources", str(resources_file)]
        if self.auto_create:
            cmd.append("--auto-create")
        if self.fsync is not None:
            cmd += ["--fsync", self.fsync]
        cmd += self.extra_args
        return cmd

    def _serve_help(self) -> str:
        if self._help_text is None:
            self._help_text = serve_help(self.binary)
        return self._help_text

    def _died(self, what: str) -> HeraldServerError:
        code = self._process.returncode if self._process is not None else None
        return HeraldServerError(
            f"herald server {what} (exit code {code}); command: {' '.join(self._last_command)}\n"
            f"--- server output ---\n{self.log_text()}"
        )

    def _wait_for_port_file(self) -> Dict[str, str]:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._port_file.exists():
                try:
                    data = json.loads(self._port_file.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    data = None
                if isinstance(data, dict) and "grpc" in data:
                    return {str(k): v for k, v in data.items() if isinstance(v, str)}
            if self._process.poll() is not None:
                raise self._died("exited before writing its port file")
            if time.monotonic() > deadline:
                raise self._died(f"did not write {self._port_file} within {self.startup_timeout:.0f} s")
            time.sleep(0.05)

    def _wait_until_ready(self) -> None:
        import grpc

        from ._generated import flowmesh_pb2 as pb
        from ._generated import flowmesh_pb2_grpc as pb_grpc

        deadline = time.monotonic() + self.startup_timeout
        last_error = ""
        with grpc.insecure_channel(self._addresses["grpc"]) as channel:
            stub = pb_grpc.HealthServiceStub(channel)
            while True:
                try:
                    if stub.ReadinessCheck(pb.ReadinessCheckRequest(), timeout=2.0).ready:
                        return
                    last_error = "not ready"
                except grpc.RpcError as e:
                    last_error = f"{e.code()}: {e.details()}"
                assert self._process is not None
                if self._process.poll() is not None:
                    raise self._died("exited while starting")
                if time.monotonic() > deadline:
                    raise self._died(f"was not ready within {self.startup_timeout:.0f} s ({last_error})")
                time.sleep(0.05)

    def _terminate(self, timeout: float) -> Optional[int]:
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._process = None
        self._addresses = {}
        return process.returncode
