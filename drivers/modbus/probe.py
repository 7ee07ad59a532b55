"""A temperature/humidity probe read over Modbus RTU or TCP (XY-MD02, SHT20 modules, or any device)."""

from __future__ import annotations

from drivers.climate import ClimateReading
from drivers.modbus.bus import ModbusBus, ModbusError, ModbusExceptionError
from drivers.modbus.profiles import Profile


class ModbusClimateProbe:
    """`ClimateProbe` over a shared `ModbusBus`.

    Each request gets `1 + retries` attempts at most, whatever failed: a timeout, a CRC error, an
    exception response (0x06 busy passes on retry) or a port that cannot be opened (it is reopened).
    After the last attempt the error of that attempt is raised, naming the unit, the bus and the
    Modbus detail, with a wiring hint. Never a made-up value.
    """

    def __init__(self, name: str, bus: ModbusBus, unit: int, profile: Profile, *, retries: int = 2,
                 timeout_s: float = 0.5) -> None:
        self.name = name
        self.bus = bus
        self.unit = unit
        self.profile = profile
        self.retries = retries
        self.timeout_s = timeout_s
        self._reads = profile.reads()

    def read(self) -> ClimateReading:
        results = [self._read_with_retries(r.function, r.address, r.count) for r in self._reads]
        temperature, humidity = self.profile.decode(results)
        if not (-40.0 <= temperature <= 125.0 and 0.0 <= humidity <= 100.0):
            # an SHT20 covers -40..125 °C and 0..100 %; outside that the profile or scale is wrong
            raise ModbusError(
                f"probe {self.name!r}: unit {self.unit} on {self.bus.description} gave {temperature:g} °C, "
                f"{humidity:g} % with profile {self.profile.name!r}",
                "the profile and scale (some SHT20 firmware answers x100: set scale = 100)",
            )
        return ClimateReading(temperature_c=temperature, humidity_pct=humidity)

    def _read_with_retries(self, function: int, address: int, count: int) -> list[int]:
        attempts = 1 + self.retries
        for attempt in range(1, attempts + 1):
            try:
                return self.bus.read_registers(self.unit, function, address, count, self.timeout_s)
            except ModbusError as exc:
                if attempt == attempts:
                    raise type(exc)(*self._args(exc, attempt)) from None
        raise AssertionError("unreachable: the loop returns or raises")

    def _args(self, exc: ModbusError, attempts: int) -> tuple[object, ...]:
        tries = f" after {attempts} attempt{'s' if attempts > 1 else ''}"
        detail = f"probe {self.name!r}: {exc.detail}{tries}"
        if isinstance(exc, ModbusExceptionError):
            return detail, exc.hint, exc.code
        return detail, exc.hint

    def close(self) -> None:
        """Give up this probe's share of the bus; the last probe on it closes the port."""
        self.bus.release()
