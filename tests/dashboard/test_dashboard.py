"""Herald's dashboard (`/ui` on the admin listener) in a real browser.

Headless Chromium (Debian's `chromium`, installed by scripts/test.sh) loads the page from a Herald started on port 0;
the test drives and reads it through the Chrome DevTools Protocol (`--remote-debugging-port`, spoken with the
`websockets` package). It checks that the page loads, shows a stream the test wrote, updates it live through the
`/ws` feed when the test writes more, shows queue and KV state, and writes screenshots under
`target/test-output/dashboard/` (the test's output folder; CI keeps the workspace).

Environment: HERALD_BIN (default <repo>/target/debug/herald), CHROMIUM_BIN (default /usr/bin/chromium). Without
Chromium the test is skipped unless HERALD_REQUIRE_SERVER=1."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

ROOT = Path(__file__).resolve().parents[2]
HERALD_BIN = Path(os.environ.get("HERALD_BIN") or ROOT / "target" / "debug" / "herald")
OUTPUT = ROOT / "target" / "test-output" / "dashboard"


def chromium_bin() -> str | None:
    explicit = os.environ.get("CHROMIUM_BIN")
    if explicit:
        return explicit if os.path.isfile(explicit) else None
    for candidate in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or ""):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def _missing(what: str) -> None:
    if os.environ.get("HERALD_REQUIRE_SERVER") == "1":
        pytest.fail(f"{what} is required (HERALD_REQUIRE_SERVER=1)")
    pytest.skip(f"{what} not available")


@pytest.fixture()
def server():
    if not HERALD_BIN.is_file():
        _missing(f"herald binary {HERALD_BIN}")
    work = Path(tempfile.mkdtemp(prefix="herald-dashboard-"))
    resources = {
        f"t1/ns1/{kind}/{name}": {"tenant": "t1", "namespace": "ns1", "name": name, "type": kind, "partitions": 1, "retention": {}}
        for kind, name in (("stream", "orders"), ("queue", "jobs"), ("kv", "cache"))
    }
    (work / "resources.json").write_text(json.dumps(resources))
    port_file = work / "ports.json"
    log = open(work / "server.log", "wb")
    proc = subprocess.Popen(
        [str(HERALD_BIN), "serve", "--data-dir", str(work / "data"), "--grpc-addr", "127.0.0.1:0",
         "--admin-addr", "127.0.0.1:0", "--nats-addr", "127.0.0.1:0", "--relay-addr", "", "--no-auth",
         "--resources", str(work / "resources.json"), "--port-file", str(port_file), "--log", "warn"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "HERALD_METRICS_ADDR": ""},
    )
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"herald did not start: {(work / 'server.log').read_text()[-2000:]}")
            time.sleep(0.05)
        ports = json.loads(port_file.read_text())
        yield {"admin": "http://" + ports["admin"], "nats": ports["nats"]}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


class Page:
    """One headless Chromium tab, driven over the DevTools protocol."""

    def __init__(self, binary: str, url: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="herald-dashboard-chromium-")
        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
             "--remote-debugging-port=0", f"--user-data-dir={self.profile}", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        active = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (active.exists() and active.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(active.read_text().split()[0])
        targets: list[dict[str, Any]] = []
        while not any(t.get("type") == "page" for t in targets):
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list").json()
            if time.monotonic() > deadline:
                raise AssertionError(f"no page target: {targets}")
            time.sleep(0.1)
        page = next(t for t in targets if t.get("type") == "page")
        self.stack = contextlib.ExitStack()
        self.ws = self.stack.enter_context(ws_connect(page["webSocketDebuggerUrl"], max_size=None))
        self.ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv(timeout=30))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return reply["result"]

    def eval(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, want: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.eval(expression)
            if last == want:
                return
            time.sleep(0.1)
        raise AssertionError(f"{what}: wanted {want!r}, the page shows {last!r} after {timeout}s")

    def screenshot(self, name: str) -> Path:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        data = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        path = OUTPUT / name
        path.write_bytes(data)
        return path

    def close(self) -> None:
        try:
            self.stack.close()
        except Exception:
            pass  # the browser may already have dropped the DevTools socket
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        shutil.rmtree(self.profile, ignore_errors=True)


def write_events(base: str, count: int) -> list[int]:
    events = [{"payload": base64.b64encode(f"order {i}".encode()).decode()} for i in range(count)]
    r = httpx.post(f"{base}/api/v1/streams/t1/ns1/orders/events", json={"events": events})
    assert r.status_code == 200, r.text
    return r.json()["offsets"]


LATEST = "document.querySelector('tr[data-stream=\"t1/ns1/orders\"] .latest')?.textContent ?? null"
FEED_EVENTS = "Number(document.getElementById('live').dataset.events || 0)"


def test_dashboard_shows_resources_and_updates_live(server: dict[str, str]) -> None:
    herald, nats_addr = server["admin"], server["nats"]
    binary = chromium_bin()
    if binary is None:
        _missing("chromium")
    assert write_events(herald, 1) == [0]
    page = Page(binary, f"{herald}/ui/#/streams")
    try:
        page.wait_for("document.title", "Herald", 20, "the page title")
        page.wait_for(LATEST, "0", 20, "the stream the test wrote, at offset 0")
        page.wait_for("document.getElementById('live').classList.contains('ok')", True, 20, "the live-feed light")
        page.wait_for("document.getElementById('health').classList.contains('ok')", True, 20, "the health light")
        page.screenshot("streams-before.png")

        # Live: the write reaches the page through /ws well before the 5 s re-read, and the feed counter moves.
        before = page.eval(FEED_EVENTS)
        write_events(herald, 2)
        page.wait_for(LATEST, "2", 3, "the stream's latest offset after two more events (live)")
        assert page.eval(FEED_EVENTS) > before, "the update did not come through the feed"
        page.screenshot("streams.png")

        # Queues: an enqueued job shows up as pending.
        r = httpx.post(f"{herald}/api/v1/queues/t1/ns1/jobs/jobs", json={"payload": base64.b64encode(b"job").decode()})
        assert r.status_code == 200, r.text
        page.eval("location.hash = '#/queues'")
        pending = "document.querySelector('tr[data-queue=\"t1/ns1/jobs\"] td:nth-child(2)')?.textContent ?? null"
        page.wait_for(pending, "1", 10, "the queue's pending count")
        page.screenshot("queues.png")

        # KV: a key set over HTTP is listed for the store.
        r = httpx.put(f"{herald}/api/v1/kv/t1/ns1/cache/keys/greeting", json={"value": base64.b64encode(b"hi").decode()})
        assert r.status_code == 200, r.text
        page.eval("location.hash = '#/kv'")
        page.wait_for("document.querySelector('tr[data-key=\"greeting\"]') !== null", True, 10, "the KV key")
        page.screenshot("kv.png")

        # NATS: a connection the test opens (raw protocol) is listed with its name and subscription.
        host, port = nats_addr.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as nats:
            nats.recv(4096)  # INFO
            nats.sendall(b'CONNECT {"name":"dashboard-test","verbose":false}\r\nSUB orders.> 1\r\nPING\r\n')
            assert b"PONG" in nats.recv(4096)
            page.eval("location.hash = '#/nats'")
            listed = "Array.from(document.querySelectorAll('#o-body td')).some(td => td.textContent === 'dashboard-test')"
            page.wait_for(listed, True, 10, "the NATS connection in the NATS view")
            page.wait_for("document.querySelector('#o-subs td')?.textContent ?? null", "orders.>", 10, "its subscription")
            page.screenshot("nats.png")
    finally:
        page.close()
