"""An emulated XY-MD02 / SHT20 RS-485 climate probe (one or several unit ids), on a serial port or TCP.

Built on pymodbus's own server (`SimDevice` with an action that fills the registers from the live
state on each request), so what the gateway talks to is a real Modbus stack on a real serial line:
one end of a `socat` pty pair, or a USB RS-485 adapter when a technician rehearses with hardware.

Register map of each unit (wire addresses):
  * input/holding 0x0001 temperature, 0x0002 humidity: int16, × `scale` (10; some SHT20s use 100)
  * holding 0x0101 unit id, 0x0102 baud code (xy-md02 only: how `scan` tells the two apart)
  * holding 100–103 temperature, humidity as float32 high word first; 110–113 the same low word first;
    120–123 as int32 ×100 low word first: for exercising the `generic` profile's data types

Fault modes per unit: "silent" (never answers), "bad_crc" (answers with a corrupted CRC; RTU only),
"exception" (answers with exception 0x04, or `exception_code`).

    python -m drivers.sim.modbus_device --port /tmp/ttyEMU --units 1,2
    python -m drivers.sim.modbus_device --tcp 127.0.0.1:5020 --units 1

then type `set 2 temperature=25.5 humidity=40`, `fault 2 silent`, `fault 2 none` on stdin.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer.rtu import FramerRTU
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.errors import InvalidValueError
from drivers.modbus.profiles import XY_MD02_ID_REGISTER, Quantity
from drivers.sim.console import serve_commands

FAULTS = ("none", "silent", "bad_crc", "exception")
MODELS = ("xy-md02", "sht20")
BAUD_CODES = {1200: 0, 2400: 1, 4800: 2, 9600: 3, 19200: 4, 38400: 5, 57600: 6, 115200: 7}

# the extra registers for the generic profile (see the module docstring)
FLOAT_BIG, FLOAT_LITTLE, INT32_LITTLE = 100, 110, 120


@dataclass(frozen=True)
class UnitState:
    temperature_c: float = 21.0
    humidity_pct: float = 50.0
    model: Literal["xy-md02", "sht20"] = "xy-md02"
    scale: float = 10.0
    fault: str = "none"
    exception_code: int = ExcCodes.DEVICE_FAILURE


def _registers(unit: int, state: UnitState, baudrate: int) -> dict[int, int]:
    """Every register of one unit, by wire address, for the current state."""
    regs: dict[int, int] = {}

    def put(address: int, quantity: Quantity, value: float) -> None:
        for offset, word in enumerate(quantity.encode(value)):
            regs[address + offset] = word

    put(1, Quantity(4, 1, "int16", state.scale), state.temperature_c)
    put(2, Quantity(4, 2, "int16", state.scale), state.humidity_pct)
    for base, data_type, scale, order in ((FLOAT_BIG, "float32", 1.0, "big"), (FLOAT_LITTLE, "float32", 1.0, "little"),
                                          (INT32_LITTLE, "int32", 100.0, "little")):
        put(base, Quantity(3, base, data_type, scale, order), state.temperature_c)  # type: ignore[arg-type]
        put(base + 2, Quantity(3, base + 2, data_type, scale, order), state.humidity_pct)  # type: ignore[arg-type]
    if state.model == "xy-md02":
        regs[XY_MD02_ID_REGISTER] = unit
        regs[XY_MD02_ID_REGISTER + 1] = BAUD_CODES.get(baudrate, 3)
    return regs


class ModbusDeviceEmulator:
    """Serves the units in a background thread with its own event loop. Thread-safe controls."""

    def __init__(self, units: dict[int, UnitState] | Iterable[int], *, port: str | None = None,
                 tcp: tuple[str, int] | None = None, baudrate: int = 9600) -> None:
        if (port is None) == (tcp is None):
            raise InvalidValueError("give either a serial port or a TCP (host, port), not both or neither")
        self.port, self.tcp, self.baudrate = port, tcp, baudrate
        states = units if isinstance(units, dict) else {unit: UnitState() for unit in units}
        for unit in states:
            if not 1 <= unit <= 247:
                raise InvalidValueError(f"unit {unit} is outside 1..247. Fix: use a Modbus unit id 1 to 247")
        self._states: dict[int, UnitState] = dict(states)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.requests = 0

    # -- controls ------------------------------------------------------------------------------

    def set(self, unit: int, **changes: Any) -> UnitState:
        """Change a unit live: temperature_c, humidity_pct, model, scale, fault, exception_code."""
        if "fault" in changes and changes["fault"] not in FAULTS:
            raise InvalidValueError(f"fault={changes['fault']!r} is not one of {', '.join(FAULTS)}")
        if "model" in changes and changes["model"] not in MODELS:
            raise InvalidValueError(f"model={changes['model']!r} is not one of {', '.join(MODELS)}")
        with self._lock:
            if unit not in self._states:
                raise InvalidValueError(f"no emulated unit {unit}; serving {sorted(self._states)}")
            self._states[unit] = replace(self._states[unit], **changes)
            return self._states[unit]

    def state(self, unit: int) -> UnitState:
        with self._lock:
            return self._states[unit]

    @property
    def units(self) -> list[int]:
        with self._lock:
            return sorted(self._states)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> ModbusDeviceEmulator:
        self._thread = threading.Thread(target=self._run, name="modbus-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"modbus emulator did not start within {timeout:g} s")
        if self._error is not None:
            raise RuntimeError(f"modbus emulator failed to start: {self._error}") from self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> ModbusDeviceEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._listen())
        except BaseException as exc:  # reported by start(), in the caller's thread
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _listen(self) -> None:
        devices = [SimDevice(id=unit, simdata=self._simdata(unit), action=self._action_for(unit))
                   for unit in self.units]
        # id 0 stands for every other unit id: those stay silent, as on a real RS-485 bus
        everything = SimData(0, count=65536, datatype=DataType.REGISTERS)  # so the action, not a range check, answers
        devices.append(SimDevice(id=0, simdata=[everything], action=self._absent))
        common = {"ignore_missing_devices": True, "trace_packet": self._trace_packet}
        if self.port is not None:
            self._server = ModbusSerialServer(devices, port=self.port, baudrate=self.baudrate, **common)
        else:
            assert self.tcp is not None
            self._server = ModbusTcpServer(devices, address=self.tcp, **common)
        await self._server.serve_forever(background=True)

    def _simdata(self, unit: int) -> list[SimData]:
        regs = _registers(unit, self.state(unit), self.baudrate)
        return [SimData(address, values=value, datatype=DataType.REGISTERS) for address, value in sorted(regs.items())]

    def _action_for(self, unit: int) -> Any:
        async def action(function_code: int, start_address: int, address: int, count: int,
                         registers: list[int], set_values: Any) -> ExcCodes | None:
            self.requests += 1
            state = self.state(unit)
            if state.fault == "silent":
                raise NoSuchIdException(f"unit {unit} is set silent")  # the server then sends nothing
            if state.fault == "exception":
                return ExcCodes(state.exception_code)
            if set_values is not None:
                return ExcCodes.ILLEGAL_FUNCTION  # a climate probe's registers are read-only here
            for reg_address, value in _registers(unit, state, self.baudrate).items():
                offset = reg_address - start_address
                if 0 <= offset < len(registers):
                    registers[offset] = value
            return None
        return action

    @staticmethod
    async def _absent(*_args: Any) -> ExcCodes | None:
        raise NoSuchIdException("no such unit on this bus")

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        """Corrupt the CRC of replies from units in "bad_crc" mode (RTU frames end with their CRC)."""
        if sending and self.port is not None and len(data) >= 4:
            with self._lock:
                state = self._states.get(data[0])
            if state is not None and state.fault == "bad_crc":
                crc = FramerRTU.compute_CRC(data[:-2]) ^ 0x5A5A
                return data[:-2] + crc.to_bytes(2, "big")
        return data


# -- command line: a rehearsal device for technicians ---------------------------------------------

def parse_units(text: str) -> list[int]:
    """`1,2,5-8` -> [1, 2, 5, 6, 7, 8]."""
    units: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                low, high = (int(x) for x in part.split("-", 1))
                units.extend(range(low, high + 1))
            else:
                units.append(int(part))
        except ValueError:
            raise InvalidValueError(f"unit list {text!r} is not like 1,2,5-8. Fix: give unit ids 1 to 247") from None
    return units


def _command(emulator: ModbusDeviceEmulator, line: str) -> str:
    words = line.split()
    if not words:
        return ""
    if words[0] == "fault" and len(words) == 3:
        state = emulator.set(int(words[1]), fault=words[2])
        return f"unit {words[1]}: fault={state.fault}"
    if words[0] == "set" and len(words) >= 3:
        keys = {"temperature": "temperature_c", "humidity": "humidity_pct", "scale": "scale", "model": "model"}
        changes: dict[str, Any] = {}
        for pair in words[2:]:
            key, _, value = pair.partition("=")
            if key not in keys:
                raise InvalidValueError(f"no setting {key!r}; use {', '.join(keys)}")
            changes[keys[key]] = value if key == "model" else float(value)
        state = emulator.set(int(words[1]), **changes)
        return f"unit {words[1]}: {state}"
    raise InvalidValueError("commands: `set UNIT temperature=T humidity=H scale=S model=M`, `fault UNIT MODE`")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drivers.sim.modbus_device", description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="serial device to serve on (one end of a socat pty pair, or a USB adapter)")
    where.add_argument("--tcp", metavar="HOST:PORT", help="serve Modbus TCP instead")
    parser.add_argument("--units", default="1", help="unit ids, e.g. 1,2 or 1-8 (default 1)")
    parser.add_argument("--baud", type=int, default=9600, help="baud rate (default 9600)")
    parser.add_argument("--model", choices=MODELS, default="xy-md02")
    parser.add_argument("--scale", type=float, default=10.0, help="raw = value × scale (default 10)")
    parser.add_argument("--temperature", type=float, default=21.0)
    parser.add_argument("--humidity", type=float, default=50.0)
    args = parser.parse_args(argv)
    state = UnitState(args.temperature, args.humidity, args.model, args.scale)
    tcp = None
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        tcp = (host or "127.0.0.1", int(port))
    emulator = ModbusDeviceEmulator({u: state for u in parse_units(args.units)}, port=args.port, tcp=tcp,
                                    baudrate=args.baud)
    emulator.start()
    return serve_commands(emulator, _command, f"ready: units {emulator.units} on {args.port or args.tcp}")


if __name__ == "__main__":
    sys.exit(main())
