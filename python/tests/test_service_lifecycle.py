"""herald.service over the real protocol: run(), the control subjects, set_config, shutdown."""

import asyncio
import json
import logging
import os
import signal
from typing import Any, List, Tuple

import pytest

from herald.exceptions import HeraldConnectionError
from herald.service import DataNode, Message, Node, Service, ServiceOptions

from .helpers import eventually

pytestmark = pytest.mark.integration


class Recorder(Service):
    """Records every handler call as ``(name, argument)``; builds nothing from configs."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: List[Tuple[str, Any]] = []

    def names(self) -> List[str]:
        return [name for name, _ in self.calls]

    def get_node(self, descriptor: DataNode) -> None:
        self.calls.append(("get_node", descriptor.id))
        return None

    async def on_init(self, message: Message) -> None:
        self.calls.append(("on_init", message.payload))
        await super().on_init(message)

    async def on_config(self, message: Message) -> None:
        self.calls.append(("on_config", message.payload))

    async def on_settings(self, message: Message) -> None:
        self.calls.append(("on_settings", message.payload))
        await super().on_settings(message)

    async def on_start(self, message: Message) -> None:
        self.calls.append(("on_start", message.payload))

    async def on_stop(self, message: Message) -> None:
        self.calls.append(("on_stop", message.payload))

    async def on_error(self, message: Message) -> None:
        self.calls.append(("on_error", message.payload))

    async def on_ready(self, message: Message) -> None:
        self.calls.append(("on_ready", message.data))  # README spelling: message.data

    async def on_restart(self, message: Message) -> None:
        self.calls.append(("on_restart", message.payload))

    async def on_ide_status(self, message: Message) -> None:
        self.calls.append(("on_ide_status", message.payload))

    async def on_get_common_data(self, message: Message) -> None:
        self.calls.append(("on_get_common_data", message.payload))

    async def on_connected(self, service_id: str) -> None:
        self.calls.append(("on_connected", service_id))

    async def on_shutdown(self) -> None:
        self.calls.append(("on_shutdown", None))


async def test_run_publishes_connected_and_calls_on_connected(make_service, monitor):
    svc = make_service(Recorder)
    await svc.run()
    assert svc.is_running and svc.is_connected
    status = await monitor.wait_for(f"service.{svc.service_id}.status")
    assert status.data == b"CONNECTED"
    assert ("on_connected", svc.service_id) in svc.calls
    # The service hears its own status (echo), as documented for on_ready.
    await eventually(lambda: ("on_ready", b"CONNECTED") in svc.calls, what="on_ready(CONNECTED)")
    await svc.run()  # running already: nothing more
    assert monitor.payloads(f"service.{svc.service_id}.status") == [b"CONNECTED"]


async def test_each_control_subject_reaches_its_handler_with_the_exact_payload(make_service, nc):
    svc = make_service(Recorder)
    await svc.run()
    await eventually(lambda: ("on_ready", b"CONNECTED") in svc.calls, what="the service's own CONNECTED")
    sid = svc.service_id
    config = b'{"nodes":[{"id":"n2","type":"t","settings":{},"inputs":[],"outputs":[]}]}'
    sent = [
        (f"service.{sid}.set_config", config, ["on_init", "get_node", "on_config"]),
        (f"service.{sid}.set_settings", b'{"a":1}', ["on_settings"]),
        ("ide.status", b'{"ide":"up"}', ["on_ide_status"]),
        (f"service.{sid}.start", b'{"node_id":"*"}', ["on_start"]),
        (f"service.{sid}.stop", b'{"node_id":"*"}', ["on_stop"]),
        (f"service.{sid}.restart", b"{}", ["on_restart"]),
        (f"service.{sid}.error", b'{"e":"x"}', ["on_error"]),
        (f"service.{sid}.get_common_data", b"\x00binary\xff", ["on_get_common_data"]),
        (f"service.{sid}.status", b"READY", ["on_ready"]),
    ]
    for subject, payload, handlers in sent:
        svc.calls.clear()
        await nc.publish(subject, payload)
        # The lambda is only used within this iteration.
        await eventually(lambda: len(svc.calls) >= len(handlers), what=f"handlers for {subject}")  # noqa: B023
        assert svc.names() == handlers, subject
        for name, arg in svc.calls:
            assert arg == ("n2" if name == "get_node" else payload), (subject, name)
    assert svc.config == json.loads(config)
    assert svc.settings == {"a": 1}


async def test_set_config_builds_and_initializes_nodes_via_get_node(make_service, monitor):
    created: List[str] = []

    class Built(Node):
        async def on_create(self) -> None:
            created.append(self.id)

    class Svc(Service):
        def get_node(self, descriptor: DataNode) -> Any:
            if descriptor.type == "skip":
                return None
            return Built(self, node=descriptor)

    svc = make_service(Svc)
    await svc.run()
    sid = svc.service_id
    # A list of descriptors; one the application skips, one invalid (logged, skipped).
    await monitor.nc.publish(
        f"service.{sid}.set_config",
        json.dumps(
            [{"id": "a1", "type": "t", "settings": {"k": 1}}, {"id": "s", "type": "skip"}, {"type": "no-id"}]
        ).encode(),
    )
    await monitor.wait_for("node.a1.status", b"created")
    await eventually(lambda: created == ["a1"], what="on_create of a1")
    assert [n.id for n in svc.nodes] == ["a1"]
    assert svc.find_node("a1").settings == {"k": 1} and svc.find_node("a1").is_initialized

    # An object with "nodes"; a node with an existing id replaces (and destroys) the old one.
    old = svc.find_node("a1")
    await monitor.nc.publish(
        f"service.{sid}.set_config", b'{"nodes": [{"id": "a1", "type": "t"}, {"id": "b1", "type": "t"}]}'
    )
    await eventually(lambda: created == ["a1", "a1", "b1"], what="on_create of the new nodes")
    assert [n.id for n in svc.nodes] == ["a1", "b1"]
    assert svc.find_node("a1") is not old and old.is_destroyed


async def test_bad_config_is_logged_and_later_configs_still_work(make_service, nc, caplog):
    class Svc(Service):
        def get_node(self, descriptor: DataNode) -> Any:
            return Node(self, node=descriptor)

    svc = make_service(Svc)
    await svc.run()
    with caplog.at_level(logging.ERROR):
        await nc.publish(f"service.{svc.service_id}.set_config", b"this is not JSON")
        await nc.publish(f"service.{svc.service_id}.set_config", b'[{"id": "after"}]')
        await eventually(lambda: svc.find_node("after") is not None, what="node from the second config")
    assert any("not JSON" in r.getMessage() for r in caplog.records)


async def test_a_raising_handler_does_not_stop_later_messages(make_service, nc, caplog):
    seen: List[bytes] = []

    class Svc(Service):
        async def on_settings(self, message: Message) -> None:
            if message.payload == b"boom":
                raise RuntimeError("handler failure")
            seen.append(message.payload)

    svc = make_service(Svc)
    await svc.run()
    with caplog.at_level(logging.ERROR):
        for payload in (b"one", b"boom", b"two", b"boom", b"three"):
            await nc.publish(f"service.{svc.service_id}.set_settings", payload)
        await eventually(lambda: seen == [b"one", b"two", b"three"], what="the messages after the failures")
    failures = [r for r in caplog.records if "on_settings failed" in r.getMessage()]
    assert len(failures) == 2 and failures[0].exc_info[0] is RuntimeError

    # The same for a handler of subscribe_handler, sync this time.
    got: List[bytes] = []

    def handler(message: Message) -> None:
        if message.payload == b"bad":
            raise ValueError("nope")
        got.append(message.payload)

    topic = f"h.{svc.service_id}"
    await svc.subscribe_handler(topic, handler)
    for payload in (b"bad", b"ok1", b"bad", b"ok2"):
        await nc.publish(topic, payload)
    await eventually(lambda: got == [b"ok1", b"ok2"], what="subscribe_handler messages after failures")


async def test_default_start_stop_restart_handlers_address_nodes(make_service, monitor):
    svc = make_service()
    for node_id in ("x1", "x2"):
        svc.append_node(Node(svc, node_id))
    await svc.run()  # initializes appended nodes
    await monitor.wait_for("node.x1.status", b"created")
    await monitor.wait_for("node.x2.status", b"created")
    sid = svc.service_id

    await monitor.nc.publish(f"service.{sid}.start", b'{"node_id": "x2"}')
    await monitor.wait_for("node.x2.status", b"started")
    assert svc.find_node("x2").is_started and not svc.find_node("x1").is_started

    await monitor.nc.publish(f"service.{sid}.start", b'{"node_id": "*"}')
    await monitor.wait_for("node.x1.status", b"started")
    await monitor.nc.publish(f"service.{sid}.restart", b"x1")
    await eventually(lambda: monitor.payloads("node.x1.status").count(b"started") == 2, what="x1 restarted")
    assert monitor.payloads("node.x1.status") == [b"created", b"started", b"stopped", b"started"]

    await monitor.nc.publish(f"service.{sid}.stop", b"")
    await monitor.wait_for("node.x1.status", b"stopped")
    await monitor.wait_for("node.x2.status", b"stopped")
    assert not any(n.is_started for n in svc.nodes)
    assert monitor.payloads("node.x2.status") == [b"created", b"started", b"stopped"]


async def test_request_config_and_send_helpers(make_service, monitor):
    svc = make_service()
    await svc.run()
    sid = svc.service_id
    await svc.request_config()
    await svc.send_common_data({"shared": 1})
    await svc.send_status("ACTIVE")
    assert (await monitor.wait_for(f"service.{sid}.get_config")).data == b"READY"
    assert (await monitor.wait_for(f"service.{sid}.set_common_data")).data == b'{"shared": 1}'
    await monitor.wait_for(f"service.{sid}.status", b"ACTIVE")


async def test_shutdown_stops_nodes_calls_on_shutdown_and_closes(make_service, monitor):
    svc = make_service(Recorder)
    node = Node(svc, "sd1")
    svc.append_node(node)
    await svc.run()
    await svc.start_node("sd1")
    await monitor.wait_for("node.sd1.status", b"started")

    await svc.shutdown()
    assert ("on_shutdown", None) in svc.calls
    assert not node.is_started and not svc.is_running and not svc.is_connected
    assert svc.connection is not None and svc.connection.is_closed
    await monitor.wait_for("node.sd1.status", b"stopped")
    await monitor.wait_for(f"service.{svc.service_id}.status", b"STOPPED")
    with pytest.raises(HeraldConnectionError):
        await svc.publish("after.shutdown", b"x")
    await svc.shutdown()  # again: nothing
    with pytest.raises(HeraldConnectionError, match="shut down"):
        await svc.run()


async def test_async_with_runs_and_shuts_down(make_service, monitor):
    svc = make_service()
    async with svc as running:
        assert running is svc and svc.is_running
        await monitor.wait_for(f"service.{svc.service_id}.status", b"CONNECTED")
    assert not svc.is_running and svc.connection.is_closed


async def test_run_forever_ends_on_a_signal(make_service, monitor):
    svc = make_service(Recorder)
    task = asyncio.ensure_future(svc.run_forever(signals=(signal.SIGUSR1,)))
    try:
        await monitor.wait_for(f"service.{svc.service_id}.status", b"CONNECTED")
        # run_forever installs the handler right after run(); wait until it is there.
        await eventually(lambda: signal.getsignal(signal.SIGUSR1) is not signal.SIG_DFL, what="signal handler")
        os.kill(os.getpid(), signal.SIGUSR1)
        await asyncio.wait_for(task, 10)
    finally:
        if not task.done():
            task.cancel()
    assert ("on_shutdown", None) in svc.calls and svc.connection.is_closed
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # handler removed again


async def test_run_forever_ends_on_request_shutdown_from_a_handler(make_service, nc):
    class Svc(Service):
        async def on_error(self, message: Message) -> None:
            self.request_shutdown()

    svc = make_service(Svc)
    task = asyncio.ensure_future(svc.run_forever(signals=()))
    await eventually(lambda: svc.is_running, what="service running")
    await nc.publish(f"service.{svc.service_id}.error", b"fatal")
    await asyncio.wait_for(task, 10)
    assert svc.connection.is_closed


async def test_shutdown_called_inside_a_handler_completes_after_it(make_service, nc):
    finished: List[str] = []

    class Svc(Service):
        async def on_stop(self, message: Message) -> None:
            await self.shutdown()  # returns at once inside a handler
            finished.append("handler returned")

    svc = make_service(Svc)
    await svc.run()
    await nc.publish(f"service.{svc.service_id}.stop", b"")
    await eventually(lambda: svc.connection.is_closed, what="connection closed")
    assert finished == ["handler returned"]


async def test_services_have_their_own_nodes(make_service):
    a, b = make_service(), make_service()
    a.append_node(Node(a, "same-id"))
    b.append_node(Node(b, "same-id"))
    assert a.nodes[0] is not b.nodes[0] and len(a.nodes) == len(b.nodes) == 1


async def test_global_tick_drives_service_and_node_ticks(make_service, monitor):
    service_ticks: List[float] = []
    node_ticks: List[float] = []

    class Svc(Service):
        async def on_tick(self, time: float) -> None:
            service_ticks.append(time)

    class Ticking(Node):
        async def on_tick(self, time: float) -> None:  # overriding the method works
            node_ticks.append(time)

    from herald.service import DataTimer

    svc = make_service(Svc, opts=ServiceOptions(hasGlobalTick=True, tickInterval=50))
    node = Ticking(svc, "gt1", timer=DataTimer("interval", 10_000))
    svc.append_node(node)
    await svc.run()
    await eventually(lambda: len(service_ticks) >= 3, what="service ticks")
    assert node_ticks == []  # not started yet: no node ticks
    await node.start()
    assert node._tick_task is None  # the global tick replaces the node's own timer
    await eventually(lambda: len(node_ticks) >= 3, what="node ticks on the global tick")
    await node.stop()
    stopped_at = len(node_ticks)
    before = len(service_ticks)
    await eventually(lambda: len(service_ticks) >= before + 3, what="more service ticks")
    assert len(node_ticks) == stopped_at  # a stopped node does not tick


async def test_shutdown_called_from_shutdown_hooks_does_not_deadlock(make_service):
    class Stopper(Node):
        async def on_stop(self) -> None:
            await self.service.shutdown()  # e.g. "when this node stops, stop the service"

    class Svc(Service):
        async def on_shutdown(self) -> None:
            await self.shutdown()

    svc = make_service(Svc)
    svc.append_node(Stopper(svc, "dl1"))
    await svc.run()
    await svc.start_node("dl1")
    await asyncio.wait_for(svc.shutdown(), 10)
    assert svc.connection.is_closed and not svc.find_node("dl1").is_started
