"""A simulated GPIO header with a door wired to it: lock relay, reed contact, request-to-exit button.

`SimBoard` keeps the electrical level of every output pin by BCM number. The levels belong to the
board, not to the pin objects, so they outlive a controller: a process that crashes leaves its
relay where it was (as RPi.GPIO does), and the next controller's set-up is what brings it back.
Inputs are contacts of a `SimContactWorld` named ``gpio<pin>``, so faults (`board.contacts.fault`)
work as for any simulated contact.

`SimDoor` is wired to the board: its lock is released only while the relay is in the releasing
state for the lock type (fail-secure strike: energised; fail-safe maglock: de-energised or without
power), it can be pushed open only while released (`push_open`), or forced whatever the lock says
(`force_open`), and its reed contact follows it. Tests and a technician's rehearsal drive it with
`push_open()`, `force_open()`, `close()`, `press_exit()` / `release_exit()` and `cut_lock_power()`.
"""

from __future__ import annotations

import threading

from drivers.errors import InvalidValueError
from drivers.gpio import check_bcm
from drivers.sim.contacts import SimContact, SimContactWorld


class SimBoard:
    """Output levels by BCM pin, and the input contacts. Thread-safe: a controller thread and a test share it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._levels: dict[int, int] = {}  # never driven: absent (floating)
        self._history: dict[int, list[int]] = {}
        self.contacts = SimContactWorld()

    # -- outputs ------------------------------------------------------------------------------
    def output(self, name: str, pin: int, *, active_high: bool = True, initial: bool = False) -> SimOutputPin:
        """A new pin object on `pin` (the level already on the board stays until set-up)."""
        return SimOutputPin(self, name, check_bcm(pin), active_high=active_high, initial=initial)

    def drive(self, pin: int, level: int) -> None:
        with self._lock:
            self._levels[pin] = level
            self._history.setdefault(pin, []).append(level)

    def level(self, pin: int) -> int | None:
        """The electrical level of an output now: 0, 1, or None if never driven."""
        with self._lock:
            return self._levels.get(pin)

    def history(self, pin: int) -> list[int]:
        """Every level driven on `pin`, in order (to assert that a relay never glitched)."""
        with self._lock:
            return list(self._history.get(pin, []))

    # -- inputs -------------------------------------------------------------------------------
    def input(self, pin: int, closed: bool = False) -> SimContact:
        """The contact on `pin` (created open, or `closed`, the first time it is asked for)."""
        name = f"gpio{check_bcm(pin)}"
        if name not in self.contacts.snapshot():
            self.contacts.add(name, closed)
        return SimContact(self.contacts, name)

    def set_input(self, pin: int, closed: bool) -> None:
        self.contacts.set(f"gpio{pin}", closed)

    def wire_door(self, *, lock_pin: int, contact_pin: int, exit_button_pin: int | None = None,
                  lock_active_high: bool = True, fail_safe: bool = False,
                  contact_normally_open: bool = False) -> SimDoor:
        pins = [p for p in (lock_pin, contact_pin, exit_button_pin) if p is not None]
        if len(set(pins)) != len(pins):
            raise InvalidValueError(f"door pins {pins} are not all different. Fix: one pin per signal")
        return SimDoor(self, lock_pin=lock_pin, contact_pin=contact_pin, exit_button_pin=exit_button_pin,
                       lock_active_high=lock_active_high, fail_safe=fail_safe,
                       contact_normally_open=contact_normally_open)


class SimOutputPin:
    """`OutputPin` on a `SimBoard`; like `GpioOutputPin`, set-up drives the `initial` state first."""

    def __init__(self, board: SimBoard, name: str, pin: int, *, active_high: bool = True,
                 initial: bool = False) -> None:
        self._board = board
        self.name, self.pin, self.active_high, self.initial = name, pin, active_high, initial
        self._state = initial
        self._set_up = False
        self.closed = False

    @property
    def state(self) -> bool:
        return self._state

    def _level(self, on: bool) -> int:
        return 1 if on == self.active_high else 0

    def setup(self) -> None:
        if not self._set_up:
            self._board.drive(self.pin, self._level(self.initial))
            self._state, self._set_up = self.initial, True

    def _write(self, on: bool) -> None:
        self.setup()
        self._board.drive(self.pin, self._level(on))
        self._state = on

    def on(self) -> None:
        self._write(True)

    def off(self) -> None:
        self._write(False)

    def close(self) -> None:
        if self._set_up:
            self._write(self.initial)
        self.closed = True


class SimDoor:
    """A door, its lock and its reed contact, wired to a `SimBoard`."""

    def __init__(self, board: SimBoard, *, lock_pin: int, contact_pin: int, exit_button_pin: int | None,
                 lock_active_high: bool, fail_safe: bool, contact_normally_open: bool) -> None:
        self.board = board
        self.lock_pin, self.contact_pin, self.exit_button_pin = lock_pin, contact_pin, exit_button_pin
        self.lock_active_high, self.fail_safe = lock_active_high, fail_safe
        self.contact_normally_open = contact_normally_open
        self._lock = threading.Lock()
        self._open = False
        self._lock_powered = True
        board.input(contact_pin, closed=self._contact_closed(False))
        if exit_button_pin is not None:
            board.input(exit_button_pin, closed=False)

    # -- what a controller (a process) gets: fresh pin objects on the board --------------------
    def lock_output(self) -> SimOutputPin:
        """The relay pin, set up at the locked state (de-energised fail-secure, energised fail-safe)."""
        return self.board.output("lock", self.lock_pin, active_high=self.lock_active_high, initial=self.fail_safe)

    def contact_input(self) -> SimContact:
        return self.board.input(self.contact_pin)

    def exit_input(self) -> SimContact | None:
        return None if self.exit_button_pin is None else self.board.input(self.exit_button_pin)

    # -- physics ------------------------------------------------------------------------------
    @property
    def relay_energised(self) -> bool:
        # a pin never driven floats; relay boards pull their input to the inactive side
        level = self.board.level(self.lock_pin)
        return self._lock_powered and level is not None and level == (1 if self.lock_active_high else 0)

    @property
    def lock_released(self) -> bool:
        """True when the door can be pushed open."""
        energised = self.relay_energised
        return not energised if self.fail_safe else energised

    @property
    def is_open(self) -> bool:
        with self._lock:
            return self._open

    def _contact_closed(self, door_open: bool) -> bool:
        # NC wiring (the default): the magnet holds the contact closed while the door is shut
        return door_open if self.contact_normally_open else not door_open

    def _set_open(self, door_open: bool) -> None:
        with self._lock:
            self._open = door_open
            self.board.set_input(self.contact_pin, self._contact_closed(door_open))

    def push_open(self) -> bool:
        """Open the door if the lock lets it; False (still shut) when it is locked."""
        if not self.lock_released:
            return False
        self._set_open(True)
        return True

    def force_open(self) -> None:
        """Open the door whatever the lock says (a crowbar, a kicked door)."""
        self._set_open(True)

    def close(self) -> None:
        self._set_open(False)

    def press_exit(self) -> None:
        """Press and hold the request-to-exit button until `release_exit()`."""
        if self.exit_button_pin is None:
            raise InvalidValueError("this simulated door has no exit button. Fix: wire_door(exit_button_pin=...)")
        self.board.set_input(self.exit_button_pin, True)

    def release_exit(self) -> None:
        if self.exit_button_pin is not None:
            self.board.set_input(self.exit_button_pin, False)

    def cut_lock_power(self, cut: bool = True) -> None:
        """The lock's supply fails (or a fire panel cuts it): a fail-safe lock releases, fail-secure holds."""
        self._lock_powered = not cut
