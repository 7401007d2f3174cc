"""C28: the schema registry and validation on write (compat/flowmesh.md §1.7, §3.6; Herald decision D13).

Schema ids are chosen per test (and tenants other than t1 where a test needs a registry of its own), because one
server serves the whole session and registrations cannot be undone by re-running a scenario.
"""

import json

from fm_wire import TENANT, assert_status, expect_error, now_ns, secs

ORDER_SCHEMA = {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}
ORDER = json.dumps(ORDER_SCHEMA).encode()


def register(fm, schema_id, version, definition=ORDER, schema_type="jsonschema", tenant=TENANT):
    return fm.schema.RegisterSchema(
        fm.pb.RegisterSchemaRequest(
            tenant=tenant, schema_id=schema_id, schema_type=schema_type, version=version, definition=definition
        )
    )


def get(fm, schema_id, version=0, tenant=TENANT):
    return fm.schema.GetSchema(fm.pb.GetSchemaRequest(tenant=tenant, schema_id=schema_id, version=version))


def listing(fm, tenant, schema_id=""):
    return fm.schema.ListSchemas(fm.pb.ListSchemasRequest(tenant=tenant, schema_id=schema_id))


def delete(fm, schema_id, version, tenant=TENANT):
    return fm.schema.DeleteSchema(fm.pb.DeleteSchemaRequest(tenant=tenant, schema_id=schema_id, version=version))


def attach(fm, resource_type, name, schema_id, version=0, **path):
    return fm.schema.SetResourceSchema(
        fm.pb.SetResourceSchemaRequest(
            resource_path=fm.rp(resource_type, name, **path), schema_id=schema_id, version=version
        )
    )


def j(doc) -> bytes:
    return json.dumps(doc).encode()


# ---------------------------------------------------------------- C28


def test_c28_schema_validation_on_write(fm):
    assert_status(register(fm, "order", 1), "schema registered successfully")
    # D13: FlowMesh answers a duplicate with INTERNAL.
    expect_error(lambda: register(fm, "order", 1), "ALREADY_EXISTS", "schema order version 1 already exists")
    e = expect_error(lambda: register(fm, "order", 2, definition=b"{"), "INVALID_ARGUMENT")
    assert e.details().startswith("invalid schema definition:"), e.details()

    got = get(fm, "order", 0)
    assert_status(got, "schema retrieved successfully")
    assert got.schema.version == 1

    assert_status(attach(fm, "stream", "c28", "order", 0), "schema attached to resource successfully")

    w = fm.write("c28", j({"id": "a"}))
    assert_status(w, "events written successfully")
    assert list(w.offsets) == [0]
    msgs = fm.read("c28", 0, 10).messages
    assert [(m.offset, m.schema_version) for m in msgs] == [(0, 1)]

    # One invalid event rejects the whole request, with INVALID_ARGUMENT (D13; FlowMesh: INTERNAL).
    e = expect_error(lambda: fm.write("c28", j({"id": "b"}), j({"x": 1})), "INVALID_ARGUMENT")
    assert "event 1" in e.details() and "validation failed" in e.details(), e.details()
    assert fm.latest("c28") == 0
    # A payload that is not JSON at all is rejected the same way.
    e = expect_error(lambda: fm.write("c28", b"not json"), "INVALID_ARGUMENT")
    assert "event 0" in e.details(), e.details()
    assert fm.latest("c28") == 0

    expect_error(
        lambda: attach(fm, "kv", "c28", "order", 0), "INVALID_ARGUMENT", "resource_type must be 'stream' or 'queue'"
    )
    expect_error(
        lambda: attach(fm, "stream", "missing", "order", 0), "NOT_FOUND", "resource not found: t1/ns1/stream/missing"
    )


