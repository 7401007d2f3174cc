"""Checklist items 3–8 (§1.2 tokens, §2.1 authentication failures, §2.3 user routes, sessions and revocation), the
login and refresh rate limits, and the "not enabled" answers of OIDC and the device flow (§2.11, §2.12)."""

from __future__ import annotations

import re
import time
import uuid

import jwt
import pytest

from relay_compat import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    DEFAULT_CONFIG,
    JWT_SECRET,
    REFRESH_TOKEN,
    UUID4,
    Z_FORM,
    assert_detail,
    avoid_minute_boundary,
    find_error,
    json_body,
    uniq,
    validation_errors,
)

TOKEN_KEYS = ["access_token", "token_type", "expires_in", "refresh_token", "refresh_token_secondary"]
USER_KEYS = ["user_id", "username", "email", "is_active", "created_at", "permissions", "owned_topics"]


def mint(**claims):
    """An access token signed with the configured secret (§1.2: tokens minted elsewhere with the same secret work)."""
    now = int(time.time())
    body = {"exp": now + 600, "iat": now, "jti": uuid.uuid4().hex, "permissions": []}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, JWT_SECRET, algorithm="HS256")


def assert_unauthorized(resp, detail: str, www_authenticate: bool = True) -> None:
    assert_detail(resp, 401, detail)
    if www_authenticate:
        assert resp.headers.get("www-authenticate") == "Bearer", dict(resp.headers)
    else:
        assert "www-authenticate" not in resp.headers, dict(resp.headers)


# --------------------------------------------------------------------------
# Item 3: login
# --------------------------------------------------------------------------


def test_item03_login(relay):
    admin = relay.admin()
    body = json_body(relay.login(ADMIN_USER, ADMIN_PASSWORD), 200)
    assert list(body) == TOKEN_KEYS
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 600
    assert body["refresh_token_secondary"] is None
    assert REFRESH_TOKEN.match(body["refresh_token"]), body["refresh_token"]
    claims = jwt.decode(body["access_token"], JWT_SECRET, algorithms=["HS256"])
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"
    assert claims["sub"] == admin.user_id
    assert claims["username"] == ADMIN_USER
    assert sorted(claims["permissions"]) == ["admin", "read", "write"]
    assert isinstance(claims["exp"], int) and isinstance(claims["iat"], int)
    assert claims["exp"] - claims["iat"] == 600
    assert re.fullmatch(r"[0-9a-f]{32}", claims["jti"]), claims["jti"]
    assert "aud" not in claims and "iss" not in claims
    # Every token has its own jti.
    again = json_body(relay.login(ADMIN_USER, ADMIN_PASSWORD), 200)
    assert jwt.decode(again["access_token"], JWT_SECRET, algorithms=["HS256"])["jti"] != claims["jti"]
    assert again["refresh_token"] != body["refresh_token"]


def test_item03_login_form_variants(relay):
    user = relay.new_user(login=False)
    # grant_type=password (what the client sends), multipart form, and the ignored OAuth2 fields.
    ok = relay.login(user.username, user.password, grant_type="password", scope="x", client_id="c", client_secret="s")
    assert list(json_body(ok, 200)) == TOKEN_KEYS
    multipart = relay.post(
        "/auth/login", files={"username": (None, user.username), "password": (None, user.password)}
    )
    assert list(json_body(multipart, 200)) == TOKEN_KEYS
    bad = relay.login(user.username, user.password, grant_type="client_credentials")
    err = find_error(validation_errors(bad), ["body", "grant_type"])
    assert err["type"] == "string_pattern_mismatch"


# --------------------------------------------------------------------------
# Item 4: login errors and the login rate limit
# --------------------------------------------------------------------------


def test_item04_login_errors(relay):
    user = relay.new_user(login=False)
    assert_unauthorized(relay.login(user.username, "wrong-password"), "Incorrect username or password")
    assert_unauthorized(relay.login(uniq("nobody"), "whatever-pw"), "Incorrect username or password")
    errors = validation_errors(relay.post("/auth/login", json={"username": user.username, "password": user.password}))
    assert find_error(errors, ["body", "username"])["type"] == "missing"
    assert find_error(errors, ["body", "password"])["type"] == "missing"


