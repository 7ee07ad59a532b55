"""Simulated dry contacts: a small thread-safe world of named contacts that tests and the simulator set."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from drivers.errors import InvalidValueError, SensorReadError, UnknownDeviceError


@dataclass(frozen=True)
class SimContactState:
    closed: bool = False
    fault: str | None = None  # a message: reading raises SensorReadError with it


class SimContactWorld:
    """Named contacts. Thread-safe: the monitor reads while a test or `dcgate sim set` writes."""

    def __init__(self, contacts: dict[str, bool] | None = None) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, SimContactState] = {
            name: SimContactState(closed) for name, closed in (contacts or {}).items()
        }
        self.reads = 0  # for tests that wait on the monitor having read

    def add(self, name: str, closed: bool = False) -> None:
        with self._lock:
            self._states[name] = SimContactState(closed)

    def set(self, name: str, closed: bool) -> SimContactState:
        if not isinstance(closed, bool):
            raise InvalidValueError(f"closed={closed!r} is not true or false")
        return self._change(name, closed=closed)

    def fault(self, name: str, message: str | None = "wire broken (simulated)") -> SimContactState:
        """Make reading `name` fail with `message`; `None` clears the fault."""
        return self._change(name, fault=message)

    def _change(self, name: str, **changes: object) -> SimContactState:
        with self._lock:
            if name not in self._states:
                raise UnknownDeviceError(
                    f"no simulated contact {name!r}; configured: {', '.join(sorted(self._states)) or 'none'}"
                )
            state = self._states[name]
            self._states[name] = SimContactState(
                closed=bool(changes.get("closed", state.closed)),
                fault=changes.get("fault", state.fault),  # type: ignore[arg-type]
            )
            return self._states[name]

    def read(self, name: str) -> bool:
        with self._lock:
            self.reads += 1
            try:
                state = self._states[name]
            except KeyError:
                raise UnknownDeviceError(f"no simulated contact {name!r}") from None
        if state.fault is not None:
            raise SensorReadError(f"contact {name!r}: {state.fault}")
        return state.closed

    def snapshot(self) -> dict[str, dict[str, object]]:
        with self._lock:
            return {name: {"closed": s.closed, "fault": s.fault} for name, s in self._states.items()}


class SimContact:
    """`ContactInput` reading one contact of a `SimContactWorld`."""

    def __init__(self, world: SimContactWorld, name: str) -> None:
        self.name = name
        self._world = world

    def is_closed(self) -> bool:
        return self._world.read(self.name)

    def close(self) -> None:
        """Nothing to release."""