def test_c28_error_text_names_the_stream_the_event_and_the_failure(fm):
    # Runs whatever C28 left attached to c28: attach a schema of this test's own (attachment replaces).
    register(fm, "c28-text", 1)
    attach(fm, "stream", "c28", "c28-text", 1)
    e = expect_error(lambda: fm.write("c28", j({"id": "ok"}), j({"id": 5})), "INVALID_ARGUMENT")
    prefix = "failed to write to stream t1/ns1/stream/c28: event 1 validation failed: "
    assert e.details().startswith(prefix), e.details()
    assert "c28-text" in e.details() and "/id" in e.details(), e.details()
    before = fm.latest("c28")
    w = fm.write("c28", j({"id": "ok"}))
    assert list(w.offsets) == [before + 1]
    assert fm.read("c28", before + 1, 1).messages[0].schema_version == 1


def test_c28_queue_enqueue_is_validated(fm):
    register(fm, "c28-job", 3)
    assert_status(attach(fm, "queue", "c28", "c28-job", 0), "schema attached to resource successfully")
    ok = fm.enqueue("c28", j({"id": "job-1"}))
    assert_status(ok, "job enqueued successfully")
    e = expect_error(lambda: fm.enqueue("c28", j({"id": ["not", "a", "string"]})), "INVALID_ARGUMENT")
    assert e.details().startswith("failed to enqueue job to queue t1/ns1/queue/c28: payload validation failed: "), (
        e.details()
    )
    expect_error(lambda: fm.enqueue("c28", b"\x00\x01"), "INVALID_ARGUMENT")
    assert fm.stats("c28").total_jobs == 1


def test_c28_deleted_attached_version_fails_writes_with_internal(fm):
    register(fm, "c28b", 1)
    # An explicit version is not checked at attach time; version 9 does not exist.
    assert_status(attach(fm, "stream", "c28b", "c28b", 9), "schema attached to resource successfully")
    e = expect_error(lambda: fm.write("c28b", j({"id": "a"})), "INTERNAL")
    assert "failed to get schema" in e.details(), e.details()
    attach(fm, "stream", "c28b", "c28b", 1)
    fm.write("c28b", j({"id": "a"}))
    assert_status(delete(fm, "c28b", 1), "schema deleted successfully")
    e = expect_error(lambda: fm.write("c28b", j({"id": "b"})), "INTERNAL")
    assert e.details().startswith("failed to write to stream t1/ns1/stream/c28b: failed to get schema"), e.details()
    assert fm.latest("c28b") == 0


def test_c28_set_resource_schema_checks(fm):
    pb = fm.pb
    call = fm.schema.SetResourceSchema
    expect_error(
        lambda: call(pb.SetResourceSchemaRequest(schema_id="order")), "INVALID_ARGUMENT", "resource_path is required"
    )
    # schema_id is checked before the path components.
    expect_error(
        lambda: call(pb.SetResourceSchemaRequest(resource_path=fm.rp("stream", "c28", tenant=" "), schema_id="")),
        "INVALID_ARGUMENT",
        "schema_id is required",
    )
    expect_error(
        lambda: attach(fm, "stream", "c28", "order", tenant=" "), "INVALID_ARGUMENT", "tenant cannot be empty"
    )
    expect_error(
        lambda: attach(fm, "topic", "c28", "order"),
        "INVALID_ARGUMENT",
        "invalid resource type: topic (must be stream, queue, or kv)",
    )
    # Version 0 means "latest now": NOT_FOUND when nothing is registered under that id.
    expect_error(
        lambda: attach(fm, "queue", "c28", "never-registered", 0), "NOT_FOUND", "schema not found: never-registered"
    )


# ---------------------------------------------------------------- registry RPCs (§3.6)


def test_register_checks_in_contract_order(fm):
    t = "t-reg"
    invalid = "INVALID_ARGUMENT"
    expect_error(lambda: register(fm, "", 0, b"", schema_type="", tenant=""), invalid, "tenant is required")
    expect_error(lambda: register(fm, "", 0, b"", schema_type="", tenant=t), invalid, "schema_id is required")
    expect_error(lambda: register(fm, "s", 0, b"", schema_type="", tenant=t), invalid, "schema_type is required")
    expect_error(lambda: register(fm, "s", 0, b"", tenant=t), invalid, "version must be positive")
    expect_error(lambda: register(fm, "s", -1, ORDER, tenant=t), invalid, "version must be positive")
    expect_error(lambda: register(fm, "s", 1, b"", tenant=t), invalid, "definition cannot be empty")
    e = expect_error(lambda: register(fm, "s", 1, j({"type": 12}), tenant=t), invalid)
    assert e.details().startswith("invalid schema definition: "), e.details()
    # Other schema types are stored without any check.
    raw = register(fm, "raw", 1, b"\xff not json", schema_type="avro", tenant=t)
    assert_status(raw, "schema registered successfully")
    s = get(fm, "raw", 1, tenant=t).schema
    assert (s.type, s.definition) == ("avro", b"\xff not json")


