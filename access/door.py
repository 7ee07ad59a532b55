"""The door state machine: lock relay, reed contact, request-to-exit button, held-open and forced alarms.

States (`DoorState`)::

    locked ──grant / exit button──▶ unlocked ──contact opens──▶ open ──contact closes──▶ closed ─▶ locked
       │                               └── unlock_s passes, nobody opened ──────────────────────▶ locked
       └──contact opens (no grant, no exit button): door.forced ──▶ open (the relay stays locked)

``closed`` is passed through in the same `tick`: the relay re-locks the moment the door shuts, so a
second person cannot follow on the same grant. While the door is open the relay stays released
(nothing to hold) and is locked again as soon as the contact reports the door shut.

Events (``emit(kind, source, fields)``, source ``door:<name>``):

=====================  =====================================================================
``door.opened``        door, reason (``grant`` | ``exit_button`` | ``forced`` | ``at_boot``), person, method
``door.closed``        door, open_s, held_open (the alarm had fired), forced
``door.held_open``     door, open_s, held_open_s, reason, person — once per opening
``door.forced``        door, state_before (``locked``)
``door.exit_button``   door, state_before, unlock_s
=====================  =====================================================================

Boot and crashes: the constructor drives the relay to the locked state whatever it was (a crashed
process leaves the pin where it was), and no grant survives a restart. An opening seen by the first
`tick` is reported as ``door.opened`` with reason ``at_boot``, not as forced: nobody can know.

Fail-secure (default, ``fail_safe=False``): the relay is *energised to unlock* (electric strike or
fail-secure bolt); without power the door stays locked. People inside must still be able to leave:
the inside handle of a fail-secure lock opens mechanically (free egress), which fire codes require.
Fail-safe (``fail_safe=True``): the relay is *energised to lock* (a maglock); without power the
door is unlocked. Use it where the fire-egress rule demands a lock that releases on power loss;
wire the fire alarm panel to cut the lock's supply directly (not through this gateway), and
remember that a power cut then opens the server room, so a UPS on the lock supply is the norm.

Inputs are polled by `tick()` (a `start()` thread does so every `poll_s`, the tests call it
directly with a controlled clock). The exit button is read before the contact in each tick, so
a press and the door opening seen in the same tick count as an authorised exit.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from drivers.contacts import ContactInput
from drivers.errors import InvalidValueError, SensorError
from drivers.gpio import OutputPin

log = logging.getLogger(__name__)

Emit = Callable[[str, str, Mapping[str, Any]], object]


class DoorState(enum.StrEnum):
    LOCKED = "locked"
    UNLOCKED = "unlocked"
    OPEN = "open"
    CLOSED = "closed"


@dataclass
class _Opening:
    """What the controller knows about the current opening."""

    since: float
    reason: str
    person: str | None
    method: str | None
    held_open_sent: bool = False


def relay_on_when_locked(fail_safe: bool) -> bool:
    """The relay's logical state while locked: off for fail-secure, on (holding the maglock) for fail-safe.

    Build the lock's `OutputPin` with ``initial=relay_on_when_locked(fail_safe)`` so set-up itself locks.
    """
    return fail_safe


class DoorController:
    """One door. Thread-safe: `grant()` comes from the access decision, `tick()` from the poll thread."""

    def __init__(self, name: str, lock: OutputPin, contact: ContactInput, exit_button: ContactInput | None,
                 unlock_s: float, held_open_s: float, emit: Emit, clock: Any = time, *,
                 fail_safe: bool = False, contact_normally_open: bool = False,
                 buzzer: OutputPin | None = None, poll_s: float = 0.1) -> None:
        if not unlock_s > 0 or not held_open_s > 0:
            raise InvalidValueError(
                f"door {name!r}: unlock_s={unlock_s} and held_open_s={held_open_s} must both be > 0 seconds"
            )
        self.name, self.unlock_s, self.held_open_s = name, float(unlock_s), float(held_open_s)
        self.fail_safe, self.contact_normally_open = fail_safe, contact_normally_open
        self._relay, self._contact, self._exit, self._buzzer = lock, contact, exit_button, buzzer
        self._emit, self._clock, self.poll_s = emit, clock, poll_s
        self._mutex = threading.Lock()
        self._state = DoorState.LOCKED
        self._unlocked_until: float | None = None
        self._unlock_reason: tuple[str, str | None, str | None] | None = None  # reason, person, method
        self._opening: _Opening | None = None
        self._forced = False
        self._door_open: bool | None = None  # None until the first tick has read the contact
        self._button_down = False
        self._faults: dict[str, str] = {}  # by part: lock relay, door contact, exit button, buzzer
        self._events: list[tuple[str, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        initial = getattr(lock, "initial", None)
        if initial is not None and initial != relay_on_when_locked(fail_safe):
            # set-up would drive the unlocking level first, however briefly
            raise InvalidValueError(
                f"door {name!r}: the lock pin is set up {'on' if initial else 'off'}, which unlocks this "
                f"{'fail-safe' if fail_safe else 'fail-secure'} door. Fix: build it with "
                "initial=relay_on_when_locked(fail_safe)"
            )
        # boot: locked whatever the pin was left at; a failure here must stop the gateway starting
        self._drive_lock(locked=True)
        if buzzer is not None:
            buzzer.off()

    # -- public --------------------------------------------------------------------------------
    @property
    def state(self) -> DoorState:
        with self._mutex:
            return self._state

    def grant(self, person: str, method: str) -> None:
        """Unlock for `unlock_s` after an access decision; re-locks on close or when nobody opens."""
        with self._mutex:
            self._unlock("grant", person, method, self._clock.monotonic())
        self._flush()

    def tick(self, now: float | None = None) -> DoorState:
        """Read the inputs and apply time: the whole machine, synchronously."""
        now = self._clock.monotonic() if now is None else now
        with self._mutex:
            self._poll_exit(now)
            self._poll_contact(now)
            self._apply_time(now)
            state = self._state
        self._flush()
        return state

    def snapshot(self) -> dict[str, Any]:
        """The door's status for the console, MQTT state topics and `dcgate status`."""
        now = self._clock.monotonic()
        with self._mutex:
            opening = self._opening
            return {
                "door": self.name,
                "state": self._state.value,
                "locked": self._relay.state == relay_on_when_locked(self.fail_safe),
                "relay_on": self._relay.state,
                "door_open": self._door_open,
                "unlock_remaining_s": None if self._unlocked_until is None
                else round(max(0.0, self._unlocked_until - now), 1),
                "open_s": None if opening is None else round(now - opening.since, 1),
                "held_open": bool(opening and opening.held_open_sent),
                "forced": self._forced,
                "fail_safe": self.fail_safe,
                "faults": dict(self._faults),
            }

    def start(self) -> None:
        """Poll in a thread every `poll_s` until `stop()`."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"door-{self.name}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop polling and leave the door locked."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._mutex:
            self._drive_lock(locked=True)

    # -- the machine (callers hold the mutex) ----------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # a bad tick must not end the polling of a door
                log.exception("door %s: tick failed", self.name)
            self._stop.wait(self.poll_s)

    def _unlock(self, reason: str, person: str | None, method: str | None, now: float) -> None:
        self._unlock_reason = (reason, person, method)
        if self._state is DoorState.OPEN:
            return  # already open: the relay re-locks on close, nothing to release
        self._drive_lock(locked=False)
        self._state = DoorState.UNLOCKED
        self._unlocked_until = now + self.unlock_s  # a second grant extends the window

    def _poll_exit(self, now: float) -> None:
        if self._exit is None:
            return
        try:
            down = self._exit.is_closed()
        except SensorError as exc:
            self._note_fault("exit button", str(exc))
            return
        self._faults.pop("exit button", None)
        pressed, self._button_down = down and not self._button_down, down  # a press, not a held button
        if pressed:
            self._events.append(("door.exit_button", {
                "door": self.name, "state_before": self._state.value, "unlock_s": self.unlock_s}))
            self._unlock("exit_button", None, None, now)

    def _poll_contact(self, now: float) -> None:
        try:
            closed = self._contact.is_closed()
        except SensorError as exc:
            self._note_fault("door contact", str(exc))  # keep the last known state: never a guessed one
            return
        self._faults.pop("door contact", None)
        door_open = closed if self.contact_normally_open else not closed
        first, was_open = self._door_open is None, self._door_open
        self._door_open = door_open
        if door_open and (first or not was_open):
            self._opened(now, at_boot=first)
        elif not door_open and was_open:
            self._closed(now)

    def _opened(self, now: float, at_boot: bool) -> None:
        if at_boot:
            reason, person, method = "at_boot", None, None
        elif self._state is DoorState.UNLOCKED and self._unlock_reason is not None:
            reason, person, method = self._unlock_reason
        else:
            reason, person, method = "forced", None, None
            self._forced = True
            self._events.append(("door.forced", {"door": self.name, "state_before": self._state.value}))
            self._sound(True)
        self._state, self._unlocked_until = DoorState.OPEN, None
        self._opening = _Opening(now, reason, person, method)
        self._events.append(("door.opened", {"door": self.name, "reason": reason, "person": person,
                                             "method": method}))

    def _closed(self, now: float) -> None:
        opening = self._opening
        self._state = DoorState.CLOSED
        self._events.append(("door.closed", {
            "door": self.name,
            "open_s": None if opening is None else round(now - opening.since, 1),
            "held_open": bool(opening and opening.held_open_sent),
            "forced": self._forced,
        }))
        self._opening, self._forced, self._unlock_reason = None, False, None
        self._sound(False)
        self._state = DoorState.LOCKED  # `closed` lasts no longer than this tick
        self._drive_lock(locked=True, retry=True)

    def _apply_time(self, now: float) -> None:
        if self._state is DoorState.UNLOCKED and self._unlocked_until is not None and now >= self._unlocked_until:
            self._state, self._unlocked_until, self._unlock_reason = DoorState.LOCKED, None, None
            self._drive_lock(locked=True, retry=True)  # nobody opened within unlock_s
        opening = self._opening
        if opening is not None and not opening.held_open_sent and now - opening.since >= self.held_open_s:
            opening.held_open_sent = True
            self._sound(True)
            self._events.append(("door.held_open", {
                "door": self.name, "open_s": round(now - opening.since, 1), "held_open_s": self.held_open_s,
                "reason": opening.reason, "person": opening.person}))
        if self._state is DoorState.LOCKED and self._relay.state != relay_on_when_locked(self.fail_safe):
            self._drive_lock(locked=True, retry=True)  # a re-lock that failed earlier is retried every tick

    def _drive_lock(self, locked: bool, retry: bool = False) -> None:
        """Drive the relay; a failure raises, unless `retry` (a re-lock in `tick`, tried again next tick)."""
        on = relay_on_when_locked(self.fail_safe) if locked else not relay_on_when_locked(self.fail_safe)
        try:
            self._relay.on() if on else self._relay.off()
        except OSError as exc:
            self._note_fault("lock relay", str(exc))
            if not retry:
                raise
            return
        self._faults.pop("lock relay", None)

    def _sound(self, on: bool) -> None:
        if self._buzzer is None:
            return
        try:
            self._buzzer.on() if on else self._buzzer.off()
        except OSError as exc:  # the buzzer failing must not stop the door
            self._note_fault("buzzer", str(exc))

    def _note_fault(self, part: str, message: str) -> None:
        if self._faults.get(part) != message:  # logged once per new fault, not every tick
            log.warning("door %s: %s: %s", self.name, part, message)
        self._faults[part] = message

    def _flush(self) -> None:
        with self._mutex:
            events, self._events = self._events, []
        for kind, fields in events:  # sent outside the mutex: the store may block
            try:
                self._emit(kind, f"door:{self.name}", fields)
            except Exception:  # the store refusing must not stop the door from being guarded
                log.exception("door %s: could not record %s", self.name, kind)
