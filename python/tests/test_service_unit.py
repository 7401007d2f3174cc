"""Unit tests of herald.service that need no server: state, encoding, subjects, options, descriptors."""

import logging

import pytest

from herald.exceptions import (
    HeraldConnectionError,
    HeraldError,
    HeraldInvalidArgumentError,
    HeraldNoRespondersError,
    HeraldTimeoutError,
)
from herald.service import (
    DataInput,
    DataNode,
    DataOutput,
    DataTimer,
    Message,
    Node,
    NodeStatus,
    Service,
    ServiceOptions,
    ServiceStatus,
    State,
    StateSlice,
    Topics,
    encode_payload,
    topic_to_subject,
)
from herald.testing import HeraldServer, HeraldServerError

# ---- StateSlice -------------------------------------------------------------------------------


def test_state_slice_get_set_delete_without_prefix():
    s = StateSlice()
    assert s.get("missing") is None
    assert s.get("missing", 7) == 7
    s.set("a", 1)
    s.set("b", {"x": 2}, opts={"ignored": True})
    assert s.get("a") == 1 and s.get("b") == {"x": 2}
    assert "a" in s and "zzz" not in s
    s.delete("a")
    s.delete("never-there")  # ignored
    assert s.get("a") is None
    assert s.get_all_with_prefix() == {"b": {"x": 2}}


def test_state_slice_prefix_namespaces_keys():
    s = StateSlice(prefix="n1")
    s.set("counter", 3)
    assert s.get("counter") == 3
    assert s.state.data == {"n1/counter": 3}
    assert s.get_all_with_prefix() == {"counter": 3}
    assert len(s) == 1 and list(s) == ["counter"]


def test_state_slice_initial_values_are_visible_through_the_prefix():
    initial = {"counter": 5, "name": "x"}
    s = StateSlice(state=initial, prefix="my-node")
    assert s.get("counter") == 5
    assert s.get_all_with_prefix() == {"counter": 5, "name": "x"}
    s.set("counter", 6)
    assert initial == {"counter": 5, "name": "x"}  # the given dict is never written to


def test_state_slices_share_through_a_slice_or_its_state():
    root = StateSlice()
    a = StateSlice(root, prefix="a")
    b = StateSlice(state=root._state, prefix="b")  # FluxLib README's spelling
    b2 = StateSlice(root.state, prefix="b")
    a.set("k", 1)
    b.set("k", 2)
    assert a.get("k") == 1 and b.get("k") == 2 and b2.get("k") == 2
    assert root.get("a/k") == 1 and root.get("b/k") == 2
    assert root.get_all_with_prefix() == {"a/k": 1, "b/k": 2}


def test_state_slice_reset_clears_only_its_own_keys():
    root = StateSlice({"top": 0})
    a = StateSlice(root, prefix="a")
    b = StateSlice(root, prefix="b")
    a.set("k", 1)
    a.set("j", 2)
    b.set("k", 3)
    a.reset()
    assert a.get_all_with_prefix() == {}
    assert b.get("k") == 3 and root.get("top") == 0
    a.set("k", 4)  # still sharing after reset
    assert root.get("a/k") == 4
    root.reset()  # no prefix: owns every key
    assert root.state.data == {} and b.get("k") is None


def test_state_slice_rejects_other_state_types():
    with pytest.raises(TypeError, match="StateSlice, a State"):
        StateSlice(state=42)  # type: ignore[arg-type]
    assert isinstance(StateSlice(State({"x": 1})).state, State)
    assert StateSlice(State({"x": 1})).get("x") == 1


# ---- messages and encoding --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, encoded",
    [
        (b"raw\x00bytes", b"raw\x00bytes"),
        (bytearray(b"ba"), b"ba"),
        (memoryview(b"mv"), b"mv"),
        ("héllo", "héllo".encode("utf-8")),
        ("", b""),
        ({"a": 1, "b": [1, 2]}, b'{"a": 1, "b": [1, 2]}'),
        ([1, "x"], b'[1, "x"]'),
        (42, b"42"),
        (1.5, b"1.5"),
        (True, b"true"),
        (None, b"null"),
    ],
)
def test_encode_payload(value, encoded):
    assert encode_payload(value) == encoded