def test_get_list_delete(fm):
    t = "t-list"
    started = now_ns()
    for schema_id, version in [("order", 5), ("order", 1), ("audit", 2), ("order", 3)]:
        register(fm, schema_id, version, tenant=t)
    latest = get(fm, "order", 0, tenant=t).schema
    assert (latest.id, latest.type, latest.version, latest.definition) == ("order", "jsonschema", 5, ORDER)
    assert abs(secs(latest.created_at - started)) < 60
    assert get(fm, "order", -4, tenant=t).schema.version == 5
    assert get(fm, "order", 3, tenant=t).schema.version == 3
    expect_error(lambda: get(fm, "order", 2, tenant=t), "NOT_FOUND", "schema not found: order (version 2)")
    expect_error(lambda: get(fm, "nope", 0, tenant=t), "NOT_FOUND", "schema not found: nope")
    expect_error(lambda: get(fm, "order", tenant=""), "INVALID_ARGUMENT", "tenant is required")
    expect_error(lambda: get(fm, "", tenant=t), "INVALID_ARGUMENT", "schema_id is required")

    all_ = listing(fm, t)
    assert_status(all_, "schemas listed successfully")
    assert [(s.id, s.version) for s in all_.schemas] == [("audit", 2), ("order", 1), ("order", 3), ("order", 5)]
    assert [(s.id, s.version) for s in listing(fm, t, "order").schemas] == [("order", 1), ("order", 3), ("order", 5)]
    assert list(listing(fm, "t-nobody").schemas) == []
    expect_error(lambda: listing(fm, ""), "INVALID_ARGUMENT", "tenant is required")

    assert_status(delete(fm, "order", 5, tenant=t), "schema deleted successfully")
    assert get(fm, "order", 0, tenant=t).schema.version == 3
    expect_error(lambda: delete(fm, "order", 5, tenant=t), "NOT_FOUND", "schema not found: order (version 5)")
    expect_error(lambda: delete(fm, "order", 0, tenant=t), "INVALID_ARGUMENT", "version must be positive")
    expect_error(lambda: delete(fm, "", 1, tenant=t), "INVALID_ARGUMENT", "schema_id is required")
    expect_error(lambda: delete(fm, "order", 1, tenant=""), "INVALID_ARGUMENT", "tenant is required")


def test_tenants_are_isolated(fm):
    # FlowMesh's latest-version cache is keyed by schema id alone; Herald keeps everything per tenant (§3.6).
    register(fm, "shared", 9, tenant="t-iso-a")
    register(fm, "shared", 1, tenant="t-iso-b")
    assert get(fm, "shared", 0, tenant="t-iso-b").schema.version == 1
    expect_error(lambda: get(fm, "shared", 9, tenant="t-iso-b"), "NOT_FOUND", "schema not found: shared (version 9)")
    assert [s.version for s in listing(fm, "t-iso-b").schemas] == [1]
    # Same id and version in another tenant is not a duplicate.
    assert_status(register(fm, "shared", 9, tenant="t-iso-b"), "schema registered successfully")


def test_schema_calls_require_a_token(fm_noauth):
    pb = fm_noauth.pb
    # Authentication precedes validation: an empty request without a token is UNAUTHENTICATED.
    empty = pb.RegisterSchemaRequest()
    expect_error(lambda: fm_noauth.schema.RegisterSchema(empty), "UNAUTHENTICATED", "authentication required")
    wrong = (("authorization", "Bearer wrong"),)
    expect_error(
        lambda: fm_noauth.schema.ListSchemas(pb.ListSchemasRequest(tenant=TENANT), metadata=wrong),
        "UNAUTHENTICATED",
        "invalid or expired token",
    )
