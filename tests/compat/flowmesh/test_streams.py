"""C03–C05: stream writes and reads, stream errors, consumer-group offsets and lag (compat/flowmesh.md §3.3)."""

from fm_wire import HEX32, assert_status, expect_error, now_ns, user_headers

MISSING_STREAM = "stream not found: t1/ns1/stream/missing"


# ---------------------------------------------------------------- C03


def test_c03_write_and_read(fm):
    pb = fm.pb
    resp = fm.write("c03", b"a", b"b", b"c", headers=[{"k": "1"}])
    assert_status(resp, "events written successfully")
    assert list(resp.offsets) == [0, 1, 2]

    read = fm.read("c03", offset=0, max_messages=10)
    assert_status(read, "messages read successfully")
    msgs = list(read.messages)
    assert [m.offset for m in msgs] == [0, 1, 2]
    assert [m.partition for m in msgs] == [0, 0, 0]
    assert [m.resource_path for m in msgs] == ["t1/ns1/stream/c03"] * 3
    assert [m.payload for m in msgs] == [b"a", b"b", b"c"]
    assert msgs[0].headers["k"] == "1"
    assert user_headers(msgs[0].headers) == {"k": "1"}
    assert user_headers(msgs[1].headers) == {}
    ids = [m.id for m in msgs]
    assert all(HEX32.match(i) for i in ids), ids
    assert len(set(ids)) == 3, ids
    created = [m.created_at for m in msgs]
    assert created == sorted(created), created
    now = now_ns()
    for c in created:
        assert abs(now - c) <= 60 * 10**9, f"created_at {c} not within 60 s of now {now}"
    assert [m.schema_version for m in msgs] == [0, 0, 0]

    resp2 = fm.write("c03", b"d", b"e")
    assert_status(resp2, "events written successfully")
    assert list(resp2.offsets) == [3, 4]
    assert fm.latest("c03") == 4

    one = fm.read("c03", offset=1, max_messages=1)
    assert [(m.offset, m.payload) for m in one.messages] == [(1, b"b")]

    past_end = fm.read("c03", offset=5)
    assert_status(past_end, "messages read successfully")
    assert list(past_end.messages) == []

    default_max = fm.read("c03", offset=0, max_messages=0)
    assert [m.offset for m in default_max.messages] == [0, 1, 2, 3, 4]
    assert [m.payload for m in default_max.messages] == [b"a", b"b", b"c", b"d", b"e"]

    other_partition = fm.read("c03", offset=0, partition=1)
    assert list(other_partition.messages) == []

    latest_p1 = fm.stream.GetLatestOffset(pb.GetLatestOffsetRequest(resource_path=fm.rp("stream", "c03"), partition=1))
    assert_status(latest_p1, "latest offset retrieved successfully")
    assert latest_p1.offset == -1


# ---------------------------------------------------------------- C04


def test_c04_write_validation(fm):
    pb = fm.pb
    fm.write("c04", b"seed")
    assert fm.latest("c04") == 0

    expect_error(
        lambda: fm.stream.WriteEvents(pb.WriteEventsRequest(resource_path=fm.rp("stream", "c04"), events=[])),
        "INVALID_ARGUMENT",
        "at least one event is required",
    )
    expect_error(
        lambda: fm.stream.WriteEvents(
            pb.WriteEventsRequest(
                resource_path=fm.rp("stream", "c04"), events=[pb.Event(payload=b"x"), pb.Event(payload=b"")]
            )
        ),
        "INVALID_ARGUMENT",
        "event 1: payload cannot be empty",
    )
    assert fm.latest("c04") == 0, "a rejected WriteEvents must not change the stream"

    def write_to(rp):
        return lambda: fm.stream.WriteEvents(pb.WriteEventsRequest(resource_path=rp, events=[pb.Event(payload=b"x")]))

    expect_error(write_to(fm.rp("queue", "c04")), "INVALID_ARGUMENT", "resource_type must be 'stream'")
    expect_error(
        write_to(pb.ResourcePath(tenant="  ", namespace="ns1", resource_type="stream", name="c04")),
        "INVALID_ARGUMENT",
        "tenant cannot be empty",
    )
    expect_error(
        write_to(fm.rp("topic", "c04")),
        "INVALID_ARGUMENT",
        "invalid resource type: topic (must be stream, queue, or kv)",
    )
    expect_error(
        lambda: fm.stream.WriteEvents(pb.WriteEventsRequest(events=[pb.Event(payload=b"x")])),
        "INVALID_ARGUMENT",
        "resource_path is required",
    )
    expect_error(lambda: fm.read("c04", offset=-1), "INVALID_ARGUMENT", "offset cannot be negative")
    assert fm.latest("c04") == 0


