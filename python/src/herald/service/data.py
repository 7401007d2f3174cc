"""Node descriptors: :class:`DataNode`, :class:`DataInput`, :class:`DataOutput`, :class:`DataTimer`.

They have FluxLib's fields and positional order. ``service.<sid>.set_config`` carries node
descriptors as JSON (compat/nats-fluxlib.md §3.7); :meth:`DataNode.from_dict` turns one into a
``DataNode``, which is what :meth:`Service.get_node` receives::

    {"id": "n2", "type": "t", "settings": {}, "inputs": [{"alias": "a", "topics": ["in.a"]}],
     "outputs": [{"alias": "o", "topics": ["out/x"]}]}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Union

__all__ = ["DataNode", "DataInput", "DataOutput", "DataTimer"]


def _topic_list(value: Any, what: str) -> List[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(t, str) for t in value):
        return list(value)
    raise ValueError(f"{what}: topics must be a string or a list of strings, not {value!r}")


@dataclass
class DataInput:
    """A node input: the topics it listens to, read back under ``alias``."""

    topics: List[str]
    alias: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DataInput":
        if not isinstance(data, Mapping) or not isinstance(data.get("alias"), str):
            raise ValueError(f"an input needs a string 'alias': {data!r}")
        return cls(topics=_topic_list(data.get("topics"), f"input {data['alias']!r}"), alias=data["alias"])

    def to_dict(self) -> Dict[str, Any]:
        return {"alias": self.alias, "topics": list(self.topics)}


@dataclass
class DataOutput:
    """A node output: ``alias`` publishes to every one of ``topics``."""

    alias: str
    topics: List[str]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DataOutput":
        if not isinstance(data, Mapping) or not isinstance(data.get("alias"), str):
            raise ValueError(f"an output needs a string 'alias': {data!r}")
        return cls(alias=data["alias"], topics=_topic_list(data.get("topics"), f"output {data['alias']!r}"))

    def to_dict(self) -> Dict[str, Any]:
        return {"alias": self.alias, "topics": list(self.topics)}


@dataclass
class DataTimer:
    """A node's own tick: every ``interval`` milliseconds (``type`` is informative, e.g. ``"interval"``)."""

    type: str
    interval: int

    def __post_init__(self) -> None:
        if isinstance(self.interval, bool) or not isinstance(self.interval, (int, float)) or self.interval <= 0:
            raise ValueError(f"DataTimer interval must be a positive number of milliseconds, not {self.interval!r}")

    @property
    def interval_ms(self) -> Union[int, float]:
        """The interval in milliseconds (same as ``interval``)."""
        return self.interval

    @property
    def seconds(self) -> float:
        """The interval in seconds."""
        return self.interval / 1000.0


@dataclass
class DataNode:
    """Descriptor of a node: its id, type, initial settings, inputs and outputs.

    ``extra`` keeps any other keys a configuration gave the descriptor.
    """

    id: str
    type: str = ""
    settings: Dict[str, Any] = field(default_factory=dict)
    inputs: List[DataInput] = field(default_factory=list)
    outputs: List[DataOutput] = field(default_factory=list)
    extra: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "DataNode":
        """Build from a JSON descriptor. Raises ``ValueError`` when it is not a valid one."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a node descriptor must be a JSON object, not {data!r}")
        node_id = data.get("id")
        if not isinstance(node_id, str) or not node_id:
            raise ValueError(f"a node descriptor needs a non-empty string 'id': {dict(data)!r}")
        settings = data.get("settings") or {}
        if not isinstance(settings, Mapping):
            raise ValueError(f"node {node_id!r}: settings must be a JSON object, not {settings!r}")
        inputs = data.get("inputs") or []
        outputs = data.get("outputs") or []
        if not isinstance(inputs, list) or not isinstance(outputs, list):
            raise ValueError(f"node {node_id!r}: inputs and outputs must be lists")
        node_type = data.get("type", "")
        known = {"id", "type", "settings", "inputs", "outputs"}
        return cls(
            id=node_id,
            type=node_type if isinstance(node_type, str) else str(node_type),
            settings=dict(settings),
            inputs=[DataInput.from_dict(i) for i in inputs],
            outputs=[DataOutput.from_dict(o) for o in outputs],
            extra={k: v for k, v in data.items() if k not in known},
        )

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = dict(self.extra)
        out.update(
            id=self.id,
            type=self.type,
            settings=dict(self.settings),
            inputs=[i.to_dict() for i in self.inputs],
            outputs=[o.to_dict() for o in self.outputs],
        )
        return out