def test_encode_payload_rejects_unencodable_values():
    with pytest.raises(TypeError, match="cannot publish a object"):
        encode_payload(object())


def test_message_accessors():
    m = Message(subject="s", payload=b'{"x": [1]}', reply="_INBOX.1", headers={"A": "b"})
    assert m.data is m.payload
    assert m.json() == {"x": [1]}
    assert m.text() == '{"x": [1]}' == m.get_data_as_string()
    with pytest.raises(ValueError):
        Message(subject="s", payload=b"not json").json()
    empty = Message(subject="s")
    assert empty.payload == b"" and empty.reply == "" and empty.headers == {}


def test_message_from_nats_fills_defaults():
    class FakeMsg:
        subject = "a.b"
        data = b"x"
        reply = ""
        headers = None

    m = Message.from_nats(FakeMsg())
    assert (m.subject, m.payload, m.reply, m.headers) == ("a.b", b"x", "", {})


# ---- topics and statuses ----------------------------------------------------------------------


def test_topics_are_natstopic_subjects():
    t = Topics()
    assert t.status("s") == "service.s.status"
    assert t.configuration("s") == "service.s.set_config"
    assert t.configuration_request("s") == "service.s.get_config"
    assert t.service_settings("s") == "service.s.set_settings"
    assert t.start("s") == "service.s.start"
    assert t.stop("s") == "service.s.stop"
    assert t.error("s") == "service.s.error"
    assert t.restart_node("s") == "service.s.restart"
    assert t.ide_status() == "ide.status"
    assert t.get_common_data("s") == "service.s.get_common_data"
    assert t.set_common_data("s") == "service.s.set_common_data"
    assert t.status_request("s") == "service.s.request_status"
    assert t.set_service_state("s") == "service.s.set_common_state"
    assert t.get_service_state("s") == "service.s.get_common_state"
    assert t.dev_mode("s") == "service.development_mode.s"
    assert t.time() == "service.tick"
    assert t.node_status("n") == "node.n.status"
    assert t.node_settings("n") == "node.n.set_settings"
    assert t.node_created("n") == "node.n.created"
    assert t.node_state_request("n") == "node.n.state_request"


def test_topics_prefix_like_standardtopic():
    t = Topics("flux")
    assert t.status("s") == "flux.service.s.status"
    assert t.ide_status() == "flux.ide.status"
    assert t.node_status("n") == "flux.node.n.status"
    assert repr(t) == "Topics(prefix='flux')"


def test_topic_to_subject_maps_slashes():
    assert topic_to_subject("out/x") == "out.x"
    assert topic_to_subject("a/b/c") == "a.b.c"
    assert topic_to_subject("in.a") == "in.a"


def test_status_texts():
    assert [
        ServiceStatus.STARTING, ServiceStatus.CONNECTED, ServiceStatus.READY, ServiceStatus.ACTIVE,
        ServiceStatus.PAUSED, ServiceStatus.ERROR, ServiceStatus.STOPPING, ServiceStatus.STOPPED,
    ] == ["STARTING", "CONNECTED", "READY", "ACTIVE", "PAUSED", "ERROR", "STOPPING", "STOPPED"]
    assert ServiceStatus().connected() == "CONNECTED" and ServiceStatus().ready() == "READY"
    status = NodeStatus()
    assert (status.created(), status.started(), status.stopped()) == ("created", "started", "stopped")


# ---- options ----------------------------------------------------------------------------------


def test_service_options_defaults_and_both_spellings():
    default = ServiceOptions()
    assert default.has_global_tick is False and default.tick_interval == 1000
    snake = ServiceOptions(has_global_tick=True, tick_interval=500)
    camel = ServiceOptions(hasGlobalTick=True, tickInterval=500)
    assert snake == camel
    assert camel.hasGlobalTick is True and camel.tickInterval == 500 and camel.tick_seconds == 0.5
    assert ServiceOptions(hasGlobalTick=False).has_global_tick is False


