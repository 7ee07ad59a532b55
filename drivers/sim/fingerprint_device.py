"""An emulated R307 / R503 / AS608 fingerprint sensor (ZFM packet protocol) on a serial port.

It answers the same packets as the real module, byte for byte, so the real
`adafruit_fingerprint` library can be tested against it over one end of a `socat` pty pair (or a
USB UART when a technician rehearses a site). Packets: header 0xEF01, 4-byte address, packet id
(0x01 command, 0x02 data, 0x07 acknowledge, 0x08 last data), 2-byte length (content + checksum),
content, checksum = low 16 bits of the sum of id, length and content bytes.

The "finger" is synthetic: `finger_template(id)` is 512 deterministic pseudo-random bytes, and each
scan of that finger flips a few bytes (`scan_template`), so matching works on the bytes alone, as on
a real module: the same finger scores high, another finger scores zero. No real biometric data is
ever involved.

Commands: VfyPwd 0x13, ReadSysPara 0x0F, GenImg 0x01, Img2Tz 0x02, Match 0x03, Search 0x04 and
0x1B, RegModel 0x05, Store 0x06, LoadChar 0x07, UpChar 0x08, DownChar 0x09, DeleteChar 0x0C,
Empty 0x0D, TemplateNum 0x1D, ReadIndexTable 0x1F, aura LED 0x35, echo 0x53, soft reset 0x3D.
A command whose checksum is wrong is answered with 0x01, as the module does.

Faults (`fault(mode, times=None)`), each until cleared or for `times` commands it affects:
  * "image_fail": GenImg answers 0x03;  "messy": Img2Tz answers 0x06;  "few_features": 0x07
  * "flash_error": Store answers 0x18;  "line_noise": the next command arrives corrupted (-> 0x01)
  * "bad_checksum": replies carry a wrong checksum;  "silent": nothing is answered
  * "search_error": Search answers 0x01, an error after the image was taken (a fault mid-presentation)

    python -m drivers.sim.fingerprint_device --port /tmp/ttyFP --capacity 200

then type `place 7`, `place 7 2` (two taps), `remove`, `fault messy`, `fault none`, `list` on stdin.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import struct
import sys
import threading
from typing import Any

import serial

from drivers.errors import InvalidValueError
from drivers.sim.console import serve_commands

START = b"\xef\x01"
COMMAND, DATA, ACK, END_DATA = 0x01, 0x02, 0x07, 0x08
TEMPLATE_SIZE = 512
PACKET_SIZES = {0: 32, 1: 64, 2: 128, 3: 256}  # ReadSysPara's packet-size code -> bytes per data packet

# confirmation codes (module manual)
OK, PACKET_ERROR, NO_FINGER, IMAGE_FAIL, MESSY, FEW_FEATURES = 0x00, 0x01, 0x02, 0x03, 0x06, 0x07
NO_MATCH, NOT_FOUND, ENROLL_MISMATCH, BAD_LOCATION, READ_TEMPLATE_ERROR = 0x08, 0x09, 0x0A, 0x0B, 0x0C
UPLOAD_ERROR, DELETE_FAIL, WRONG_PASSWORD, NO_IMAGE, FLASH_ERROR = 0x0D, 0x10, 0x13, 0x15, 0x18
MUST_VERIFY, MODULE_OK = 0x21, 0x55

FAULTS = ("none", "image_fail", "messy", "few_features", "flash_error", "line_noise", "bad_checksum", "silent",
          "search_error")
SCAN_NOISE_BYTES = 12  # bytes one scan differs from the finger's canonical template
MATCH_FRACTION = 0.9   # share of equal bytes above which two templates are the same finger


def finger_template(finger_id: int) -> bytes:
    """The canonical template of a synthetic finger: deterministic, different for every id."""
    out = bytearray()
    counter = 0
    while len(out) < TEMPLATE_SIZE:
        out += hashlib.sha256(f"dcgate-sim-finger:{finger_id}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:TEMPLATE_SIZE])


def scan_template(finger_id: int, scan: int) -> bytes:
    """One scan of a finger: the canonical template with a few bytes changed, as no two scans agree."""
    data = bytearray(finger_template(finger_id))
    rng = random.Random(f"{finger_id}:{scan}")  # str seeds are hashed stably, so runs repeat
    for index in rng.sample(range(TEMPLATE_SIZE), SCAN_NOISE_BYTES):
        data[index] ^= rng.randrange(1, 256)
    return bytes(data)


def match_score(a: bytes | None, b: bytes | None) -> int:
    """0 for different fingers; 0..400 rising with agreement, like the module's score."""
    if not a or not b or len(a) != len(b):
        return 0
    same = sum(x == y for x, y in zip(a, b, strict=True)) / len(a)
    return int(max(0.0, same - 0.5) * 800) if same >= MATCH_FRACTION else 0


