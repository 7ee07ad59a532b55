"""Which unit ids answer on a bus, and which profile each one probably is (`dcgate modbus scan`).

Each unit id gets one short read of input registers 1–2 (the XY-MD02/SHT20 map). A unit that
answers, even with an exception response, is present. The profile guess:
  * registers 1–2 give a plausible room reading at ×10 -> scale 10, at ×100 -> scale 100;
  * holding register 0x0101 holding the unit's own id -> "xy-md02", otherwise "sht20";
  * present but no plausible reading (exception, or other values) -> "generic" (read its manual).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from drivers.errors import InvalidValueError
from drivers.modbus.bus import ModbusBus, ModbusCrcError, ModbusError, ModbusExceptionError, ModbusTimeoutError
from drivers.modbus.profiles import XY_MD02_ID_REGISTER, Quantity

ALL_UNITS = range(1, 248)


@dataclass(frozen=True, slots=True)
class ScanResult:
    unit: int
    profile: str  # "xy-md02" | "sht20" | "generic"
    scale: float | None
    temperature_c: float | None
    humidity_pct: float | None
    detail: str

    def line(self) -> str:
        reading = (f"{self.temperature_c:g} °C, {self.humidity_pct:g} %" if self.temperature_c is not None
                   else "no climate reading")
        scale = f", scale = {self.scale:g}" if self.scale is not None else ""
        return f"unit {self.unit}: profile = \"{self.profile}\"{scale} ({reading}; {self.detail})"


def parse_units(text: str) -> list[int]:
    """`1-247`, `1,2,5-8` -> unit ids, each 1..247."""
    units: list[int] = []
    for part in text.split(","):
        low, sep, high = part.strip().partition("-")
        try:
            span = range(int(low), int(high) + 1) if sep else range(int(low), int(low) + 1)
        except ValueError:
            raise InvalidValueError(f"--units {text!r} is not like 1-247 or 1,2,5-8. Fix: give unit ids") from None
        if not span or span.start < 1 or span.stop - 1 > 247:
            raise InvalidValueError(f"--units {text!r} is outside 1..247. Fix: Modbus unit ids are 1 to 247")
        units.extend(span)
    return units


def _plausible(temperature: float, humidity: float) -> bool:
    return -40.0 <= temperature <= 85.0 and 0.0 <= humidity <= 100.0


def probe_unit(bus: ModbusBus, unit: int, timeout: float) -> ScanResult | None:
    """None when the unit id is silent; otherwise what answered and a profile guess."""
    try:
        raw = bus.read_registers(unit, 4, 1, 2, timeout)
    except ModbusTimeoutError:
        return None
    except ModbusExceptionError as exc:
        return ScanResult(unit, "generic", None, None, None, f"exception 0x{exc.code:02X} to input registers 1-2")
    except ModbusCrcError as exc:
        return ScanResult(unit, "generic", None, None, None, f"answers, but garbled: {exc.detail}")
    for scale in (10.0, 100.0):
        temperature, humidity = (Quantity(4, r, "int16", scale).decode([v]) for r, v in zip((1, 2), raw, strict=True))
        if _plausible(temperature, humidity):
            break
    else:
        return ScanResult(unit, "generic", None, None, None, f"input registers 1-2 hold {raw}, not a room reading")
    try:
        own_id = bus.read_registers(unit, 3, XY_MD02_ID_REGISTER, 1, timeout)[0]
    except ModbusError:
        own_id = None
    if own_id == unit:
        return ScanResult(unit, "xy-md02", scale, temperature, humidity, "holding register 0x0101 = its unit id")
    return ScanResult(unit, "sht20", scale, temperature, humidity, "no XY-MD02 settings registers")


def scan(bus: ModbusBus, units: Iterable[int] = ALL_UNITS, *, timeout: float = 0.1,
         progress: Callable[[int], None] | None = None) -> list[ScanResult]:
    """Ask every unit id in turn (one at a time: it is one bus). 247 ids at 0.1 s take about 25 s."""
    found = []
    for unit in units:
        if progress is not None:
            progress(unit)
        result = probe_unit(bus, unit, timeout)
        if result is not None:
            found.append(result)
    return found
