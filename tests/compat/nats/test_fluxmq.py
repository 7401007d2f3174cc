"""AC-22: the fluxmq 0.15.0 NATS adapter used directly (compat/nats-fluxlib.md §3.1, §3.2, §5.3).

fluxmq 0.15.0's ``Nats.subscribe()`` sends the SUB and registers the callback, then raises AttributeError
('Subscription' object has no attribute 'sid'): a client-side defect, identical against any server (§3.1).
"""

from __future__ import annotations

import asyncio

import pytest
from fluxmq.adapter.nats import Nats

from nats_compat import STEP, settle, wait_until


async def test_ac22_fluxmq_015_adapter(server, clients):
    proxy = await clients.proxy(server)  # the wire check of the row
    t = Nats(servers=[proxy.url])
    await asyncio.wait_for(t.connect(), 10)
    clients.track(t.connection)
    got = []

    async def h(m):
        got.append(m)
        if m.reply:
            await t.respond(m, {"answer": m.get_data_as_string()}, headers={"X-Resp": "1"})

    with pytest.raises(AttributeError, match="'Subscription' object has no attribute 'sid'"):
        await t.subscribe("fx.req", h)
    await settle(t.connection)

    await t.publish("fx.req", {"a": 1}, headers={"X-H": "v"})
    await wait_until(lambda: len(got) >= 1, STEP, "the handler to receive the publish")
    first = got[0]
    assert first.payload == b'{"a": 1}'
    assert first.headers == {"X-H": "v"}
    assert first.reply == ""

    r = await asyncio.wait_for(t.request("fx.req", "hello"), STEP)
    assert len(got) == 2
    assert got[1].payload == b"hello"
    assert got[1].reply.startswith("_INBOX.")
    assert r.payload == b'{"answer": "hello"}'
    assert r.headers == {"X-Resp": "1"}

    lines = [op.line for op in proxy.sessions[0].client_ops()]
    assert b"HPUB fx.req  20 28" in lines, lines
    assert f"HPUB {got[1].reply}  23 42".encode() in lines, lines
    await t.close()
