"""C06–C07: Subscribe — resuming from the committed offset, tail, explicit start, errors (compat/flowmesh.md §3.3)."""

import time


def _message_frame(frame):
    """A data frame has ``message`` set and no ``status``; return the message."""
    assert frame.HasField("message"), f"frame without message: {frame!r}"
    assert not frame.HasField("status"), f"data frame carries a status: {frame.status!r}"
    return frame.message


def _offsets_within(sub, count, deadline):
    out = []
    for _ in range(count):
        out.append(_message_frame(sub.next_frame(deadline - time.monotonic())).offset)
    return out


# ---------------------------------------------------------------- C06


def test_c06_subscribe_resumes_after_committed_offset(fm):
    assert list(fm.write("c06", *[f"m{i}".encode() for i in range(5)]).offsets) == [0, 1, 2, 3, 4]
    fm.commit("c06", "g", 2)

    start = time.monotonic()
    with fm.subscribe("c06", "g", -1) as sub:
        assert _offsets_within(sub, 2, start + 1.0) == [3, 4]

        assert list(fm.write("c06", b"m5").offsets) == [5]
        written = time.monotonic()
        m = _message_frame(sub.next_frame(written + 1.0 - time.monotonic()))
        assert (m.offset, m.payload, m.resource_path) == (5, b"m5", "t1/ns1/stream/c06")

    # Subscribe never commits on the client's behalf.
    assert fm.get_offset("c06", "g") == 2

    with fm.subscribe("c06", "g-new", -1) as sub:
        first = _message_frame(sub.next_frame(1.0))
        assert first.offset == 0


# ---------------------------------------------------------------- C07


def test_c07_tail_and_explicit_start(fm):
    assert list(fm.write("c07", *[f"m{i}".encode() for i in range(5)]).offsets) == [0, 1, 2, 3, 4]

    start = time.monotonic()
    with fm.subscribe("c07", "g", -2) as tail, fm.subscribe("c07", "g", 3) as from3:
        # Explicit start: 3 and 4, then the call waits.
        assert _offsets_within(from3, 2, start + 1.0) == [3, 4]
        # Tail: nothing for 1 s.
        tail.expect_silence(1.0)
        from3.expect_silence(0.2)

        assert list(fm.write("c07", b"m5", b"m6").offsets) == [5, 6]
        written = time.monotonic()
        assert _offsets_within(tail, 2, written + 1.0) == [5, 6]
        assert _offsets_within(from3, 2, written + 1.0) == [5, 6]


def _subscribe_error(sub):
    """The call must fail before producing any frame; return (code name, details)."""
    try:
        e = sub.expect_error(10)
        return e.code().name, e.details()
    finally:
        sub.cancel()


def test_c07_invalid_start_offset(fm):
    assert _subscribe_error(fm.subscribe("c07", "g", -3, timeout=10)) == (
        "INVALID_ARGUMENT",
        "start_offset must be >= 0, -1 (committed), or -2 (latest)",
    )


def test_c07_missing_stream(fm):
    # FlowMesh streams endless status.code=13 frames; Herald fails the call up front (D8).
    assert _subscribe_error(fm.subscribe("missing", "g", 0, timeout=10)) == (
        "NOT_FOUND",
        "stream not found: t1/ns1/stream/missing",
    )


def test_c07_missing_stream_resume_from_committed(fm):
    # Subscribe(-1) on a missing stream: FlowMesh INTERNAL; Herald NOT_FOUND (D7, D8; §3.9).
    assert _subscribe_error(fm.subscribe("missing", "g", -1, timeout=10)) == (
        "NOT_FOUND",
        "stream not found: t1/ns1/stream/missing",
    )
