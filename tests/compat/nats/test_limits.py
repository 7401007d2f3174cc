"""AC-10 … AC-12, AC-16, AC-19: payload limits, many subscriptions, keepalive, slow consumers
(compat/nats-fluxlib.md §5.3; protocol §1.12, §1.13)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import nats.errors
import pytest

from nats_compat import STEP, Collector, Fence, parse_stream, raws, settle, wait_until

HERE = Path(__file__).resolve().parent

# --------------------------------------------------------------------------
# AC-10 Payload at and above max_payload (client side)
# --------------------------------------------------------------------------


async def test_ac10_payload_at_limit_and_local_max_payload_error(server, clients):
    proxy = await clients.proxy(server)
    nc1 = await clients.nats(proxy.url)
    nc2 = await clients.nats(server.url)
    got = Collector("big")
    sub = await nc2.subscribe("big", cb=got.cb)
    fence = await Fence.create(nc2)
    await settle(nc2)
    payloads = [os.urandom(1048576), os.urandom(1048575), b""]
    for p in payloads:
        await nc1.publish("big", p)
    await got.wait(3, timeout=10)
    assert [hashlib.sha256(m.data).hexdigest() for m in got.msgs] == [hashlib.sha256(p).hexdigest() for p in payloads]
    assert got.msgs[2].data == b""

    with pytest.raises(nats.errors.MaxPayloadError):
        await nc1.publish("big", b"a" * 1048577)
    await settle(nc1)  # a following flush succeeds; nc1 stays connected
    assert nc1.is_connected
    await fence.cross(nc1, sub)
    assert len(got.msgs) == 3
    sizes = [op.args[-1] for op in proxy.sessions[0].client_ops() if op.kind == "PUB" and op.args[0] == "big"]
    assert sizes == ["1048576", "1048575", "0"], "the oversized publish must not reach the wire"


# --------------------------------------------------------------------------
# AC-11 Server-side max payload violation
# --------------------------------------------------------------------------


async def test_ac11_max_payload_violation_nats_py(make, clients):
    srv = make(max_payload=1024)
    nc = await clients.nats(srv.url)
    nc2 = await clients.nats(srv.url)
    assert nc.max_payload == 1024
    got = Collector("big")
    await nc2.subscribe("big", cb=got.cb)
    await settle(nc2)
    await nc.publish("big", b"a" * 1024)
    (msg,) = await got.wait(1)
    assert msg.data == b"a" * 1024

    # nats-py does not count headers against max_payload; the server does (HPUB total 17 + 1024 > 1024).
    await nc.publish("big", b"a" * 1024, headers={"X": "1"})
    await wait_until(lambda: nc.is_closed, 5.0, "nats-py to end CLOSED after -ERR 'Maximum Payload Violation'")
    assert str(nc.last_error) == "nats: maximum payload violation"
    assert nc.stats["reconnects"] == 0


async def test_ac11_max_payload_violation_raw(make, clients):
    srv = make(max_payload=1024)
    raw = await clients.raw(srv)
    assert raw.info["max_payload"] == 1024
    await raw.send(b"PUB foo 1025\r\n")
    assert raws(await raw.until_closed(3.0)) == [b"-ERR 'Maximum Payload Violation'\r\n"]


# --------------------------------------------------------------------------
# AC-12 Many subscriptions
# --------------------------------------------------------------------------


async def test_ac12_many_subscriptions(server, clients):
    proxy = await clients.proxy(server)
    nc1 = await clients.nats(proxy.url, pending_size=64 * 1024 * 1024)
    nc2 = await clients.nats(server.url)
    counts: dict[str, int] = {}

    async def on_many(msg):
        counts[msg.subject] = counts.get(msg.subject, 0) + 1

    t0 = time.monotonic()
    subs = [await nc1.subscribe(f"many.{i}", cb=on_many) for i in range(10_000)]
    fence = await Fence.create(nc1)
    await settle(nc1, timeout=10)
    setup = time.monotonic() - t0
    assert setup < 5.0, f"10 000 subscriptions took {setup:.2f} s"

    for i in range(10_000):
        await nc2.publish(f"many.{i}", b"m")
    await wait_until(lambda: len(counts) == 10_000, 15.0, lambda: f"10 000 subjects (have {len(counts)})")
    await fence.cross(nc2, *subs, timeout=10)
    assert len(counts) == 10_000 and set(counts.values()) == {1}, "each many.<i> callback fires exactly once"

    fan = {"n": 0}

    async def on_fan(msg):
        fan["n"] += 1

    fan_subs = [await nc1.subscribe("fan", cb=on_fan) for _ in range(2_000)]
    await settle(nc1, timeout=10)
    await nc2.publish("fan", b"f")
    await wait_until(lambda: fan["n"] >= 2_000, 10.0, lambda: f"2000 fan callbacks (have {fan['n']})")
    await fence.cross(nc2, *fan_subs, timeout=10)
    assert fan["n"] == 2_000

    for sub in subs:
        await sub.unsubscribe()
    await settle(nc1, timeout=10)
    for i in range(0, 10_000, 100):
        await nc2.publish(f"many.{i}", b"late")
    await fence.cross(nc2, timeout=10)
    assert sum(counts.values()) == 10_000
    # On the wire: the server delivered nothing for the removed subscriptions (nats-py would drop it silently).
    many = [op for op in proxy.sessions[0].server_ops() if op.kind == "MSG" and op.args[0].startswith("many.")]
    assert len(many) == 10_000 and not any(op.payload == b"late" for op in many)


# --------------------------------------------------------------------------
# AC-16 Keepalive and stale detection
# --------------------------------------------------------------------------


@pytest.mark.slow
async def test_ac16_stale_connection_and_idle_client(make, clients):
    srv = make(ping_interval="1s", ping_max=2)

    async def silent_raw():
        raw = await clients.raw(srv, answer_pings=False)
        t0 = time.monotonic()
        ops = await raw.until_closed(8.0)
        return raws(ops), time.monotonic() - t0

    async def idle_nats_py():
        events = []

        async def disconnected():
            events.append("disconnected")

        nc = await clients.nats(srv.url, ping_interval=1, disconnected_cb=disconnected)
        await asyncio.sleep(10)
        connected = nc.is_connected
        await nc.flush(timeout=STEP)
        return events, connected

    (ops, took), (events, connected) = await asyncio.gather(silent_raw(), idle_nats_py())
    assert ops == [b"PING\r\n", b"PING\r\n", b"-ERR 'Stale Connection'\r\n"]
    assert 1.5 <= took <= 6.0, f"stale close after {took:.2f} s (expected about 3-5 s)"
    assert events == [] and connected, "nats-py answering PINGs stays connected for 10 s"


# --------------------------------------------------------------------------
# AC-19 Slow consumer
# --------------------------------------------------------------------------

READER = HERE / "slow_consumer_reader.py"


def _raw_slow_subscriber(addr) -> socket.socket:
    """A blocking socket with a 4 KiB receive buffer that subscribes ``big`` and is then never read."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(STEP)
    s.connect(addr)
    buf = b""
    while b"\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, "closed before INFO"
        buf += chunk
    assert buf.startswith(b"INFO ")
    s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"protocol":1}\r\nSUB big 1\r\nPING\r\n')
    buf = buf[buf.index(b"\r\n") + 2 :]
    while b"PONG\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, "closed before PONG"
        buf += chunk
    return s


