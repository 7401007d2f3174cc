import grpc
import pytest

from flowmesh.exceptions import FlowMeshError, FlowMeshNotFoundError
from herald.exceptions import (
    HeraldAlreadyExistsError,
    HeraldAuthError,
    HeraldConnectionError,
    HeraldError,
    HeraldFailedPreconditionError,
    HeraldInvalidArgumentError,
    HeraldNotFoundError,
    HeraldPermissionDeniedError,
    handle_grpc_error,
    status_code_from_int,
)


class FakeRpcError:
    """Has only code() and details(), like the object the FlowMesh tests pass."""

    def __init__(self, code, details):
        self._code = code
        self._details = details

    def code(self):
        return self._code

    def details(self):
        return self._details


def test_base_error_attributes():
    err = FlowMeshError("Test error", code=1, details="details")
    assert str(err) == "Test error"
    assert err.message == "Test error"
    assert err.code == 1
    assert err.details == "details"
    assert isinstance(err, Exception)


def test_defaults():
    err = HeraldError("boom")
    assert err.code is None
    assert err.details is None


@pytest.mark.parametrize(
    "cls",
    [
        HeraldConnectionError,
        HeraldAuthError,
        HeraldNotFoundError,
        HeraldPermissionDeniedError,
        HeraldInvalidArgumentError,
        HeraldFailedPreconditionError,
        HeraldAlreadyExistsError,
    ],
)
def test_every_error_derives_from_the_base(cls):
    assert issubclass(cls, HeraldError)
    assert issubclass(cls, FlowMeshError)


def test_handle_grpc_error_returns_not_raises_and_formats_the_message():
    err = handle_grpc_error(FakeRpcError(grpc.StatusCode.NOT_FOUND, "stream not found: a/b/stream/c"), "read")
    assert isinstance(err, FlowMeshNotFoundError)
    assert "read failed" in str(err)
    assert str(err) == "read failed: stream not found: a/b/stream/c"
    assert err.code == grpc.StatusCode.NOT_FOUND
    assert err.details == "stream not found: a/b/stream/c"


def test_empty_details_give_the_bare_message():
    err = handle_grpc_error(FakeRpcError(grpc.StatusCode.INTERNAL, ""), "write")
    assert str(err) == "write failed"
    assert err.details is None
    err = handle_grpc_error(FakeRpcError(grpc.StatusCode.INTERNAL, None), "write")
    assert str(err) == "write failed"


@pytest.mark.parametrize(
    "code, cls",
    [
        (grpc.StatusCode.NOT_FOUND, HeraldNotFoundError),
        (grpc.StatusCode.UNAUTHENTICATED, HeraldAuthError),
        (grpc.StatusCode.PERMISSION_DENIED, HeraldPermissionDeniedError),
        (grpc.StatusCode.UNAVAILABLE, HeraldConnectionError),
        (grpc.StatusCode.INVALID_ARGUMENT, HeraldInvalidArgumentError),
        (grpc.StatusCode.FAILED_PRECONDITION, HeraldFailedPreconditionError),
        (grpc.StatusCode.ALREADY_EXISTS, HeraldAlreadyExistsError),
        (grpc.StatusCode.INTERNAL, HeraldError),
        (grpc.StatusCode.DEADLINE_EXCEEDED, HeraldError),
        (grpc.StatusCode.CANCELLED, HeraldError),
        (grpc.StatusCode.UNKNOWN, HeraldError),
    ],
)
def test_mapping_table(code, cls):
    err = handle_grpc_error(FakeRpcError(code, "x"), "op")
    assert type(err) is cls
    assert err.code == code


def test_failed_precondition_is_a_flowmesh_error_but_not_not_found():
    err = handle_grpc_error(FakeRpcError(grpc.StatusCode.FAILED_PRECONDITION, "exceeded max attempts"), "nack")
    assert isinstance(err, FlowMeshError)
    assert not isinstance(err, FlowMeshNotFoundError)
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION


def test_integer_codes_are_converted_and_unknown_ones_kept():
    assert status_code_from_int(5) == grpc.StatusCode.NOT_FOUND
    assert status_code_from_int(13) == grpc.StatusCode.INTERNAL
    assert status_code_from_int(503) == 503
    err = handle_grpc_error(FakeRpcError(5, "gone"), "subscribe")
    assert isinstance(err, HeraldNotFoundError)
    assert err.code == grpc.StatusCode.NOT_FOUND
    err = handle_grpc_error(FakeRpcError(777, "odd"), "subscribe")
    assert type(err) is HeraldError
    assert err.code == 777


def test_real_grpc_error_shape():
    class RealLike(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.UNAUTHENTICATED

        def details(self):
            return "invalid or expired token"

    err = handle_grpc_error(RealLike(), "get")
    assert isinstance(err, HeraldAuthError)
    assert str(err) == "get failed: invalid or expired token"
