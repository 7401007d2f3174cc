"""AC-01 … AC-06: handshake, INFO, publish/subscribe, wildcards, subject validation, queue groups, echo
(compat/nats-fluxlib.md §5.3; protocol §1.2–§1.9)."""

from __future__ import annotations

import json

from nats_compat import DEFAULT_RAW_CONNECT, SEMVER, STEP, Collector, Fence, drained, raws, settle


def _walk(value):
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


# --------------------------------------------------------------------------
# AC-01 Handshake and INFO
# --------------------------------------------------------------------------


async def test_ac01_info_line(server, clients):
    raw = await clients.raw(server, handshake=False)
    line = raw.info_line
    assert line.startswith(b"INFO {"), line
    assert line.endswith(b"\r\n"), line
    assert line.count(b"\n") == 1 and line.count(b"\r") == 1, f"INFO must be a single line: {line!r}"
    info = json.loads(line[5:].decode("utf-8"))
    assert isinstance(info, dict)
    for key in ("server_id", "server_name", "version"):
        assert isinstance(info.get(key), str) and info[key], (key, info)
    assert SEMVER.match(info["version"]), info["version"]
    assert type(info["proto"]) is int and info["proto"] == 1, info
    assert info["headers"] is True, info
    assert type(info["max_payload"]) is int and info["max_payload"] == 1048576, info
    assert type(info["client_id"]) is int, info
    assert not any(v is None for v in _walk(info)), f"INFO contains null: {info}"
    assert info.get("tls_required") is not True, info
    assert "auth_required" not in info or info["auth_required"] is False, info


async def test_ac01_exactly_pong_after_connect_and_ping(server, clients):
    raw = await clients.raw(server, handshake=False, answer_pings=False)
    await raw.send(b"CONNECT " + json.dumps(DEFAULT_RAW_CONNECT).encode() + b"\r\nPING\r\n")
    got = await raw.readexactly(6, STEP)
    assert got == b"PONG\r\n", f"after CONNECT+PING expected exactly PONG\\r\\n, got {got!r}"


async def test_ac01_nats_py_connects(server, clients):
    nc = await clients.nats(server.url, name="probe")
    assert nc.is_connected
    assert nc.max_payload == 1048576
    assert type(nc.client_id) is int
    version = nc.connected_server_version
    assert isinstance(version.major, int) and version.major >= 2, version
    await nc.flush(timeout=STEP)


# --------------------------------------------------------------------------
# AC-02 Basic pub/sub and ordering
# --------------------------------------------------------------------------


async def test_ac02_thousand_messages_in_order(server, clients):
    nc1 = await clients.nats(server.url)
    nc2 = await clients.nats(server.url)
    got = Collector("ord")
    sub = await nc1.subscribe("ord", cb=got.cb)
    fence = await Fence.create(nc1)
    await settle(nc1)
    for i in range(1000):
        await nc2.publish("ord", str(i).encode())
    await got.wait(1000, timeout=2.0)
    await fence.cross(nc2, sub)  # nothing else (no duplicate) is on its way
    assert got.data == [str(i).encode() for i in range(1000)]
    assert all(m.subject == "ord" for m in got.msgs)
    assert all(m.reply == "" for m in got.msgs)


# --------------------------------------------------------------------------
# AC-03 Wildcards
# --------------------------------------------------------------------------


async def test_ac03_wildcards(server, clients):
    nc1 = await clients.nats(server.url)
    nc2 = await clients.nats(server.url)
    patterns = ["a.*", "a.>", "a.*.c", ">", "*.b"]
    cols = {p: Collector(p) for p in patterns}
    subs = [await nc1.subscribe(p, cb=cols[p].cb) for p in patterns]
    fence = await Fence.create(nc1)
    await settle(nc1)
    for subject in ("a", "a.b", "a.b.c", "x.b"):
        await nc2.publish(subject, subject.encode())
    await fence.cross(nc2, *subs)
    fence_subject = fence.subject
    seen = {p: [m.subject for m in cols[p].msgs if m.subject != fence_subject] for p in patterns}
    assert seen == {
        "a.*": ["a.b"],
        "a.>": ["a.b", "a.b.c"],
        "a.*.c": ["a.b.c"],
        ">": ["a", "a.b", "a.b.c", "x.b"],
        "*.b": ["a.b", "x.b"],
    }
    for p in patterns:  # the delivered subject is the published one, the payload says which that was
        assert all(m.data == m.subject.encode() for m in cols[p].msgs if m.subject != fence_subject)