def _drain_until_closed(s: socket.socket, limit: float) -> tuple[bytes, str]:
    s.settimeout(0.5)
    data = bytearray()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(1 << 20)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return bytes(data), "reset"
        if not chunk:
            return bytes(data), "eof"
        data += chunk
    return bytes(data), "open"


@pytest.mark.slow
@pytest.mark.herald_only(
    reason="nats-server 2.9.x throttles the publisher 0.1-1 s per message while the slow subscriber is above 75 % "
    "of max_pending, so this run takes minutes there (§5.3 AC-19 reference caveat)"
)
async def test_ac19_slow_consumer(make, clients):
    srv = make(max_pending=65536, max_payload=16384)
    reader = subprocess.Popen(
        [sys.executable, str(READER), srv.url, "big", "5000", "1000", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = await asyncio.wait_for(asyncio.to_thread(reader.stdout.readline), 15)
        assert ready.strip() == "ready", f"reader did not start: {ready!r} {reader.stderr.read() if reader.poll() is not None else ''}"
        slow = await asyncio.to_thread(_raw_slow_subscriber, srv.addr)
        try:
            nc2 = await clients.nats(srv.url)
            payload = b"x" * 1000
            t0 = time.monotonic()
            for _ in range(5000):
                await nc2.publish("big", payload)
            await nc2.flush(timeout=30)
            took = time.monotonic() - t0
            assert nc2.is_connected
            assert took < 30, f"publishing 5000 messages plus flush took {took:.1f} s"

            data, how = await asyncio.to_thread(_drain_until_closed, slow, 15.0)
        finally:
            slow.close()
        assert how in ("eof", "reset"), "the server must close the slow consumer"
        ops = parse_stream(data)
        assert not [op for op in ops if op.kind == "-ERR"], f"no -ERR for a slow consumer: {[o for o in ops if o.kind != 'MSG'][:5]}"
        assert all(op.kind in ("MSG", "PING", "") for op in ops), {op.kind for op in ops}

        out, err = await asyncio.wait_for(asyncio.to_thread(reader.communicate), 70)
        assert reader.returncode == 0, f"reader failed: {out!r} {err!r}"
        assert out.strip().splitlines()[-1] == "received 5000 disconnects 0", out
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait(timeout=10)
