"""FingerStation: the real FingerprintReader against the ZFM emulator, over a socat pty pair and over the
in-process PtyLink (what the running gateway uses for a simulated sensor)."""

from __future__ import annotations

import abc
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from access.finger_station import FingerMatch, FingerStation
from drivers.errors import InvalidValueError
from drivers.fingerprint import FingerprintReader, NoSensorError
from drivers.sim.fingerprint_device import TEMPLATE_SIZE, FingerprintEmulator, finger_template
from drivers.sim.pty_link import PtyLink, open_pty_link, start_sim_sensor
from tests.support.socat import PtyPair
from tests.support.waiting import wait_until

GEN_IMG, UP_CHAR, SEARCH = 0x01, 0x08, 0x04
LINKS = ["socat", "pty_link"]


class Sensor(abc.ABC):
    """An emulated sensor on one kind of link: `port` is where the gateway's driver opens it."""

    emulator: FingerprintEmulator
    port: str

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.plugged = True

    @abc.abstractmethod
    def unplug(self) -> None: ...

    @abc.abstractmethod
    def plug_in(self) -> None:
        """The same sensor (same library) back on the same port."""

    @abc.abstractmethod
    def close(self) -> None: ...


class SocatSensor(Sensor):
    def __init__(self, pair: PtyPair, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        self.pair, self.port = pair, str(pair.b)
        self.emulator = FingerprintEmulator(str(pair.a), **settings).start()

    def _again(self) -> FingerprintEmulator:
        return FingerprintEmulator(str(self.pair.a), **(self.settings | {"library": self.emulator.templates()}))

    def unplug(self) -> None:  # the USB adapter pulled: the device node itself goes away
        self.emulator.stop()
        self.pair.stop()
        self.plugged = False

    def plug_in(self) -> None:
        self.pair.start()
        self.emulator = self._again().start()
        self.plugged = True

    def close(self) -> None:
        if self.plugged:
            self.emulator.stop()  # the pair is the pty fixture's (or the fixture's) to stop


class LinkSensor(Sensor):
    def __init__(self, settings: dict[str, Any]) -> None:
        super().__init__(settings)
        self.emulator, self.link = start_sim_sensor(**settings)
        self.port = self.link.port

    def unplug(self) -> None:  # the sensor loses power: the port stays, nothing answers on it
        self.emulator.stop()
        self.plugged = False

    def plug_in(self) -> None:
        self.link.device.reset_input_buffer()  # a sensor powering up has not heard what was sent meanwhile
        self.emulator = self._again().start(device=self.link.device)
        self.plugged = True

    def close(self) -> None:
        if self.plugged:
            self.emulator.stop()
        self.link.close()

    def _again(self) -> FingerprintEmulator:
        return FingerprintEmulator(self.port, **(self.settings | {"library": self.emulator.templates()}))


class Matches:
    """on_match: collects what the station reports."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._all: list[FingerMatch] = []

    def __call__(self, match: FingerMatch) -> None:
        with self._lock:
            self._all.append(match)

    @property
    def all(self) -> list[FingerMatch]:
        with self._lock:
            return list(self._all)

    def wait(self, count: int) -> FingerMatch:
        """The `count`-th report (waits for it)."""
        wait_until(lambda: len(self.all) >= count, message=lambda: f"report {count}, have {self.all}")
        return self.all[count - 1]


@pytest.fixture(params=LINKS)
def make_sensor(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Sensor]]:
    """Sensors on the parametrised kind of link; the first socat one uses the `pty` fixture."""
    made: list[Sensor] = []
    pairs: list[PtyPair] = []
    # requested now, not inside make(): a fixture requested during the test is torn down first, and socat
    # going before the emulators would make their reads fail
    first_pair = request.getfixturevalue("pty") if request.param == "socat" else None

    def make(**settings: Any) -> Sensor:
        if request.param == "socat":
            if not made:
                pair = first_pair
            else:
                pair = PtyPair(tmp_path / f"ttyDEVICE{len(made)}", tmp_path / f"ttyGATEWAY{len(made)}").start()
                pairs.append(pair)
            sensor: Sensor = SocatSensor(pair, settings)
        else:
            sensor = LinkSensor(settings)
        made.append(sensor)
        return sensor

    yield make
    for sensor in made:
        sensor.close()
    for pair in pairs:
        pair.stop()


@pytest.fixture
def make_station() -> Iterator[Callable[..., tuple[FingerStation, Matches]]]:
    stations: list[FingerStation] = []

    def make(sensor: Sensor, *, sim: bool = True, start: bool = True, **kwargs: Any) -> tuple[FingerStation, Matches]:
        matches = Matches()
        kwargs.setdefault("poll_s", 0.05)
        kwargs.setdefault("min_backoff_s", 0.1)
        kwargs.setdefault("max_backoff_s", 0.5)
        # a short serial timeout: an unplugged sensor is noticed fast (production keeps the driver's 1 s)
        station = FingerStation("server-room", lambda: FingerprintReader(sensor.port, timeout=0.3), matches,
                                sim=sensor.emulator if sim else None, **kwargs)
        stations.append(station)
        if start:
            station.start()
            wait_until(lambda: station.status()["connected"], message="the station to open the sensor")
        return station, matches

    yield make
    for station in stations:
        station.stop()


def polls_after(emulator: FingerprintEmulator, count: int, command: int = GEN_IMG) -> None:
    """Wait until `count` more `command`s reach the emulator (each is a full poll by the station)."""
    start = emulator.commands.count(command)
    wait_until(lambda: emulator.commands.count(command) >= start + count, message=f"{count} more polls")


# -- presentations -------------------------------------------------------------------------------------

def test_enrol_into_a_free_slot_then_the_finger_matches_it(make_sensor, make_station) -> None:
    sensor = make_sensor(library={0: finger_template(50)})
    station, matches = make_station(sensor)
    slot, template = station.enroll()  # simulated: finger number == slot, placed with two taps
    assert slot == 1 and len(template) == TEMPLATE_SIZE and template == sensor.emulator.templates()[1]
    assert station.status() == {"door": "server-room", "connected": True, "sim": True, "slots_used": 2,
                                "capacity": 200, "last_error": None}
    station.present_sim(slot)
    match = matches.wait(1)
    assert (match.door, match.slot, match.error) == ("server-room", 1, None)
    assert match.confidence is not None and match.confidence >= 100
    assert len(matches.all) == 1  # enrolling is not also a presentation


def test_enrol_by_hand_on_a_real_style_sensor(make_sensor, make_station) -> None:
    sensor = make_sensor()
    station, matches = make_station(sensor, sim=False)
    sensor.emulator.place(7, taps=2)  # the person: place, lift, place again
    assert station.enroll(slot=5)[0] == 5
    polls_after(sensor.emulator, 2)
    sensor.emulator.place(7, taps=1)
    assert matches.wait(1).slot == 5
    with pytest.raises(InvalidValueError, match="real fingerprint sensor"):
        station.present_sim(7)


def test_an_unknown_finger_reports_no_slot(make_sensor, make_station) -> None:
    sensor = make_sensor(library={3: finger_template(7)})
    station, matches = make_station(sensor)
    station.present_sim(8)
    assert matches.wait(1) == FingerMatch("server-room", None, None, None)
    station.present_sim(7)
    assert matches.wait(2).slot == 3


def test_a_finger_held_on_the_sensor_reports_once(make_sensor, make_station) -> None:
    sensor = make_sensor(library={3: finger_template(7)})
    _, matches = make_station(sensor, sim=False)
    sensor.emulator.place(7)  # and keeps it there
    assert matches.wait(1).slot == 3
    polls_after(sensor.emulator, 5)
    assert len(matches.all) == 1
    sensor.emulator.remove()
    polls_after(sensor.emulator, 2)  # the first poll after the lift sees no finger; the second proves it was handled
    sensor.emulator.place(7, taps=1)
    assert matches.wait(2).slot == 3


# -- provisioning and revocation ---------------------------------------------------------------------

def test_provision_reproduces_the_library_on_a_replacement_sensor(make_sensor, make_station) -> None:
    old = make_sensor()
    old_station, _ = make_station(old)
    library = dict(old_station.enroll() for _ in range(3))
    assert sorted(library) == [0, 1, 2]

    new = make_sensor()  # the replacement: empty
    station, matches = make_station(new)
    report = station.provision(library)
    assert (report.added, report.replaced, report.removed, report.kept, report.failed) == ([0, 1, 2], [], [], [], {})
    assert new.emulator.templates() == library
    station.present_sim(2)
    assert matches.wait(1).slot == 2

    uploads = new.emulator.commands.count(UP_CHAR)  # the driver's read-back of each stored page
    again = station.provision(library)
    assert again.kept == [0, 1, 2] and again.counts()["kept"] == 3
    assert new.emulator.commands.count(UP_CHAR) == uploads  # pages it wrote itself are not read again

    station.stop()  # one user of a serial line at a time
    fresh, _ = make_station(new, start=False)  # a restarted service knows nothing of the pages
    assert fresh.provision(library).kept == [0, 1, 2]
    assert new.emulator.commands.count(UP_CHAR) == uploads + 3  # so it reads each one back once

    changed = library | {1: finger_template(99)}
    report = fresh.provision(changed)
    assert (report.replaced, report.kept) == ([1], [0, 2])
    assert new.emulator.templates() == changed


def test_provision_removes_a_slot_that_is_not_wanted(make_sensor, make_station) -> None:
    sensor = make_sensor(library={0: finger_template(7), 4: finger_template(8)})
    station, matches = make_station(sensor)
    report = station.provision({0: finger_template(7)})
    assert (report.removed, report.kept, report.added) == ([4], [0], [])
    assert sensor.emulator.templates() == {0: finger_template(7)}  # erased on the sensor, not only hidden
    assert station.status()["slots_used"] == 1
    station.present_sim(8)
    assert matches.wait(1).slot is None


def test_provision_reports_a_bad_template_and_does_the_rest(make_sensor, make_station) -> None:
    sensor = make_sensor()
    station, _ = make_station(sensor)
    report = station.provision({0: finger_template(7), 1: b"short", 500: finger_template(8)})
    assert report.added == [0] and sorted(report.failed) == [1, 500] and not report.ok
    assert "5 bytes cannot be sent" in report.failed[1] and "outside the sensor's library" in report.failed[500]
    assert "short" not in str(report.as_dict())
    assert sensor.emulator.templates() == {0: finger_template(7)}


def test_erase(make_sensor, make_station) -> None:
    sensor = make_sensor(library={p: finger_template(p) for p in range(3)})
    station, matches = make_station(sensor)
    result = station.erase([1, 2, 999])
    assert result[1] == result[2] == "erased"
    assert result[999].startswith("failed: page 999 is outside")
    assert sensor.emulator.templates() == {0: finger_template(0)}
    assert station.status()["slots_used"] == 1
    station.present_sim(1)
    assert matches.wait(1).slot is None


# -- faults ----------------------------------------------------------------------------------------

def test_unplugged_sensor_is_reported_and_reconnected(make_sensor, make_station, caplog) -> None:
    sensor = make_sensor(library={0: finger_template(7)})
    station, matches = make_station(sensor)
    caplog.set_level(logging.DEBUG, logger="access.finger_station")
    sensor.unplug()
    wait_until(lambda: not station.status()["connected"] and station.status()["last_error"], message="the error")
    wait_until(lambda: sum("still failing" in r.message for r in caplog.records) >= 2,
               message="two reconnection attempts")
    assert [r.levelname for r in caplog.records if r.levelno >= logging.WARNING] == ["WARNING"]  # logged once
    result = station.erase([0])
    assert result[0].startswith("failed: ") and len(result) == 1
    assert station.status()["last_error"]
    assert matches.all == []  # nobody presented a finger: nothing for the authenticator

    sensor.plug_in()
    wait_until(lambda: station.status()["connected"] and station.status()["last_error"] is None, 15,
               message="the station to reconnect")
    assert sum("works again" in r.message for r in caplog.records) == 1
    sensor.emulator.place(7, taps=1)  # the emulator plugged in is a new object: not the station's `sim`
    assert matches.wait(1).slot == 0


def test_a_sensor_missing_at_start_is_opened_when_it_appears(make_sensor, make_station) -> None:
    sensor = make_sensor()
    sensor.unplug()
    station, matches = make_station(sensor, start=False)
    station.start()
    wait_until(lambda: station.status()["last_error"], message="the error")
    with pytest.raises(NoSensorError):
        station.enroll()
    sensor.plug_in()
    wait_until(lambda: station.status()["connected"], 15, message="the station to open the sensor")
    sensor.emulator.place(4, taps=1)
    assert matches.wait(1) == FingerMatch("server-room", None, None, None)


def test_a_fault_during_a_presentation_is_reported_once(make_sensor, make_station) -> None:
    sensor = make_sensor(library={0: finger_template(7)})
    _, matches = make_station(sensor, sim=False)
    sensor.emulator.fault("search_error")  # the sensor fails every search, while the finger stays
    sensor.emulator.place(7)
    match = matches.wait(1)
    assert (match.slot, match.confidence) == (None, None)
    assert match.error is not None and "could not search the library" in match.error
    polls_after(sensor.emulator, 3, SEARCH)  # it reconnects and tries again while the finger is held
    assert len(matches.all) == 1
    sensor.emulator.fault("none")
    sensor.emulator.remove()
    polls_after(sensor.emulator, 2)
    sensor.emulator.place(7, taps=1)
    match = matches.wait(2)
    assert (match.slot, match.error) == (0, None)


def test_a_failing_callback_does_not_stop_the_station(make_sensor) -> None:
    sensor = make_sensor(library={0: finger_template(7)})
    seen: list[FingerMatch] = []

    def on_match(match: FingerMatch) -> None:
        seen.append(match)
        raise RuntimeError("the store refused")

    station = FingerStation("d", lambda: FingerprintReader(sensor.port), on_match, poll_s=0.05, sim=sensor.emulator)
    station.start()
    try:
        station.present_sim(7)
        wait_until(lambda: len(seen) == 1, message="the first report")
        station.present_sim(7)
        wait_until(lambda: len(seen) == 2, message="the second report")
    finally:
        station.stop()
    assert station.status()["connected"] is False


# -- the link itself -----------------------------------------------------------------------------------

def test_pty_link_read_times_out_and_cancel_wakes_it() -> None:
    with open_pty_link(timeout=0.2) as link:
        assert isinstance(link, PtyLink) and link.port.startswith("/dev/pts/")
        assert link.device.read(4) == b""  # nothing sent: the timeout
        link.device.timeout = None  # block until data or cancel_read
        box: list[bytes] = []
        reading = threading.Thread(target=lambda: box.append(link.device.read(4)), name="pty-link-read")
        reading.start()
        link.device.cancel_read()
        reading.join(5)
        assert not reading.is_alive() and box == [b""]
        slave = os.open(link.port, os.O_RDWR | os.O_NOCTTY)
        try:
            os.write(slave, b"\xef\x01\n\r")
            link.device.timeout = 1.0
            assert link.device.read(4) == b"\xef\x01\n\r"  # raw: no newline translation
            assert link.device.write(b"\x00\n\xff") == 3
            assert os.read(slave, 16) == b"\x00\n\xff"
            link.device.timeout = 0.1
            assert link.device.read(3) == b""  # no echo of what the master sent
        finally:
            os.close(slave)
