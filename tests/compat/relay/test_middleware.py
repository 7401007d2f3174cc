"""§2.1 transport middleware (trusted host, CORS) and the router's generic answers (404, 405, trailing slash 307).
The body cap (item 15) is in test_publish.py."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from relay_compat import DEFAULT_ORIGIN, assert_detail, raw_http


def test_trusted_host_rejects(relay):
    for host in ("evil.example", "localhost.evil.example", "127.0.0.2"):
        r = relay.get("/health", headers={"Host": host})
        assert r.status_code == 400, (host, r.status_code)
        assert r.headers["content-type"].startswith("text/plain"), r.headers["content-type"]
        assert r.text == "Invalid host header"
    # Also before authentication on protected routes.
    r = relay.get("/auth/me", headers={"Host": "evil.example"})
    assert r.status_code == 400 and r.text == "Invalid host header"


def test_trusted_host_port_and_case_ignored(relay):
    for host in ("localhost", "LOCALHOST:1", "127.0.0.1:9", "LocalHost"):
        assert relay.get("/health", headers={"Host": host}).status_code == 200, host


def test_trusted_host_wildcards(make):
    relay = make(PULSAR_TRUSTED_HOSTS='["127.0.0.1","*.example.com"]')
    assert relay.get("/health", headers={"Host": "api.example.com"}).status_code == 200
    assert relay.get("/health", headers={"Host": "example.org"}).status_code == 400
    assert relay.get("/health", headers={"Host": "localhost"}).status_code == 400
    star = make(PULSAR_TRUSTED_HOSTS='["*"]')
    assert star.get("/health", headers={"Host": "anything.invalid"}).status_code == 200


@pytest.mark.herald_only(
    reason="§2.1/§3.1 say a trusted-host mismatch on /ws is HTTP 403; the reference (starlette 1.10, uvicorn 0.54) "
    "answers 400 text/plain 'Invalid host header' through the WebSocket denial-response extension"
)
def test_trusted_host_on_websocket_handshake(relay):
    req = (
        "GET /ws HTTP/1.1\r\nHost: evil.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Protocol: bearer, bearer.{relay.admin_token}\r\n\r\n"
    ).encode()
    status, _, _ = raw_http(relay.port, req)
    assert status == 403


def preflight(relay, origin=DEFAULT_ORIGIN, method="POST", headers="authorization,content-type", path="/api/v1/messages"):
    h = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        h["Access-Control-Request-Headers"] = headers
    return relay.request("OPTIONS", path, headers=h)


def test_cors_preflight_allowed(relay):
    r = preflight(relay)
    assert r.status_code == 200 and r.text == "OK"
    assert r.headers["content-type"].startswith("text/plain")
    assert r.headers["access-control-allow-origin"] == DEFAULT_ORIGIN
    methods = {m.strip() for m in r.headers["access-control-allow-methods"].split(",")}
    assert methods == {"GET", "POST", "PUT", "DELETE", "OPTIONS"}
    allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert "idempotency-key" not in allowed
    assert r.headers["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in r.headers
    assert "origin" in r.headers.get("vary", "").lower()
    # CORS-safelisted request headers are fine too.
    assert preflight(relay, headers="accept,accept-language,content-language,authorization").status_code == 200


@pytest.mark.parametrize(
    "kw,text",
    [
        ({"origin": "http://evil.example"}, "Disallowed CORS origin"),
        ({"method": "PATCH"}, "Disallowed CORS method"),
        ({"headers": "idempotency-key"}, "Disallowed CORS headers"),
    ],
)
def test_cors_preflight_disallowed(relay, kw, text):
    r = preflight(relay, **kw)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text == text


def test_cors_simple_requests(relay):
    ok = relay.get("/health", headers={"Origin": DEFAULT_ORIGIN})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == DEFAULT_ORIGIN
    assert "origin" in ok.headers.get("vary", "").lower()
    other = relay.get("/health", headers={"Origin": "http://evil.example"})
    assert other.status_code == 200 and "access-control-allow-origin" not in other.headers
    assert other.json()["status"] == "healthy"


def test_unknown_path_and_wrong_method(relay):
    assert_detail(relay.get("/nope"), 404, "Not Found")
    assert_detail(relay.get("/api/v1/nope", relay.admin_token), 404, "Not Found")
    assert_detail(relay.delete("/health"), 405, "Method Not Allowed")
    assert_detail(relay.get("/api/v1/messages", relay.admin_token), 405, "Method Not Allowed")


def test_trailing_slash_redirect(relay):
    r = relay.get("/api/v1/topics/", relay.admin_token, follow_redirects=False)
    assert r.status_code == 307
    assert urlsplit(r.headers["location"]).path == "/api/v1/topics"
    r = relay.get("/health/", follow_redirects=False)
    assert r.status_code == 307 and urlsplit(r.headers["location"]).path == "/health"
