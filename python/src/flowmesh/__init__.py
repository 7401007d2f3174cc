"""FlowMesh compatibility package.

Code written against the FlowMesh Python SDK runs unchanged on Herald: every name here is an alias
of the corresponding ``herald`` object (``FlowMesh is herald.Herald``, ``FlowMeshError is
herald.HeraldError``, ...), so ``except FlowMeshError`` catches every SDK error.
"""

from herald import __version__

from .client import FlowMesh, KVClient, QueueClient, StreamClient
from .exceptions import (
    FlowMeshAlreadyExistsError,
    FlowMeshAuthError,
    FlowMeshConnectionError,
    FlowMeshError,
    FlowMeshFailedPreconditionError,
    FlowMeshInvalidArgumentError,
    FlowMeshNotFoundError,
    FlowMeshPermissionDeniedError,
    handle_grpc_error,
)
from .types import ConsumerGroupState, Event, Job, Message, QueueStats, RetryPolicy
from .utils import build_resource_path, nanos_to_timestamp, timestamp_to_nanos

__all__ = [
    "__version__",
    "FlowMesh",
    "StreamClient",
    "QueueClient",
    "KVClient",
    "Event",
    "Message",
    "Job",
    "QueueStats",
    "RetryPolicy",
    "ConsumerGroupState",
    "FlowMeshError",
    "FlowMeshConnectionError",
    "FlowMeshAuthError",
    "FlowMeshNotFoundError",
    "FlowMeshPermissionDeniedError",
    "FlowMeshInvalidArgumentError",
    "FlowMeshFailedPreconditionError",
    "FlowMeshAlreadyExistsError",
    "handle_grpc_error",
    "build_resource_path",
    "timestamp_to_nanos",
    "nanos_to_timestamp",
]
