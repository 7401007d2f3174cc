"""AC-17, AC-18, AC-21: flush/drain/close, reconnect with subscription replay, lame-duck mode
(compat/nats-fluxlib.md §5.3; protocol §1.15, client behaviour §2.1)."""

from __future__ import annotations

import asyncio
import json
import time

import nats.errors
import pytest

from nats_compat import STEP, Collector, Fence, settle, wait_until

# --------------------------------------------------------------------------
# AC-17 flush, drain, close
# --------------------------------------------------------------------------


async def test_ac17_flush_drain_close(server, clients):
    nc1 = await clients.nats(server.url)
    nc2 = await clients.nats(server.url)
    a, b = Collector("d.a"), Collector("d.b")
    await nc1.subscribe("d.a", cb=a.cb)
    await nc1.subscribe("d.b", cb=b.cb)

    async def responder(m):
        await m.respond(b"d")

    await nc1.subscribe("svc.d", cb=responder)
    t0 = time.monotonic()
    await nc1.flush(timeout=1)
    assert time.monotonic() - t0 < 1.0
    await settle(nc1)
    assert (await nc2.request("svc.d", b"", timeout=1)).data == b"d"  # the responder is live before the drain

    await asyncio.wait_for(nc1.drain(), 5)
    assert nc1.is_closed
    with pytest.raises(nats.errors.NoRespondersError):
        await nc2.request("svc.d", b"", timeout=1)


# --------------------------------------------------------------------------
# AC-18 Reconnect and replay
# --------------------------------------------------------------------------


@pytest.mark.slow
async def test_ac18_reconnect_and_replay(make, clients):
    srv = make(private_=True)
    proxy = await clients.proxy(srv)  # stays up across the restart; records each connection separately
    events: list[str] = []

    async def disconnected():
        events.append("disconnected")

    async def reconnected():
        events.append("reconnected")

    nc1 = await clients.nats(
        proxy.url,
        reconnect_time_wait=0.5,
        max_reconnect_attempts=20,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
    )
    rx, ry = Collector("r.x"), Collector("r.y")
    await nc1.subscribe("r.x", cb=rx.cb)
    await nc1.subscribe("r.y", cb=ry.cb, max_msgs=5)
    await settle(nc1)
    nc0 = await clients.nats(srv.url, allow_reconnect=False)
    await nc0.publish("r.y", b"before")
    await ry.wait(1)
    await nc0.close()

    t0 = time.monotonic()
    await asyncio.to_thread(srv.restart)  # SIGTERM, then start on the same port
    assert time.monotonic() - t0 < 2.0 + 10.0, "restart took too long"
    await wait_until(lambda: "reconnected" in events, 15.0, lambda: f"reconnected_cb (events {events})")
    await settle(nc1)
    assert events == ["disconnected", "reconnected"]
    assert nc1.stats["reconnects"] == 1

    nc2 = await clients.nats(srv.url)
    await nc2.publish("r.x", b"after")
    for i in range(10):
        await nc2.publish("r.y", str(i).encode())
    await rx.wait(1)
    await ry.wait(5)
    fence = await Fence.create(nc1)
    await settle(nc1)
    await fence.cross(nc2)
    assert rx.data == [b"after"]
    assert ry.data == [b"before", b"0", b"1", b"2", b"3"], "exactly 4 more after the reconnect"

    # Wire: the replay on the new connection, and the server honouring `UNSUB <sid> 4` by itself.
    assert len(proxy.sessions) >= 2
    new = proxy.sessions[-1]
    c_ops = new.client_ops()
    subs = {op.args[0]: op.args[-1] for op in c_ops if op.kind == "SUB"}
    assert {"r.x", "r.y"} <= set(subs), c_ops
    assert [op.args for op in c_ops if op.kind == "UNSUB"] == [[subs["r.y"], "4"]]
    ry_frames = [op for op in new.server_ops() if op.kind == "MSG" and op.args[0] == "r.y"]
    assert [op.payload for op in ry_frames] == [b"0", b"1", b"2", b"3"]


# --------------------------------------------------------------------------
# AC-21 Lame duck
# --------------------------------------------------------------------------

GRACE = 0.5


@pytest.mark.slow
async def test_ac21_lame_duck(make, clients):
    # nats-server refuses lame_duck_duration below 30 s (its configuration gets 30 s); with two clients it closes
    # the first one right after the grace period and the next at most 1 s later, as Herald does with 2 s.
    srv = make(private_=True, lame_duck_duration="2s", lame_duck_grace_period=f"{int(GRACE * 1000)}ms")
    srv.expect_exit = True  # both servers exit once lame-duck mode has closed everybody
    raw = await clients.raw(srv)
    ldm_calls: list[float] = []
    events: list[str] = []

    async def lame_duck_cb():
        ldm_calls.append(time.monotonic())

    async def disconnected():
        events.append("disconnected")

    proxy = await clients.proxy(srv)  # to see the INFO lines nats-py itself receives
    nc = await clients.nats(
        proxy.url,
        lame_duck_mode_cb=lame_duck_cb,
        disconnected_cb=disconnected,
        reconnect_time_wait=0.2,
        max_reconnect_attempts=1,
    )
    await settle(nc)
    original = raw.info

    t0 = time.monotonic()
    srv.lame_duck()
    op = await raw.next_op(STEP)
    assert op is not None and op.kind == "INFO", op
    assert op.line.startswith(b"INFO {")
    ldm_info = json.loads(op.line[5:].decode())
    assert ldm_info == {**original, "ldm": True}, "the original INFO plus \"ldm\":true"

    await wait_until(lambda: len(ldm_calls) >= 1, STEP, "lame_duck_mode_cb")

    # New connections are refused meanwhile.
    with pytest.raises(OSError):
        r, w = await asyncio.wait_for(asyncio.open_connection(*srv.addr), STEP)
        try:
            line = await asyncio.wait_for(r.readline(), STEP)
        finally:
            w.close()
        if not line:
            raise ConnectionResetError("accepted, then closed without INFO")
        raise AssertionError(f"a new connection was served during lame-duck mode: {line!r}")

    rest = await raw.until_closed(GRACE + 5.0)
    closed_after = time.monotonic() - t0
    assert [o for o in rest if o.kind != "INFO"] == [], rest
    assert closed_after >= GRACE * 0.8, f"closed after {closed_after:.2f} s, before the grace period"
    await wait_until(lambda: "disconnected" in events, 5.0, "nats-py to be disconnected by the server")
    assert len(ldm_calls) == 1, "lame_duck_mode_cb is called once"
    infos = [op for op in proxy.sessions[0].server_ops() if op.kind == "INFO"]
    assert len(infos) == 2, infos
    first, second = (json.loads(op.line[5:].decode()) for op in infos)
    assert second == {**first, "ldm": True}
