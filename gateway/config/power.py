"""`[power.ats]` and `[power.generator]`: the automatic transfer switch, the generator and its fuel.

ATS position comes from two dry contacts (GPIO) or one Modbus register whose codes are mapped to
positions. The generator "running" signal is a contact or a register; without either, the
generator counts as running while the ATS is on the generator. The fuel level (%) is a Modbus
register. Modbus links use the same keys, rules and shared bus as the Modbus climate probes.

    [power.ats]
    source = "gpio"
    mains_pin = 17
    generator_pin = 27

    [power.generator]
    running_pin = 22
    tank_litres = 200
    [power.generator.fuel]
    link = { transport = "rtu", port = "/dev/ttyUSB0", unit = 5 }
    register = { function = 3, register = 0, data_type = "uint16", scale = 10 }
"""

from __future__ import annotations

import warnings
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from drivers.modbus.bus import SerialSettings, TcpEndpoint
from gateway.config.base import StrictModel
from gateway.config.modbus import ModbusRegisterConfig, ModbusRtuProbeConfig, ModbusTcpProbeConfig

POSITIONS = ("mains", "generator", "off")
_RTU = ModbusRtuProbeConfig.model_fields
_TCP = ModbusTcpProbeConfig.model_fields


def _pin(value: int | None, key: str) -> int | None:
    if value is not None and not 0 <= value <= 27:
        raise ValueError(
            f"{key} = {value} is not a Raspberry Pi GPIO. Fix: give the BCM number 0 to 27 (GPIO17 -> 17, not "
            "the header pin 11)"
        )
    return value


# the probes' link keys, descriptions and checks, reused (not copied) so the two never drift apart
class ModbusRtuLink(StrictModel):
    transport: Literal["rtu"] = Field(description='"rtu": Modbus RTU on an RS-485 serial port')
    port: str = _RTU["port"]
    baudrate: int = _RTU["baudrate"]
    parity: Literal["N", "E", "O"] = _RTU["parity"]
    stopbits: Literal[1, 2] = _RTU["stopbits"]
    bytesize: Literal[7, 8] = _RTU["bytesize"]
    unit: int = _RTU["unit"]
    timeout_s: float = _RTU["timeout_s"]
    retries: int = _RTU["retries"]

    @field_validator("port")
    @classmethod
    def _device_path(cls, value: str) -> str:
        return ModbusRtuProbeConfig._device_path(value)

    @field_validator("baudrate")
    @classmethod
    def _standard_rate(cls, value: int) -> int:
        return ModbusRtuProbeConfig._standard_rate(value)

    def serial_settings(self) -> SerialSettings:
        return SerialSettings(self.port, self.baudrate, self.parity, self.stopbits, self.bytesize)


class ModbusTcpLink(StrictModel):
    transport: Literal["tcp"] = Field(description='"tcp": Modbus TCP (a device or an RS-485-to-TCP gateway)')
    host: str = _TCP["host"]
    port: int = _TCP["port"]
    unit: int = _TCP["unit"]
    timeout_s: float = _TCP["timeout_s"]
    retries: int = _TCP["retries"]

    def endpoint(self) -> TcpEndpoint:
        return TcpEndpoint(self.host, self.port)


ModbusLink = Annotated[ModbusRtuLink | ModbusTcpLink, Field(discriminator="transport")]