def test_item04_login_inactive_user(relay):
    user = relay.new_user(login=False)
    json_body(relay.patch(f"/auth/users/{user.user_id}", relay.admin_token, json={"is_active": False}), 200)
    # Only after the password verified does the inactive state show.
    assert_detail(relay.login(user.username, user.password), 403, "User account is inactive")
    assert_unauthorized(relay.login(user.username, "wrong-password"), "Incorrect username or password")


def test_item04_login_rate_limit(make):
    relay = make(DEFAULT_CONFIG, private_=True)
    avoid_minute_boundary(6)
    # A failed login counts; a 422 does not (the limit applies once the body validated).
    assert relay.login(ADMIN_USER, "wrong-password").status_code == 401
    assert relay.post("/auth/login", json={"username": ADMIN_USER}).status_code == 422
    for i in range(4):
        assert relay.login(ADMIN_USER, ADMIN_PASSWORD).status_code == 200, f"login {i + 2} of 5"
    r = relay.login(ADMIN_USER, ADMIN_PASSWORD)
    assert json_body(r, 429) == {"error": "Rate limit exceeded: 5 per 1 minute"}
    for h in r.headers:
        assert h.lower() != "retry-after" and not h.lower().startswith("x-ratelimit"), dict(r.headers)
    # The limit is per route: other routes still answer.
    assert relay.get("/health").status_code == 200


def test_refresh_rate_limit(make):
    relay = make(DEFAULT_CONFIG, private_=True)
    avoid_minute_boundary(6)
    rt = json_body(relay.login(ADMIN_USER, ADMIN_PASSWORD), 200)["refresh_token"]
    for _ in range(10):
        body = json_body(relay.post("/auth/token/refresh", json={"refresh_token": rt}), 200)
        rt = body["refresh_token"]
    r = relay.post("/auth/token/refresh", json={"refresh_token": rt})
    assert json_body(r, 429) == {"error": "Rate limit exceeded: 10 per 1 minute"}


# --------------------------------------------------------------------------
# §2.1 authentication failures
# --------------------------------------------------------------------------


def test_auth_failures(relay):
    admin = relay.admin()
    assert_unauthorized(relay.get("/auth/me"), "Not authenticated")
    assert_unauthorized(relay.get("/auth/me", headers={"Authorization": "Basic YWRtaW46MTIzNDU2Nzg="}), "Not authenticated")
    assert_unauthorized(relay.get("/auth/me", "not-a-jwt"), "Invalid or expired token")
    assert_unauthorized(relay.get("/auth/me", mint(sub=admin.user_id, username=ADMIN_USER, exp=int(time.time()) - 30, iat=int(time.time()) - 630)), "Invalid or expired token")
    assert_unauthorized(relay.get("/auth/me", mint(sub=admin.user_id, username=None)), "Invalid or expired token")
    wrong_key = jwt.encode({"sub": admin.user_id, "username": ADMIN_USER, "exp": int(time.time()) + 600, "iat": int(time.time())}, "x" * 40, algorithm="HS256")
    assert_unauthorized(relay.get("/auth/me", wrong_key), "Invalid or expired token")
    assert_unauthorized(relay.get("/auth/me", mint(sub=str(uuid.uuid4()), username="ghost")), "User not found")
    # Scheme word is case-insensitive.
    assert json_body(relay.get("/auth/me", headers={"Authorization": f"bearer {relay.admin_token}"}), 200)["user_id"] == admin.user_id
    # 401 wins over 422: an unauthenticated publish with an invalid body.
    assert_unauthorized(relay.post("/api/v1/messages", json={"topic": "bad topic!"}), "Not authenticated")


def test_foreign_token_with_same_secret_is_accepted(relay):
    """§1.2: a token with sub, username, exp, iat (no jti, no permissions) signed with the secret is accepted; effective
    permissions come from the stored user, not from the claim."""
    user = relay.new_user(("read",), login=False)
    token = mint(sub=user.user_id, username=user.username, jti=None, permissions=["admin", "write"])
    me = json_body(relay.get("/auth/me", token), 200)
    assert me["user_id"] == user.user_id and me["permissions"] == ["read"]
    assert_detail(relay.get("/auth/users", token), 403, "Permission 'admin' required")
    # Logout of a token without jti is a no-op 204.
    r = relay.post("/auth/logout", token)
    assert r.status_code == 204 and r.content == b""
    assert relay.get("/auth/me", token).status_code == 200


