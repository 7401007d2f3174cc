"""herald.service nodes over the real protocol: life cycle, settings, inputs, outputs, timers."""

import asyncio
import json
from typing import Any, List, Tuple

import pytest

from herald.exceptions import HeraldError, HeraldNotFoundError
from herald.service import DataInput, DataNode, DataOutput, DataTimer, Message, Node

from .helpers import eventually, sync

pytestmark = pytest.mark.integration


class Recording(Node):
    """Records hook calls as ``(hook, argument)``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hooks: List[Tuple[str, Any]] = []

    def names(self) -> List[str]:
        return [name for name, _ in self.hooks]

    async def on_init(self) -> None:
        self.hooks.append(("on_init", None))

    async def on_create(self) -> None:
        self.hooks.append(("on_create", self.status))

    async def on_start(self) -> None:
        self.hooks.append(("on_start", None))

    async def on_stop(self) -> None:
        self.hooks.append(("on_stop", None))

    async def on_destroy(self) -> None:
        self.hooks.append(("on_destroy", None))

    async def on_settings(self, update: Any) -> None:
        self.hooks.append(("on_settings", update))

    async def on_input(self, topic: str, message: Message) -> None:
        self.hooks.append(("on_input", (topic, message.payload)))

    async def on_error(self, error: BaseException) -> None:
        self.hooks.append(("on_error", error))


def echo_descriptor(node_id: str) -> DataNode:
    return DataNode(
        id=node_id,
        type="echo",
        settings={"k": 1},
        inputs=[DataInput(topics=[f"in/{node_id}/a"], alias="a")],
        outputs=[DataOutput(alias="o", topics=[f"out/{node_id}/x"])],
    )


async def test_node_life_cycle_statuses_and_hooks(make_service, monitor):
    svc = make_service()
    await svc.run()
    node = Recording(svc, node=echo_descriptor("lc1"))
    svc.append_node(node)

    await node.init()
    assert node.names() == ["on_init", "on_create"]
    assert node.hooks[1] == ("on_create", "created")  # after created was published
    await monitor.wait_for("node.lc1.status", b"created")
    await node.init()  # again: nothing
    assert node.names() == ["on_init", "on_create"]

    await node.start()
    await monitor.wait_for("node.lc1.status", b"started")
    assert node.is_started and node.status == "started"
    await node.start()  # again: nothing

    await node.stop()
    await monitor.wait_for("node.lc1.status", b"stopped")
    assert not node.is_started and node.status == "stopped"
    await node.stop()  # again: nothing

    await node.start()  # a stopped node starts again
    await eventually(lambda: monitor.payloads("node.lc1.status").count(b"started") == 2, what="second start")

    await node.destroy()
    assert node.names() == ["on_init", "on_create", "on_start", "on_stop", "on_start", "on_stop", "on_destroy"]
    assert node.is_destroyed and svc.find_node("lc1") is None
    expected = [b"created", b"started", b"stopped", b"started", b"stopped"]
    await eventually(lambda: monitor.payloads("node.lc1.status") == expected, what="every status")
    with pytest.raises(HeraldError, match="destroyed"):
        await node.start()
    await node.destroy()  # again: nothing


async def test_settings_are_merged_from_set_settings(make_service, nc):
    svc = make_service()
    await svc.run()
    node = Recording(svc, node=echo_descriptor("st1"))
    await node.init()
    await nc.publish("node.st1.set_settings", b'{"gain": 2}')
    await nc.publish("node.st1.set_settings", b"not json")  # ignored (logged)
    await nc.publish("node.st1.set_settings", b"[1, 2]")  # not an object: ignored
    await nc.publish("node.st1.set_settings", b'{"k": 3, "extra": [1]}')
    await eventually(lambda: node.settings.get("k") == 3, what="second settings message")
    assert node.settings == {"k": 3, "gain": 2, "extra": [1]}
    assert [arg for name, arg in node.hooks if name == "on_settings"] == [{"gain": 2}, {"k": 3, "extra": [1]}]
    assert node.node.settings == {"k": 1}  # the descriptor is untouched


async def test_inputs_keep_the_latest_message_per_node(make_service, nc):
    svc = make_service()
    await svc.run()
    a = Recording(svc, node=echo_descriptor("in1"))
    # Same alias, different topic: inputs are per node (FluxLib shared them across nodes).
    b = Recording(svc, node=DataNode(id="in2", inputs=[DataInput(topics=["in.in2.a"], alias="a")]))
    await a.init()
    await b.init()
    assert a.input("a").subjects == ["in.in1.a"]  # "in/in1/a" with / mapped to .
    await nc.publish("in.in1.a", b"42")
    await nc.publish("in.in2.a", b"other")
    await eventually(lambda: a.input("a").read() is not None and b.input("a").read() is not None, what="inputs")
    assert a.input("a").read().payload == b"42" and a.input("a").read().data == b"42"
    assert b.input("a").read().payload == b"other"
    assert [h for h in a.hooks if h[0] == "on_input"] == []  # not started: no on_input

    await a.start()
    await nc.publish("in.in1.a", b"43")
    await eventually(lambda: ("on_input", ("in/in1/a", b"43")) in a.hooks, what="on_input")
    assert a.input("a").read().payload == b"43"


async def test_outputs_publish_to_their_topics_and_meet_inputs(make_service, nc):
    svc = make_service()
    await svc.run()
    producer = Node(svc, node=DataNode(id="p1", outputs=[DataOutput(alias="o", topics=["link/p1", "copy.p1"])]))
    consumer = Node(svc, node=DataNode(id="c1", inputs=[DataInput(topics=["link/p1"], alias="in")]))
    received: List[Any] = []

    async def record(msg: Any) -> None:
        received.append(msg)

    await nc.subscribe("link.p1", cb=record)
    await nc.subscribe("copy.p1", cb=record)
    await sync(nc)
    await consumer.init()
    await producer.output("o").publish({"v": 1}, headers={"X-Out": "y"})
    await eventually(lambda: len(received) == 2, what="both output topics")
    assert sorted((m.subject, m.data) for m in received) == [("copy.p1", b'{"v": 1}'), ("link.p1", b'{"v": 1}')]
    assert received[0].headers == {"X-Out": "y"}
    # The input configured with the same "link/p1" topic hears the output.
    await eventually(lambda: consumer.input("in").read() is not None, what="the consumer's input")
    assert consumer.input("in").read().json() == {"v": 1}


async def test_timer_ticks_while_started_and_stop_cancels_them(make_service, monitor):
    svc = make_service()
    await svc.run()
    calls: List[str] = []

    async def tick() -> None:  # a constructor callback without arguments, as in FluxLib
        calls.append("tick")

    node = Node(svc, "tm1", timer=DataTimer("interval", 20), on_tick=tick)
    svc.append_node(node)
    await node.start()  # initializes first
    await monitor.wait_for("node.tm1.status", b"created")
    # About 50 ticks a second; ask for a handful within a generous window.
    await eventually(lambda: len(calls) >= 5, timeout=5, what="5 ticks")
    task = node._tick_task
    assert task is not None
    await node.stop()
    assert task.done() and node._tick_task is None
    await monitor.wait_for("node.tm1.status", b"stopped")
    count = len(calls)
    await asyncio.sleep(0.1)  # five intervals: a running timer would have ticked
    assert len(calls) == count


async def test_overriding_on_tick_works_and_tick_errors_are_reported(make_service):
    svc = make_service()
    await svc.run()

    class Ticker(Recording):
        ticks: List[float] = []

        async def on_tick(self, time: float) -> None:
            self.ticks.append(time)
            if len(self.ticks) == 2:
                raise RuntimeError("tick failure")

    node = Ticker(svc, "tm2", timer=DataTimer("interval", 20))
    await node.start()
    await eventually(lambda: len(node.ticks) >= 4, what="ticks after a failing one")
    errors = [arg for name, arg in node.hooks if name == "on_error"]
    assert len(errors) == 1 and str(errors[0]) == "tick failure"
    assert all(isinstance(t, float) for t in node.ticks)
    await node.stop()


async def test_a_failing_on_start_reports_the_error_and_stops(make_service, monitor):
    svc = make_service()
    await svc.run()

    class Failing(Recording):
        async def on_start(self) -> None:
            await super().on_start()
            raise RuntimeError("cannot start")

    node = Failing(svc, "fs1", timer=DataTimer("interval", 20))
    await node.start()
    assert not node.is_started and node._tick_task is None
    assert node.names() == ["on_init", "on_create", "on_start", "on_error", "on_stop"]
    await eventually(lambda: monitor.payloads("node.fs1.status") == [b"created", b"stopped"], what="statuses")


async def test_set_status_publishes_on_the_node_status_subject(make_service, monitor):
    svc = make_service()
    await svc.run()
    statuses: List[bytes] = []

    class Listening(Node):
        async def on_status(self, message: Message) -> None:
            statuses.append(message.payload)

    node = Listening(svc, "ss1")
    await node.init()
    await node.set_status("busy")
    assert node.status == "busy"
    await monitor.wait_for("node.ss1.status", b"busy")
    await eventually(lambda: statuses == [b"created", b"busy"], what="on_status for both")


async def test_node_handlers_report_errors_and_destroy_removes_subscriptions(make_service, nc):
    svc = make_service()
    await svc.run()
    node = Recording(svc, node=echo_descriptor("ds1"))
    await node.init()
    got: List[bytes] = []

    async def handler(message: Message) -> None:
        if message.payload == b"bad":
            raise ValueError("bad message")
        got.append(message.payload)

    await node.subscribe_handler("ds1.cmd", handler)
    await nc.publish("ds1.cmd", b"bad")
    await nc.publish("ds1.cmd", b"good")
    await eventually(lambda: got == [b"good"], what="the good message")
    assert [str(arg) for name, arg in node.hooks if name == "on_error"] == ["bad message"]

    subjects_before = {s.subject for s in svc._subscriptions}
    assert {"node.ds1.set_settings", "node.ds1.status", "in.ds1.a", "ds1.cmd"} <= subjects_before
    await node.destroy()
    subjects_after = {s.subject for s in svc._subscriptions}
    assert not subjects_after & {"node.ds1.set_settings", "node.ds1.status", "in.ds1.a", "ds1.cmd"}
    markers: List[bytes] = []
    await svc.subscribe_handler("ds1.marker", lambda m: markers.append(m.payload))
    await nc.publish("ds1.cmd", b"after destroy")
    await nc.publish("in.ds1.a", b"after destroy")
    await nc.publish("ds1.marker", b"m")
    await eventually(lambda: markers == [b"m"], what="the marker")
    assert got == [b"good"] and node.input("a").read() is None


async def test_service_node_management(make_service, monitor):
    svc = make_service()
    nodes = [Recording(svc, f"nm{i}") for i in range(3)]
    for node in nodes:
        svc.append_node(node)
    await svc.run()
    for node in nodes:
        await monitor.wait_for(f"node.{node.id}.status", b"created")

    await svc.start_node("nm1")
    assert [n.is_started for n in nodes] == [False, True, False]
    await svc.start_node_all()
    assert all(n.is_started for n in nodes)
    await svc.stop_node("nm0")
    assert [n.is_started for n in nodes] == [False, True, True]
    await svc.stop_node_all()
    assert not any(n.is_started for n in nodes)
    for node in nodes:
        await monitor.wait_for(f"node.{node.id}.status", b"stopped")

    await svc.destroy_node("nm2")
    assert [n.id for n in svc.nodes] == ["nm0", "nm1"] and nodes[2].is_destroyed
    for call in (svc.start_node, svc.stop_node, svc.destroy_node):
        with pytest.raises(HeraldNotFoundError, match="has no node 'ghost'"):
            await call("ghost")
    await svc.destroy_node_all()
    assert svc.nodes == [] and all(n.is_destroyed for n in nodes)
    assert all(n.names()[-1] == "on_destroy" for n in nodes)


async def test_echo_node_answers_requests_and_publishes_its_output(make_service, monitor):
    """FluxLib's echo scenario (compat AC-24), with the documented behaviour."""
    svc = make_service()
    await svc.run()

    class EchoNode(Node):
        async def on_start(self) -> None:
            self.request_sub = await self.subscribe_handler(f"echo.{self.id}.request", self.echo)

        async def on_stop(self) -> None:
            await self.request_sub.unsubscribe()

        async def echo(self, message: Message) -> None:
            await self.service.respond(message, b"echo:" + message.payload)
            await self.output("o").publish(b"out:" + message.payload)

    node = EchoNode(svc, node=echo_descriptor("echo1"))
    svc.append_node(node)
    await node.init()
    await monitor.nc.publish("node.echo1.set_settings", b'{"gain":2}')
    await monitor.nc.publish("in.echo1.a", b"42")
    await monitor.nc.publish(f"service.{svc.service_id}.start", b'{"node_id":"*"}')
    await monitor.wait_for("node.echo1.status", b"started")
    reply = await monitor.nc.request("echo.echo1.request", b"hi", timeout=2)
    assert reply.data == b"echo:hi"
    assert (await monitor.wait_for("out.echo1.x")).data == b"out:hi"
    assert node.settings == {"k": 1, "gain": 2}
    assert node.input("a").read().payload == b"42"
    await monitor.nc.publish(f"service.{svc.service_id}.stop", json.dumps({"node_id": "echo1"}).encode())
    await monitor.wait_for("node.echo1.status", b"stopped")
