"""C29 (gRPC part): replay sessions — creation checks, a bounded replay that completes, the state machine
(compat/flowmesh.md §3.7, D13, D14, D15). The HTTP part of C29 belongs to the HTTP suite."""

import time

from fm_wire import HEX32, assert_status, expect_error, now_ns

STREAM_PATH = "t1/ns1/stream/c29"


def _create(fm, name="c29", sandbox="_replay_c29", **fields):
    pb = fm.pb
    return fm.replay.CreateReplaySession(
        pb.CreateReplaySessionRequest(resource_path=fm.rp("stream", name), sandbox_consumer_group=sandbox, **fields)
    )


def _get(fm, session_id):
    return fm.replay.GetReplaySession(fm.pb.GetReplaySessionRequest(session_id=session_id))


def _wait_status(fm, session_id, status, timeout):
    deadline = time.monotonic() + timeout
    while True:
        s = _get(fm, session_id).session
        if s.status == status or time.monotonic() >= deadline:
            return s
        time.sleep(0.05)


# ---------------------------------------------------------------- C29


def test_c29_bounded_replay_completes_and_positions_the_sandbox_group(fm):
    pb = fm.pb
    assert list(fm.write("c29", *[f"m{i}".encode() for i in range(5)]).offsets) == [0, 1, 2, 3, 4]

    created = _create(fm, start_offset=1, end_offset=3)
    assert_status(created, "replay session created successfully")
    s = created.session
    assert HEX32.match(s.session_id), s.session_id
    assert s.stream == STREAM_PATH
    assert s.partition == 0
    assert s.status == "created"
    assert (s.start_offset, s.end_offset, s.start_timestamp, s.end_timestamp) == (1, 3, 0, 0)
    assert s.sandbox_consumer_group == "_replay_c29"
    assert s.progress.current_offset == 1
    assert (s.progress.messages_replayed, s.progress.errors) == (0, 0)
    assert (s.progress.started_at, s.progress.paused_at, s.progress.completed_at) == (0, 0, 0)
    assert abs(now_ns() - s.created_at) <= 60 * 10**9, s.created_at
    assert s.updated_at >= s.created_at

    started = fm.replay.StartReplay(pb.StartReplayRequest(session_id=s.session_id))
    assert_status(started, "replay started successfully")
    # D14: the replay runs on after StartReplay has returned [FlowMesh: stays `active` with no progress].
    done = _wait_status(fm, s.session_id, "completed", 2.0)
    assert done.status == "completed", done
    assert done.progress.messages_replayed == 3
    assert done.progress.current_offset == 4
    assert done.progress.completed_at > 0
    assert done.progress.started_at > 0
    assert fm.get_offset("c29", "_replay_c29") == 3

    got = _get(fm, s.session_id)
    assert_status(got, "replay session retrieved successfully")
    assert got.session.session_id == s.session_id

    expect_error(
        lambda: fm.replay.StartReplay(pb.StartReplayRequest(session_id=s.session_id)),
        "FAILED_PRECONDITION",
        f"invalid session state transition: session {s.session_id} is completed, cannot transition to active",
    )


def test_c29_create_errors(fm):
    # D13: INVALID_ARGUMENT [FlowMesh INTERNAL].
    expect_error(
        lambda: _create(fm, sandbox="debug", start_offset=0, end_offset=-1),
        "INVALID_ARGUMENT",
        "sandbox consumer group name must start with _replay_",
    )
    # An unset end_offset is 0 over gRPC: "stop after offset 0", which is before the start.
    expect_error(
        lambda: _create(fm, start_offset=1),
        "INVALID_ARGUMENT",
        "invalid offset 0: end offset must be >= start offset",
    )
    # The remaining checks of §3.7, in order.
    expect_error(
        lambda: fm.replay.CreateReplaySession(fm.pb.CreateReplaySessionRequest(sandbox_consumer_group="_replay_x")),
        "INVALID_ARGUMENT",
        "resource_path is required",
    )
    expect_error(lambda: _create(fm, sandbox=""), "INVALID_ARGUMENT", "sandbox_consumer_group is required")
    expect_error(
        lambda: fm.replay.CreateReplaySession(
            fm.pb.CreateReplaySessionRequest(resource_path=fm.rp("queue", "c29"), sandbox_consumer_group="_replay_x")
        ),
        "INVALID_ARGUMENT",
        "resource_type must be 'stream'",
    )
    expect_error(
        lambda: _create(fm, start_offset=-1, end_offset=-1),
        "INVALID_ARGUMENT",
        "either start_offset or start_timestamp must be provided",
    )
    expect_error(
        lambda: _create(fm, name="missing", start_offset=0, end_offset=-1),
        "NOT_FOUND",
        "stream not found: t1/ns1/stream/missing",
    )