# --------------------------------------------------------------------------
# Item 5: refresh rotation, sessions, revoke
# --------------------------------------------------------------------------


def test_item05_refresh_rotation_client(relay):
    from pulsar_relay_client import RefreshTokenRejectedError

    user = relay.new_user(login=False)
    rt0 = relay.login_ok(user.username, user.password)["refresh_token"]
    client = relay.client()
    body = client.exchange_refresh_token(rt0)
    assert list(body) == TOKEN_KEYS
    assert body["token_type"] == "bearer" and body["expires_in"] == 600 and body["refresh_token_secondary"] is None
    rt1 = body["refresh_token"]
    assert REFRESH_TOKEN.match(rt1) and rt1 != rt0
    assert json_body(relay.get("/auth/me", body["access_token"]), 200)["user_id"] == user.user_id
    with pytest.raises(RefreshTokenRejectedError):
        client.exchange_refresh_token(rt0)  # replay of a rotated token: theft, the chain is revoked
    with pytest.raises(RefreshTokenRejectedError):
        client.exchange_refresh_token(rt1)


def test_item05_refresh_errors_raw(relay):
    user = relay.new_user(login=False)
    rt = relay.login_ok(user.username, user.password)["refresh_token"]
    jti, _, secret = rt.partition(".")
    for bad in ("no-dot-here", f"{jti}.", f".{secret}", f"{uuid.uuid4()}.{secret}", f"{jti}.{'A' * 43}"):
        assert_unauthorized(relay.post("/auth/token/refresh", json={"refresh_token": bad}), "invalid refresh token")
    assert find_error(validation_errors(relay.post("/auth/token/refresh", json={})), ["body", "refresh_token"])["type"] == "missing"
    # A wrong secret does not burn the token.
    assert json_body(relay.post("/auth/token/refresh", json={"refresh_token": rt}), 200)["refresh_token"] != rt


def test_item05_replay_revokes_only_its_chain(relay):
    user = relay.new_user(login=False)
    a0 = relay.login_ok(user.username, user.password)["refresh_token"]
    b0 = relay.login_ok(user.username, user.password)["refresh_token"]
    a1 = json_body(relay.post("/auth/token/refresh", json={"refresh_token": a0}), 200)["refresh_token"]
    a2 = json_body(relay.post("/auth/token/refresh", json={"refresh_token": a1}), 200)["refresh_token"]
    assert_unauthorized(relay.post("/auth/token/refresh", json={"refresh_token": a0}), "invalid refresh token")
    assert_unauthorized(relay.post("/auth/token/refresh", json={"refresh_token": a2}), "invalid refresh token")
    json_body(relay.post("/auth/token/refresh", json={"refresh_token": b0}), 200)


def test_sessions(relay):
    user = relay.new_user(login=False)
    other = relay.new_user()
    login = relay.login_ok(user.username, user.password)
    token = login["access_token"]
    jti0 = login["refresh_token"].split(".")[0]
    sessions = json_body(relay.get("/auth/sessions", token), 200)
    assert [s["jti"] for s in sessions] == [jti0]
    s = sessions[0]
    assert list(s) == ["jti", "issued_at", "expires_at", "last_used_at", "client_hint"]
    assert UUID4.match(s["jti"]) and Z_FORM.match(s["issued_at"]) and Z_FORM.match(s["expires_at"])
    assert s["last_used_at"] is None and s["client_hint"] == "password-login"
    # Rotation: the old one is revoked (gone from the list), the new one inherits the client hint.
    rotated = json_body(relay.post("/auth/token/refresh", json={"refresh_token": login["refresh_token"]}), 200)
    jti1 = rotated["refresh_token"].split(".")[0]
    sessions = json_body(relay.get("/auth/sessions", token), 200)
    assert [x["jti"] for x in sessions] == [jti1] and sessions[0]["client_hint"] == "password-login"
    # Another user's session is "not found" to this user.
    other_jti = relay.login_ok(other.username, other.password)["refresh_token"].split(".")[0]
    assert_detail(relay.delete(f"/auth/sessions/{other_jti}", token), 404, "session not found")
    r = relay.delete(f"/auth/sessions/{jti1}", token)
    assert r.status_code == 204 and r.content == b""
    assert json_body(relay.get("/auth/sessions", token), 200) == []
    assert_unauthorized(relay.post("/auth/token/refresh", json={"refresh_token": rotated["refresh_token"]}), "invalid refresh token")
    # Deleting a known, already revoked session of one's own is still 204; an unknown jti is 404.
    assert relay.delete(f"/auth/sessions/{jti1}", token).status_code == 204
    assert_detail(relay.delete(f"/auth/sessions/{uuid.uuid4()}", token), 404, "session not found")