# --------------------------------------------------------------------------
# AC-04 Subject validation
# --------------------------------------------------------------------------


async def test_ac04_invalid_subscribe_subjects(server, clients):
    raw = await clients.raw(server)
    await raw.send(b"SUB foo..bar 1\r\nSUB foo.>.bar 2\r\nSUB .a 3\r\nSUB foo* 4\r\nSUB service/tick 5\r\nPING\r\n")
    before_pong = await raw.ops_until_pong()
    assert raws(before_pong) == [b"-ERR 'Invalid Subject'\r\n"] * 3
    await raw.send(b"PUB service/tick 1\r\nt\r\n")
    ops = await raw.ping_barrier()
    assert raws(ops) == [b"MSG service/tick 5 1\r\nt\r\n"], "connection must stay open and `SUB service/tick` work"


# --------------------------------------------------------------------------
# AC-05 Queue groups
# --------------------------------------------------------------------------


async def test_ac05_queue_groups(server, clients):
    workers = [await clients.nats(server.url) for _ in range(3)]
    nc4 = await clients.nats(server.url)
    nc5 = await clients.nats(server.url)
    cols = [Collector(f"worker{i + 1}") for i in range(3)]
    wsubs = [await nc.subscribe("jobs", queue="workers", cb=c.cb) for nc, c in zip(workers, cols)]
    plain = Collector("plain")
    psub = await nc4.subscribe("jobs", cb=plain.cb)
    fences = [await Fence.create(nc) for nc in workers]
    for nc in workers + [nc4]:
        await settle(nc)
    expected = [f"job-{i}".encode() for i in range(300)]
    for payload in expected:
        await nc5.publish("jobs", payload)
    await plain.wait(300, timeout=3.0)
    await drained(psub)
    for fence, sub in zip(fences, wsubs):
        await fence.cross(nc5, sub)
    assert plain.data == expected
    shares = [c.data for c in cols]
    delivered = [d for share in shares for d in share]
    assert len(delivered) == 300, [len(s) for s in shares]
    assert sorted(delivered) == sorted(expected), "no message twice, none lost within the group"
    assert all(len(s) >= 1 for s in shares), f"every worker gets work: {[len(s) for s in shares]}"
    for share in shares:  # a member sees its share in publish order (§1.11)
        assert share == sorted(share, key=expected.index)


# --------------------------------------------------------------------------
# AC-06 Echo on/off
# --------------------------------------------------------------------------


async def test_ac06_echo(server, clients):
    nc1 = await clients.nats(server.url, no_echo=True)
    nc2 = await clients.nats(server.url)
    c1, c2 = Collector("nc1"), Collector("nc2")
    s1 = await nc1.subscribe("e", cb=c1.cb)
    s2 = await nc2.subscribe("e", cb=c2.cb)
    await settle(nc1)
    await settle(nc2)

    await nc1.publish("e", b"from-nc1")
    await settle(nc1)  # nc1's own copy, if any, is now ahead of anything published later (§1.11 barrier)
    await c2.wait(1)
    assert c2.data == [b"from-nc1"]

    await nc2.publish("e", b"from-nc2")
    await c1.wait(1)
    await c2.wait(2)
    await drained(s1, s2)
    fence1 = await Fence.create(nc1)
    await settle(nc1)
    await fence1.cross(nc2, s1)
    assert c1.data == [b"from-nc2"], "no_echo: nc1 must not get its own message"
    assert c2.data == [b"from-nc1", b"from-nc2"], "default echo delivers nc2's message to nc2 itself"
