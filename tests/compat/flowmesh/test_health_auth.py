"""C01 (gRPC part) and C02: health checks and authentication (compat/flowmesh.md §3.2, §4.1)."""

from fm_wire import assert_status, expect_error


def _health_calls(fm_noauth, metadata):
    pb = fm_noauth.pb
    kw = {"timeout": 10}
    if metadata is not None:
        kw["metadata"] = metadata
    h = fm_noauth.raw_health.HealthCheck(pb.HealthCheckRequest(), **kw)
    r = fm_noauth.raw_health.ReadinessCheck(pb.ReadinessCheckRequest(), **kw)
    return h, r


def test_c01_health_and_readiness_without_metadata(fm_noauth):
    h, r = _health_calls(fm_noauth, None)
    assert_status(h, "healthy")
    assert r.ready is True
    assert_status(r, "ready")


def test_c01_health_and_readiness_with_wrong_token(fm_noauth):
    h, r = _health_calls(fm_noauth, (("authorization", "Bearer wrong"),))
    assert_status(h, "healthy")
    assert r.ready is True
    assert_status(r, "ready")


def _latest_req(fm, name="c02"):
    return fm.pb.GetLatestOffsetRequest(resource_path=fm.rp("stream", name))


def test_c02_no_metadata(fm_noauth):
    expect_error(
        lambda: fm_noauth.raw_stream.GetLatestOffset(_latest_req(fm_noauth), timeout=10),
        "UNAUTHENTICATED",
        "authentication required",
    )


def test_c02_wrong_scheme(fm_noauth):
    expect_error(
        lambda: fm_noauth.raw_stream.GetLatestOffset(
            _latest_req(fm_noauth), metadata=(("authorization", "Token test-token"),), timeout=10
        ),
        "UNAUTHENTICATED",
        "invalid authorization header format",
    )


def test_c02_empty_bearer_token(fm_noauth):
    expect_error(
        lambda: fm_noauth.raw_stream.GetLatestOffset(
            _latest_req(fm_noauth), metadata=(("authorization", "Bearer "),), timeout=10
        ),
        "UNAUTHENTICATED",
        "invalid authorization header format",
    )


def test_c02_unknown_token(fm_noauth):
    expect_error(
        lambda: fm_noauth.raw_stream.GetLatestOffset(
            _latest_req(fm_noauth), metadata=(("authorization", "Bearer wrong"),), timeout=10
        ),
        "UNAUTHENTICATED",
        "invalid or expired token",
    )


def test_c02_valid_token(fm_noauth):
    resp = fm_noauth.raw_stream.GetLatestOffset(
        _latest_req(fm_noauth), metadata=(("authorization", "Bearer test-token"),), timeout=10
    )
    assert_status(resp, "latest offset retrieved successfully")
    assert resp.offset == -1


def test_c02_authentication_precedes_validation(fm_noauth):
    pb = fm_noauth.pb
    req = pb.WriteEventsRequest(
        resource_path=pb.ResourcePath(tenant="", namespace="ns1", resource_type="stream", name="c02"),
        events=[pb.Event(payload=b"x")],
    )
    expect_error(
        lambda: fm_noauth.raw_stream.WriteEvents(req, timeout=10),
        "UNAUTHENTICATED",
        "authentication required",
    )


def test_c02_subscribe_requires_authentication(fm_noauth):
    # FlowMesh accepts an unauthenticated Subscribe; Herald must not (D8).
    sub = fm_noauth.subscribe("c02", "g", 0, timeout=10)
    try:
        e = sub.expect_error(timeout=10)
        assert (e.code().name, e.details()) == ("UNAUTHENTICATED", "authentication required"), (
            f"got {e.code().name} {e.details()!r}"
        )
    finally:
        sub.cancel()
