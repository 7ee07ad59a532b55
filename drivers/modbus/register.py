"""One number from a Modbus register over a shared `ModbusBus`: a fuel level, an ATS position code.

Where the value lives and how to decode it is a `profiles.Quantity` (function 3/4, register,
data_type, scale, word order), the same type the generic climate profile uses.
"""

from __future__ import annotations

from drivers.modbus.bus import ModbusBus, ModbusError, ModbusExceptionError
from drivers.modbus.profiles import Quantity


class ModbusRegisterReader:
    """Reads `quantity` from `unit`; `1 + retries` attempts, then the last attempt's `ModbusError`."""

    def __init__(self, name: str, bus: ModbusBus, unit: int, quantity: Quantity, *, retries: int = 2,
                 timeout_s: float = 0.5) -> None:
        self.name = name
        self.bus = bus
        self.unit = unit
        self.quantity = quantity
        self.retries = retries
        self.timeout_s = timeout_s

    def read(self) -> float:
        q = self.quantity
        attempts = 1 + self.retries
        for attempt in range(1, attempts + 1):
            try:
                registers = self.bus.read_registers(self.unit, q.function, q.register, q.count, self.timeout_s)
                return q.decode(registers)
            except ModbusError as exc:
                if attempt == attempts:
                    detail = f"{self.name}: {exc.detail} after {attempts} attempt{'s' if attempts > 1 else ''}"
                    if isinstance(exc, ModbusExceptionError):
                        raise ModbusExceptionError(detail, exc.hint, exc.code) from None
                    raise type(exc)(detail, exc.hint) from None
        raise AssertionError("unreachable: the loop returns or raises")

    def close(self) -> None:
        """Give up this reader's share of the bus; the last user closes the port."""
        self.bus.release()
