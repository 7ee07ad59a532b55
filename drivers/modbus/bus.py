"""One shared link per serial port or TCP endpoint, so frames of different probes never interleave.

RS-485 is half duplex with one master: a second request sent before the first reply has arrived
corrupts both. Every probe on a port therefore goes through the same `ModbusBus`, which holds one
pymodbus sync client and a lock around each request/reply pair. `BusRegistry` hands out that
shared bus, counting users so the port is closed when the last probe on it is closed.

Failures are classified per attempt from what actually came back on the wire (pymodbus reports a
bad CRC and silence alike as "no response"): nothing at all, bytes with a bad CRC, a reply from
another unit, or an exception response. Retrying is the caller's decision (`ModbusClimateProbe`).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import termios
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer.rtu import FramerRTU
from pymodbus.pdu import ExceptionResponse

from drivers.errors import InvalidValueError, SensorReadError

EXCEPTION_NAMES = {
    0x01: "illegal function", 0x02: "illegal data address", 0x03: "illegal data value",
    0x04: "server device failure", 0x05: "acknowledge", 0x06: "server device busy",
    0x08: "memory parity error", 0x0A: "gateway path unavailable", 0x0B: "gateway target failed to respond",
}
_EXCEPTION_HINTS = {
    0x01: "the device does not support this function code; check the profile (function 3 or 4)",
    0x02: "the device has no such register; check the profile's register numbers (wire addresses are 0-based)",
    0x03: "the device refused the register count; check the profile's data_type",
    0x04: "the device reports an internal fault; check its sensor element or replace it",
    0x06: "the device is busy; it should answer on a later poll",
    0x0B: "the TCP gateway got no answer from the RS-485 device behind it; check that side's wiring and unit id",
}


class ModbusError(SensorReadError):
    """One Modbus request failed; `detail` is the wire-level cause, `hint` what a technician should check."""

    def __init__(self, detail: str, hint: str = "") -> None:
        self.detail, self.hint = detail, hint
        super().__init__(f"{detail}. Check: {hint}" if hint else detail)


class ModbusTimeoutError(ModbusError):
    """Nothing came back before the timeout."""


class ModbusCrcError(ModbusError):
    """Bytes came back but not a valid frame (CRC mismatch, garbage, or a reply from another unit)."""


class ModbusExceptionError(ModbusError):
    """The device answered with a Modbus exception response."""

    def __init__(self, detail: str, hint: str, code: int) -> None:
        self.code = code
        super().__init__(detail, hint)


class ModbusLinkError(ModbusError):
    """The serial port cannot be opened, or the TCP endpoint refuses the connection."""


@dataclass(frozen=True, slots=True)
class SerialSettings:
    port: str
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8


@dataclass(frozen=True, slots=True)
class TcpEndpoint:
    host: str
    port: int = 502


def _unit_keyword() -> str:
    """pymodbus renamed `slave=` to `device_id=` during 3.x; use whichever the installed one takes."""
    params = inspect.signature(ModbusSerialClient.read_input_registers).parameters
    return "device_id" if "device_id" in params else "slave"


_UNIT_KW = _unit_keyword()


class ModbusBus:
    """A shared link. Thread-safe: `read_registers` holds the lock for one whole request and reply."""

    def __init__(self, key: SerialSettings | TcpEndpoint, on_closed: Callable[[ModbusBus], None] | None = None) -> None:
        self.key = key
        self._on_closed = on_closed
        self._lock = threading.Lock()
        self._users = 0
        self._rx = b""
        self._client: Any = self._make_client()
        self.transactions = 0  # requests sent, for `dcgate status` and the bench

    # -- what callers see -------------------------------------------------------------------

    @property
    def description(self) -> str:
        if isinstance(self.key, SerialSettings):
            return f"{self.key.port} at {self.key.baudrate} baud"
        return f"{self.key.host}:{self.key.port}"

    @property
    def is_serial(self) -> bool:
        return isinstance(self.key, SerialSettings)

    def acquire(self) -> ModbusBus:
        with self._lock:
            self._users += 1
        return self

    def release(self) -> None:
        """One user is done; the last one closes the port."""
        with self._lock:
            self._users = max(0, self._users - 1)
            last = self._users == 0
            if last:
                self._client.close()
        if last and self._on_closed is not None:
            self._on_closed(self)

    def close(self) -> None:
        with self._lock:
            self._client.close()

    def read_registers(self, unit: int, function: int, address: int, count: int, timeout: float) -> list[int]:
        """One read (function 3 or 4). Raises a `ModbusError` subclass naming what went wrong on the wire."""
        if function not in (3, 4):
            raise InvalidValueError(f"function {function} is not a register read. Fix: use 3 or 4")
        with self._lock:
            self._client.comm_params.timeout_connect = timeout
            # No extra pause for the 3.5-character silence RTU needs between frames: pymodbus only sees
            # a reply as complete after 4 characters' time without a byte, so the line is already quiet.
            self._rx = b""
            self.transactions += 1
            self._drop_late_replies()
            read = self._client.read_input_registers if function == 4 else self._client.read_holding_registers
            try:
                response = read(address, count=count, **{_UNIT_KW: unit})
            except ConnectionException as exc:
                self._client.close()  # reopened on the next request: an unplugged adapter comes back
                raise self._link_error(exc) from None
            except ModbusIOException:
                raise self._no_valid_reply(unit, timeout) from None
            except ModbusException as exc:
                raise ModbusCrcError(f"invalid reply from unit {unit} on {self.description} ({exc})",
                                     self._noise_hint()) from None
        if isinstance(response, ExceptionResponse) or response.isError():
            code = int(getattr(response, "exception_code", 0))
            name = EXCEPTION_NAMES.get(code, "unknown exception")
            raise ModbusExceptionError(
                f"exception response 0x{code:02X} ({name}) from unit {unit} on {self.description} "
                f"for function {function}, register {address}, count {count}",
                _EXCEPTION_HINTS.get(code, "see the device manual for this exception code"), code,
            )
        registers = list(response.registers)
        if len(registers) < count:
            raise ModbusCrcError(f"short reply from unit {unit} on {self.description}: {len(registers)} of "
                                 f"{count} registers", self._noise_hint())
        return registers[:count]

    # -- internals ----------------------------------------------------------------------------

    def _drop_late_replies(self) -> None:
        """Discard bytes already waiting on a serial line before a request.

        RTU frames carry no transaction id: a reply that arrived after its request timed out would
        be taken as the answer to the next request of the same unit and function (another register's
        value under the wrong name). A busy emulator under CI load did exactly that.
        """
        port = getattr(self._client, "socket", None) if self.is_serial else None
        if port is not None and getattr(port, "is_open", False):
            # a vanished adapter raises here: the request itself then reports the link error
            with contextlib.suppress(OSError, ValueError, termios.error):
                port.reset_input_buffer()

    def _make_client(self) -> Any:
        trace = self._trace_packet
        if isinstance(self.key, SerialSettings):
            k = self.key
            client: Any = ModbusSerialClient(k.port, baudrate=k.baudrate, parity=k.parity, stopbits=k.stopbits,
                                             bytesize=k.bytesize, timeout=1.0, retries=0, trace_packet=trace)
        else:
            client = ModbusTcpClient(self.key.host, port=self.key.port, timeout=1.0, retries=0, trace_packet=trace)
        # our own retries decide; pymodbus must not give up on the link after a few silent units
        client.set_max_no_responses(1 << 30)
        return client

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending and data:
            self._rx = data  # the receive buffer so far: kept to tell a bad CRC from silence
        return data

    def _no_valid_reply(self, unit: int, timeout: float) -> ModbusError:
        rx = self._rx
        where = f"unit {unit} on {self.description}"
        if not rx:
            hint = ("A and B swapped, wrong baud rate or parity, wrong unit id (find it with `dcgate modbus scan`), "
                    "or the device has no power" if self.is_serial else
                    "the unit id, and that the device or gateway behind this address is powered and wired")
            return ModbusTimeoutError(f"no answer from {where} ({timeout:g} s timeout)", hint)
        if self.is_serial and len(rx) >= 4:
            if FramerRTU.check_CRC(rx[:-2], int.from_bytes(rx[-2:], "big")) and rx[0] != unit:
                return ModbusCrcError(f"reply from unit {rx[0]} instead of unit {unit} on {self.description}",
                                      "two devices may share a unit id, or the reply of a slow device came late")
            return ModbusCrcError(f"CRC error in the reply from {where} ({len(rx)} bytes: {rx.hex(' ')})",
                                  self._noise_hint())
        return ModbusCrcError(f"garbled reply from {where} ({len(rx)} bytes: {rx.hex(' ')})", self._noise_hint())

    def _noise_hint(self) -> str:
        if not self.is_serial:
            return "that the address is a Modbus TCP device (port 502), not an RTU-over-TCP converter"
        return ("baud rate and parity must match the device; use twisted pair with a common ground (GND), "
                "120 ohm termination at both ends of the bus, and keep it away from mains cables")

    def _link_error(self, exc: Exception) -> ModbusLinkError:
        if isinstance(self.key, SerialSettings):
            port = self.key.port
            if not os.path.exists(port):
                return ModbusLinkError(f"serial port {port} does not exist",
                                       "that the USB RS-485 adapter is plugged in (ls /dev/serial/by-id/)")
            return ModbusLinkError(f"cannot use serial port {port} ({exc})",
                                   "that no other program holds the port and the service user is in group dialout")
        return ModbusLinkError(f"cannot connect to {self.key.host}:{self.key.port} ({exc})",
                               "the address, that the device is powered and on the network, and that TCP port "
                               f"{self.key.port} is reachable")

    # -- used by the registry ---------------------------------------------------------------------

    @property
    def users(self) -> int:
        return self._users


class BusRegistry:
    """Hands out one `ModbusBus` per serial port or TCP endpoint; two probes on one port share it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buses: dict[str, ModbusBus] = {}

    def rtu(self, settings: SerialSettings) -> ModbusBus:
        return self._get(settings.port, settings)

    def tcp(self, endpoint: TcpEndpoint) -> ModbusBus:
        return self._get(f"tcp://{endpoint.host}:{endpoint.port}", endpoint)

    def _get(self, name: str, key: SerialSettings | TcpEndpoint) -> ModbusBus:
        with self._lock:
            bus = self._buses.get(name)
            if bus is None:
                bus = self._buses[name] = ModbusBus(key, on_closed=self._forget)
            elif bus.key != key:
                raise InvalidValueError(
                    f"{name} is already used with {bus.key}, not {key}. Fix: give every probe on one bus the "
                    "same serial settings (baudrate, parity, stopbits, bytesize)"
                )
            return bus.acquire()

    def _forget(self, bus: ModbusBus) -> None:
        with self._lock:
            for name, known in list(self._buses.items()):
                if known is bus and bus.users == 0:
                    del self._buses[name]

    def buses(self) -> list[ModbusBus]:
        with self._lock:
            return list(self._buses.values())

    def close_all(self) -> None:
        for bus in self.buses():
            bus.close()
        with self._lock:
            self._buses.clear()
