"""The interface every temperature/humidity probe driver implements (sim, DHT22, Modbus)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ClimateReading:
    temperature_c: float
    humidity_pct: float


class ClimateProbe(Protocol):
    name: str

    def read(self) -> ClimateReading:
        """One reading now. Raises `drivers.errors.SensorError` on failure; never invents a value."""
        ...

    def close(self) -> None:
        """Release the bus or pin."""
        ...
