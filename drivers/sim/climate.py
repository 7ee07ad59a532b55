"""A simulated temperature/humidity probe that reads the `SimWorld`."""

from __future__ import annotations

import random

from drivers.climate import ClimateReading
from drivers.errors import SensorReadError
from drivers.sim.world import SimWorld

_FAULT_MESSAGES = {
    "timeout": "no answer from the probe (timeout)",
    "checksum": "checksum error in the probe's reply",
    "disconnected": "probe not connected",
}


class SimClimateProbe:
    def __init__(self, world: SimWorld, name: str, rng: random.Random | None = None) -> None:
        self.name = name
        self._world = world
        self._rng = rng or random.Random()

    def read(self) -> ClimateReading:
        state = self._world.probe(self.name)
        if state.fault != "none":
            raise SensorReadError(f"probe {self.name!r}: {_FAULT_MESSAGES[state.fault]} (simulated)")
        jitter = (lambda: self._rng.uniform(-state.noise, state.noise)) if state.noise else (lambda: 0.0)
        temperature = round(state.temperature_c + jitter(), 2)
        humidity = round(min(100.0, max(0.0, state.humidity_pct + jitter())), 2)
        return ClimateReading(temperature_c=temperature, humidity_pct=humidity)

    def close(self) -> None:
        """Nothing to release."""
