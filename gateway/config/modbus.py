"""Config of Modbus RTU and Modbus TCP climate probes (`driver = "modbus-rtu"` / `"modbus-tcp"`).

The serial port is not required to exist when the config is checked: an unplugged RS-485 adapter
must not stop the gateway (and the door) from starting; the probe reports the fault instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Literal

from pydantic import Field, field_validator, model_validator

from drivers.modbus.bus import BusRegistry, SerialSettings, TcpEndpoint
from drivers.modbus.probe import ModbusClimateProbe
from drivers.modbus.profiles import Profile, Quantity, built_in, generic
from gateway.config.base import ProbeBase, StrictModel

STANDARD_BAUDRATES = (1200, 2400, 4800, 9600, 14400, 19200, 38400, 57600, 115200)


# `register` is the word in every device manual; pydantic warns that it shadows ABCMeta.register,
# which nobody calls on a config model
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)

    class ModbusRegisterConfig(StrictModel):
        """Where one quantity lives, for `profile = "generic"`."""

        function: Literal[3, 4] = Field(
            description="Modbus function: 3 reads holding registers, 4 reads input registers (see the device manual)"
        )
        register: int = Field(
            ge=0, le=65534, description="wire address of the first register, 0-based (manual's 30002 or 40002 -> 1)"
        )
        data_type: Literal["int16", "uint16", "int32", "uint32", "float32"] = Field(
            "int16",
            description='how the register(s) hold the value: "int16" (signed) or "uint16" use 1 register; '
            '"int32", "uint32" and "float32" use 2',
        )
        scale: float = Field(
            10.0, gt=0, le=1_000_000, description="the raw value is the quantity times this (10: 215 means 21.5)"
        )
        word_order: Literal["big", "little"] = Field(
            "big",
            description='for 2-register values: "big" = high word first (most devices), "little" = low word first',
        )

        def quantity(self) -> Quantity:
            return Quantity(self.function, self.register, self.data_type, self.scale, self.word_order)


class _ModbusProbeCommon(ProbeBase):
    profile: Literal["xy-md02", "sht20", "generic"] = Field(
        "xy-md02",
        description='register map: "xy-md02" and "sht20" (input registers 1 and 2, x10), or "generic" with '
        "[probes.temperature] and [probes.humidity]",
    )
    scale: float | None = Field(
        None, gt=0, le=1000,
        description='divisor for "xy-md02"/"sht20" when the unit does not answer x10 (e.g. 100); not for "generic"',
    )
    temperature: ModbusRegisterConfig | None = Field(
        None, description='temperature register, only with profile = "generic"'
    )
    humidity: ModbusRegisterConfig | None = Field(None, description='humidity register, only with profile = "generic"')
    timeout_s: float = Field(0.5, ge=0.05, le=10, description="seconds to wait for each reply, 0.05 to 10")
    retries: int = Field(
        2, ge=0, le=10, description="extra attempts after a failed request before the probe is at fault, 0 to 10"
    )
    interval_s: float = Field(10.0, ge=1, le=86400, description="seconds between readings of this probe (1 to 86400)")

    @model_validator(mode="after")
    def _profile_settings(self) -> _ModbusProbeCommon:
        if self.profile == "generic":
            missing = [key for key in ("temperature", "humidity") if getattr(self, key) is None]
            if missing:
                raise ValueError(
                    f'profile = "generic" needs {" and ".join(missing)} register settings. Fix: add '
                    + " and ".join(f"[probes.{key}] with function and register" for key in missing)
                )
            if self.scale is not None:
                raise ValueError(
                    f'scale = {self.scale:g} is not used with profile = "generic". Fix: set temperature.scale and '
                    "humidity.scale instead"
                )
        else:
            extra = [key for key in ("temperature", "humidity") if getattr(self, key) is not None]
            if extra:
                raise ValueError(
                    f'{" and ".join(extra)} register settings are only read with profile = "generic", not '
                    f'"{self.profile}". Fix: remove them, or set profile = "generic"'
                )
        return self

    def profile_object(self) -> Profile:
        if self.profile == "generic":
            assert self.temperature is not None and self.humidity is not None
            return generic(self.temperature.quantity(), self.humidity.quantity())
        return built_in(self.profile, self.scale)


class ModbusRtuProbeConfig(_ModbusProbeCommon):
    driver: Literal["modbus-rtu"] = Field(description='probe driver; "modbus-rtu" reads a probe on an RS-485 bus')
    port: str = Field(
        min_length=1,
        description="serial device of the RS-485 adapter, e.g. /dev/ttyUSB0; better its stable name under "
        "/dev/serial/by-id/",
    )
    baudrate: int = Field(9600, description=f"bits per second, one of {', '.join(map(str, STANDARD_BAUDRATES))}")
    parity: Literal["N", "E", "O"] = Field("N", description='parity: "N" none (XY-MD02 default), "E" even, "O" odd')
    stopbits: Literal[1, 2] = Field(1, description="stop bits, 1 or 2")
    bytesize: Literal[7, 8] = Field(8, description="data bits, 8 (Modbus RTU) or 7")
    unit: int = Field(ge=1, le=247, description="Modbus unit id (slave address) of the probe, 1 to 247")

    @field_validator("port")
    @classmethod
    def _device_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(
                f"port {value!r} is not a device path. Fix: give the full path, e.g. /dev/ttyUSB0 or "
                "/dev/serial/by-id/usb-...-port0"
            )
        return value

    @field_validator("baudrate")
    @classmethod
    def _standard_rate(cls, value: int) -> int:
        if value not in STANDARD_BAUDRATES:
            nearest = min(STANDARD_BAUDRATES, key=lambda rate: abs(rate - value))
            raise ValueError(
                f"baudrate {value} is not a standard serial rate. Fix: use the device's rate, e.g. {nearest} "
                f"(one of {', '.join(map(str, STANDARD_BAUDRATES))})"
            )
        return value

    def serial_settings(self) -> SerialSettings:
        return SerialSettings(self.port, self.baudrate, self.parity, self.stopbits, self.bytesize)


class ModbusTcpProbeConfig(_ModbusProbeCommon):
    driver: Literal["modbus-tcp"] = Field(description='probe driver; "modbus-tcp" reads a probe over Modbus TCP')
    host: str = Field(
        min_length=1, pattern=r"^[A-Za-z0-9.:_-]+$",
        description="host name or IP address of the Modbus TCP device or RS-485-to-TCP gateway",
    )
    port: int = Field(502, ge=1, le=65535, description="TCP port, 502 for Modbus TCP")
    unit: int = Field(
        1, ge=0, le=255, description="unit id: the RS-485 address behind a gateway (1 to 247), often 1 or 255 direct"
    )

    def endpoint(self) -> TcpEndpoint:
        return TcpEndpoint(self.host, self.port)


def bus_conflicts(probes: Iterable[object]) -> list[str]:
    """Problems between Modbus probes that one probe's config cannot see, as messages with the fix.

    For `Config`'s probes validator: two probes with the same unit on one bus, or one serial port
    configured with two different line settings.
    """
    problems: list[str] = []
    settings: dict[str, tuple[str, SerialSettings]] = {}
    units: dict[tuple[str, int], str] = {}
    for probe in probes:
        if isinstance(probe, ModbusRtuProbeConfig):
            bus = probe.port
            mine = probe.serial_settings()
            if bus in settings and settings[bus][1] != mine:
                other = settings[bus][0]
                problems.append(
                    f"probes {other!r} and {probe.name!r} use {bus} with different serial settings. Fix: one bus has "
                    "one baudrate, parity, stopbits and bytesize for every device on it"
                )
            settings.setdefault(bus, (probe.name, mine))
        elif isinstance(probe, ModbusTcpProbeConfig):
            bus = f"{probe.host}:{probe.port}"
        else:
            continue
        if (bus, probe.unit) in units:
            problems.append(
                f"probes {units[bus, probe.unit]!r} and {probe.name!r} both read unit {probe.unit} on {bus}. Fix: give "
                "each device its own unit id (set on the device) and each probe its unit"
            )
        units.setdefault((bus, probe.unit), probe.name)
    return problems


def build_modbus_probe(
    config: ModbusRtuProbeConfig | ModbusTcpProbeConfig, registry: BusRegistry
) -> ModbusClimateProbe:
    """The driver for one configured probe; probes on the same port share the registry's bus."""
    if isinstance(config, ModbusRtuProbeConfig):
        bus = registry.rtu(config.serial_settings())
    else:
        bus = registry.tcp(config.endpoint())
    return ModbusClimateProbe(config.name, bus, config.unit, config.profile_object(), retries=config.retries,
                              timeout_s=config.timeout_s)
