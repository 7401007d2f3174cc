"""Service options: :class:`ServiceOptions`."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Union

__all__ = ["ServiceOptions"]

_DEFAULT_TICK_INTERVAL_MS = 1000


class ServiceOptions:
    """How a :class:`~herald.service.Service` drives its nodes.

    Args:
        has_global_tick: run one service tick every ``tick_interval`` ms. Each tick calls the
            service's ``on_tick(time)`` and the ``on_tick`` of every started node; nodes then do not
            run their own ``DataTimer``. Without it, a node ticks only if it has a timer.
        tick_interval: the service tick period in milliseconds (default 1000).

    FluxLib's camelCase names are accepted too — ``ServiceOptions(hasGlobalTick=True,
    tickInterval=500)`` as in its README — and readable as attributes. Giving both spellings of one
    option raises ``ValueError``.
    """

    def __init__(
        self,
        has_global_tick: Optional[bool] = None,
        tick_interval: Optional[Union[int, float]] = None,
        *,
        hasGlobalTick: Optional[bool] = None,
        tickInterval: Optional[Union[int, float]] = None,
    ) -> None:
        if has_global_tick is not None and hasGlobalTick is not None:
            raise ValueError("give has_global_tick or hasGlobalTick, not both")
        if tick_interval is not None and tickInterval is not None:
            raise ValueError("give tick_interval or tickInterval, not both")
        flag = has_global_tick if has_global_tick is not None else hasGlobalTick
        interval = tick_interval if tick_interval is not None else tickInterval
        if interval is None:
            interval = _DEFAULT_TICK_INTERVAL_MS
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
            raise ValueError(f"tick_interval must be a positive number of milliseconds, not {interval!r}")
        self.has_global_tick: bool = bool(flag)
        self.tick_interval: Union[int, float] = interval

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ServiceOptions":
        """Build from a mapping with snake_case or camelCase keys; unknown keys raise ``ValueError``."""
        known = {"has_global_tick", "hasGlobalTick", "tick_interval", "tickInterval"}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown service options: {sorted(unknown)} (known: {sorted(known)})")
        return cls(**dict(data))

    @classmethod
    def coerce(cls, opts: Union["ServiceOptions", Mapping[str, Any], None]) -> "ServiceOptions":
        """``opts`` as a ``ServiceOptions``: ``None`` gives the defaults, a mapping goes through
        :meth:`from_dict`."""
        if opts is None:
            return cls()
        if isinstance(opts, ServiceOptions):
            return opts
        if isinstance(opts, Mapping):
            return cls.from_dict(opts)
        raise TypeError(f"opts must be ServiceOptions, a mapping or None, not {type(opts).__name__}")

    @property
    def hasGlobalTick(self) -> bool:  # noqa: N802 - FluxLib's spelling
        return self.has_global_tick

    @property
    def tickInterval(self) -> Union[int, float]:  # noqa: N802 - FluxLib's spelling
        return self.tick_interval

    @property
    def tick_seconds(self) -> float:
        """The tick period in seconds."""
        return self.tick_interval / 1000.0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ServiceOptions):
            return NotImplemented
        return (self.has_global_tick, self.tick_interval) == (other.has_global_tick, other.tick_interval)

    def __repr__(self) -> str:
        return f"ServiceOptions(has_global_tick={self.has_global_tick}, tick_interval={self.tick_interval})"