def test_service_options_parsing_and_validation():
    assert ServiceOptions.from_dict({"hasGlobalTick": True, "tickInterval": 20}) == ServiceOptions(True, 20)
    assert ServiceOptions.from_dict({"has_global_tick": True}) == ServiceOptions(True, 1000)
    assert ServiceOptions.coerce(None) == ServiceOptions()
    assert ServiceOptions.coerce({"tick_interval": 5}).tick_interval == 5
    with pytest.raises(ValueError, match="unknown service options"):
        ServiceOptions.from_dict({"globalTick": True})
    with pytest.raises(ValueError, match="not both"):
        ServiceOptions(has_global_tick=True, hasGlobalTick=True)
    with pytest.raises(ValueError, match="not both"):
        ServiceOptions(tick_interval=1, tickInterval=1)
    for bad in (0, -5, "100", True):
        with pytest.raises(ValueError, match="positive number"):
            ServiceOptions(tick_interval=bad)
    with pytest.raises(TypeError):
        ServiceOptions.coerce(3)  # type: ignore[arg-type]


# ---- descriptors ------------------------------------------------------------------------------


def test_data_node_from_dict():
    node = DataNode.from_dict(
        {
            "id": "n2",
            "type": "t",
            "settings": {"k": 1},
            "inputs": [{"alias": "a", "topics": ["in.a", "in/b"]}, {"alias": "s", "topics": "single"}],
            "outputs": [{"alias": "o", "topics": ["out/x"]}],
            "name": "extra key",
        }
    )
    assert node == DataNode(
        id="n2",
        type="t",
        settings={"k": 1},
        inputs=[DataInput(topics=["in.a", "in/b"], alias="a"), DataInput(topics=["single"], alias="s")],
        outputs=[DataOutput(alias="o", topics=["out/x"])],
        extra={"name": "extra key"},
    )
    assert DataNode.from_dict(node.to_dict()) == node
    minimal = DataNode.from_dict({"id": "m"})
    assert (minimal.type, minimal.settings, minimal.inputs, minimal.outputs) == ("", {}, [], [])


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"type": "t"},
        {"id": ""},
        {"id": 3},
        {"id": "n", "settings": [1]},
        {"id": "n", "inputs": {"alias": "a"}},
        {"id": "n", "inputs": [{"topics": ["x"]}]},
        {"id": "n", "outputs": [{"alias": "o", "topics": [1]}]},
    ],
)
def test_data_node_from_dict_rejects_bad_descriptors(bad):
    with pytest.raises(ValueError):
        DataNode.from_dict(bad)


def test_data_timer():
    timer = DataTimer("interval", 200)
    assert timer.interval == timer.interval_ms == 200 and timer.seconds == 0.2
    for bad in (0, -1, "5"):
        with pytest.raises(ValueError):
            DataTimer("interval", bad)  # type: ignore[arg-type]


# ---- construction without a connection --------------------------------------------------------


def test_service_construction_is_per_instance():
    a, b = Service("a"), Service("b")
    assert a.nodes is not b.nodes and a.state is not b.state and a.state.state is not b.state.state
    assert a.opts == ServiceOptions() and a.topics.prefix == ""
    assert a.id == a.service_id == "a"
    assert Service().service_id == "UndefinedID"
    custom = logging.getLogger("custom-logger")
    c = Service("c", logger=custom)
    assert c.logger is custom
    node = Node(c, "n1")
    assert node.logger.name == "custom-logger.node.n1"
    assert Service("d", opts={"hasGlobalTick": True}).opts.has_global_tick is True
    assert Service("e", state={"k": 1}).state.get("k") == 1
    shared = StateSlice()
    assert Service("f", state=shared).state is shared


@pytest.mark.parametrize("bad", ["", "a b", "a*", "x.>", 5])
def test_service_rejects_bad_ids(bad):
    with pytest.raises(ValueError):
        Service(bad)


