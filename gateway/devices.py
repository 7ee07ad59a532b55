"""Build the configured devices: each config entry becomes a driver behind its small interface."""

from __future__ import annotations

from typing import Any

from drivers.climate import ClimateProbe, ClimateReading
from drivers.errors import SensorError
from drivers.sim import SimClimateProbe, SimProbeState, SimWorld
from gateway.config.modbus import ModbusRtuProbeConfig, ModbusTcpProbeConfig, build_modbus_probe
from gateway.config.models import Config, DhtProbeConfig, SimProbeConfig


class UnavailableProbe:
    """A probe whose driver could not even be set up (library missing, pin taken).

    The gateway still starts, and the probe is reported as failed with the reason on every read,
    so `dcgate status`, alarms and upstream show the problem instead of silence.
    """

    def __init__(self, name: str, error: SensorError) -> None:
        self.name = name
        self._error = error

    def read(self) -> ClimateReading:
        raise SensorError(str(self._error))

    def close(self) -> None:
        """Nothing was opened."""


class Buses:
    """The Modbus links, made on first use (pymodbus is imported only when a device needs it).

    Probes and power readers on one port share one link, so their frames never interleave.
    """

    def __init__(self) -> None:
        self._registry: Any = None

    @property
    def registry(self) -> Any:
        if self._registry is None:
            from drivers.modbus.bus import BusRegistry

            self._registry = BusRegistry()
        return self._registry


def build_probes(config: Config, world: SimWorld, buses: Buses | None = None) -> dict[str, ClimateProbe]:
    probes: dict[str, ClimateProbe] = {}
    buses = buses or Buses()
    for probe in config.probes:
        if isinstance(probe, SimProbeConfig):
            world.add_probe(
                probe.name,
                SimProbeState(temperature_c=probe.temperature_c, humidity_pct=probe.humidity_pct, noise=probe.noise),
            )
            probes[probe.name] = SimClimateProbe(world, probe.name)
        elif isinstance(probe, DhtProbeConfig):
            from drivers.dht import DhtProbe  # the Pi-only library is imported only when configured

            try:
                probes[probe.name] = DhtProbe(probe.name, probe.pin, probe.driver)
            except SensorError as exc:
                probes[probe.name] = UnavailableProbe(probe.name, exc)
        elif isinstance(probe, ModbusRtuProbeConfig | ModbusTcpProbeConfig):
            probes[probe.name] = build_modbus_probe(probe, buses.registry)
        else:  # a config class without a driver here is a programming error, caught by the tests
            raise TypeError(f"no driver for probe config {type(probe).__name__}")
    return probes
