import dataclasses
from datetime import datetime

import pytest

from herald._generated import flowmesh_pb2 as pb
from herald.types import ConsumerGroupState, Event, Job, Message, QueueStats, RetryPolicy

NANOS_2024 = 1704067200000000000


def field_names(cls):
    return [f.name for f in dataclasses.fields(cls)]


def test_field_order_matches_the_spec():
    assert field_names(Event) == ["payload", "headers"]
    assert field_names(Message) == [
        "id", "resource_path", "partition", "offset", "payload", "headers", "created_at", "schema_version",
    ]
    assert field_names(Job) == [
        "id", "resource_path", "seq", "payload", "headers", "created_at", "visible_at", "reserve_until", "attempts",
    ]
    assert field_names(QueueStats) == [
        "total_jobs", "pending_jobs", "in_flight_jobs", "completed_jobs", "failed_jobs", "oldest_job_age_seconds",
    ]
    assert field_names(RetryPolicy) == [
        "max_attempts", "initial_backoff_seconds", "max_backoff_seconds", "backoff_multiplier", "backoff_strategy",
    ]
    assert field_names(ConsumerGroupState) == [
        "stream", "group", "partition", "committed_offset", "latest_offset", "lag",
    ]


def test_event_defaults():
    assert Event(payload=b"x").headers == {}
    assert Event(payload=b"x", headers=None).headers == {}
    assert Event(b"x", {"k": "v"}).headers == {"k": "v"}
    # defaults are not shared between instances
    a, b = Event(payload=b"a"), Event(payload=b"b")
    a.headers["k"] = "v"
    assert b.headers == {}


def test_event_to_proto():
    msg = Event(payload=b"p", headers={"k": "v"}).to_proto()
    assert msg.payload == b"p"
    assert dict(msg.headers) == {"k": "v"}


def test_message_keyword_construction_and_default_schema_version():
    now = datetime.now()
    m = Message(
        id="abc", resource_path="t/n/stream/s", partition=0, offset=3,
        payload=b"p", headers={}, created_at=now,
    )
    assert m.schema_version == 0
    assert m.created_at is now


def test_job_and_stats_require_every_field():
    with pytest.raises(TypeError):
        Job(id="x")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        QueueStats(total_jobs=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ConsumerGroupState(stream="s")  # type: ignore[call-arg]


def test_retry_policy_defaults_are_the_server_defaults():
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.initial_backoff_seconds, policy.max_backoff_seconds) == (3, 1, 60)
    assert policy.backoff_multiplier == 2.0
    assert policy.backoff_strategy == "exponential"
    assert RetryPolicy(max_attempts=1, backoff_strategy="fixed").max_backoff_seconds == 60


def test_retry_policy_round_trip():
    policy = RetryPolicy(5, 2, 120, 3.0, "linear")
    assert RetryPolicy.from_proto(policy.to_proto()) == policy


def test_message_from_proto():
    proto = pb.Message(
        id="id1", resource_path="t1/ns1/stream/s", partition=0, offset=7, payload=b"data",
        headers={"a": "b"}, created_at=NANOS_2024 + 1_500, schema_version=2,
    )
    m = Message.from_proto(proto)
    assert m == Message(
        id="id1", resource_path="t1/ns1/stream/s", partition=0, offset=7, payload=b"data",
        headers={"a": "b"}, created_at=datetime(2024, 1, 1, 0, 0, 0, 1), schema_version=2,
    )
    assert type(m.headers) is dict
    assert type(m.payload) is bytes


def test_job_from_proto_reserved_and_not():
    proto = pb.Job(
        id="j", resource_path="t1/ns1/queue/q", seq=4, payload=b"x", headers={"h": "v"},
        created_at=NANOS_2024, visible_at=NANOS_2024 + 2_000_000_000,
        reserve_until=NANOS_2024 + 32_000_000_000, attempts=1,
    )
    job = Job.from_proto(proto)
    assert job.created_at == datetime(2024, 1, 1)
    assert job.visible_at == datetime(2024, 1, 1, 0, 0, 2)
    assert job.reserve_until == datetime(2024, 1, 1, 0, 0, 32)
    assert (job.seq, job.attempts, job.headers) == (4, 1, {"h": "v"})

    proto.reserve_until = 0
    assert Job.from_proto(proto).reserve_until is None


def test_dead_letter_created_at_in_seconds_is_tolerated():
    proto = pb.Job(id="d", seq=0, payload=b"x", created_at=1704067200)
    assert Job.from_proto(proto, created_at_may_be_seconds=True).created_at == datetime(2024, 1, 1)
    proto.created_at = NANOS_2024
    assert Job.from_proto(proto, created_at_may_be_seconds=True).created_at == datetime(2024, 1, 1)
    assert Job.from_proto(proto).created_at == datetime(2024, 1, 1)


def test_stats_and_group_state_from_proto():
    stats = QueueStats.from_proto(pb.QueueStats(
        total_jobs=6, pending_jobs=1, in_flight_jobs=2, completed_jobs=3, failed_jobs=4, oldest_job_age_seconds=5,
    ))
    assert stats == QueueStats(6, 1, 2, 3, 4, 5)
    state = ConsumerGroupState.from_proto(pb.ConsumerGroupState(
        stream="t1/ns1/stream/s", group="g", partition=0, committed_offset=-1, latest_offset=4, lag=5,
    ))
    assert state == ConsumerGroupState("t1/ns1/stream/s", "g", 0, -1, 4, 5)
