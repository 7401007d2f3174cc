"""FlowMesh names for :mod:`herald.utils` (the same functions)."""

from herald.utils import build_resource_path, nanos_to_timestamp, timestamp_to_nanos

__all__ = ["build_resource_path", "timestamp_to_nanos", "nanos_to_timestamp"]
