"""In-process key-value state for services and nodes: :class:`StateSlice`.

A :class:`State` is a plain store (one dict). A :class:`StateSlice` is a view of a store under an
optional prefix: with ``prefix="n1"`` the key ``counter`` is stored as ``"n1/counter"``. Several
slices can share one store, each seeing its own keys::

    service_state = StateSlice()                                  # no prefix: sees every key
    node_state = StateSlice(service_state, prefix="n1")          # shares service_state's store
    node_state.set("counter", 1)
    service_state.get("n1/counter")                               # -> 1

    cfg = StateSlice({"counter": 5}, prefix="n2")                 # initial values of this slice
    cfg.get("counter")                                            # -> 5

Behaviour, as FluxLib's README documents it (compat/nats-fluxlib.md §3.6 and §3.8 item 23 list
where FluxLib's code differs):

* ``state`` may be another :class:`StateSlice` or a :class:`State` (including a slice's
  ``_state``, as FluxLib's README shows): the new slice shares that store. A mapping gives the
  slice's **initial values**: its keys are copied in under the slice's prefix, so they are visible
  through :meth:`StateSlice.get`; the mapping itself is not kept (a slice never writes into a dict
  it was given). ``None`` (or an empty mapping) starts a new private store.
* :meth:`StateSlice.reset` removes only this slice's keys; other slices sharing the store keep
  theirs and the sharing goes on. A slice without a prefix owns every key of its store.

State lives in the process only; nothing about it goes over the network.
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, Mapping, Optional, Union

__all__ = ["State", "StateSlice"]


class State:
    """A store shared by slices: ``data`` maps full keys (``"<prefix>/<key>"``) to values."""

    def __init__(self, data: Optional[Dict[str, Any]] = None) -> None:
        self.data: Dict[str, Any] = data if data is not None else {}

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"State({len(self.data)} keys)"


class StateSlice:
    """A view of a :class:`State` under an optional key prefix.

    Args:
        state: the store to share (a :class:`StateSlice` or a :class:`State`), initial values
            (a mapping), or ``None`` for a new private store.
        prefix: namespace of this slice's keys (``None`` or ``""``: no prefix).
    """

    def __init__(
        self,
        state: Union["StateSlice", State, Mapping[str, Any], None] = None,
        prefix: Optional[str] = None,
    ) -> None:
        self.prefix: Optional[str] = prefix or None
        initial: Mapping[str, Any] = {}
        if state is None:
            store = State()
        elif isinstance(state, StateSlice):
            store = state._state
        elif isinstance(state, State):
            store = state
        elif isinstance(state, Mapping):
            store = State()
            initial = state
        else:
            raise TypeError(
                f"state must be a StateSlice, a State, a mapping of initial values or None, not {type(state).__name__}"
            )
        #: The shared store (FluxLib's README passes ``other._state`` to share it).
        self._state: State = store
        for key, value in initial.items():
            self.set(key, value)

    @property
    def state(self) -> State:
        """The underlying store; pass it (or this slice) as ``state`` to share it."""
        return self._state

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _own_prefix(self) -> str:
        return f"{self.prefix}/" if self.prefix else ""

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key`` in this slice, or ``default``."""
        return self._state.data.get(self._key(key), default)

    def set(self, key: str, value: Any, opts: Any = None) -> None:
        """Set ``key`` to ``value``. ``opts`` is accepted for FluxLib compatibility and ignored."""
        self._state.data[self._key(key)] = value

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is ignored."""
        self._state.data.pop(self._key(key), None)

    def get_all_with_prefix(self) -> Dict[str, Any]:
        """A copy of this slice's entries, keys without the prefix (every entry when no prefix)."""
        own = self._own_prefix()
        if not own:
            return dict(self._state.data)
        return {k[len(own):]: v for k, v in self._state.data.items() if k.startswith(own)}

    def reset(self) -> None:
        """Remove every key of this slice (only this prefix's keys; all keys when no prefix)."""
        own = self._own_prefix()
        if not own:
            self._state.data.clear()
            return
        for key in [k for k in self._state.data if k.startswith(own)]:
            del self._state.data[key]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._key(key) in self._state.data

    def __iter__(self) -> Iterator[str]:
        return iter(self.get_all_with_prefix())

    def __len__(self) -> int:
        return len(self.get_all_with_prefix())

    def __repr__(self) -> str:
        return f"StateSlice(prefix={self.prefix!r}, {len(self)} keys)"