def test_c29_open_ended_session_state_machine(fm):
    pb = fm.pb
    fm.write("c29", b"x")
    created = _create(fm, sandbox="_replay_c29_open", start_offset=0, end_offset=-1)
    s = created.session
    assert (s.status, s.end_offset, s.end_timestamp) == ("created", -1, 0)
    sid = s.session_id
    req = {"session_id": sid}

    assert_status(fm.replay.StartReplay(pb.StartReplayRequest(**req)), "replay started successfully")
    assert _get(fm, sid).session.status == "active"
    assert_status(fm.replay.PauseReplay(pb.PauseReplayRequest(**req)), "replay paused successfully")
    paused = _get(fm, sid).session
    assert paused.status == "paused"
    assert paused.progress.paused_at > 0
    assert_status(fm.replay.ResumeReplay(pb.ResumeReplayRequest(**req)), "replay resumed successfully")
    resumed = _get(fm, sid).session
    assert (resumed.status, resumed.progress.paused_at) == ("active", 0)
    # Without an end the session keeps following the stream.
    time.sleep(0.3)
    assert _get(fm, sid).session.status == "active"
    assert_status(fm.replay.StopReplay(pb.StopReplayRequest(**req)), "replay stopped successfully")
    assert _get(fm, sid).session.status == "stopped"
    assert_status(fm.replay.StopReplay(pb.StopReplayRequest(**req)), "replay stopped successfully")
    expect_error(
        lambda: fm.replay.StartReplay(pb.StartReplayRequest(**req)),
        "FAILED_PRECONDITION",
        f"invalid session state transition: session {sid} is stopped, cannot transition to active",
    )
    # D13: FAILED_PRECONDITION [FlowMesh INTERNAL].
    expect_error(
        lambda: fm.replay.PauseReplay(pb.PauseReplayRequest(**req)),
        "FAILED_PRECONDITION",
        f"replay session {sid} is not active",
    )
    assert_status(
        fm.replay.DeleteReplaySession(pb.DeleteReplaySessionRequest(**req)), "replay session deleted successfully"
    )
    expect_error(lambda: _get(fm, sid), "NOT_FOUND", f"replay session not found: {sid}")


def test_c29_session_ids_are_checked(fm):
    pb = fm.pb
    unknown = "0" * 32
    calls = {
        "GetReplaySession": lambda sid: fm.replay.GetReplaySession(pb.GetReplaySessionRequest(session_id=sid)),
        "StartReplay": lambda sid: fm.replay.StartReplay(pb.StartReplayRequest(session_id=sid)),
        "PauseReplay": lambda sid: fm.replay.PauseReplay(pb.PauseReplayRequest(session_id=sid)),
        "ResumeReplay": lambda sid: fm.replay.ResumeReplay(pb.ResumeReplayRequest(session_id=sid)),
        "StopReplay": lambda sid: fm.replay.StopReplay(pb.StopReplayRequest(session_id=sid)),
        "DeleteReplaySession": lambda sid: fm.replay.DeleteReplaySession(pb.DeleteReplaySessionRequest(session_id=sid)),
    }
    for call in calls.values():
        expect_error(lambda call=call: call(""), "INVALID_ARGUMENT", "session_id is required")
        # D13: NOT_FOUND for unknown ids, Pause and Resume included [FlowMesh INTERNAL for those two].
        expect_error(lambda call=call: call(unknown), "NOT_FOUND", f"replay session not found: {unknown}")


def test_c29_list_sessions_by_stream_sorted_by_creation(fm):
    pb = fm.pb
    fm.write("c29l", b"x")
    ids = [
        _create(fm, name="c29l", sandbox=f"_replay_l{i}", start_offset=0, end_offset=-1).session.session_id
        for i in range(3)
    ]

    listed = fm.replay.ListReplaySessions(pb.ListReplaySessionsRequest(resource_path=fm.rp("stream", "c29l")))
    assert_status(listed, "replay sessions listed successfully")
    # D15: sorted by created_at [FlowMesh: no particular order].
    assert [s.session_id for s in listed.sessions] == ids
    assert {s.stream for s in listed.sessions} == {"t1/ns1/stream/c29l"}

    everything = fm.replay.ListReplaySessions(pb.ListReplaySessionsRequest())
    all_ids = [s.session_id for s in everything.sessions]
    assert set(ids) <= set(all_ids)
    created = [s.created_at for s in everything.sessions]
    assert created == sorted(created)

    # Any resource type is a valid filter; only stream paths can match.
    as_kv = fm.replay.ListReplaySessions(pb.ListReplaySessionsRequest(resource_path=fm.rp("kv", "c29l")))
    assert list(as_kv.sessions) == []
    expect_error(
        lambda: fm.replay.ListReplaySessions(pb.ListReplaySessionsRequest(resource_path=fm.rp("topic", "c29l"))),
        "INVALID_ARGUMENT",
        "invalid resource type: topic (must be stream, queue, or kv)",
    )


def test_c29_requires_authentication(fm_noauth):
    pb = fm_noauth.pb
    expect_error(
        lambda: fm_noauth.replay.ListReplaySessions(pb.ListReplaySessionsRequest()),
        "UNAUTHENTICATED",
        "authentication required",
    )
    expect_error(
        lambda: fm_noauth.replay.GetReplaySession(pb.GetReplaySessionRequest()),
        "UNAUTHENTICATED",
        "authentication required",
    )
