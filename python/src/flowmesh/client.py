"""FlowMesh names for :mod:`herald.client`: ``FlowMesh`` is :class:`herald.Herald`."""

from herald.client import Herald, KVClient, QueueClient, StreamClient

FlowMesh = Herald

__all__ = ["FlowMesh", "StreamClient", "QueueClient", "KVClient"]