def test_revoke(relay):
    user = relay.new_user(login=False)
    for bad in ("no-dot", "abc.", ".abc"):
        assert_detail(relay.post("/auth/token/revoke", json={"refresh_token": bad}), 400, "malformed refresh token")
    rt = relay.login_ok(user.username, user.password)["refresh_token"]
    jti, _, secret = rt.partition(".")
    # Unknown jti and wrong secret: 204 and nothing happens.
    for probe in (f"{uuid.uuid4()}.{secret}", f"{jti}.{'B' * 43}"):
        r = relay.post("/auth/token/revoke", json={"refresh_token": probe})
        assert r.status_code == 204 and r.content == b""
    r = relay.post("/auth/token/revoke", json={"refresh_token": rt})
    assert r.status_code == 204
    assert_unauthorized(relay.post("/auth/token/refresh", json={"refresh_token": rt}), "invalid refresh token")


def test_revoke_chain(relay):
    user = relay.new_user(login=False)
    r0 = relay.login_ok(user.username, user.password)["refresh_token"]
    r1 = json_body(relay.post("/auth/token/refresh", json={"refresh_token": r0}), 200)["refresh_token"]
    unrelated = relay.login_ok(user.username, user.password)["refresh_token"]
    assert relay.post("/auth/token/revoke", json={"refresh_token": r1, "revoke_chain": True}).status_code == 204
    assert_unauthorized(relay.post("/auth/token/refresh", json={"refresh_token": r1}), "invalid refresh token")
    json_body(relay.post("/auth/token/refresh", json={"refresh_token": unrelated}), 200)


# --------------------------------------------------------------------------
# Item 6: logout and the deny-list
# --------------------------------------------------------------------------


def test_item06_logout(relay):
    user = relay.new_user()
    token = relay.login_ok(user.username, user.password)["access_token"]
    other = json_body(relay.login(user.username, user.password), 200)["access_token"]
    r = relay.post("/auth/logout", token)
    assert r.status_code == 204 and r.content == b""
    assert_unauthorized(relay.get("/auth/me", token), "Token has been revoked")
    assert_unauthorized(relay.post("/auth/logout", token), "Token has been revoked")
    assert json_body(relay.get("/auth/me", other), 200)["user_id"] == user.user_id
    relay.server.tokens.pop(user.username, None)


# --------------------------------------------------------------------------
# Item 7: user administration
# --------------------------------------------------------------------------


def test_item07_register_and_duplicates(relay):
    name = uniq("u7")
    r = relay.register(name, "password-7", ["read", "write"], email="u7@example.org")
    body = json_body(r, 201)
    assert list(body) == USER_KEYS
    assert UUID4.match(body["user_id"]) and Z_FORM.match(body["created_at"])
    assert body["username"] == name and body["email"] == "u7@example.org" and body["is_active"] is True
    assert body["permissions"] == ["read", "write"] and body["owned_topics"] == []
    assert_detail(relay.register(name, "password-7", ["read"]), 400, f"Username '{name}' already exists")
    # email defaults to null, permissions to []
    plain = json_body(relay.post("/auth/register", relay.admin_token, json={"username": uniq("p"), "password": "password-8"}), 201)
    assert plain["email"] is None and plain["permissions"] == []


def test_item07_register_validation(relay):
    cases = [
        ({"username": "ab", "password": "password-1"}, ["body", "username"], "string_too_short"),
        ({"username": "x" * 51, "password": "password-1"}, ["body", "username"], "string_too_long"),
        ({"username": uniq("v"), "password": "short"}, ["body", "password"], "string_too_short"),
        ({"username": uniq("v"), "password": "password-1", "permissions": ["superuser"]}, ["body", "permissions", 0], "literal_error"),
    ]
    for body, loc, typ in cases:
        err = find_error(validation_errors(relay.post("/auth/register", relay.admin_token, json=body)), loc)
        assert err["type"] == typ, (body, err)


