"""AC-20: authentication (compat/nats-fluxlib.md §5.3; protocol §1.14)."""

from __future__ import annotations

import time

import nats.errors
import pytest

from nats_compat import STEP, ServerConfig, raws

USERS = ServerConfig(users=(("alice", "secret"),))
TOKEN = ServerConfig(token="s3cr3t-t0ken")
AUTH_TIMEOUT = 2.0  # the default of both servers (§1.14)


async def test_ac20_info_advertises_auth_required(make, clients):
    srv = make(USERS)
    raw = await clients.raw(srv, handshake=False)
    assert raw.info.get("auth_required") is True, raw.info
    assert raw.info["headers"] is True


async def test_ac20_user_password(make, clients):
    srv = make(USERS)
    nc = await clients.nats(srv.url_with("alice:secret"))
    assert nc.is_connected
    await nc.flush(timeout=STEP)

    with pytest.raises(nats.errors.Error) as err:
        await clients.nats(srv.url_with("alice:wrong"), allow_reconnect=False)
    assert str(err.value) == "nats: 'Authorization Violation'"


async def test_ac20_token(make, clients):
    """§1.14: a CONNECT whose auth_token matches is accepted (nats://TOKEN@host gives auth_token)."""
    srv = make(TOKEN)
    nc = await clients.nats(srv.url_with("s3cr3t-t0ken"))
    assert nc.is_connected
    with pytest.raises(nats.errors.Error) as err:
        await clients.nats(srv.url_with("not-the-token"), allow_reconnect=False)
    assert str(err.value) == "nats: 'Authorization Violation'"


@pytest.mark.slow
async def test_ac20_authentication_timeout(make, clients):
    srv = make(USERS)
    # Sends nothing at all, not even a PONG: before CONNECT that would be an operation other than CONNECT.
    raw = await clients.raw(srv, handshake=False, answer_pings=False)
    t0 = time.monotonic()
    ops = await raw.until_closed(AUTH_TIMEOUT + 2.0)
    took = time.monotonic() - t0
    assert [r for r in raws(ops) if r != b"PING\r\n"] == [b"-ERR 'Authentication Timeout'\r\n"]
    assert raws(ops)[-1] == b"-ERR 'Authentication Timeout'\r\n"
    assert AUTH_TIMEOUT - 0.5 <= took <= AUTH_TIMEOUT + 1.5, f"closed after {took:.2f} s"


async def test_ac20_operation_before_connect(make, clients):
    srv = make(USERS)
    raw = await clients.raw(srv, handshake=False, answer_pings=False)
    await raw.send(b"SUB foo 1\r\n")
    assert raws(await raw.until_closed(3.0)) == [b"-ERR 'Authorization Violation'\r\n"]
