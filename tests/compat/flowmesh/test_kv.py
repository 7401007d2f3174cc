"""C20–C22: KV basics, TTL and listing (compat/flowmesh.md §3.5; Herald decision D9)."""

import time

import grpc
import pytest

from fm_wire import assert_status, call_error, expect_error

MISSING_STORE = "KV store not found: t1/ns1/kv/missing"


# ---------------------------------------------------------------- C20


def test_c20_kv_basics(fm):
    assert_status(fm.kv_set("c20", "k1", b"v1"), "key-value pair set successfully")
    got = fm.kv_get("c20", "k1")
    assert_status(got, "value retrieved successfully")
    assert got.value == b"v1"
    ex = fm.kv_exists("c20", "k1")
    assert_status(ex, "existence check completed")
    assert ex.exists is True

    assert_status(fm.kv_set("c20", "k1", b"v2"), "key-value pair set successfully")
    assert fm.kv_get("c20", "k1").value == b"v2"

    assert_status(fm.kv_delete("c20", "k1"), "key deleted successfully")
    assert fm.kv_exists("c20", "k1").exists is False
    expect_error(lambda: fm.kv_get("c20", "k1"), "NOT_FOUND", "key k1 not found in KV store t1/ns1/kv/c20")
    assert_status(fm.kv_delete("c20", "k1"), "key deleted successfully")  # idempotent


def test_c20_kv_request_errors(fm):
    pb = fm.pb
    expect_error(lambda: fm.kv_set("c20", "", b"v"), "INVALID_ARGUMENT", "key cannot be empty")
    expect_error(lambda: fm.kv_set("c20", "k", b""), "INVALID_ARGUMENT", "value cannot be empty")
    expect_error(
        lambda: fm.kv.Set(pb.SetRequest(resource_path=fm.rp("stream", "c20"), key="k", value=b"v")),
        "INVALID_ARGUMENT",
        "resource_type must be 'kv'",
    )


def test_c20_missing_store(fm):
    calls = {
        "Set": lambda: fm.kv_set("missing", "k", b"v"),
        "Get": lambda: fm.kv_get("missing", "k"),
        "Exists": lambda: fm.kv_exists("missing", "k"),
        "Delete": lambda: fm.kv_delete("missing", "k"),
        "ListKeys": lambda: fm.kv_list("missing"),
    }
    failures = []
    for name, call in calls.items():
        try:
            expect_error(call, "NOT_FOUND", MISSING_STORE)
        except (AssertionError, pytest.fail.Exception) as e:
            failures.append(f"{name}: {e}")
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------- C21


@pytest.mark.slow
def test_c21_kv_ttl(fm):
    # Start the 12 s overwrite check first and do the rest of the scenario while it runs.
    fm.kv_set("c21", "t2", b"x", ttl=1)
    assert_status(fm.kv_set("c21", "t2", b"y"), "key-value pair set successfully")
    overwritten_at = time.monotonic()
    assert_status(fm.kv_set("c21", "neg", b"forever", ttl=-5), "key-value pair set successfully")

    set_at = time.monotonic()
    fm.kv_set("c21", "t", b"x", ttl=1)
    fm.kv_set("c21", "t3", b"x", ttl=1)  # never read with Get before the Exists/ListKeys checks
    assert fm.kv_get("c21", "t").value == b"x"

    time.sleep(max(0.0, set_at + 1.5 - time.monotonic()))
    # D9: an expired key is invisible to Exists and ListKeys at once, even before any Get deletes it.
    assert fm.kv_exists("c21", "t3").exists is False, "Exists reports an expired key (D9)"
    assert "t3" not in list(fm.kv_list("c21", "").keys), "ListKeys reports an expired key (D9)"

    e = call_error(lambda: fm.kv_get("c21", "t"))
    assert e.code().name == "NOT_FOUND", f"got {e.code().name} {e.details()!r}"
    assert "has expired" in e.details() or "not found" in e.details(), e.details()
    assert e.details() in (
        "key t in KV store t1/ns1/kv/c21 has expired",
        "key t not found in KV store t1/ns1/kv/c21",
    ), e.details()
    assert fm.kv_exists("c21", "t").exists is False
    assert "t" not in list(fm.kv_list("c21", "").keys)

    expect_error(
        lambda: fm.kv_set("c21", "big", b"x", ttl=31536001),
        "INVALID_ARGUMENT",
        "ttl_seconds cannot exceed 31536000 (1 year)",
    )

    time.sleep(max(0.0, overwritten_at + 12.0 - time.monotonic()))
    # FlowMesh's reaper deletes t2 at the old expiry (D9).
    got = call_error_or_value(lambda: fm.kv_get("c21", "t2"))
    assert got == b"y", f"Get(t2) 12 s after overwriting without TTL: {got}"
    assert fm.kv_get("c21", "neg").value == b"forever", "ttl -5 must mean no expiry"
    assert fm.kv_exists("c21", "neg").exists is True


def call_error_or_value(fn):
    """The response's value, or a description of the gRPC error (for assertion messages)."""
    try:
        return fn().value
    except grpc.RpcError as err:
        return f"error {err.code().name} {err.details()!r}"


# ---------------------------------------------------------------- C22


def test_c22_kv_listing(fm):
    for k in ["user:2", "user:10", "order:1", "user:1", "a.b"]:
        fm.kv_set("c22", k, b"v")
    all_keys = fm.kv_list("c22", "")
    assert_status(all_keys, "keys listed successfully")
    assert list(all_keys.keys) == ["a.b", "order:1", "user:1", "user:10", "user:2"]
    assert list(fm.kv_list("c22", "user:").keys) == ["user:1", "user:10", "user:2"]
    assert list(fm.kv_list("c22", "zzz").keys) == []
    empty = fm.kv_list("c22e", "")
    assert_status(empty, "keys listed successfully")
    assert list(empty.keys) == []