_LINK_DESCRIPTION = ('the Modbus link: { transport = "rtu", port = "/dev/ttyUSB0", unit = N } or '
                     '{ transport = "tcp", host = "...", unit = N }; the same bus keys as a Modbus probe')

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message='Field name "register"', category=UserWarning)

    class AtsGpioConfig(StrictModel):
        source: Literal["gpio"] = Field(description='"gpio": two dry contacts of the ATS on Raspberry Pi pins')
        mains_pin: int = Field(description="BCM pin of the contact that is closed while on mains (PLN)")
        generator_pin: int = Field(description="BCM pin of the contact that is closed while on the generator")
        active_low: bool = Field(
            True, description="true: contact between pin and GND with the pull-up (closed reads low); "
                              "false: contact to 3.3 V with the pull-down",
        )
        debounce_ms: float = Field(
            50.0, ge=0, le=1000, description="a contact must read the same for this long to count, 0 to 1000 ms"
        )
        interval_s: float = Field(1.0, ge=0.2, le=60, description="seconds between readings of the ATS, 0.2 to 60")

        @field_validator("mains_pin", "generator_pin")
        @classmethod
        def _bcm(cls, value: int, info: ValidationInfo) -> int:
            _pin(value, info.field_name or "pin")
            return value

        @model_validator(mode="after")
        def _distinct(self) -> AtsGpioConfig:
            if self.mains_pin == self.generator_pin:
                raise ValueError(
                    f"mains_pin and generator_pin are both {self.mains_pin}. Fix: wire the two ATS contacts to two "
                    "different pins"
                )
            return self

    class AtsModbusConfig(StrictModel):
        source: Literal["modbus"] = Field(description='"modbus": the ATS controller reports its position in a register')
        link: ModbusLink = Field(description=_LINK_DESCRIPTION)
        register: ModbusRegisterConfig = Field(
            description="where the position code lives, e.g. { function = 3, register = 10, data_type = "
                        '"uint16", scale = 1 }'
        )
        positions: dict[str, Literal["mains", "generator", "off"]] = Field(
            description='position code (as read, after scale) -> "mains", "generator" or "off", e.g. '
                        '{ 0 = "off", 1 = "mains", 2 = "generator" } from the ATS controller manual',
        )
        interval_s: float = Field(1.0, ge=0.2, le=60, description="seconds between readings of the ATS, 0.2 to 60")

        @field_validator("positions")
        @classmethod
        def _codes(cls, value: dict[str, str]) -> dict[str, str]:
            for code in value:
                try:
                    int(code)
                except ValueError:
                    raise ValueError(
                        f"position code {code!r} is not a whole number. Fix: use the numbers the ATS controller "
                        'reports, e.g. { 1 = "mains", 2 = "generator" }'
                    ) from None
            missing = [p for p in ("mains", "generator") if p not in value.values()]
            if missing:
                raise ValueError(
                    f"no code means {' or '.join(missing)}. Fix: map the controller's code for "
                    f"{' and '.join(missing)}, e.g. {{ 1 = \"mains\", 2 = \"generator\" }}"
                )
            return value

        def position_codes(self) -> dict[int, str]:
            return {int(code): position for code, position in self.positions.items()}

    class RunningRegisterConfig(StrictModel):
        link: ModbusLink = Field(description=_LINK_DESCRIPTION)
        register: ModbusRegisterConfig = Field(description="where the generator controller reports running")
        running_values: list[int] = Field(
            [1], min_length=1, description="values (after scale) that mean running; anything else means stopped"
        )

    class FuelConfig(StrictModel):
        link: ModbusLink = Field(description=_LINK_DESCRIPTION)
        register: ModbusRegisterConfig = Field(
            description="where the fuel level in percent lives; scale turns the raw value into % (10: 455 = 45.5 %)"
        )
        interval_s: float = Field(30.0, ge=1, le=3600, description="seconds between fuel readings, 1 to 3600")


AtsConfig = Annotated[AtsGpioConfig | AtsModbusConfig, Field(discriminator="source")]


class GeneratorConfig(StrictModel):
    running_pin: int | None = Field(
        None, description="BCM pin of the generator's 'running' dry contact (closed while it runs)"
    )
    running_active_low: bool = Field(True, description="as [power.ats] active_low, for the running contact")
    running_debounce_ms: float = Field(200.0, ge=0, le=5000, description="debounce of the running contact, ms")
    running_register: RunningRegisterConfig | None = Field(
        None, description="instead of running_pin: a register of the generator controller that says it runs"
    )
    fuel: FuelConfig | None = Field(None, description="the fuel level sensor; without it no fuel alarms")
    tank_litres: float | None = Field(
        None, gt=0, le=100_000, description="tank capacity in litres, to report fuel used and added in litres too"
    )
    refuel_below_pct: float = Field(30.0, gt=0, lt=100, description="power.refuel_needed below this fuel level, %")
    refuel_below_hours: float = Field(
        8.0, gt=0, le=240, description="power.refuel_needed while running when less than this many hours are left"
    )
    learn_after_min: float = Field(
        15.0, ge=1, le=1440,
        description="minutes of running (after any refuelling) before a run's burn rate is trusted, 1 to 1440",
    )
    interval_s: float = Field(2.0, ge=0.2, le=60, description="seconds between readings of the running signal")

    @field_validator("running_pin")
    @classmethod
    def _bcm(cls, value: int | None) -> int | None:
        return _pin(value, "running_pin")

    @model_validator(mode="after")
    def _one_running_signal(self) -> GeneratorConfig:
        if self.running_pin is not None and self.running_register is not None:
            raise ValueError(
                f"running_pin = {self.running_pin} and running_register both say whether the generator runs. "
                "Fix: keep one of them"
            )
        return self


class PowerConfig(StrictModel):
    ats: AtsConfig | None = Field(None, description="[power.ats]: the automatic transfer switch")
    generator: GeneratorConfig | None = Field(None, description="[power.generator]: the generator (genset) and fuel")

    @model_validator(mode="after")
    def _pins_and_signals(self) -> PowerConfig:
        gen = self.generator
        if gen is not None and gen.running_pin is None and gen.running_register is None and self.ats is None:
            raise ValueError(
                "[power.generator] has no running signal and there is no [power.ats] to tell it. Fix: set "
                "running_pin or running_register, or configure [power.ats]"
            )
        if isinstance(self.ats, AtsGpioConfig) and gen is not None and gen.running_pin is not None:
            used = {self.ats.mains_pin: "mains_pin", self.ats.generator_pin: "generator_pin"}
            if gen.running_pin in used:
                raise ValueError(
                    f"running_pin = {gen.running_pin} is also [power.ats] {used[gen.running_pin]}. Fix: wire the "
                    "generator's running contact to its own pin"
                )
        return self

    @property
    def contact_interval_s(self) -> float:
        """How often contacts (and ATS/running registers) are read: the fastest of the configured ones."""
        intervals = [c.interval_s for c in (self.ats, self.generator) if c is not None]
        return min(intervals, default=1.0)