def test_node_construction():
    service = Service("svc")
    node = Node(service=service, node_id="my-node")  # FluxLib README quick start: no DataNode needed
    assert node.id == node.node_id == "my-node" and node.node == DataNode(id="my-node")
    assert node.status is None and not node.is_initialized and not node.is_started

    descriptor = DataNode(
        id="n2", type="t", settings={"k": 1},
        inputs=[DataInput(topics=["in/a"], alias="a")], outputs=[DataOutput(alias="o", topics=["out/x"])],
    )
    n2 = Node(service, node=descriptor)
    assert n2.id == "n2" and n2.type == "t"
    n2.settings["k"] = 2
    assert descriptor.settings == {"k": 1}  # settings are the node's own copy
    assert n2.input("a").subjects == ["in.a"] and n2.output("o").subjects == ["out.x"]
    with pytest.raises(KeyError, match="no input 'zz'"):
        n2.input("zz")
    with pytest.raises(KeyError, match="no output 'zz'"):
        n2.output("zz")
    assert n2.input("a").read() is None

    # Default state: a slice of the service's state under the node id; inputs per node.
    n2.state.set("counter", 1)
    assert service.state.get("n2/counter") == 1
    n3 = Node(service, node=DataNode(id="n3", inputs=[DataInput(topics=["in/b"], alias="a")]))
    assert n3.state.get("counter") is None and n3.input("a") is not n2.input("a")
    assert Node(service, "n4", state={"x": 1}).state.get("x") == 1

    with pytest.raises(ValueError):
        Node(service)
    with pytest.raises(ValueError):
        Node(service, "has space")


def test_append_node_rejects_duplicate_ids():
    service = Service("svc")
    node = Node(service, "n1")
    service.append_node(node)
    service.append_node(node)  # same node again: no-op
    assert service.nodes == [node] and service.find_node("n1") is node
    with pytest.raises(ValueError, match="already has a node 'n1'"):
        service.append_node(Node(service, "n1"))
    assert service.find_node("nope") is None


@pytest.mark.parametrize(
    "payload, expected",
    [
        (b"", ["n1", "n2"]),
        (b"*", ["n1", "n2"]),
        (b"{}", ["n1", "n2"]),
        (b'{"node_id": "*"}', ["n1", "n2"]),
        (b'{"node_id": "n2"}', ["n2"]),
        (b'{"node_id": ["n1", "ghost"]}', ["n1"]),
        (b'"n1"', ["n1"]),
        (b"n2", ["n2"]),
        (b"ghost", []),
    ],
)
def test_target_nodes(payload, expected):
    service = Service("svc")
    for node_id in ("n1", "n2"):
        service.append_node(Node(service, node_id))
    assert [n.id for n in service.target_nodes(Message("service.svc.start", payload))] == expected


async def test_calls_before_connecting_raise_connection_error():
    service = Service("svc")
    with pytest.raises(HeraldConnectionError, match="publish failed: service 'svc' is not connected"):
        await service.publish("x", b"")
    with pytest.raises(HeraldConnectionError):
        await service.request("x", b"")
    with pytest.raises(HeraldConnectionError):
        await service.subscribe("x")
    with pytest.raises(HeraldConnectionError):
        await Node(service, "n").init()
    await service.shutdown()  # never connected: nothing to do
    await service.shutdown()


async def test_respond_needs_a_reply_subject():
    service = Service("svc")
    with pytest.raises(HeraldInvalidArgumentError, match="has no reply subject"):
        await service.respond(Message("some.subject", b"x"), b"answer")


async def test_connect_to_nothing_raises_connection_error():
    # Port 1 on loopback refuses at once; one retry, then nats-py gives up.
    service = Service("svc", servers="nats://127.0.0.1:1")
    with pytest.raises(HeraldConnectionError, match="connect failed: cannot reach nats://127.0.0.1:1"):
        await service.connect(max_reconnect_attempts=1, reconnect_time_wait=0.05, connect_timeout=2)


def test_request_errors_are_herald_errors():
    assert issubclass(HeraldTimeoutError, HeraldError) and issubclass(HeraldTimeoutError, TimeoutError)
    assert issubclass(HeraldNoRespondersError, HeraldError)


def test_herald_server_nats_url(tmp_path):
    fake = HeraldServer.__new__(HeraldServer)
    fake.binary = tmp_path / "herald"
    fake._addresses = {"grpc": "127.0.0.1:1", "nats": "127.0.0.1:4333"}
    assert fake.nats_url == "nats://127.0.0.1:4333" and fake.has_nats
    fake._addresses = {"grpc": "127.0.0.1:1", "admin": "127.0.0.1:2"}
    with pytest.raises(HeraldServerError, match="no NATS listener"):
        _ = fake.nats_url
    assert not fake.has_nats
