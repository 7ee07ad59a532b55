"""R307 / R503 / AS608 fingerprint sensor on a UART, through adafruit-circuitpython-fingerprint.

`FingerprintReader` wraps `adafruit_fingerprint.Adafruit_Fingerprint` (given a pyserial port as
its uart) with what the door needs: a two-scan enrolment into a free page that returns the stored
template, one-attempt identification, template download (to re-provision a replaced sensor or a
second door), deletion (revocation), counting and finding free pages.

Where the library falls short, this module makes up for it:

* the library never checks reply checksums; `_CheckedUart` sits between it and the port and
  verifies every packet it reads, and it returns a short error packet at once (the library would
  otherwise wait for the full expected length until the read timeout);
* the library's constructor turns every failure into the same RuntimeError; `_Sensor` skips it so
  "nothing answers" and "wrong password" become different errors;
* `get_fpdata` fails with UnboundLocalError and `send_fpdata` reports success even when the
  sensor refuses; here, an upload checks the acknowledgement first, and every download is read
  back and compared.

Templates are biometric data, "specific personal data" under UU PDP: this module never logs
them or puts them into error messages.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable

import serial
from adafruit_fingerprint import Adafruit_Fingerprint

from drivers.errors import InvalidValueError, SensorError, SensorReadError

# confirmation codes the driver tells apart (module manual)
OK, PACKET_ERROR, NO_FINGER, IMAGE_FAIL, MESSY, FEW_FEATURES = 0x00, 0x01, 0x02, 0x03, 0x06, 0x07
NOT_FOUND, ENROLL_MISMATCH, BAD_LOCATION, WRONG_PASSWORD, NO_IMAGE, FLASH_ERROR = 0x09, 0x0A, 0x0B, 0x13, 0x15, 0x18
MUST_VERIFY = 0x21
_MEANINGS = {
    PACKET_ERROR: "the sensor received a damaged packet", NO_FINGER: "no finger on the sensor",
    IMAGE_FAIL: "the image could not be taken", MESSY: "the image is too messy",
    FEW_FEATURES: "the image has too few features", 0x08: "the fingers do not match",
    NOT_FOUND: "no matching finger", ENROLL_MISMATCH: "the two scans are not of the same finger",
    BAD_LOCATION: "the page is beyond the library", 0x0C: "the page holds no valid template",
    0x0D: "the template could not be uploaded", 0x0E: "the sensor cannot receive the data packets",
    0x10: "the template could not be deleted", 0x11: "the library could not be emptied",
    WRONG_PASSWORD: "wrong password", NO_IMAGE: "there is no valid image to convert",
    FLASH_ERROR: "writing the sensor's flash failed", MUST_VERIFY: "the password must be verified first",
}

#: bytes per data packet, by the packet-size code ReadSysPara reports
_PACKET_SIZES = {0: 32, 1: 64, 2: 128, 3: 256}
#: time between GenImg polls while waiting for a finger: the module takes an image per request and
#: needs a moment between them; this is the protocol's own pace, not a busy loop
POLL_INTERVAL_S = 0.1


class FingerprintError(SensorError):
    """The fingerprint sensor refused or failed an operation."""


class NoSensorError(FingerprintError):
    """Nothing answers on the port."""


class WrongPasswordError(FingerprintError, PermissionError):
    """The sensor answers but rejects the configured password."""


class FingerTimeoutError(FingerprintError, TimeoutError):
    """No finger was placed (or lifted) before the deadline."""


class LibraryFullError(FingerprintError):
    """Every template page of the sensor is in use."""


class EnrollError(FingerprintError):
    """An enrolment scan was unusable or the two scans did not agree; scanning again may work."""


class FingerprintReadError(FingerprintError, SensorReadError):
    """A packet was damaged, cut short or not what the protocol expects."""


def _describe(code: int) -> str:
    return f"0x{code:02X} ({_MEANINGS.get(code, 'unknown confirmation code')})"


class _CheckedUart:
    """A pyserial port as the library's uart, verifying each packet's start code and checksum.

    The library reads one packet per call (or a data packet in pieces); each call here reads at most
    one packet from the wire, so a short error reply comes back at once rather than after the timeout.
    """

    def __init__(self, port: serial.Serial) -> None:
        self.port = port
        self._pending = bytearray()  # bytes of a verified packet not yet handed to the library
        self.last_code: int | None = None  # confirmation code of the latest acknowledgement

    def write(self, data: bytes | bytearray | list[int]) -> int | None:
        if isinstance(data, list):  # the library writes data packets as lists of ints
            data = bytes(data)
        if data[6:7] == b"\x01":  # a new command: stale bytes from an earlier failure must not be read as its reply
            self.port.reset_input_buffer()
            self._pending.clear()
        return self.port.write(data)

    def read(self, size: int) -> bytes:
        if not self._pending:
            self._pending += self._read_packet()
        out, self._pending = bytes(self._pending[:size]), self._pending[size:]
        return out

    def close(self) -> None:
        self.port.close()

    def _read_packet(self) -> bytes:
        header = self.port.read(9)
        if len(header) < 9:
            return header  # nothing (or a fragment) before the timeout; the library reports it
        if header[:2] != b"\xef\x01":
            self.port.reset_input_buffer()
            raise FingerprintReadError("the fingerprint sensor sent bytes that are not a packet (no 0xEF01 "
                                       "start code). Fix: check the baud rate and the TX/RX wiring")
        length = struct.unpack(">H", header[7:9])[0]
        rest = self.port.read(length)
        if len(rest) < length:
            raise FingerprintReadError(f"the fingerprint sensor's reply was cut short ({len(rest)} of {length} "
                                       "bytes). Fix: check the cable and the sensor's power")
        content, received = rest[:-2], struct.unpack(">H", rest[-2:])[0]
        if sum(header[6:] + content) & 0xFFFF != received:
            raise FingerprintReadError("a reply from the fingerprint sensor has a wrong checksum (line noise). "
                                       "Fix: shorten or shield the cable, check ground; then try again")
        if header[6] == 0x07 and content:
            self.last_code = content[0]
        return header + rest


class _Sensor(Adafruit_Fingerprint):
    """The library's class without its constructor, which verifies the password and reads the
    parameters but turns every failure into the same RuntimeError; `FingerprintReader` does both
    itself so it can tell a missing sensor from a wrong password."""

    def __init__(self, uart: _CheckedUart, password: tuple[int, int, int, int]) -> None:
        self.password = password
        self._uart = uart


class FingerprintReader:
    """One fingerprint sensor on a serial port. Thread-safe: one operation at a time."""

    def __init__(self, port: str, baudrate: int = 57600, password: int = 0, *, timeout: float = 1.0) -> None:
        if not 0 <= password <= 0xFFFFFFFF:
            raise InvalidValueError(f"password {password} is not a 32-bit value. Fix: use 0 to 0xFFFFFFFF")
        self.port_name = port
        try:
            self._serial = serial.Serial(port, baudrate, timeout=timeout)
        except serial.SerialException as exc:
            raise NoSensorError(f"cannot open fingerprint port {port}: {exc}. Fix: check the device path "
                                "and that dcgate may use it (dialout group)") from exc
        self._uart = _CheckedUart(self._serial)
        self._sensor = _Sensor(self._uart, tuple(password.to_bytes(4, "big")))  # type: ignore[arg-type]
        self._lock = threading.Lock()
        try:
            code = self._call(self._sensor.verify_password)
            if code == WRONG_PASSWORD:
                raise WrongPasswordError(f"the fingerprint sensor on {port} rejects the password. Fix: set the "
                                         "sensor's password in the door's config")
            self._check(code, "verify the password")
            self._call(self._sensor.read_sysparam)
        except FingerprintReadError as exc:
            self._serial.close()
            raise NoSensorError(f"no fingerprint sensor answers on {port} at {baudrate} baud ({exc}). Fix: check "
                                "the wiring (TX to RX, RX to TX, 3.3 V, ground) and the baud rate") from exc
        except BaseException:
            self._serial.close()
            raise
        self.capacity: int = self._sensor.library_size or 0
        self.packet_size: int = _PACKET_SIZES.get(self._sensor.data_packet_size or 0, 32)

    def close(self) -> None:
        self._serial.close()

    def __enter__(self) -> FingerprintReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- operations ----------------------------------------------------------------------------

    def enroll(self, slot: int, timeout: float = 15.0) -> bytes:
        """Two scans of one finger into an empty page `slot`; returns the stored template's bytes.

        The person places the finger, lifts it, and places it again, within `timeout` seconds in all.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self._check_slot(slot)
            if slot in self._used_pages():
                raise InvalidValueError(f"page {slot} of the fingerprint sensor already holds a template. Fix: "
                                        "pick a free page, or revoke the old finger first")
            for buffer in (1, 2):
                if buffer == 2:
                    self._wait(lambda: self._image_code() == NO_FINGER, deadline, "the finger to be lifted")
                self._wait(lambda: self._image_code() == OK, deadline, "a finger on the sensor")
                code = self._call(self._sensor.image_2_tz, buffer)
                if code != OK:
                    raise EnrollError(f"scan {buffer} is unusable: {_describe(code)}. Fix: clean the sensor and "
                                      "the finger, press flat, and enrol again")
            code = self._call(self._sensor.create_model)
            if code != OK:
                raise EnrollError(f"the template could not be made: {_describe(code)}. Fix: enrol again with "
                                  "the same finger both times")
            self._check(self._call(self._sensor.store_model, slot, 1), f"store the template at page {slot}")
            return self._upload(slot)

    def identify(self, timeout: float = 0.0) -> tuple[int, int] | None:
        """One attempt: (page, confidence) of the finger on the sensor, or None if it is not enrolled.

        Waits up to `timeout` seconds for a finger (0: one look); raises FingerTimeoutError without one.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self._wait(lambda: self._image_code() == OK, deadline, "a finger on the sensor")
            code = self._call(self._sensor.image_2_tz, 1)
            if code in (MESSY, FEW_FEATURES):
                return None  # a smudged press is "not recognised": the person presses again
            self._check(code, "convert the image")
            code = self._call(self._sensor.finger_search)
            if code == NOT_FOUND:
                return None
            self._check(code, "search the library")
            return int(self._sensor.finger_id or 0), int(self._sensor.confidence or 0)

    def template(self, slot: int) -> bytes:
        """The template stored at page `slot` (for `finger sync`)."""
        with self._lock:
            self._check_slot(slot)
            return self._upload(slot)

    def store_template(self, slot: int, template: bytes) -> None:
        """Download `template` into page `slot`, then read it back to prove it arrived intact."""
        if not template or len(template) % self.packet_size:
            raise InvalidValueError(f"a template of {len(template)} bytes cannot be sent in {self.packet_size}-byte "
                                    "packets. Fix: use a template read from a sensor of the same model")
        with self._lock:
            self._check_slot(slot)
            self._check(self._call(self._sensor.send_fpdata, list(template), "char", 1), "accept a template",
                        ack=True)
            self._check(self._call(self._sensor.store_model, slot, 1), f"store the template at page {slot}")
            if self._upload(slot) != template:
                self._call(self._sensor.delete_model, slot)  # never leave a damaged copy that could match anyone
                raise FingerprintReadError(f"the template stored at page {slot} differs from the one sent (damaged "
                                           "on the line); it was deleted. Fix: check the cable and sync again")

    def delete(self, slot: int) -> None:
        """Erase page `slot` (revocation). Erasing an empty page is not an error."""
        with self._lock:
            self._check_slot(slot)
            self._check(self._call(self._sensor.delete_model, slot), f"delete page {slot}")

    def slots(self) -> list[int]:
        """Pages that hold a template, ascending."""
        with self._lock:
            return sorted(self._used_pages())

    def free_slot(self) -> int:
        with self._lock:
            used = self._used_pages()
        for page in range(self.capacity):
            if page not in used:
                return page
        raise LibraryFullError(f"all {self.capacity} pages of the fingerprint sensor on {self.port_name} are in use. "
                               "Fix: revoke people who no longer need access")

    def count(self) -> int:
        with self._lock:
            self._check(self._call(self._sensor.count_templates), "count templates")
            return int(self._sensor.template_count or 0)

    # -- helpers (called with the lock held) ---------------------------------------------------

    def _call(self, method: Callable[..., object], *args: object) -> int:
        """Run one library call; its RuntimeErrors (no reply, wrong packet) become FingerprintReadError."""
        self._uart.last_code = None
        try:
            result = method(*args)
        except FingerprintError:
            raise
        except (RuntimeError, struct.error, IndexError, UnboundLocalError) as exc:
            code = self._uart.last_code
            if code is not None and code != OK:  # the sensor answered, but with an error the library did not expect
                raise FingerprintReadError(f"the fingerprint sensor on {self.port_name} answered "
                                           f"{_describe(code)}") from exc
            raise FingerprintReadError(f"no valid reply from the fingerprint sensor on {self.port_name} ({exc}). "
                                       "Fix: check the wiring and the sensor's power") from exc
        except serial.SerialException as exc:
            raise NoSensorError(f"the fingerprint port {self.port_name} failed: {exc}") from exc
        return result if isinstance(result, int) and not isinstance(result, bool) else OK

    def _check(self, code: int, action: str, *, ack: bool = False) -> None:
        if ack:  # send_fpdata always returns True; the acknowledgement it read tells the truth
            code = self._uart.last_code if self._uart.last_code is not None else PACKET_ERROR
        if code != OK:
            raise FingerprintError(f"the fingerprint sensor on {self.port_name} could not {action}: {_describe(code)}")

    def _check_slot(self, slot: int) -> None:
        if not 0 <= slot < self.capacity:
            raise InvalidValueError(f"page {slot} is outside the sensor's library 0..{self.capacity - 1}")

    def _image_code(self) -> int:
        code = self._call(self._sensor.get_image)
        if code in (IMAGE_FAIL, PACKET_ERROR):
            return IMAGE_FAIL  # a failed image or a noisy request is one try, not a verdict: poll again
        if code != NO_FINGER:
            self._check(code, "take an image")
        return code

    def _used_pages(self) -> set[int]:
        self._check(self._call(self._sensor.read_templates), "read its index table")
        return set(self._sensor.templates)

    @staticmethod
    def _wait(ready: Callable[[], bool], deadline: float, what: str) -> None:
        """Poll until `ready()` or the deadline (always at least one poll)."""
        while not ready():
            if time.monotonic() >= deadline:
                raise FingerTimeoutError(f"timed out waiting for {what}")
            time.sleep(POLL_INTERVAL_S)  # the sensor's pace between image requests (see POLL_INTERVAL_S)

    def _upload(self, slot: int) -> bytes:
        """LoadChar page -> buffer 1, then UpChar: the template as stored in flash."""
        self._check(self._call(self._sensor.load_model, slot, 1), f"load page {slot}")
        box: list[bytes] = []
        # a refused UpChar makes the library fail with UnboundLocalError; _call reports the sensor's code
        self._call(lambda: box.append(bytes(self._sensor.get_fpdata("char", 1))))
        if not box or not box[0]:
            raise FingerprintReadError(f"the fingerprint sensor on {self.port_name} sent an empty template "
                                       f"for page {slot}")
        return box[0]
