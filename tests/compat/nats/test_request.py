"""AC-07 … AC-09: request/reply (new and old style), no responders, headers (compat/nats-fluxlib.md §5.3;
protocol §1.7, §1.10)."""

from __future__ import annotations

import re
import time

import nats.errors
import pytest

from nats_compat import STEP, Collector, Fence, raws, settle

INBOX_WILDCARD = re.compile(r"_INBOX\.[A-Za-z0-9]{22}\.\*")
OLD_STYLE_INBOX = re.compile(r"_INBOX\.[A-Za-z0-9]{22}")


# --------------------------------------------------------------------------
# AC-07 Request/reply, new and old style
# --------------------------------------------------------------------------


async def test_ac07_request_reply_new_and_old_style(server, clients):
    nc2 = await clients.nats(server.url)
    proxy = await clients.proxy(server)
    nc1 = await clients.nats(proxy.url)
    reply_subjects: list[str] = []

    async def responder(m):
        reply_subjects.append(m.reply)
        await m.respond(b"pong:" + m.data)

    await nc2.subscribe("svc.echo", cb=responder)
    await settle(nc2)

    for i in range(100):
        t0 = time.monotonic()
        r = await nc1.request("svc.echo", b"ping", timeout=1)
        took = time.monotonic() - t0
        assert r.data == b"pong:ping", (i, r.data)
        assert took < 0.5, f"request {i} took {took:.3f} s"
    assert len(reply_subjects) == 100
    assert all(s.startswith("_INBOX.") for s in reply_subjects), reply_subjects[:3]

    # Wire: nc1 subscribed exactly one wildcard inbox for all 100 requests.
    inbox_subs = [op for op in proxy.sessions[0].client_ops() if op.kind == "SUB" and op.args[0].startswith("_INBOX.")]
    assert len(inbox_subs) == 1, inbox_subs
    assert INBOX_WILDCARD.fullmatch(inbox_subs[0].args[0]), inbox_subs[0]

    r = await nc1.request("svc.echo", b"old", timeout=1, old_style=True)
    assert r.data == b"pong:old"
    old_inbox = reply_subjects[-1]
    assert OLD_STYLE_INBOX.fullmatch(old_inbox), old_inbox

    # A later publish to the old-style inbox is not delivered: the server removed the subscription after one
    # message (nats-py sent `UNSUB <sid> 1`). Checked on the wire, since nats-py drops unknown sids anyway.
    fence = await Fence.create(nc1)
    await settle(nc1)
    await nc2.publish(old_inbox, b"late")
    await fence.cross(nc2)
    c_ops = proxy.sessions[0].client_ops()
    old_sub = [op for op in c_ops if op.kind == "SUB" and op.args[0] == old_inbox]
    assert len(old_sub) == 1, old_sub
    sid = old_sub[0].args[-1]
    assert [op.args for op in c_ops if op.kind == "UNSUB" and op.args[0] == sid] == [[sid, "1"]]
    deliveries = [op for op in proxy.sessions[0].server_ops() if op.kind in ("MSG", "HMSG") and op.args[0] == old_inbox]
    assert [op.payload for op in deliveries] == [b"pong:old"], "only the reply; the late publish must not arrive"


# --------------------------------------------------------------------------
# AC-08 No responders
# --------------------------------------------------------------------------


async def test_ac08_no_responders_nats_py(server, clients):
    nc1 = await clients.nats(server.url)
    t0 = time.monotonic()
    with pytest.raises(nats.errors.NoRespondersError):
        await nc1.request("nobody.home", b"x", timeout=2)
    took = time.monotonic() - t0
    assert took < 0.2, f"NoRespondersError after {took:.3f} s (must be immediate, not the timeout)"
    assert nc1.is_connected


NO_RESPONDERS_29 = b"HMSG _INBOX.z.1 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"
NO_RESPONDERS_212 = b"HMSG _INBOX.z.1 1 35 35\r\nNATS/1.0 503\r\nNats-Subject: svc\r\n\r\n\r\n"


async def test_ac08_no_responders_raw(server, clients):
    raw = await clients.raw(server)
    await raw.send(b"SUB _INBOX.z.* 1\r\nPUB svc _INBOX.z.1 2\r\nhi\r\n")
    ops = await raw.ping_barrier()
    assert len(ops) == 1, ops
    assert ops[0].raw in (NO_RESPONDERS_29, NO_RESPONDERS_212), ops[0].raw
    assert ops[0].payload.startswith(b"NATS/1.0 503\r\n")


async def test_ac08_no_responders_not_negotiated(server, clients):
    raw = await clients.raw(
        server, {"verbose": False, "pedantic": False, "headers": False, "no_responders": False, "protocol": 1}
    )
    await raw.send(b"SUB _INBOX.z.* 1\r\nPUB svc _INBOX.z.1 2\r\nhi\r\n")
    assert await raw.ops_for(1.0) == [], "nothing may arrive without headers/no_responders"
    assert await raw.ping_barrier() == []


# --------------------------------------------------------------------------
# AC-09 Headers round trip
# --------------------------------------------------------------------------

HEADER_BLOCK = b"NATS/1.0\r\nX-Trace: 1\r\nContent-Type: application/json\r\n\r\n"


async def test_ac09_headers_round_trip(server, clients):
    nc1 = await clients.nats(server.url)
    nc2 = await clients.nats(server.url)
    got = Collector("h")
    await nc2.subscribe("h", cb=got.cb)
    await settle(nc2)
    raw_h = await clients.raw(server)  # headers: true
    raw_plain = await clients.raw(server, {"verbose": False, "protocol": 1, "headers": False})
    await raw_h.send(b"SUB h 7\r\n")
    await raw_plain.send(b"SUB h 9\r\n")
    assert await raw_h.ping_barrier() == []
    assert await raw_plain.ping_barrier() == []

    await nc1.publish("h", b"hi", headers={"X-Trace": "1", "Content-Type": "application/json"})
    (msg,) = await got.wait(1)
    assert msg.headers == {"X-Trace": "1", "Content-Type": "application/json"}
    assert msg.data == b"hi"

    op = await raw_h.next_op(STEP)
    assert op is not None and op.line == b"HMSG h 7 56 58", op
    assert op.raw == b"HMSG h 7 56 58\r\n" + HEADER_BLOCK + b"hi\r\n"
    op = await raw_plain.next_op(STEP)
    assert op is not None and op.raw == b"MSG h 9 2\r\nhi\r\n", "headers stripped for a subscriber without them"

    async def responder(m):
        await m.respond(b"re:" + m.data)

    await nc2.subscribe("svc.h", cb=responder)
    await settle(nc2)
    r = await nc1.request("svc.h", b"ping2", timeout=1, headers={"A": "b"})
    assert r.data == b"re:ping2"
    assert r.headers == {"A": "b"}, "nats-py copies the request's headers onto the reply"
    assert raws(await raw_h.ops_for(0.1)) == [] and raws(await raw_plain.ops_for(0.1)) == []