def test_item07_admin_routes(relay):
    user = relay.new_user()
    me = json_body(relay.get("/auth/me", user.token), 200)
    assert list(me) == USER_KEYS and me["user_id"] == user.user_id
    for method, path in (("GET", "/auth/users"), ("GET", "/auth/users/stats"), ("PATCH", f"/auth/users/{user.user_id}"), ("DELETE", f"/auth/users/{user.user_id}")):
        kw = {"json": {}} if method == "PATCH" else {}
        assert_detail(relay.request(method, path, user.token, **kw), 403, "Permission 'admin' required")
    register = relay.post("/auth/register", user.token, json={"username": uniq("x"), "password": "password-1"})
    assert_detail(register, 403, "Permission 'admin' required")
    users = json_body(relay.get("/auth/users", relay.admin_token), 200)
    assert any(u["user_id"] == user.user_id for u in users) and all(list(u) == USER_KEYS for u in users)
    stats = json_body(relay.get("/auth/users/stats", relay.admin_token), 200)
    assert set(stats) == {"total_users", "active_users"} and stats["total_users"] >= stats["active_users"] >= 2


def test_item07_deactivate_takes_effect_immediately(relay):
    user = relay.new_user()
    token = user.token
    patched = json_body(relay.patch(f"/auth/users/{user.user_id}", relay.admin_token, json={"is_active": False}), 200)
    assert list(patched) == USER_KEYS and patched["is_active"] is False
    assert_detail(relay.get("/auth/me", token), 403, "User is inactive")
    assert_detail(relay.post("/api/v1/messages", token, json={"topic": "t", "payload": {}}), 403, "User is inactive")
    json_body(relay.patch(f"/auth/users/{user.user_id}", relay.admin_token, json={"is_active": True}), 200)
    assert json_body(relay.get("/auth/me", token), 200)["is_active"] is True


def test_item07_patch_fields(relay):
    user = relay.new_user()
    token = user.token
    body = json_body(relay.patch(f"/auth/users/{user.user_id}", relay.admin_token, json={"permissions": ["read"], "email": "new@example.org"}), 200)
    assert body["permissions"] == ["read"] and body["email"] == "new@example.org"
    assert_detail(relay.post("/api/v1/messages", token, json={"topic": "t", "payload": {}}), 403, "Permission 'write' required")
    body = json_body(relay.patch(f"/auth/users/{user.user_id}", relay.admin_token, json={"password": "another-password"}), 200)
    assert body["permissions"] == ["read"] and body["email"] == "new@example.org"  # keys absent are unchanged
    assert relay.login(user.username, user.password).status_code == 401
    json_body(relay.login(user.username, "another-password"), 200)
    missing = str(uuid.uuid4())
    assert_detail(relay.patch(f"/auth/users/{missing}", relay.admin_token, json={"email": None}), 404, f"User with ID '{missing}' not found")


def test_item07_delete_user(relay):
    admin = relay.admin()
    user = relay.new_user(login=False)
    login = relay.login_ok(user.username, user.password)
    assert_detail(relay.delete(f"/auth/users/{admin.user_id}", relay.admin_token), 400, "Cannot delete your own user account")
    r = relay.delete(f"/auth/users/{user.user_id}", relay.admin_token)
    assert r.status_code == 204 and r.content == b""
    assert_unauthorized(relay.get("/auth/me", login["access_token"]), "User not found")
    assert_unauthorized(relay.post("/auth/token/refresh", json={"refresh_token": login["refresh_token"]}), "user not found", www_authenticate=False)
    assert_detail(relay.delete(f"/auth/users/{user.user_id}", relay.admin_token), 404, f"User with ID '{user.user_id}' not found")
    relay.server.tokens.pop(user.username, None)


def test_refresh_of_inactive_user(relay):
    user = relay.new_user(login=False)
    rt = relay.login_ok(user.username, user.password)["refresh_token"]
    json_body(relay.patch(f"/auth/users/{user.user_id}", relay.admin_token, json={"is_active": False}), 200)
    assert_unauthorized(relay.post("/auth/token/refresh", json={"refresh_token": rt}), "user not found", www_authenticate=False)
    json_body(relay.patch(f"/auth/users/{user.user_id}", relay.admin_token, json={"is_active": True}), 200)
    # The presented token was revoked.
    assert_unauthorized(relay.post("/auth/token/refresh", json={"refresh_token": rt}), "invalid refresh token")


