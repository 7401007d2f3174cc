"""A real browser on /ws (§3.1): headless Chromium loads a page from a local HTTP server whose origin the relay allows,
opens ``/ws`` with the subprotocols ``['bearer', 'bearer.' + jwt]``, subscribes, and writes each received payload
into the DOM. The page reports every step back to the test's HTTP server (same origin, so no CORS is involved); the
test publishes over HTTP once the page says it subscribed. A second page, served from an origin the relay does not
allow, must fail to open the socket (the browser sends its own Origin header, which scripts cannot forge).

Needs the Debian package ``chromium`` (/usr/bin/chromium, or set CHROMIUM_BIN). Without it the test is skipped,
unless HERALD_REQUIRE_SERVER=1."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

import pytest

from relay_compat import NO_LIMITS, uniq

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>relay browser check</title></head>
<body>
<div id="status">loading</div>
<ul id="out"></ul>
<script>
const q = new URLSearchParams(location.search);
// Reports are chained so that they reach the test in the order the page made them.
let chain = Promise.resolve();
function report(ev) {
  const body = JSON.stringify(ev);
  chain = chain.then(() => fetch('/report', {method: 'POST', headers: {'Content-Type': 'text/plain'}, body: body})).catch(() => {});
  return chain;
}
let ws;
try {
  ws = new WebSocket(q.get('ws'), ['bearer', 'bearer.' + q.get('jwt')]);
} catch (e) {
  report({event: 'exception', text: String(e)});
}
ws.onopen = () => {
  report({event: 'open', protocol: ws.protocol});
  ws.send(JSON.stringify({type: 'subscribe', topics: [q.get('topic')], client_id: 'browser'}));
};
ws.onmessage = (e) => {
  const frame = JSON.parse(e.data);
  if (frame.type === 'subscribed') {
    document.getElementById('status').textContent = 'subscribed';
    report({event: 'subscribed', frame: frame});
  } else if (frame.type === 'message') {
    const li = document.createElement('li');
    li.textContent = JSON.stringify(frame.payload);
    document.getElementById('out').appendChild(li);
    report({event: 'message', frame: frame, dom: Array.from(document.querySelectorAll('#out li')).map(li => li.textContent)});
  } else {
    report({event: 'frame', frame: frame});
  }
};
ws.onerror = () => report({event: 'error'});
ws.onclose = (e) => report({event: 'close', code: e.code});
</script>
</body></html>
"""


def chromium_bin() -> str | None:
    explicit = os.environ.get("CHROMIUM_BIN")
    if explicit:
        return explicit if os.path.isfile(explicit) else None
    for candidate in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or ""):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


class PageServer:
    """Serves PAGE at /page.html and collects the page's reports from POST /report."""

    def __init__(self) -> None:
        self.reports: "queue.Queue[dict[str, Any]]" = queue.Queue()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if not self.path.startswith("/page.html"):
                    self.send_error(404)
                    return
                data = PAGE.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                try:
                    server.reports.put(json.loads(body))
                except json.JSONDecodeError:
                    server.reports.put({"event": "garbled", "body": body.decode("utf-8", "replace")})
                self.send_response(204)
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="page-server", daemon=True)
        self.thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def url(self, **query: str) -> str:
        return f"{self.origin}/page.html?{urlencode(query)}"

    def next(self, timeout: float, what: str) -> dict[str, Any]:
        try:
            return self.reports.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the page did not report {what} within {timeout}s") from None

    def wait_for(self, event: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the page did not report {event!r}; reports so far: {seen}")
            try:
                ev = self.reports.get(timeout=left)
            except queue.Empty:
                continue
            seen.append(ev)
            if ev.get("event") == event:
                return ev
            if ev.get("event") in ("error", "close", "exception") and event not in ("error", "close"):
                raise AssertionError(f"the page failed before {event!r}: {seen}")

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class Browser:
    """One headless Chromium process on one URL; stopped by its own process id."""

    def __init__(self, binary: str, url: str) -> None:
        self.profile = tempfile.mkdtemp(prefix="relay-compat-chromium-")
        self.log = open(os.path.join(self.profile, "chromium.log"), "wb")
        self.proc = subprocess.Popen(
            [
                binary,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={self.profile}",
                url,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def output(self) -> str:
        try:
            with open(os.path.join(self.profile, "chromium.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-3000:]
        except OSError:
            return ""

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # the group this Popen started (start_new_session)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def chromium() -> str:
    binary = chromium_bin()
    if binary is None:
        msg = "headless Chromium not installed (apt-get install chromium, or set CHROMIUM_BIN)"
        if os.environ.get("HERALD_REQUIRE_SERVER") == "1":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return binary


def test_browser_websocket(make, chromium):
    allowed, foreign = PageServer(), PageServer()
    browsers: list[Browser] = []
    try:
        relay = make(NO_LIMITS.with_env(PULSAR_ALLOWED_ORIGINS=json.dumps(["http://localhost:8080", allowed.origin])), private_=True)
        user = relay.new_user()
        topic = uniq("browser")

        page = Browser(chromium, allowed.url(ws=relay.ws_url, jwt=user.token, topic=topic))
        browsers.append(page)
        try:
            opened = allowed.wait_for("open", 30)
            assert opened["protocol"] == "bearer"
            sub = allowed.wait_for("subscribed", 10)
            assert sub["frame"]["topics"] == [topic]
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- chromium ---\n{page.output()}") from None
        payloads = [{"hello": "browser ✓", "n": 1}, {"hello": "again", "n": 2}]
        published = [relay.publish(user, topic, p) for p in payloads]
        got = [allowed.wait_for("message", 10) for _ in payloads]
        assert [g["frame"]["message_id"] for g in got] == [p["message_id"] for p in published]
        assert got[-1]["dom"] == [json.dumps(p, separators=(",", ":"), ensure_ascii=False) for p in payloads]

        # The same page from an origin the relay does not allow: the handshake is refused.
        other = Browser(chromium, foreign.url(ws=relay.ws_url, jwt=user.token, topic=topic))
        browsers.append(other)
        first = foreign.wait_for("error", 30)
        assert first["event"] == "error"
        closed = foreign.wait_for("close", 10)
        assert closed["code"] == 1006
    finally:
        for b in browsers:
            b.close()
        allowed.close()
        foreign.close()
