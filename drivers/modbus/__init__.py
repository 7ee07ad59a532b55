"""Modbus RTU (RS-485) and Modbus TCP climate probes: profiles, a shared bus per port, and a scan."""

from drivers.modbus.bus import (
    BusRegistry,
    ModbusBus,
    ModbusCrcError,
    ModbusError,
    ModbusExceptionError,
    ModbusLinkError,
    ModbusTimeoutError,
    SerialSettings,
    TcpEndpoint,
)
from drivers.modbus.probe import ModbusClimateProbe
from drivers.modbus.profiles import BUILT_IN, PROFILE_NAMES, Profile, Quantity, built_in, generic

__all__ = [
    "BUILT_IN",
    "PROFILE_NAMES",
    "BusRegistry",
    "ModbusBus",
    "ModbusClimateProbe",
    "ModbusCrcError",
    "ModbusError",
    "ModbusExceptionError",
    "ModbusLinkError",
    "ModbusTimeoutError",
    "Profile",
    "Quantity",
    "SerialSettings",
    "TcpEndpoint",
    "built_in",
    "generic",
]