# --------------------------------------------------------------------------
# Item 8: permission split (the WebSocket part is in test_websocket.py)
# --------------------------------------------------------------------------


def test_item08_permission_split(relay):
    reader = relay.new_user(("read",), prefix="r")
    writer = relay.new_user(("write",), prefix="w")
    nobody = relay.new_user((), prefix="n")
    assert_detail(relay.publish_raw(reader, "t", {"a": 1}), 403, "Permission 'write' required")
    assert_detail(relay.post("/api/v1/messages/bulk", reader.token, json={"messages": [{"topic": "t", "payload": {}}]}), 403, "Permission 'write' required")
    assert_detail(relay.post("/api/v1/topics", reader.token, json={"topic_name": "t"}), 403, "Permission 'write' required")
    assert_detail(relay.poll(writer, ["t"], timeout=1), 403, "Permission 'read' required")
    # 403 wins over 422.
    assert_detail(relay.post("/messages/poll", writer.token, json={"topics": []}), 403, "Permission 'read' required")
    assert_detail(relay.get("/api/v1/topics/stats", writer.token), 403, "Permission 'admin' required")
    # No permission needed: /auth/me, own topic list, history, poll stats, sessions.
    for path in ("/auth/me", "/api/v1/topics", "/messages/poll/stats", "/auth/sessions"):
        assert nobody.relay.get(path, nobody.token).status_code == 200, path


# --------------------------------------------------------------------------
# §2.11 / §2.12 with OIDC disabled
# --------------------------------------------------------------------------


def test_oidc_disabled(relay):
    assert json_body(relay.get("/auth/oidc/providers"), 200) == []
    assert_detail(relay.get("/auth/oidc/keycloak/login", follow_redirects=False), 404, "OIDC disabled")
    assert_detail(relay.get("/auth/oidc/keycloak/callback"), 400, "Missing code or state")
    assert_detail(
        relay.get("/auth/oidc/keycloak/callback", params={"error": "access_denied", "error_description": "nope"}),
        400,
        "OIDC error: access_denied: nope",
    )
    assert_detail(relay.get("/auth/oidc/keycloak/callback", params={"code": "c", "state": "s"}), 400, "Invalid or expired state")
    assert_detail(relay.get("/auth/oidc/keycloak/swagger-token"), 404, "Not Found")


def test_device_flow_disabled(relay, tmp_path):
    r = relay.post("/auth/device/code", data={"client_hint": "compat"})
    assert json_body(r, 400) == {
        "error": "device_authorization_unavailable",
        "error_description": "No OIDC providers configured; device flow requires at least one.",
    }
    r = relay.post("/auth/device/token", data={"grant_type": "password", "device_code": "x"})
    assert json_body(r, 400) == {"error": "unsupported_grant_type", "error_description": "Use device_code grant."}
    r = relay.post("/auth/device/token", data={"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": "x" * 43})
    assert json_body(r, 400) == {"error": "expired_token", "error_description": "Unknown device_code"}
    errors = validation_errors(relay.post("/auth/device/token", data={}))
    assert find_error(errors, ["body", "grant_type"])["type"] == "missing"
    assert find_error(errors, ["body", "device_code"])["type"] == "missing"
    for path in ("/auth/device", "/auth/device/"):
        page = relay.get(path, params={"user_code": "BCDF-GHJK"})
        assert page.status_code == 503 and page.headers["content-type"].startswith("text/html"), (path, page.status_code)
        assert "<h1>OIDC is not configured on this relay.</h1>" in page.text
    assert_detail(relay.post("/auth/device/deny", data={"user_code": "BCDF-GHJK"}), 404, "Unknown user_code")

    from pulsar_relay_client import CredentialsFile, DeviceFlowError, RelayDeviceFlowAuthenticator

    tmp_path.chmod(0o700)
    flow = RelayDeviceFlowAuthenticator(relay.base_url, CredentialsFile(str(tmp_path / "creds.json")), on_user_code=lambda *a: None)
    with pytest.raises(DeviceFlowError):
        flow.run()