def checksum(body: bytes) -> int:
    return sum(body) & 0xFFFF


def packet(pid: int, content: bytes, address: int = 0xFFFFFFFF, *, corrupt: bool = False) -> bytes:
    """One ZFM packet; `corrupt` flips the checksum (for the "bad_checksum" fault)."""
    body = bytes([pid]) + struct.pack(">H", len(content) + 2) + content
    total = checksum(body) ^ (0x5A5A if corrupt else 0)
    return START + struct.pack(">I", address) + body + struct.pack(">H", total)


class FingerprintEmulator:
    """Serves the sensor in a background thread on a serial port path. Thread-safe controls."""

    def __init__(self, port: str, *, capacity: int = 200, password: int = 0, baudrate: int = 57600,
                 address: int = 0xFFFFFFFF, packet_size_code: int = 2, security_level: int = 3,
                 library: dict[int, bytes] | None = None) -> None:
        if not 1 <= capacity <= 1000:
            raise InvalidValueError(f"capacity {capacity} is outside 1..1000 (R307: 1000, R503: 200, AS608: 300)")
        if packet_size_code not in PACKET_SIZES:
            raise InvalidValueError(f"packet_size_code {packet_size_code} is not one of 0..3")
        self.port, self.capacity, self.password, self.baudrate = port, capacity, password, baudrate
        self.address, self.packet_size_code, self.security_level = address, packet_size_code, security_level
        self._library: dict[int, bytes] = dict(library or {})
        self._buffers: dict[int, bytes | None] = {1: None, 2: None}
        self._image: bytes | None = None
        self._finger: int | None = None
        self._taps: int | None = None
        self._lifted = False
        self._scans = 0
        self._fault, self._fault_times = "none", None  # type: tuple[str, int | None]
        self._verified = password == 0  # a module with the default password needs no VfyPwd
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._serial: serial.Serial | None = None
        self._owns_serial = True
        self._thread: threading.Thread | None = None
        self.commands: list[int] = []  # instruction codes in arrival order, for tests to wait on
        self.bad_packets = 0

    # -- controls ------------------------------------------------------------------------------

    def place(self, finger_id: int, taps: int | None = None) -> None:
        """Put a finger on the sensor. With `taps`, it is lifted after each image (one GenImg sees
        no finger) and gone after `taps` images: a person following "place, lift, place again"."""
        with self._lock:
            self._finger, self._taps, self._lifted = finger_id, taps, False

    def remove(self) -> None:
        with self._lock:
            self._finger, self._taps, self._lifted = None, None, False

    def fault(self, mode: str, times: int | None = None) -> None:
        if mode not in FAULTS:
            raise InvalidValueError(f"fault {mode!r} is not one of {', '.join(FAULTS)}")
        with self._lock:
            self._fault, self._fault_times = mode, times

    def templates(self) -> dict[int, bytes]:
        """The stored library, page -> template bytes (a copy)."""
        with self._lock:
            return dict(self._library)

    @property
    def finger_on_sensor(self) -> bool:
        with self._lock:
            return self._finger is not None and not self._lifted

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self, device: Any = None) -> FingerprintEmulator:
        """Serve on `port`, or on `device`: an open serial-like object (read with a timeout, write, flush,
        cancel_read; e.g. `drivers.sim.pty_link.PtyLink.device`). A device given here stays the caller's
        to close."""
        # opened here, in the caller's thread, so a wrong path fails at once and not in the thread
        self._owns_serial = device is None
        self._serial = serial.Serial(self.port, self.baudrate, timeout=1.0) if device is None else device
        self._thread = threading.Thread(target=self._run, name="fingerprint-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._serial is not None:
            self._serial.cancel_read()  # wakes the blocked read at once instead of after its timeout
        if self._thread is not None:
            self._thread.join(10)
        if self._serial is not None and self._owns_serial:
            self._serial.close()

    def __enter__(self) -> FingerprintEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the wire ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            received = self._receive()
            if received is None:
                continue
            pid, content, good = received
            if pid != COMMAND:
                continue  # a stray data packet outside DownChar: the module ignores it
            noisy = self._take_fault("line_noise")
            if not good or noisy:
                self.bad_packets += 1
                self._reply(bytes([PACKET_ERROR]))
                continue
            if content:
                self.commands.append(content[0])
                self._dispatch(content[0], content[1:])

    def _read(self, size: int) -> bytes | None:
        assert self._serial is not None
        data = self._serial.read(size)
        return data if len(data) == size else None  # a short read: timeout, cancel or a cut-off packet

    def _receive(self) -> tuple[int, bytes, bool] | None:
        """The next packet addressed to us: (packet id, content, checksum good), or None."""
        first = self._read(1)
        if first != START[:1]:
            return None  # hunt for the start code byte by byte, as after line noise
        second = self._read(1)
        if second != START[1:]:
            return None
        header = self._read(7)
        if header is None:
            return None
        address, pid, length = struct.unpack(">IBH", header)
        rest = self._read(length) if length >= 2 else None
        if rest is None:
            return None
        content, received_sum = rest[:-2], struct.unpack(">H", rest[-2:])[0]
        if address != self.address:
            return None  # another module's packet on a shared line
        return pid, content, checksum(header[4:] + content) == received_sum

    def _send(self, data: bytes) -> None:
        assert self._serial is not None
        self._serial.write(data)
        self._serial.flush()

    def _reply(self, content: bytes) -> None:
        if self._take_fault("silent"):
            return
        self._send(packet(ACK, content, self.address, corrupt=self._take_fault("bad_checksum")))

    def _take_fault(self, mode: str) -> bool:
        """Whether `mode` is active now; counts one use of a limited fault."""
        with self._lock:
            if self._fault != mode:
                return False
            if self._fault_times is not None:
                self._fault_times -= 1
                if self._fault_times <= 0:
                    self._fault, self._fault_times = "none", None
            return True

    # -- commands ------------------------------------------------------------------------------

    def _dispatch(self, code: int, params: bytes) -> None:
        if not self._verified and code != 0x13:
            self._reply(bytes([MUST_VERIFY]))
            return
        handler = {
            0x01: self._gen_img, 0x02: self._img2tz, 0x03: self._match, 0x04: self._search, 0x1B: self._search,
            0x05: self._reg_model, 0x06: self._store, 0x07: self._load, 0x08: self._up_char,
            0x09: self._down_char, 0x0C: self._delete, 0x0D: self._empty, 0x0F: self._sys_para,
            0x13: self._verify_password, 0x1D: self._template_num, 0x1F: self._index_table,
            0x35: lambda _p: self._reply(bytes([OK])), 0x53: lambda _p: self._reply(bytes([MODULE_OK])),
            0x3D: self._soft_reset,
        }.get(code)
        if handler is None:
            self._reply(bytes([PACKET_ERROR]))
            return
        try:
            handler(params)
        except (IndexError, struct.error):  # parameters too short for the instruction
            self._reply(bytes([PACKET_ERROR]))

    def _verify_password(self, params: bytes) -> None:
        good = struct.unpack(">I", params[:4])[0] == self.password
        self._verified = self._verified or good
        self._reply(bytes([OK if good else WRONG_PASSWORD]))

    def _sys_para(self, _params: bytes) -> None:
        # status register, system id, library size, security level, address, packet size, baud/9600
        self._reply(bytes([OK]) + struct.pack(">HHHHIHH", 0, 0, self.capacity, self.security_level,
                                              self.address, self.packet_size_code, self.baudrate // 9600))

    def _gen_img(self, _params: bytes) -> None:
        if self._take_fault("image_fail"):
            self._reply(bytes([IMAGE_FAIL]))
            return
        with self._lock:
            if self._finger is None or self._lifted:
                self._lifted = False  # the person put the finger back down for the next poll
                code = NO_FINGER
            else:
                self._scans += 1
                self._image = scan_template(self._finger, self._scans)
                if self._taps is not None:
                    self._taps -= 1
                    self._lifted = self._taps > 0
                    if self._taps <= 0:
                        self._finger, self._taps = None, None
                code = OK
        self._reply(bytes([code]))

    def _img2tz(self, params: bytes) -> None:
        buffer = params[0]
        if buffer not in self._buffers:
            self._reply(bytes([PACKET_ERROR]))
        elif self._image is None:
            self._reply(bytes([NO_IMAGE]))
        elif self._take_fault("messy"):
            self._reply(bytes([MESSY]))
        elif self._take_fault("few_features"):
            self._reply(bytes([FEW_FEATURES]))
        else:
            self._buffers[buffer] = self._image
            self._reply(bytes([OK]))

    def _match(self, _params: bytes) -> None:
        score = match_score(self._buffers[1], self._buffers[2])
        self._reply(bytes([OK if score else NO_MATCH]) + struct.pack(">H", score))

    def _search(self, params: bytes) -> None:
        buffer, start, count = struct.unpack(">BHH", params[:5])
        if self._take_fault("search_error"):
            self._reply(bytes([PACKET_ERROR]) + struct.pack(">HH", 0, 0))
            return
        probe = self._buffers.get(buffer)
        with self._lock:
            candidates = [(match_score(probe, t), page) for page, t in self._library.items()
                          if start <= page < start + count]
        score, page = max(candidates, default=(0, 0))
        if score:
            self._reply(bytes([OK]) + struct.pack(">HH", page, score))
        else:
            self._reply(bytes([NOT_FOUND]) + struct.pack(">HH", 0, 0))

    def _reg_model(self, _params: bytes) -> None:
        first, second = self._buffers[1], self._buffers[2]
        if first is None or second is None or not match_score(first, second):
            self._reply(bytes([ENROLL_MISMATCH]))
            return
        # a real module merges the minutiae of both scans; the first scan is close enough to match on
        self._buffers[2] = first
        self._reply(bytes([OK]))

    def _store(self, params: bytes) -> None:
        buffer, page = struct.unpack(">BH", params[:3])
        if page >= self.capacity or buffer not in self._buffers:
            self._reply(bytes([BAD_LOCATION]))
        elif self._buffers[buffer] is None:
            self._reply(bytes([PACKET_ERROR]))  # nothing in the buffer to store
        elif self._take_fault("flash_error"):
            self._reply(bytes([FLASH_ERROR]))
        else:
            with self._lock:
                self._library[page] = self._buffers[buffer]  # type: ignore[assignment]
            self._reply(bytes([OK]))

    def _load(self, params: bytes) -> None:
        buffer, page = struct.unpack(">BH", params[:3])
        with self._lock:
            template = self._library.get(page)
        if page >= self.capacity or buffer not in self._buffers:
            self._reply(bytes([BAD_LOCATION]))
        elif template is None:
            self._reply(bytes([READ_TEMPLATE_ERROR]))
        else:
            self._buffers[buffer] = template
            self._reply(bytes([OK]))

    def _up_char(self, params: bytes) -> None:
        template = self._buffers.get(params[0])
        if template is None:
            self._reply(bytes([UPLOAD_ERROR]))
            return
        self._reply(bytes([OK]))
        size = PACKET_SIZES[self.packet_size_code]
        for offset in range(0, len(template), size):
            last = offset + size >= len(template)
            self._send(packet(END_DATA if last else DATA, template[offset:offset + size], self.address,
                              corrupt=self._take_fault("bad_checksum")))

    def _down_char(self, params: bytes) -> None:
        buffer = params[0]
        if buffer not in self._buffers:
            self._reply(bytes([PACKET_ERROR]))
            return
        self._reply(bytes([OK]))
        received, intact = bytearray(), True
        while not self._stop.is_set():
            incoming = self._receive()
            if incoming is None:
                intact = False  # the host stopped sending mid-template
                break
            pid, content, good = incoming
            if pid not in (DATA, END_DATA):
                intact = False
                break
            intact = intact and good
            received += content
            if pid == END_DATA:
                break
        # a damaged download leaves the buffer empty, so a following Store fails instead of saving junk
        self._buffers[buffer] = bytes(received) if intact else None
        if not intact:
            self.bad_packets += 1

    def _delete(self, params: bytes) -> None:
        page, count = struct.unpack(">HH", params[:4])
        if page + count > self.capacity or count == 0:
            self._reply(bytes([DELETE_FAIL]))
            return
        with self._lock:
            for number in range(page, page + count):
                self._library.pop(number, None)
        self._reply(bytes([OK]))

    def _empty(self, _params: bytes) -> None:
        with self._lock:
            self._library.clear()
        self._reply(bytes([OK]))

    def _template_num(self, _params: bytes) -> None:
        with self._lock:
            count = len(self._library)
        self._reply(bytes([OK]) + struct.pack(">H", count))

    def _index_table(self, params: bytes) -> None:
        table = bytearray(32)  # 256 pages per table page, bit b of byte i = page i*8+b
        base = params[0] * 256
        with self._lock:
            for page in self._library:
                if base <= page < base + 256:
                    table[(page - base) // 8] |= 1 << ((page - base) % 8)
        self._reply(bytes([OK]) + bytes(table))

    def _soft_reset(self, _params: bytes) -> None:
        self._buffers = {1: None, 2: None}
        self._image = None
        self._verified = self.password == 0
        self._reply(bytes([OK]))
        self._send(bytes([MODULE_OK]))  # the handshake byte the module sends when it is back up


# -- command line: a rehearsal sensor for technicians ---------------------------------------------

def _command(emulator: FingerprintEmulator, line: str) -> str:
    words = line.split()
    if not words:
        return ""
    if words[0] == "place" and len(words) in (2, 3):
        emulator.place(int(words[1]), int(words[2]) if len(words) == 3 else None)
        return f"finger {words[1]} on the sensor"
    if words == ["remove"]:
        emulator.remove()
        return "no finger on the sensor"
    if words[0] == "fault" and len(words) in (2, 3):
        emulator.fault(words[1], int(words[2]) if len(words) == 3 else None)
        return f"fault={words[1]}"
    if words == ["list"]:
        return f"stored pages: {sorted(emulator.templates())}"
    raise InvalidValueError("commands: `place FINGER [TAPS]`, `remove`, `fault MODE [TIMES]`, `list`")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drivers.sim.fingerprint_device",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--port", required=True, help="serial device to serve on (one end of a socat pty pair)")
    parser.add_argument("--capacity", type=int, default=200, help="template pages (R503 200, AS608 300, R307 1000)")
    parser.add_argument("--password", type=lambda s: int(s, 0), default=0, help="module password (default 0)")
    parser.add_argument("--baud", type=int, default=57600, help="baud rate (default 57600)")
    args = parser.parse_args(argv)
    emulator = FingerprintEmulator(args.port, capacity=args.capacity, password=args.password, baudrate=args.baud)
    emulator.start()
    return serve_commands(emulator, _command, f"ready: fingerprint sensor on {args.port}, {args.capacity} pages")


if __name__ == "__main__":
    sys.exit(main())
