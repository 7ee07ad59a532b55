"""The fingerprint driver and the real adafruit_fingerprint library against the ZFM emulator on a socat pty."""

from __future__ import annotations

import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import serial
from adafruit_fingerprint import Adafruit_Fingerprint

from drivers.errors import InvalidValueError, SensorError
from drivers.fingerprint import (
    EnrollError,
    FingerprintError,
    FingerprintReader,
    FingerprintReadError,
    FingerTimeoutError,
    LibraryFullError,
    NoSensorError,
    WrongPasswordError,
)
from drivers.sim.fingerprint_device import TEMPLATE_SIZE, FingerprintEmulator, finger_template, packet
from tests.support.socat import PtyPair
from tests.support.waiting import wait_until

GEN_IMG, IMG2TZ = 0x01, 0x02


@pytest.fixture
def emulator(pty: PtyPair) -> Iterator[FingerprintEmulator]:
    with FingerprintEmulator(str(pty.a)) as emu:
        yield emu


@pytest.fixture
def reader(pty: PtyPair, emulator: FingerprintEmulator) -> Iterator[FingerprintReader]:
    with FingerprintReader(str(pty.b)) as fingerprint:
        yield fingerprint


@pytest.fixture
def second_pty(tmp_path: Path) -> Iterator[PtyPair]:
    """The second door's serial link."""
    pair = PtyPair(tmp_path / "ttyDEVICE2", tmp_path / "ttyGATEWAY2").start()
    yield pair
    pair.stop()


@contextmanager
def sensor(pair: PtyPair, **settings: Any) -> Iterator[tuple[FingerprintEmulator, FingerprintReader]]:
    """An emulator with `settings` on the pair's device end and the driver on the gateway end."""
    with FingerprintEmulator(str(pair.a), **settings) as emulator, FingerprintReader(str(pair.b)) as reader:
        yield emulator, reader


