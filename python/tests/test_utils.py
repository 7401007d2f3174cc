from datetime import datetime, timedelta, timezone

import pytest

from herald.utils import (
    build_resource_path,
    duration_to_seconds,
    nanos_to_timestamp,
    timestamp_to_nanos,
)


def test_build_resource_path_is_a_dict_usable_as_resource_path_kwargs():
    path = build_resource_path("tenant1", "ns", "stream", "orders")
    assert path["tenant"] == "tenant1"
    assert path["namespace"] == "ns"
    assert path["resource_type"] == "stream"
    assert path["name"] == "orders"

    from herald._generated import flowmesh_pb2 as pb

    msg = pb.ResourcePath(**path)
    assert (msg.tenant, msg.namespace, msg.resource_type, msg.name) == ("tenant1", "ns", "stream", "orders")


def test_known_timestamp_is_new_year_2024_utc():
    dt = nanos_to_timestamp(1704067200000000000)
    assert (dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second) == (2024, 1, 1, 0, 0, 0)
    assert dt.tzinfo is None


def test_epoch():
    assert nanos_to_timestamp(0) == datetime(1970, 1, 1)
    assert timestamp_to_nanos(datetime(1970, 1, 1)) == 0


def test_round_trip_with_now_lands_within_a_second():
    now = datetime.now()
    back = nanos_to_timestamp(timestamp_to_nanos(now))
    assert back.tzinfo is None
    assert abs((datetime.now() - back).total_seconds()) < 1
    assert back == now  # exact at microsecond precision


def test_naive_datetime_is_utc_and_aware_uses_its_offset():
    naive = datetime(2024, 1, 1)
    assert timestamp_to_nanos(naive) == 1704067200000000000
    assert timestamp_to_nanos(naive.replace(tzinfo=timezone.utc)) == 1704067200000000000
    plus_two = datetime(2024, 1, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    assert timestamp_to_nanos(plus_two) == 1704067200000000000


def test_nanos_are_exact_integers_and_sub_microseconds_are_dropped():
    dt = datetime(2024, 5, 6, 7, 8, 9, 123456)
    nanos = timestamp_to_nanos(dt)
    assert isinstance(nanos, int)
    assert nanos % 1000 == 0
    assert nanos_to_timestamp(nanos + 999) == dt


@pytest.mark.parametrize(
    "duration, seconds",
    [
        (None, 0),
        (timedelta(0), 0),
        (timedelta(milliseconds=999), 0),
        (timedelta(seconds=1), 1),
        (timedelta(milliseconds=1500), 1),
        (timedelta(minutes=2, microseconds=1), 120),
        (timedelta(days=1), 86400),
        (timedelta(seconds=-1.5), -1),
    ],
)
def test_duration_to_seconds_truncates_toward_zero(duration, seconds):
    assert duration_to_seconds(duration) == seconds
    if duration is not None:
        assert duration_to_seconds(duration) == int(duration.total_seconds())
