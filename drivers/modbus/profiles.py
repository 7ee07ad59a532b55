"""How a Modbus climate probe stores temperature and humidity: built-in profiles and a generic one.

A profile says, per quantity, which function code and register to read, how many registers
make the value, how to interpret them (signed, unsigned, float; word order for 32-bit values)
and what to divide the raw number by. Addresses are the ones on the wire (0-based), as in the
device manuals of XY-MD02/SHT20 modules ("input register 0x0001 = temperature").
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import Literal

from drivers.errors import InvalidValueError

DataType = Literal["int16", "uint16", "int32", "uint32", "float32"]
WordOrder = Literal["big", "little"]

#: registers per value and struct code (big-endian bytes once the words are in big order)
_LAYOUT: dict[str, tuple[int, str]] = {
    "int16": (1, ">h"), "uint16": (1, ">H"), "int32": (2, ">i"), "uint32": (2, ">I"), "float32": (2, ">f"),
}
FUNCTIONS = (3, 4)  # read holding registers, read input registers


@dataclass(frozen=True, slots=True)
class Quantity:
    """One measured value: where it lives and how to turn its registers into a number."""

    function: int
    register: int
    data_type: DataType = "int16"
    scale: float = 10.0  # raw value = quantity × scale (10 means 215 is 21.5)
    word_order: WordOrder = "big"  # "big": high word first

    def __post_init__(self) -> None:
        if self.function not in FUNCTIONS:
            raise InvalidValueError(
                f"function {self.function} is not a register read. Fix: use 3 (holding) or 4 (input registers)"
            )
        if self.data_type not in _LAYOUT:
            raise InvalidValueError(f"data_type {self.data_type!r} is unknown. Fix: use one of {', '.join(_LAYOUT)}")
        if not 0 <= self.register <= 0xFFFF - self.count + 1:
            raise InvalidValueError(f"register {self.register} is outside 0..65535. Fix: give the wire address")
        if self.scale <= 0:
            raise InvalidValueError(f"scale {self.scale:g} must be positive. Fix: use e.g. 1, 10 or 100")
        if self.word_order not in ("big", "little"):
            raise InvalidValueError(f"word_order {self.word_order!r} is unknown. Fix: use \"big\" or \"little\"")

    @property
    def count(self) -> int:
        return _LAYOUT[self.data_type][0]

    def decode(self, registers: list[int]) -> float:
        """The quantity from exactly `count` registers, as read."""
        words = list(registers) if self.word_order == "big" else list(reversed(registers))
        raw = struct.unpack(_LAYOUT[self.data_type][1], b"".join(w.to_bytes(2, "big") for w in words))[0]
        return round(raw / self.scale, 4)

    def encode(self, value: float) -> list[int]:
        """Registers holding `value` (the emulator's side of `decode`)."""
        code = _LAYOUT[self.data_type][1]
        raw: float | int = value * self.scale
        if code != ">f":
            raw = round(raw)
        data = struct.pack(code, raw)
        words = [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
        return words if self.word_order == "big" else list(reversed(words))


@dataclass(frozen=True, slots=True)
class Read:
    """One register read (one Modbus transaction) that covers one or both quantities."""

    function: int
    address: int
    count: int


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    temperature: Quantity
    humidity: Quantity

    def with_scale(self, scale: float) -> Profile:
        """The same profile with another divisor for both quantities (units that answer ×100)."""
        return replace(self, temperature=replace(self.temperature, scale=scale),
                       humidity=replace(self.humidity, scale=scale))

    def reads(self) -> list[Read]:
        """As few transactions as possible: one when both quantities sit close together."""
        t, h = self.temperature, self.humidity
        if t.function == h.function:
            start = min(t.register, h.register)
            end = max(t.register + t.count, h.register + h.count)
            if end - start <= 16:  # reading a few unused registers beats a second round trip
                return [Read(t.function, start, end - start)]
        return [Read(t.function, t.register, t.count), Read(h.function, h.register, h.count)]

    def decode(self, results: list[list[int]]) -> tuple[float, float]:
        """(temperature, humidity) from the registers of `reads()`, in the same order."""
        blocks = dict(zip(self.reads(), results, strict=True))

        def value(q: Quantity) -> float:
            for read, registers in blocks.items():
                if read.function == q.function and read.address <= q.register < read.address + read.count:
                    offset = q.register - read.address
                    return q.decode(registers[offset:offset + q.count])
            raise AssertionError("reads() always covers both quantities")

        return value(self.temperature), value(self.humidity)


# XY-MD02 (SHT20 element inside): input registers 0x0001 temperature, 0x0002 humidity, int16 ×10.
XY_MD02 = Profile("xy-md02", Quantity(4, 1, "int16", 10.0), Quantity(4, 2, "int16", 10.0))
# Bare "SHT20 RS485" modules: the same map; some firmware answers ×100 (set scale = 100).
SHT20 = Profile("sht20", Quantity(4, 1, "int16", 10.0), Quantity(4, 2, "int16", 10.0))

BUILT_IN: dict[str, Profile] = {p.name: p for p in (XY_MD02, SHT20)}
PROFILE_NAMES = (*BUILT_IN, "generic")

#: XY-MD02 holding registers: 0x0101 = its own unit id, 0x0102 = baud code. SHT20 modules lack them.
XY_MD02_ID_REGISTER = 0x0101


def built_in(name: str, scale: float | None = None) -> Profile:
    try:
        profile = BUILT_IN[name]
    except KeyError:
        raise InvalidValueError(
            f"profile {name!r} is not built in. Fix: use one of {', '.join(BUILT_IN)}, or \"generic\" with registers"
        ) from None
    return profile.with_scale(scale) if scale is not None else profile


def generic(temperature: Quantity, humidity: Quantity) -> Profile:
    return Profile("generic", temperature, humidity)
