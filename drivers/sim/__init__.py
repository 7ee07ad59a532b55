"""Simulated hardware: a controllable world so the gateway runs, and is tested, with no devices."""

from drivers.sim.climate import SimClimateProbe
from drivers.sim.world import SimProbeState, SimWorld

__all__ = ["SimClimateProbe", "SimProbeState", "SimWorld"]
