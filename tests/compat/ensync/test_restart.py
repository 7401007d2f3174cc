"""Restart durability (compat/ensync.md §7.3, §7.11, §7.12): unacknowledged events survive a Herald restart.

A private server (ack timeout 5 s) gets five events for B, published by the real ``ensync-sdk``. A ``herald.events``
client of B (manual ack) acknowledges the first, leaves the second in flight, and the other three wait behind it
(window 1). Herald is then stopped -- SIGTERM, or SIGKILL with ``[storage] fsync = "always"`` -- and started again on
the same data directory and ports. The herald.events client stays open the whole time and must reconnect and
resubscribe by itself; it then receives the four open events in order with the same idems and blocks (the in-flight
one is pending again at once, not after the ack timeout), and the acknowledged one never comes back. A second restart
shows that acknowledgements made after the first one are durable too.
"""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from ensync_compat import ACK_TIMEOUT, STEP, block_of_idem, wait_until
from herald.events import Event


@pytest.mark.parametrize(
    "sig,fsync",
    [(signal.SIGTERM, None), (signal.SIGKILL, "always")],
    ids=["sigterm", "sigkill-fsync-always"],
)
async def test_unacked_events_survive_restart(make_server, private_clients, ids, sig, fsync):
    A, B = ids["A"], ids["B"]
    srv = make_server(fsync=fsync, label=f"restart-{sig.name.lower()}")
    clients = private_clients.on(srv)
    name = f"restart/{sig.name.lower()}"

    a = (await clients.grpc(A)).engine
    b = await clients.events(B, reconnect_initial_delay=0.1, reconnect_max_delay=0.5)
    client_id = b.client_id
    sub = await b.subscribe(name, auto_ack=False)
    got: list[tuple[float, Event]] = []
    sub.on(lambda ev: got.append((time.monotonic(), ev)))

    published = [await a.publish(name, [B.public_key], {"n": n}) for n in range(1, 6)]
    await wait_until(lambda: got, STEP, "the first event")
    e1 = got[0][1]
    assert e1.idem == published[0]
    assert await sub.ack(e1) == "acknowledged"
    await wait_until(lambda: len(got) >= 2, STEP, "the second event")
    e2 = got[1][1]
    assert e2.idem == published[1]  # delivered, not acknowledged: in flight when Herald goes down
    await asyncio.sleep(0.2)
    assert len(got) == 2  # window 1: the other three wait

    code = srv.restart(sig)
    assert code == (0 if sig == signal.SIGTERM else -sig), f"herald exited with {code}"  # SIGTERM: clean exit
    t_up = time.monotonic()

    # The open client reconnects and resubscribes by itself and gets the four open events, in order.
    await wait_until(lambda: len(got) >= 3, STEP, "the in-flight event after the restart")
    assert got[2][0] - t_up < ACK_TIMEOUT - 1.0, "the in-flight event waited for the ack timeout after the restart"
    for i in range(2, 6):
        await wait_until(lambda i=i: len(got) > i, STEP, f"event {i + 1} after the restart")
        ev = got[i][1]
        assert ev.idem == published[i - 1], [e.idem for _, e in got]
        await sub.ack(ev)
    after = [e for _, e in got[2:]]
    assert [e.idem for e in after] == published[1:]
    assert [e.payload for e in after] == [{"n": n} for n in range(2, 6)]
    assert after[0].block == e2.block
    assert [e.block for e in after] == [block_of_idem(i) for i in published[1:]]
    assert all(x.block < y.block for x, y in zip(after, after[1:]))
    assert sub.stats.stream_restarts >= 1
    # Herald persisted the session: no new Connect was needed.
    assert (b.client_id, b.sessions) == (client_id, 1)

    # The acknowledged event is not redelivered (past the ack timeout of the first delivery, too).
    raw = await clients.raw()
    probe = await raw.connect(B)
    for idem in published:
        assert await raw.state(probe, idem, name) == "already acknowledged"
    await asyncio.sleep(max(0.5, got[0][0] + ACK_TIMEOUT + 0.5 - time.monotonic()))
    assert len(got) == 6, [e.idem for _, e in got]

    # Acks made after the first restart are durable across a second one.
    srv.restart(sig)
    e6 = await a.publish(name, [B.public_key], {"n": 6})  # A's engine keeps working without reconnecting
    await wait_until(lambda: len(got) >= 7, 10.0, "a new event after the second restart")
    assert [e.idem for _, e in got[6:]] == [e6]
    await sub.ack(got[6][1])
    await asyncio.sleep(1.0)
    assert len(got) == 7
