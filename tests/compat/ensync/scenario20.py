"""Scenario 20 (compat/ensync.md §9.2): WebSocket auto-ack tolerance. It needs the default 60 s ack timeout and at
least 90 s of wall time, so conftest.py starts it at the beginning of the session, in a thread with its own event
loop, against a server of its own; ``test_s20_ws_auto_ack_tolerance`` collects the outcome.

Only WebSocket clients and the *synchronous* gRPC API run in this thread (grpc.aio stays in the main thread's loops).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
import time
from typing import Any

import grpc

from ensync_compat import MAX_DEFER_MS, STEP, HeraldServer, Identity, sleep_until, wait_until
from herald._generated import ensync_pb2 as pb
from herald._generated import ensync_pb2_grpc as pb_grpc

NAME = "s20/orders/created"
WS_LOGGER = "EnSync WS:"


class _ThreadRecords(logging.Handler):
    """Collects the WebSocket SDK's log records emitted by one thread (other tests log from the main thread)."""

    def __init__(self, thread_id: int) -> None:
        super().__init__(logging.ERROR)
        self.thread_id = thread_id
        self.records: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread_id:
            self.records.append((time.monotonic(), record.getMessage()))


def _probe(target: str, ident: Identity, idem: str) -> Any:
    """Herald's state of ``idem`` through DeferMessage, which changes nothing on an acknowledged event and answers
    ``already acknowledged`` (§7.4). Blocking gRPC, run in an executor thread."""
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.EnSyncServiceStub(channel)
        c = stub.Connect(pb.ConnectRequest(access_key=ident.access_key), timeout=STEP)
        assert c.success, c.error_message
        return stub.DeferMessage(
            pb.DeferRequest(client_id=c.client_id, message_idem=idem, message_name=NAME, delay_ms=MAX_DEFER_MS),
            timeout=STEP,
        )


async def run(server: HeraldServer, ids: dict[str, Identity]) -> dict[str, Any]:
    from ensync_sdk_ws import EnSyncEngine as WsEngine

    A, B = ids["A"], ids["B"]
    loop = asyncio.get_running_loop()
    logger = logging.getLogger(WS_LOGGER)
    records = _ThreadRecords(threading.get_ident())
    logger.addHandler(records)
    old_level = logger.level
    logger.setLevel(logging.ERROR)  # the SDK disables its logger; the scenario reads the auto-ack error from it
    engines: list[Any] = []
    try:
        b = WsEngine(server.ws_url)
        engines.append(b)
        await asyncio.wait_for(b.create_client(B.access_key, {"appSecretKey": B.secret_key}), 10)
        calls: list[tuple[float, dict]] = []

        async def handler(event: dict) -> None:  # non-blocking: the SDK then auto-acks inside its reader
            calls.append((time.monotonic(), copy.deepcopy(event)))

        s = await asyncio.wait_for(b._subscribe_internal(NAME, {"autoAck": True, "appSecretKey": None}), 10)
        s.on(handler)

        a = WsEngine(server.ws_url)
        engines.append(a)
        await asyncio.wait_for(a.create_client(A.access_key, {"appSecretKey": A.secret_key}), 10)
        reply = await asyncio.wait_for(a.publish(NAME, [B.public_key], {"auto": 20}), 10)
        assert reply.startswith("+PASS:"), reply
        idem = reply[len("+PASS:"):]

        await wait_until(lambda: calls, STEP, "the delivery to B")
        t0, event = calls[0]
        assert event["idem"] == idem and event["payload"] == {"auto": 20}, event

        # Herald received the ACK within 1 s of the delivery: at t0 + 1 s it already answers "already acknowledged".
        await sleep_until(t0 + 1.0)
        probe = await loop.run_in_executor(None, _probe, server.grpc_target, B, idem)
        assert (probe.success, probe.message) == (False, "already acknowledged"), (
            f"Herald had not recorded the auto-ack 1 s after delivery: {probe}"
        )

        # The client's own auto-ack call times out after about 30 s (the reply sits behind the blocked reader), and
        # the error is only logged (§8 W5).
        def ack_error():
            return next(((t, m) for t, m in records.records if "Auto-acknowledge error" in m), None)

        t_err, message = await wait_until(ack_error, 45.0, "the SDK's logged auto-ack timeout")
        assert "Message timeout" in message, message
        assert 28.0 <= t_err - t0 <= 35.0, f"auto-ack timed out {t_err - t0:.1f} s after delivery"

        # The socket stays open for at least 90 s, and the event is not redelivered (60 s ack timeout passed).
        while time.monotonic() < t0 + 90.0:
            assert b._ws.close_code is None, f"socket closed with {b._ws.close_code} after {time.monotonic() - t0:.0f} s"
            assert len(calls) == 1, f"redelivered: {[e for _, e in calls[1:]]}"
            await asyncio.sleep(0.5)
        assert b._state["isConnected"] and b._state["isAuthenticated"]
        assert len(calls) == 1

        # Still usable, with replies paired correctly after the late ACK reply.
        paused = await asyncio.wait_for(s.pause(), 10)
        assert paused == {"status": "success", "action": "paused", "messageName": NAME, "reason": None}, paused
        resumed = await asyncio.wait_for(s.resume(), 10)
        assert resumed == {"status": "success", "action": "continued", "messageName": NAME}, resumed
        return {
            "idem": idem,
            "ack_probe": probe.message,
            "auto_ack_error_after_s": round(t_err - t0, 1),
            "open_for_s": round(time.monotonic() - t0, 1),
            "handler_calls": len(calls),
        }
    finally:
        logger.removeHandler(records)
        logger.setLevel(old_level)
        for eng in engines:
            try:
                await asyncio.wait_for(eng.close(), 5)
            except BaseException:  # noqa: BLE001
                pass
