"""FlowMesh names for :mod:`herald.exceptions`: aliases of the same classes, so
``except FlowMeshError`` catches every error the SDK raises."""

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
)

FlowMeshError = HeraldError
FlowMeshConnectionError = HeraldConnectionError
FlowMeshAuthError = HeraldAuthError
FlowMeshNotFoundError = HeraldNotFoundError
FlowMeshPermissionDeniedError = HeraldPermissionDeniedError
FlowMeshInvalidArgumentError = HeraldInvalidArgumentError
FlowMeshFailedPreconditionError = HeraldFailedPreconditionError
FlowMeshAlreadyExistsError = HeraldAlreadyExistsError

__all__ = [
    "FlowMeshError",
    "FlowMeshConnectionError",
    "FlowMeshAuthError",
    "FlowMeshNotFoundError",
    "FlowMeshPermissionDeniedError",
    "FlowMeshInvalidArgumentError",
    "FlowMeshFailedPreconditionError",
    "FlowMeshAlreadyExistsError",
    "handle_grpc_error",
]
