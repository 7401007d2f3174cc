"""FlowMesh names for :mod:`herald.types` (the same classes)."""

from herald.types import ConsumerGroupState, Event, Job, Message, QueueStats, RetryPolicy

__all__ = ["Event", "Message", "Job", "QueueStats", "RetryPolicy", "ConsumerGroupState"]
