"""The simulated world: what each simulated device would sense, set by tests and `dcgate sim set`.

Later issues add the UPS, dry contacts, fingerprint reader and camera here, each a small state
object with the same `set()` rules: known keys only, values checked, the new state returned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from drivers.errors import InvalidValueError, UnknownDeviceError

#: failures a simulated probe can be told to have, named like the real drivers' errors
PROBE_FAULTS = ("none", "timeout", "checksum", "disconnected")


@dataclass(frozen=True)
class SimProbeState:
    temperature_c: float = 21.0
    humidity_pct: float = 50.0
    noise: float = 0.0
    fault: str = "none"


def _number(key: str, low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise InvalidValueError(f"{key}={text!r} is not a number") from None
        if not low <= value <= high:
            raise InvalidValueError(f"{key}={value:g} is outside {low:g}..{high:g}")
        return value
    return parse


def _fault(text: str) -> str:
    if text not in PROBE_FAULTS:
        raise InvalidValueError(f"fault={text!r} is not one of {', '.join(PROBE_FAULTS)}")
    return text


# key as typed on the command line -> (state attribute, parser)
_PROBE_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "temperature": ("temperature_c", _number("temperature", -40, 80)),
    "humidity": ("humidity_pct", _number("humidity", 0, 100)),
    "noise": ("noise", _number("noise", 0, 5)),
    "fault": ("fault", _fault),
}


class SimWorld:
    """Thread-safe: the service's poller reads while the control socket writes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._probes: dict[str, SimProbeState] = {}

    def add_probe(self, name: str, state: SimProbeState) -> None:
        with self._lock:
            self._probes[name] = state

    def probe(self, name: str) -> SimProbeState:
        with self._lock:
            try:
                return self._probes[name]
            except KeyError:
                raise UnknownDeviceError(self._unknown("probe", name, self._probes)) from None

    def set(self, device: str, name: str, values: Mapping[str, str]) -> dict[str, Any]:
        """Apply `key=value` settings to one device; all or nothing. Returns the new state."""
        if device != "probe":
            raise UnknownDeviceError(f"no simulated device type {device!r}; the simulator has: probe")
        if not values:
            raise InvalidValueError(f"nothing to set; keys for a probe: {', '.join(_PROBE_KEYS)}")
        changes = {}
        for key, text in values.items():
            if key not in _PROBE_KEYS:
                raise InvalidValueError(f"probe has no setting {key!r}; use one of: {', '.join(_PROBE_KEYS)}")
            attribute, parse = _PROBE_KEYS[key]
            changes[attribute] = parse(str(text))
        with self._lock:
            if name not in self._probes:
                raise UnknownDeviceError(self._unknown("probe", name, self._probes))
            self._probes[name] = replace(self._probes[name], **changes)
            return asdict(self._probes[name])

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"probes": {name: asdict(state) for name, state in self._probes.items()}}

    @staticmethod
    def _unknown(device: str, name: str, known: Mapping[str, Any]) -> str:
        return f"no simulated {device} {name!r}; configured: {', '.join(sorted(known)) or 'none'}"