def test_c04_missing_stream(fm):
    pb = fm.pb
    rp = fm.rp("stream", "missing")
    expect_error(
        lambda: fm.stream.WriteEvents(pb.WriteEventsRequest(resource_path=rp, events=[pb.Event(payload=b"x")])),
        "NOT_FOUND",
        MISSING_STREAM,
    )
    expect_error(lambda: fm.read("missing", offset=0), "NOT_FOUND", MISSING_STREAM)
    expect_error(lambda: fm.latest("missing"), "NOT_FOUND", MISSING_STREAM)


def test_c04_missing_stream_consumer_group_calls(fm):
    # FlowMesh answers INTERNAL here; Herald NOT_FOUND (D7).
    expect_error(lambda: fm.commit("missing", "g", 0), "NOT_FOUND", MISSING_STREAM)
    expect_error(lambda: fm.get_offset("missing", "g"), "NOT_FOUND", MISSING_STREAM)
    expect_error(lambda: fm.group_state("missing", "g"), "NOT_FOUND", MISSING_STREAM)


# ---------------------------------------------------------------- C05


def _state(fm, name, group):
    resp = fm.group_state(name, group)
    assert_status(resp, "consumer group state retrieved successfully")
    s = resp.state
    return (s.stream, s.group, s.partition, s.committed_offset, s.latest_offset, s.lag)


def test_c05_offsets_and_lag(fm):
    assert list(fm.write("c05", *[f"m{i}".encode() for i in range(5)]).offsets) == [0, 1, 2, 3, 4]

    r = fm.stream.GetOffset(fm.pb.GetOffsetRequest(resource_path=fm.rp("stream", "c05"), consumer_group="g1"))
    assert_status(r, "offset retrieved successfully")
    assert r.offset == -1
    assert _state(fm, "c05", "g1") == ("t1/ns1/stream/c05", "g1", 0, -1, 4, 5)

    assert_status(fm.commit("c05", "g1", 2), "offset committed successfully")
    assert fm.get_offset("c05", "g1") == 2
    assert _state(fm, "c05", "g1") == ("t1/ns1/stream/c05", "g1", 0, 2, 4, 2)

    assert_status(fm.commit("c05", "g1", 4), "offset committed successfully")
    assert _state(fm, "c05", "g1")[3:] == (4, 4, 0)

    assert_status(fm.commit("c05", "g1", 1), "offset committed successfully")  # backwards
    assert fm.get_offset("c05", "g1") == 1
    assert _state(fm, "c05", "g1")[3:] == (1, 4, 3)

    assert_status(fm.commit("c05", "g1", 10), "offset committed successfully")  # beyond latest
    assert fm.get_offset("c05", "g1") == 10
    assert _state(fm, "c05", "g1")[3:] == (10, 4, 0)

    assert_status(fm.commit("c05", "g1", -1), "offset committed successfully")
    assert fm.get_offset("c05", "g1") == -1
    assert _state(fm, "c05", "g1")[3:] == (-1, 4, 5)

    expect_error(lambda: fm.commit("c05", "g1", -2), "INVALID_ARGUMENT", "offset cannot be less than -1")
    assert fm.get_offset("c05", "g1") == -1


def test_c05_consumer_group_required(fm):
    expect_error(lambda: fm.commit("c05", "", 0), "INVALID_ARGUMENT", "consumer_group is required")
    expect_error(lambda: fm.get_offset("c05", ""), "INVALID_ARGUMENT", "consumer_group is required")
    expect_error(lambda: fm.group_state("c05", ""), "INVALID_ARGUMENT", "consumer_group is required")


def test_c05_empty_stream(fm):
    assert fm.latest("c05e") == -1
    assert _state(fm, "c05e", "g1") == ("t1/ns1/stream/c05e", "g1", 0, -1, -1, -1)
