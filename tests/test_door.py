"""The door state machine on the simulated GPIO board, with a clock that moves only when the test says so."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from access.door import DoorController, DoorState, relay_on_when_locked
from drivers.errors import InvalidValueError, SensorError
from drivers.gpio import GpioOutputError, GpioOutputPin, OutputPin
from drivers.sim.gpio import SimBoard, SimDoor
from gateway.config.doors import DoorConfig, DoorList
from tests.support.waiting import wait_until

LOCK, CONTACT, EXIT, BUZZER = 23, 24, 25, 12


class Clock:
    def __init__(self) -> None:
        self.mono = 1000.0

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.mono += seconds


class Events:
    def __init__(self) -> None:
        self.all: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, kind: str, source: str, fields: Mapping[str, Any]) -> None:
        self.all.append((kind, source, dict(fields)))

    def kinds(self) -> list[str]:
        return [kind for kind, _, _ in self.all]

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [fields for k, _, fields in self.all if k == kind]


class Rig:
    """A board, a door wired to it, and a controller: everything one test needs."""

    def __init__(self, *, active_high: bool = True, fail_safe: bool = False, normally_open: bool = False,
                 buzzer: bool = False, board: SimBoard | None = None, door: SimDoor | None = None) -> None:
        self.board = board or SimBoard()
        self.door = door or self.board.wire_door(
            lock_pin=LOCK, contact_pin=CONTACT, exit_button_pin=EXIT, lock_active_high=active_high,
            fail_safe=fail_safe, contact_normally_open=normally_open)
        self.clock, self.events = Clock(), Events()
        self.buzzer = self.board.output("buzzer", BUZZER) if buzzer else None
        self.ctrl = self.boot()

    def boot(self) -> DoorController:
        """A new controller on the same board, as after a restart."""
        d = self.door
        return DoorController("ruang-server", d.lock_output(), d.contact_input(), d.exit_input(),
                              unlock_s=5, held_open_s=30, emit=self.events, clock=self.clock,
                              fail_safe=d.fail_safe, contact_normally_open=d.contact_normally_open,
                              buzzer=self.buzzer)

    def after(self, seconds: float) -> DoorState:
        self.clock.advance(seconds)
        return self.ctrl.tick()


@pytest.mark.parametrize("active_high", [True, False])
def test_boot_is_locked_with_the_relay_at_the_locked_level_for_either_polarity(active_high: bool) -> None:
    rig = Rig(active_high=active_high)
    # fail-secure: locked = relay de-energised = the pin's inactive level; never the other level first
    locked_level = 0 if active_high else 1
    assert rig.board.history(LOCK) == [locked_level, locked_level]
    assert rig.ctrl.tick() is DoorState.LOCKED and rig.ctrl.state is DoorState.LOCKED
    assert rig.door.push_open() is False and not rig.door.is_open
    assert rig.events.all == []
    snap = rig.ctrl.snapshot()
    assert snap["locked"] is True and snap["state"] == "locked" and snap["door_open"] is False


@pytest.mark.parametrize("active_high", [True, False])
def test_grant_open_close_relocks_and_reports_opened_then_closed(active_high: bool) -> None:
    rig = Rig(active_high=active_high)
    rig.ctrl.tick()
    rig.ctrl.grant("siti", "face")
    assert rig.ctrl.state is DoorState.UNLOCKED and rig.door.lock_released
    assert rig.board.level(LOCK) == (1 if active_high else 0)
    assert rig.after(1) is DoorState.UNLOCKED
    assert rig.door.push_open() is True
    assert rig.after(1) is DoorState.OPEN
    assert rig.after(10) is DoorState.OPEN  # past unlock_s but still open: the relay waits for the close
    rig.door.close()
    assert rig.after(1) is DoorState.LOCKED and not rig.door.lock_released
    assert rig.events.kinds() == ["door.opened", "door.closed"]
    assert rig.events.of("door.opened") == [{"door": "ruang-server", "reason": "grant", "person": "siti",
                                            "method": "face"}]
    assert rig.events.of("door.closed") == [{"door": "ruang-server", "open_s": 11.0, "held_open": False,
                                            "forced": False}]
    assert {source for _, source, _ in rig.events.all} == {"door:ruang-server"}
    assert rig.door.push_open() is False  # no second entry on the same grant


def test_grant_that_nobody_uses_relocks_after_unlock_s() -> None:
    rig = Rig()
    rig.ctrl.tick()
    rig.ctrl.grant("budi", "finger")
    assert rig.after(4.9) is DoorState.UNLOCKED
    assert rig.ctrl.snapshot()["unlock_remaining_s"] == pytest.approx(0.1)
    assert rig.after(0.1) is DoorState.LOCKED
    assert rig.door.push_open() is False
    assert rig.events.all == []
    # the late push is now a forced opening if it happens anyway
    rig.door.force_open()
    rig.ctrl.tick()
    assert rig.events.kinds() == ["door.forced", "door.opened"]


def test_held_open_fires_once_after_held_open_s_then_closes_and_relocks() -> None:
    rig = Rig(buzzer=True)
    rig.ctrl.tick()
    rig.ctrl.grant("siti", "face_and_finger")
    rig.door.push_open()
    rig.after(1)
    assert rig.after(29.5) is DoorState.OPEN and rig.events.of("door.held_open") == []
    assert rig.buzzer is not None and rig.buzzer.state is False
    rig.after(0.5)
    rig.after(60)
    assert rig.events.of("door.held_open") == [{"door": "ruang-server", "open_s": 30.0, "held_open_s": 30.0,
                                               "reason": "grant", "person": "siti"}]
    assert rig.ctrl.snapshot()["held_open"] is True and rig.buzzer.state is True
    rig.door.close()
    assert rig.after(1) is DoorState.LOCKED
    assert rig.events.kinds() == ["door.opened", "door.held_open", "door.closed"]
    assert rig.events.of("door.closed")[0]["held_open"] is True and rig.events.of("door.closed")[0]["open_s"] == 91.0
    assert rig.ctrl.snapshot()["held_open"] is False and rig.buzzer.state is False  # cleared by the close


def test_forced_open_while_locked_alarms_and_the_relay_stays_locked() -> None:
    rig = Rig(buzzer=True)
    rig.ctrl.tick()
    assert rig.door.push_open() is False
    rig.door.force_open()
    assert rig.after(0.1) is DoorState.OPEN
    assert rig.events.of("door.forced") == [{"door": "ruang-server", "state_before": "locked"}]
    assert rig.events.of("door.opened")[0]["reason"] == "forced"
    snap = rig.ctrl.snapshot()
    assert snap["forced"] is True and snap["locked"] is True and not rig.door.lock_released
    assert rig.buzzer is not None and rig.buzzer.state is True
    rig.door.close()
    assert rig.after(1) is DoorState.LOCKED
    assert rig.events.of("door.closed")[0]["forced"] is True
    assert rig.events.kinds().count("door.forced") == 1 and rig.buzzer.state is False


def test_cut_contact_wire_on_a_normally_closed_contact_reads_as_forced() -> None:
    rig = Rig()
    rig.ctrl.tick()
    rig.board.set_input(CONTACT, False)  # the wire is cut: an NC loop opens although the door did not
    rig.after(0.1)
    assert rig.events.kinds() == ["door.forced", "door.opened"]


def test_exit_button_unlocks_like_a_grant_and_is_recorded_once_per_press() -> None:
    rig = Rig()
    rig.ctrl.tick()
    rig.door.press_exit()
    assert rig.after(0.1) is DoorState.UNLOCKED and rig.door.lock_released
    assert rig.after(0.1) is DoorState.UNLOCKED  # still held down: not a second press
    assert rig.events.of("door.exit_button") == [{"door": "ruang-server", "state_before": "locked", "unlock_s": 5.0}]
    rig.door.release_exit()
    assert rig.door.push_open() is True
    rig.after(0.5)
    rig.door.close()
    assert rig.after(2) is DoorState.LOCKED
    assert rig.events.kinds() == ["door.exit_button", "door.opened", "door.closed"]
    assert rig.events.of("door.opened")[0]["reason"] == "exit_button"
    assert "door.forced" not in rig.events.kinds()


def test_exit_press_and_opening_seen_in_the_same_tick_is_an_exit_not_forced() -> None:
    rig = Rig()
    rig.ctrl.tick()
    rig.door.press_exit()
    rig.door.force_open()  # pushed the bar and the door together, faster than one poll
    rig.after(0.1)
    assert rig.events.kinds() == ["door.exit_button", "door.opened"]


def test_crash_then_restart_stays_locked() -> None:
    rig = Rig()
    rig.ctrl.tick()
    rig.ctrl.grant("siti", "face")
    assert rig.door.lock_released
    del rig.ctrl  # the process dies mid-unlock: no stop(), no re-lock, the pin stays where it was
    assert rig.door.lock_released  # what RPi.GPIO leaves behind until the next start
    rig.clock.advance(3)
    rig.ctrl = rig.boot()
    assert not rig.door.lock_released and rig.ctrl.state is DoorState.LOCKED
    assert rig.ctrl.tick() is DoorState.LOCKED
    assert rig.door.push_open() is False
    assert rig.after(10) is DoorState.LOCKED and rig.events.all == []  # the old grant did not survive


def test_restart_with_the_door_standing_open_reports_it_but_not_as_forced() -> None:
    rig = Rig()
    rig.door.force_open()
    assert rig.ctrl.tick() is DoorState.OPEN
    assert rig.events.kinds() == ["door.opened"] and rig.events.of("door.opened")[0]["reason"] == "at_boot"
    assert rig.after(30) is DoorState.OPEN and rig.events.kinds()[-1] == "door.held_open"


def test_fail_safe_relay_is_energised_to_lock_and_a_power_cut_frees_the_door() -> None:
    rig = Rig(fail_safe=True, active_high=True)
    assert rig.board.history(LOCK) == [1, 1] and not rig.door.lock_released
    assert rig.ctrl.snapshot()["fail_safe"] is True and rig.ctrl.snapshot()["locked"] is True
    rig.ctrl.grant("budi", "finger")
    assert rig.board.level(LOCK) == 0 and rig.door.lock_released
    assert rig.after(5) is DoorState.LOCKED and rig.board.level(LOCK) == 1
    rig.door.cut_lock_power()  # fire panel cuts the maglock supply: free egress
    assert rig.door.push_open() is True
    rig.ctrl.tick()
    assert rig.events.kinds() == ["door.forced", "door.opened"]  # the gateway still says so


def test_fail_secure_lock_holds_without_power() -> None:
    rig = Rig()
    rig.ctrl.grant("budi", "finger")
    rig.door.cut_lock_power()
    assert rig.door.push_open() is False


def test_normally_open_contact_is_read_the_other_way_round() -> None:
    rig = Rig(normally_open=True)
    assert rig.ctrl.tick() is DoorState.LOCKED
    rig.ctrl.grant("siti", "face")
    rig.door.push_open()
    assert rig.after(1) is DoorState.OPEN
    rig.door.close()
    assert rig.after(1) is DoorState.LOCKED
    assert rig.events.kinds() == ["door.opened", "door.closed"]


def test_unreadable_contact_keeps_the_last_state_and_reports_the_fault() -> None:
    rig = Rig()
    rig.ctrl.tick()
    rig.board.contacts.fault(f"gpio{CONTACT}", "bouncing (simulated)")
    assert rig.after(1) is DoorState.LOCKED
    assert "bouncing" in rig.ctrl.snapshot()["faults"]["door contact"] and rig.events.all == []
    rig.board.contacts.fault(f"gpio{CONTACT}", None)
    rig.after(1)
    assert rig.ctrl.snapshot()["faults"] == {}


class FailingRelay:
    """An `OutputPin` whose driver can be made to fail."""

    name, initial = "lock", False

    def __init__(self) -> None:
        self.state, self.fail = False, False

    def _set(self, on: bool) -> None:
        if self.fail:
            raise GpioOutputError("relay driver gone (test)")
        self.state = on

    def on(self) -> None:
        self._set(True)

    def off(self) -> None:
        self._set(False)

    def close(self) -> None:
        """Nothing to release."""


def test_relay_failures_grant_raises_and_a_failed_relock_is_retried_every_tick() -> None:
    board, relay, events, clock = SimBoard(), FailingRelay(), Events(), Clock()
    assert isinstance(relay, OutputPin)
    ctrl = DoorController("d", relay, board.input(CONTACT, closed=True), None, 5, 30, events, clock)
    ctrl.tick()
    relay.fail = True
    with pytest.raises(GpioOutputError):
        ctrl.grant("siti", "face")
    assert ctrl.state is DoorState.LOCKED
    relay.fail = False
    ctrl.grant("siti", "face")
    relay.fail = True
    clock.advance(5)
    assert ctrl.tick() is DoorState.LOCKED and relay.state is True  # wanted locked, relay stuck released
    assert "relay driver gone" in ctrl.snapshot()["faults"]["lock relay"]
    relay.fail = False
    ctrl.tick()
    assert relay.state is False and ctrl.snapshot()["faults"] == {}


def test_controller_refuses_a_lock_pin_whose_setup_would_unlock_and_bad_timings() -> None:
    board = SimBoard()
    wrong = board.output("lock", LOCK, initial=True)  # fail-secure door, relay set up energised
    with pytest.raises(InvalidValueError, match="initial=relay_on_when_locked"):
        DoorController("d", wrong, board.input(CONTACT), None, 5, 30, Events(), Clock())
    assert board.level(LOCK) is None  # refused before touching the pin
    with pytest.raises(InvalidValueError, match="unlock_s=0"):
        DoorController("d", board.output("lock", LOCK), board.input(CONTACT), None, 0, 30, Events(), Clock())
    assert relay_on_when_locked(False) is False and relay_on_when_locked(True) is True


def test_poll_thread_ticks_until_stop_and_leaves_the_door_locked() -> None:
    rig = Rig()
    rig.ctrl.poll_s = 0.005
    rig.ctrl.start()
    try:
        rig.door.press_exit()
        wait_until(lambda: rig.door.lock_released, 5, message="exit button to release the lock")
    finally:
        rig.ctrl.stop()
    assert not rig.door.lock_released and rig.events.kinds() == ["door.exit_button"]


def test_emit_failure_does_not_stop_the_door() -> None:
    rig = Rig()

    def broken(kind: str, source: str, fields: Mapping[str, Any]) -> None:
        raise RuntimeError("store full")

    rig.ctrl._emit = broken  # the store refusing, after boot
    rig.door.force_open()
    assert rig.ctrl.tick() is DoorState.OPEN
    rig.door.close()
    assert rig.after(1) is DoorState.LOCKED


# -- the RPi.GPIO backend, with a stand-in module (no GPIO here) ---------------------------------

class FakeGpio:
    BCM, OUT = "BCM", "OUT"

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def setwarnings(self, flag: bool) -> None:
        """Accepted."""

    def setmode(self, mode: str) -> None:
        assert mode == self.BCM

    def setup(self, pin: int, direction: str, initial: int) -> None:
        self.calls.append(("setup", pin, direction, initial))

    def output(self, pin: int, level: int) -> None:
        self.calls.append(("output", pin, level))


@pytest.mark.parametrize(("active_high", "locked_level"), [(True, 0), (False, 1)])
def test_gpio_output_is_set_up_at_the_locked_level_whatever_the_polarity(active_high: bool,
                                                                          locked_level: int) -> None:
    gpio = FakeGpio()
    pin = GpioOutputPin("lock", LOCK, active_high=active_high, initial=relay_on_when_locked(False), gpio=gpio)
    assert isinstance(pin, OutputPin) and gpio.calls == []  # nothing touched until set-up
    DoorController("d", pin, Rig().door.contact_input(), None, 5, 30, Events(), Clock())
    assert gpio.calls[0] == ("setup", LOCK, "OUT", locked_level)
    assert {c[-1] for c in gpio.calls} == {locked_level}  # never the unlocking level at boot
    pin.on()
    assert gpio.calls[-1] == ("output", LOCK, 1 - locked_level) and pin.state is True
    pin.close()
    assert gpio.calls[-1] == ("output", LOCK, locked_level) and pin.state is False


def test_gpio_output_without_the_library_names_the_package() -> None:
    pin = GpioOutputPin("lock", LOCK)
    with pytest.raises(GpioOutputError, match="rpi-lgpio") as info:
        pin.setup()
    assert isinstance(info.value, OSError)
    with pytest.raises(InvalidValueError, match="BCM 0 to 27"):
        GpioOutputPin("lock", 40)
    assert not isinstance(info.value, SensorError)


# -- config --------------------------------------------------------------------------------------

BASE = {"name": "ruang-server", "auth": "face_or_finger", "lock_pin": 23, "contact_pin": 24, "exit_button_pin": 25,
        "fingerprint": {"port": "sim"}}


def test_door_config_defaults_and_every_field_described() -> None:
    door = DoorConfig.model_validate(BASE)
    assert (door.unlock_s, door.held_open_s, door.fail_safe, door.lock_active_high,
            door.contact_normally_open) == (5.0, 30.0, False, True, False)
    assert door.pins() == {"lock_pin": 23, "contact_pin": 24, "exit_button_pin": 25}
    assert all(field.description for field in DoorConfig.model_fields.values())


@pytest.mark.parametrize(("change", "expected"), [
    ({"auth": "card"}, ("auth", "face_or_finger")),
    ({"contact_pin": 23}, ("lock_pin and contact_pin are both 23", "own pin")),
    ({"exit_button_pin": 24}, ("contact_pin and exit_button_pin are both 24", "own pin")),
    ({"lock_pin": 40}, ("lock_pin = 40", "BCM number")),
    ({"unlock_s": 0}, ("unlock_s", "greater than or equal to 1")),
    ({"held_open_s": 1}, ("held_open_s", "greater than or equal to 5")),
    ({"unlock_s": "5"}, ("unlock_s", "valid number")),
    ({"lock_pins": 23}, ("lock_pins", "Extra inputs")),
    ({"name": "Ruang Server"}, ("name", "pattern")),
])
def test_door_config_errors_name_the_value_and_the_fix(change: dict[str, Any], expected: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as info:
        DoorConfig.model_validate({**BASE, **change})
    for text in expected:
        assert text in str(info.value)


def test_door_list_refuses_duplicate_names_and_shared_pins() -> None:
    doors = TypeAdapter(DoorList)
    other = {**BASE, "name": "gudang", "lock_pin": 5, "contact_pin": 6, "exit_button_pin": None}
    assert [d.name for d in doors.validate_python([BASE, other])] == ["ruang-server", "gudang"]
    with pytest.raises(ValidationError, match="two \\[\\[doors\\]\\] are named 'ruang-server'"):
        doors.validate_python([BASE, {**other, "name": "ruang-server"}])
    with pytest.raises(ValidationError, match="pin 24 is door 'ruang-server' contact_pin and door 'gudang' lock_pin"):
        doors.validate_python([BASE, {**other, "lock_pin": 24}])
