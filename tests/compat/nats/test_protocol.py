"""AC-13 … AC-15: UNSUB with a maximum, verbose and pedantic modes, protocol errors (compat/nats-fluxlib.md
§5.3; protocol §1.5, §1.16)."""

from __future__ import annotations

import json

from nats_compat import Collector, Fence, raws, settle

# --------------------------------------------------------------------------
# AC-13 UNSUB with max
# --------------------------------------------------------------------------


async def test_ac13_unsubscribe_limit_nats_py(server, clients):
    proxy = await clients.proxy(server)
    nc1 = await clients.nats(proxy.url)
    nc2 = await clients.nats(server.url)
    got = Collector("lim")
    sub = await nc1.subscribe("lim", cb=got.cb)
    await sub.unsubscribe(limit=3)
    fence = await Fence.create(nc1)
    await settle(nc1)
    for i in range(10):
        await nc2.publish("lim", str(i).encode())
    await got.wait(3)
    await fence.cross(nc2)
    assert got.data == [b"0", b"1", b"2"]
    # The server enforced the limit itself (nats-py would also drop extra frames for an unknown sid).
    assert [op.args for op in proxy.sessions[0].client_ops() if op.kind == "UNSUB"] == [["1", "3"]]
    delivered = [op for op in proxy.sessions[0].server_ops() if op.kind == "MSG" and op.args[0] == "lim"]
    assert len(delivered) == 3, delivered


async def test_ac13_unsubscribe_limit_raw(server, clients):
    raw = await clients.raw(server)
    await raw.send(
        b"SUB u 1\r\nUNSUB 1 2\r\n" + b"PUB u 1\r\nx\r\n" * 4
        + b"SUB v 2\r\n" + b"PUB v 1\r\ny\r\n" * 2 + b"UNSUB 2 1\r\nPUB v 1\r\ny\r\n"
        + b"SUB w 3\r\nUNSUB 3 0\r\nPUB w 1\r\nz\r\n"
        + b"UNSUB 99\r\nPING\r\n"
    )
    ops = await raw.ops_until_pong()
    assert raws(ops) == [b"MSG u 1 1\r\nx\r\n"] * 2 + [b"MSG v 2 1\r\ny\r\n"] * 2


# --------------------------------------------------------------------------
# AC-14 Verbose and pedantic
# --------------------------------------------------------------------------


async def test_ac14_verbose(server, clients):
    raw = await clients.raw(server, handshake=False)
    connect = {"verbose": True, "pedantic": False, "headers": True, "no_responders": True, "protocol": 1}
    await raw.send(
        b"CONNECT " + json.dumps(connect).encode() + b"\r\n"
        b"SUB foo 1\r\nPUB foo 5\r\nhello\r\nUNSUB 1\r\nPING\r\n"
    )
    ops = await raw.ops_until_pong()
    assert raws(ops) == [
        b"+OK\r\n",  # CONNECT
        b"+OK\r\n",  # SUB
        b"+OK\r\n",  # PUB, before its own delivery
        b"MSG foo 1 5\r\nhello\r\n",
        b"+OK\r\n",  # UNSUB
    ]


async def test_ac14_pedantic(server, clients):
    raw = await clients.raw(
        server, {"verbose": False, "pedantic": True, "headers": True, "no_responders": True, "protocol": 1}
    )
    await raw.send(b"PUB foo.* 1\r\na\r\nPING\r\n")
    assert raws(await raw.ops_until_pong()) == [b"-ERR 'Invalid Publish Subject'\r\n"]
    assert await raw.ping_barrier() == [], "the connection stays open"


# --------------------------------------------------------------------------
# AC-15 Protocol errors
# --------------------------------------------------------------------------

CLOSE_WITHIN = 3.0


async def _after_handshake(server, clients, data: bytes) -> list[bytes]:
    raw = await clients.raw(server)
    await raw.send(data)
    return raws(await raw.until_closed(CLOSE_WITHIN))


async def _as_first_op(server, clients, data: bytes) -> list[bytes]:
    raw = await clients.raw(server, handshake=False)
    await raw.send(data)
    return raws(await raw.until_closed(CLOSE_WITHIN))


def _connect(**over) -> bytes:
    opts = {"verbose": False, "pedantic": False, "headers": True, "no_responders": True, "protocol": 1, **over}
    return b"CONNECT " + json.dumps(opts).encode() + b"\r\n"


async def test_ac15_unknown_operation(server, clients):
    assert await _after_handshake(server, clients, b"FOO\r\n") == [b"-ERR 'Unknown Protocol Operation'\r\n"]


async def test_ac15_control_line_too_long(server, clients):
    line = b"SUB " + b"a" * 4992 + b" 1\r\n"
    assert len(line) == 5000
    assert await _after_handshake(server, clients, line) == [b"-ERR 'maximum control line exceeded'\r\n"]


async def test_ac15_invalid_client_protocol(server, clients):
    assert await _as_first_op(server, clients, _connect(protocol=2) + b"PING\r\n") == [
        b"-ERR 'invalid client protocol'\r\n"
    ]


async def test_ac15_no_responders_requires_headers(server, clients):
    assert await _as_first_op(server, clients, _connect(headers=False, no_responders=True) + b"PING\r\n") == [
        b"-ERR 'no responders requires headers support'\r\n"
    ]


async def test_ac15_payload_not_followed_by_crlf(server, clients):
    assert await _after_handshake(server, clients, b"PUB foo 3\r\nabcdef\r\n") == [
        b"-ERR 'Unknown Protocol Operation'\r\n"
    ]


async def test_ac15_malformed_connect_closes_silently(server, clients):
    assert await _as_first_op(server, clients, b"CONNECT {bad\r\n") == []