class Background:
    """Runs a blocking driver call in a thread so the test can act as the person at the sensor."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), name="fingerprint-test-call")
        self._thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self.result = call()
        except BaseException as exc:  # handed to the test thread by join()
            self.error = exc

    def join(self) -> Any:
        self._thread.join(30)
        assert not self._thread.is_alive(), "the driver call did not finish"
        return self.result


# -- connecting ------------------------------------------------------------------------------------

def test_bare_library_talks_to_the_emulator(pty: PtyPair, emulator: FingerprintEmulator) -> None:
    with serial.Serial(str(pty.b), 57600, timeout=1) as port:
        sensor = Adafruit_Fingerprint(port)  # its constructor verifies the password and reads the parameters
        assert (sensor.library_size, sensor.data_packet_size, sensor.baudrate) == (200, 2, 6)
        assert sensor.count_templates() == 0 and sensor.template_count == 0


def test_password_right_and_wrong(pty: PtyPair) -> None:
    with FingerprintEmulator(str(pty.a), password=0x1234ABCD):
        with FingerprintReader(str(pty.b), password=0x1234ABCD) as reader:
            assert reader.count() == 0
        with pytest.raises(WrongPasswordError, match="rejects the password") as caught:
            FingerprintReader(str(pty.b), password=0)
    assert isinstance(caught.value, SensorError) and isinstance(caught.value, PermissionError)


def test_no_sensor_on_the_port(pty: PtyPair) -> None:
    with pytest.raises(NoSensorError, match="no fingerprint sensor answers") as caught:
        FingerprintReader(str(pty.b), timeout=0.3)
    assert "check the wiring" in str(caught.value)


# -- enrolment -------------------------------------------------------------------------------------

def test_enroll_into_a_free_slot_returns_the_stored_template(reader: FingerprintReader,
                                                            emulator: FingerprintEmulator) -> None:
    slot = reader.free_slot()
    emulator.place(7, taps=2)
    template = reader.enroll(slot)
    assert slot == 0
    assert len(template) == TEMPLATE_SIZE and template == emulator.templates()[slot]
    assert (reader.count(), reader.slots(), reader.free_slot()) == (1, [0], 1)


def test_enroll_waits_for_place_lift_place(reader: FingerprintReader, emulator: FingerprintEmulator) -> None:
    call = Background(lambda: reader.enroll(5, timeout=20))
    emulator.place(7)
    wait_until(lambda: IMG2TZ in emulator.commands, message="the first scan to be converted")
    polls = emulator.commands.count(GEN_IMG)
    wait_until(lambda: emulator.commands.count(GEN_IMG) > polls + 2, message="the driver to wait for the lift")
    assert 5 not in emulator.templates()  # a finger kept on the sensor is not a second scan
    emulator.remove()
    removed_at = emulator.commands.count(GEN_IMG)
    wait_until(lambda: emulator.commands.count(GEN_IMG) > removed_at, message="a poll with no finger")
    emulator.place(7)
    template = call.join()
    assert call.error is None and template == emulator.templates()[5]


def test_enroll_refuses_two_different_fingers(reader: FingerprintReader, emulator: FingerprintEmulator) -> None:
    call = Background(lambda: reader.enroll(0, timeout=20))
    emulator.place(7, taps=1)
    wait_until(lambda: IMG2TZ in emulator.commands and not emulator.finger_on_sensor, message="the first scan")
    emulator.place(8, taps=1)
    call.join()
    assert isinstance(call.error, EnrollError) and "not of the same finger" in str(call.error)
    assert emulator.templates() == {}


def test_enroll_reports_a_messy_scan(reader: FingerprintReader, emulator: FingerprintEmulator) -> None:
    emulator.fault("messy", times=1)
    emulator.place(7, taps=2)
    with pytest.raises(EnrollError, match="scan 1 is unusable: 0x06"):
        reader.enroll(0)
    assert emulator.templates() == {}


def test_enroll_refuses_an_occupied_slot(pty: PtyPair) -> None:
    with sensor(pty, library={3: finger_template(1)}) as (emulator, reader):
        emulator.place(7, taps=2)
        with pytest.raises(InvalidValueError, match=r"page 3 .* already holds a template"):
            reader.enroll(3)
        assert emulator.templates() == {3: finger_template(1)}


# -- identification and revocation -----------------------------------------------------------------

def test_identify_matches_the_enrolled_finger_only(pty: PtyPair) -> None:
    with sensor(pty, library={4: finger_template(7), 6: finger_template(9)}) as (emulator, reader):
        emulator.place(7, taps=1)
        match = reader.identify()
        emulator.place(8, taps=1)
        stranger = reader.identify()
    assert match is not None and match[0] == 4 and match[1] >= 100
    assert stranger is None


def test_no_finger_times_out(reader: FingerprintReader, emulator: FingerprintEmulator) -> None:
    with pytest.raises(FingerTimeoutError, match="waiting for a finger") as caught:
        reader.identify(timeout=0.3)
    assert isinstance(caught.value, TimeoutError)
    with pytest.raises(FingerTimeoutError):
        reader.enroll(0, timeout=0.3)
    assert emulator.templates() == {}


def test_delete_revokes_the_finger(pty: PtyPair) -> None:
    with sensor(pty, library={4: finger_template(7)}) as (emulator, reader):
        emulator.place(7, taps=1)
        assert reader.identify() is not None
        reader.delete(4)
        emulator.place(7, taps=1)
        assert reader.identify() is None
        assert (reader.count(), reader.slots(), reader.free_slot()) == (0, [], 0)
        with pytest.raises(FingerprintError, match="could not load page 4: 0x0C"):
            reader.template(4)  # the page is erased on the sensor, not only hidden
    assert emulator.templates() == {}


def test_full_library(pty: PtyPair) -> None:
    with sensor(pty, capacity=3, library={p: finger_template(p) for p in range(3)}) as (emulator, reader):
        with pytest.raises(LibraryFullError, match="all 3 pages"):
            reader.free_slot()
        with pytest.raises(InvalidValueError, match=r"outside the sensor's library 0\.\.2"):
            reader.delete(3)
        assert reader.count() == 3 and sorted(emulator.templates()) == [0, 1, 2]


# -- re-provisioning a second sensor ---------------------------------------------------------------

def test_template_from_one_sensor_provisions_another(reader: FingerprintReader, emulator: FingerprintEmulator,
                                                     second_pty: PtyPair) -> None:
    emulator.place(7, taps=2)
    template = reader.enroll(2)
    with FingerprintEmulator(str(second_pty.a)) as door_b, FingerprintReader(str(second_pty.b)) as reader_b:
        door_b.place(7, taps=1)
        assert reader_b.identify() is None  # the replacement sensor does not know the finger yet
        reader_b.store_template(9, template)
        assert door_b.templates() == {9: template}
        assert reader_b.template(9) == reader.template(2)
        door_b.place(7, taps=1)
        match = reader_b.identify()
        door_b.place(8, taps=1)
        stranger = reader_b.identify()
    assert match is not None and match[0] == 9 and match[1] >= 100
    assert stranger is None


def test_store_template_rejects_a_wrong_size(reader: FingerprintReader, emulator: FingerprintEmulator) -> None:
    with pytest.raises(InvalidValueError, match="100 bytes cannot be sent in 128-byte packets"):
        reader.store_template(0, bytes(100))
    assert emulator.templates() == {}


# -- damaged packets -------------------------------------------------------------------------------

def test_command_with_wrong_checksum_is_answered_0x01(pty: PtyPair, emulator: FingerprintEmulator) -> None:
    count_command = bytearray(packet(0x01, bytes([0x1D])))
    with serial.Serial(str(pty.b), 57600, timeout=1) as port:
        port.write(bytes(count_command[:-1]) + bytes([count_command[-1] ^ 0xFF]))
        bad = port.read(12)
        port.write(bytes(count_command))
        good = port.read(14)
    assert bad == packet(0x07, bytes([0x01]))  # a well-formed acknowledgement carrying "damaged packet"
    assert good == packet(0x07, bytes([0x00]) + struct.pack(">H", 0))
    assert emulator.bad_packets == 1


def test_line_noise_is_reported_then_recovers(reader: FingerprintReader, emulator: FingerprintEmulator) -> None:
    emulator.fault("line_noise", times=1)
    with pytest.raises(FingerprintReadError, match=r"answered 0x01 \(the sensor received a damaged packet\)"):
        reader.count()
    assert reader.count() == 0


def test_reply_with_wrong_checksum_is_caught(pty: PtyPair, reader: FingerprintReader,
                                            emulator: FingerprintEmulator) -> None:
    emulator.fault("bad_checksum", times=1)
    with pytest.raises(FingerprintReadError, match="wrong checksum"):
        reader.count()
    assert reader.count() == 0
    # why the driver checks: the library alone takes a corrupted reply as good
    with serial.Serial(str(pty.b), 57600, timeout=1) as port:
        sensor = Adafruit_Fingerprint(port)
        emulator.fault("bad_checksum", times=1)
        assert sensor.count_templates() == 0


# -- the rehearsal entry point ---------------------------------------------------------------------

def test_command_line_emulator(pty: PtyPair) -> None:
    process = subprocess.Popen([sys.executable, "-m", "drivers.sim.fingerprint_device", "--port", str(pty.a)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stdin is not None
        assert process.stdout.readline().startswith("ready: fingerprint sensor")
        process.stdin.write("place 7 2\n")
        process.stdin.flush()
        assert process.stdout.readline() == "finger 7 on the sensor\n"
        with FingerprintReader(str(pty.b)) as reader:
            template = reader.enroll(0)
        process.stdin.write("list\n")
        process.stdin.flush()
        assert process.stdout.readline() == "stored pages: [0]\n"
        assert len(template) == TEMPLATE_SIZE
    finally:
        if process.stdin:
            process.stdin.close()  # end of input stops the emulator
        process.wait(10)
        if process.stdout:
            process.stdout.close()
    assert process.returncode == 0
