"""One door's fingerprint sensor, owned by the service: a poll thread that reports matches, enrol,
provision (sync), erase.

Polling: every `poll_s` the thread asks the sensor for one image (`FingerprintReader.identify(timeout=0)`:
a GenImg round trip when nobody is there, GenImg + Img2Tz + Search when a finger is). The serial round
trip is the whole cost; between polls the thread waits on its stop event. A finger is reported once per
presentation: after a report the station waits for a poll that sees no finger (the finger lifted)
before it reports the next one, so a finger left on the sensor is not a stream of decisions. A finger
that matches nothing is reported with ``slot=None`` (the authenticator denies: ``unknown_finger``).

Operations (`enroll`, `provision`, `erase`, `present_sim`) take the same lock as a poll, so polling is
paused while they run; they open the sensor themselves if the poll thread has not (yet) managed to.

Failures: a sensor that cannot be opened, or a call that fails, is recorded in `status()["last_error"]`,
logged once per outage (not every poll), and reopened with `reader_factory` after a backoff that doubles
from `min_backoff_s` up to `max_backoff_s`. Only a failure *during a presentation* reaches `on_match`
(``FingerMatch(door, None, None, error=...)``, the authenticator denies: ``sensor_error``): the sensor
answered with an error code after it had taken an image, so somebody is at the door waiting for an
answer. A sensor that does not answer at all cannot tell whether a finger is there, so that is only
recorded. The thread never ends on an error.

Simulation: with `sim` (the `FingerprintEmulator` behind the reader), `present_sim(finger)` taps a
synthetic finger, and `enroll()` with no finger on the sensor places finger number == slot with two
taps (place, lift, place), so enrolment in the simulator needs no hands: `present_sim(slot)` then matches.

Templates are biometric data (UU PDP): they are returned to the caller, never logged and never put into
a status or an error message; the station keeps only SHA-256 digests of what each page holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from drivers.errors import DcgateError, InvalidValueError
from drivers.fingerprint import (
    EnrollError,
    FingerprintError,
    FingerprintReader,
    FingerprintReadError,
    FingerTimeoutError,
    LibraryFullError,
    NoSensorError,
)
from drivers.sim.fingerprint_device import FingerprintEmulator

log = logging.getLogger(__name__)

#: errors that say something about the person or the request, not the sensor: it worked, keep it open
_NOT_A_FAULT = (EnrollError, FingerTimeoutError, LibraryFullError, InvalidValueError)


@dataclass(frozen=True)
class FingerMatch:
    """One finger presentation at `door`. `slot` None: no enrolled finger matched (or `error` is set)."""

    door: str
    slot: int | None
    confidence: int | None
    error: str | None = None


@dataclass
class SyncReport:
    """What `provision` did to the sensor's pages; `failed` maps a page to why it could not be set."""

    door: str
    added: list[int] = field(default_factory=list)
    replaced: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def counts(self) -> dict[str, int]:
        return {"added": len(self.added), "replaced": len(self.replaced), "removed": len(self.removed),
                "kept": len(self.kept), "failed": len(self.failed)}

    def as_dict(self) -> dict[str, Any]:
        """Counts and pages, for the CLI and events (no template data exists in a report)."""
        return {"door": self.door, **self.counts(), "slots": {
            "added": self.added, "replaced": self.replaced, "removed": self.removed, "kept": self.kept,
            "failed": dict(self.failed)}}


@dataclass
class _Batch:
    """Progress of an operation over several pages."""

    failed: dict[int, str]
    open_error: str | None = None  # the sensor could not be reopened: the remaining pages fail with this


def _digest(template: bytes) -> bytes:
    return hashlib.sha256(template).digest()


def _message(exc: BaseException) -> str:
    # the project's errors carry a readable message with a fix; anything else (termios.error from a
    # vanished pty, a bug) is named by its type so the status still says what happened
    if isinstance(exc, DcgateError):
        return str(exc)
    kind = type(exc)
    return f"the fingerprint sensor failed: {kind.__module__}.{kind.__qualname__}: {exc}"


class FingerStation:
    """One door's fingerprint sensor. Thread-safe: the poll thread, operations and `status()` may run at once.

    `reader_factory` opens the sensor (and is called again to reopen it after a failure).
    """

    def __init__(self, door: str, reader_factory: Callable[[], FingerprintReader],
                 on_match: Callable[[FingerMatch], None], *, poll_s: float = 0.25,
                 sim: FingerprintEmulator | None = None,
                 min_backoff_s: float = 1.0, max_backoff_s: float = 30.0) -> None:
        if not poll_s > 0 or not 0 < min_backoff_s <= max_backoff_s:
            raise InvalidValueError(
                f"finger station {door!r}: needs poll_s > 0 and 0 < min_backoff_s <= max_backoff_s; got "
                f"{poll_s}, {min_backoff_s}, {max_backoff_s}"
            )
        self.door, self.poll_s = door, poll_s
        self.min_backoff_s, self.max_backoff_s = min_backoff_s, max_backoff_s
        self._factory, self._on_match, self._sim = reader_factory, on_match, sim
        # the sensor: one user at a time, the poll or an operation (so an operation pauses polling)
        self._lock = threading.Lock()
        self._reader: FingerprintReader | None = None
        self._digests: dict[int, bytes] = {}  # page -> SHA-256 of what it holds, known since the reader opened
        self._finger_down = False  # a finger was reported (or enrolled) and has not been seen lifted yet
        self._backoff = min_backoff_s
        self._retry_at = 0.0
        # what status() reads, so it never waits for an enrolment holding the sensor
        self._mutex = threading.Lock()
        self._connected = False
        self._slots: set[int] | None = None
        self._capacity: int | None = None
        self._last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- public ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Poll in a thread every `poll_s` until `stop()` (the sensor is opened by the thread)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"finger-{self.door}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling and close the sensor. An operation called afterwards reopens it; stop() again closes it."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():  # inside a driver call; its serial timeout ends it, and it is a daemon
                log.warning("finger %s: poll thread did not stop within %.0f s", self.door, timeout)
            self._thread = None
        with self._lock:
            self._close_locked()

    def status(self) -> dict[str, Any]:
        """For the console, MQTT state topics and `dcgate status`; never touches the sensor."""
        with self._mutex:
            return {
                "door": self.door,
                "connected": self._connected,
                "sim": self._sim is not None,
                "slots_used": None if self._slots is None else len(self._slots),
                "capacity": self._capacity,
                "last_error": self._last_error,
            }

    def enroll(self, slot: int | None = None, timeout: float = 20.0) -> tuple[int, bytes]:
        """Two scans of one finger into `slot` (a free page if None); returns (slot, the stored template).

        Simulated sensor: with no finger on it, the simulated finger number == slot is placed with two taps.
        Raises EnrollError / FingerTimeoutError (scan again), LibraryFullError, InvalidValueError (page in
        use or out of range), or a FingerprintError from the sensor.
        """
        with self._lock:
            reader = self._reader_for_operation()
            placed = False
            try:
                if slot is None:
                    slot = reader.free_slot()
                if self._sim is not None and not self._sim.finger_on_sensor:
                    self._sim.place(slot, taps=2)
                    placed = True
                # the driver's enroll ends by reading the template back from the stored page (LoadChar +
                # UpChar, what `reader.template(slot)` does): that is what the sensor will match against,
                # and reading it a second time would only cost another 512 bytes on the line
                template = reader.enroll(slot, timeout)
            except Exception as exc:
                if placed and self._sim is not None:
                    self._sim.remove()  # a leftover simulated finger would otherwise be "presented" next poll
                self._operation_failed(exc)
                raise
            self._worked_locked()
            # the finger is still on the sensor after the second scan: it must not also count as a
            # presentation (which would open the door) until it has been lifted
            self._finger_down = True
            self._digests[slot] = _digest(template)
            self._set_slots(lambda slots: slots | {slot})
        log.info("finger %s: enrolled a finger into page %d", self.door, slot)
        return slot, template

    def provision(self, templates: Mapping[int, bytes]) -> SyncReport:
        """Make the sensor hold exactly `templates` (page -> template): store missing or different pages,
        delete the others. A page that fails is reported in `failed`; the others are still done.

        Raises a FingerprintError only if the sensor cannot be opened or its index table cannot be read
        (nothing was changed then).
        """
        report = SyncReport(self.door)
        wanted = dict(templates)
        with self._lock:
            reader = self._reader_for_operation()
            try:
                present = set(reader.slots())
            except Exception as exc:
                self._operation_failed(exc)
                raise
            batch = _Batch(report.failed)
            # revocations first: a page that is no longer wanted must be gone even if a later store fails
            for slot in sorted(present - wanted.keys()):
                if self._step(batch, slot, self._delete_locked):
                    report.removed.append(slot)
            for slot in sorted(wanted):
                outcome = self._step(batch, slot,
                                     lambda reader, slot: self._store_locked(reader, slot, wanted[slot], present))
                if outcome:
                    getattr(report, outcome).append(slot)
            if report.ok:
                self._worked_locked()
        log.info("finger %s: provisioned: %s", self.door,
                 ", ".join(f"{key} {count}" for key, count in report.counts().items()))
        return report

    def erase(self, slots: Iterable[int]) -> dict[int, str]:
        """Delete pages (revocation): page -> "erased" or "failed: why". Never raises for a page."""
        failed: dict[int, str] = {}
        done: list[int] = []
        batch = _Batch(failed)
        with self._lock:
            for slot in sorted(set(slots)):
                if self._step(batch, slot, self._delete_locked):
                    done.append(slot)
        if done:
            log.info("finger %s: erased pages %s", self.door, done)
        if failed:
            log.warning("finger %s: could not erase pages %s", self.door, sorted(failed))
        return {slot: "erased" for slot in done} | {slot: f"failed: {why}" for slot, why in failed.items()}

    def present_sim(self, finger_id: int) -> None:
        """Tap simulated finger `finger_id` on the sensor once; the next poll sees it and reports it."""
        if self._sim is None:
            raise InvalidValueError(f"door {self.door!r} has a real fingerprint sensor: only a simulated one "
                                    '(port = "sim") can be given a finger. Fix: press a finger on the sensor')
        with self._lock:
            if not self._sim.finger_on_sensor:
                # the previous simulated finger is known to be gone: this tap must not be taken for it
                # still lying there because no poll has seen the lift yet
                self._finger_down = False
            self._sim.place(finger_id, taps=1)

    # -- the poll thread -------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self._poll()
            except Exception:  # a bug here must not leave the door without its sensor
                log.exception("finger %s: poll failed", self.door)
                wait = self.poll_s
            self._stop.wait(wait)

    def _poll(self) -> float:
        """One look at the sensor; returns how long to wait before the next."""
        if not self._lock.acquire(timeout=self.poll_s):
            return 0.0  # an operation (an enrolment) has the sensor: polling is paused; check stop, try again
        try:
            wait, match = self._poll_locked()
        finally:
            self._lock.release()
        if match is not None:  # outside the lock: the callback may call back into the station
            try:
                self._on_match(match)
            except Exception:
                log.exception("finger %s: on_match failed", self.door)
        return wait

    def _poll_locked(self) -> tuple[float, FingerMatch | None]:
        if self._reader is None:
            remaining = self._retry_at - time.monotonic()
            if remaining > 0:
                # short waits so that polling resumes soon if an operation reopens the sensor meanwhile
                return min(remaining, self.poll_s), None
            try:
                self._open_locked()
            except Exception as exc:
                self._failed_locked(exc)
                return self.poll_s, None
        assert self._reader is not None
        try:
            found = self._reader.identify(timeout=0)
        except FingerTimeoutError:
            self._worked_locked()
            self._finger_down = False  # no finger (lifted): the next one is a new presentation
            return self.poll_s, None
        except Exception as exc:
            # the sensor answered with an error code; the driver retries failed images itself, so the
            # image was taken and somebody is waiting. No answer at all (read/port errors) says nothing.
            presenting = (isinstance(exc, FingerprintError)
                          and not isinstance(exc, FingerprintReadError | NoSensorError) and not self._finger_down)
            self._failed_locked(exc)
            if presenting:
                self._finger_down = True  # once per presentation, however long the fault lasts
                return self.poll_s, FingerMatch(self.door, None, None, error=_message(exc))
            return self.poll_s, None
        self._worked_locked()
        if self._finger_down:
            return self.poll_s, None  # the same finger, still on the sensor
        self._finger_down = True
        if found is None:
            return self.poll_s, FingerMatch(self.door, None, None)
        return self.poll_s, FingerMatch(self.door, found[0], found[1])

    # -- the sensor (callers hold self._lock) ------------------------------------------------------
    def _open_locked(self) -> FingerprintReader:
        reader = self._factory()
        try:
            slots = set(reader.slots())
        except BaseException:
            reader.close()
            raise
        self._reader, self._digests, self._retry_at = reader, {}, 0.0
        with self._mutex:
            self._connected, self._slots, self._capacity = True, slots, reader.capacity
        return reader

    def _worked_locked(self) -> None:
        """A sensor call succeeded. Only now is an outage over: a sensor that opens and then fails its first
        poll must neither be logged as back every time nor be retried without the backoff growing."""
        self._backoff = self.min_backoff_s
        with self._mutex:
            recovered, self._last_error = self._last_error is not None, None
        if recovered:
            log.info("finger %s: the fingerprint sensor works again", self.door)

    def _close_locked(self) -> None:
        reader, self._reader, self._digests = self._reader, None, {}
        if reader is not None:
            with contextlib.suppress(Exception):  # closing a port that has gone away
                reader.close()
        with self._mutex:
            self._connected = False

    def _failed_locked(self, exc: BaseException) -> None:
        """The sensor failed: close it, record the error (logged once per outage), reopen after a backoff."""
        self._close_locked()
        message = _message(exc)
        with self._mutex:
            first = self._last_error is None
            self._last_error = message
        if first:
            log.warning("finger %s: %s (retrying, up to every %g s)", self.door, message, self.max_backoff_s)
        else:
            log.debug("finger %s: still failing: %s", self.door, message)
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self.max_backoff_s)

    def _reader_for_operation(self) -> FingerprintReader:
        """The open reader, or one opened now: an operation someone is waiting for does not wait for the backoff."""
        if self._reader is not None:
            return self._reader
        try:
            return self._open_locked()
        except Exception as exc:
            self._failed_locked(exc)
            raise

    def _operation_failed(self, exc: BaseException) -> None:
        if not isinstance(exc, _NOT_A_FAULT):
            self._failed_locked(exc)

    def _step(self, batch: _Batch, slot: int, action: Callable[[FingerprintReader, int], str | None]) -> str | None:
        """Run `action` on one page; a failure goes into `batch.failed` and the next page is still tried.

        After a sensor fault the next page reopens the sensor; if it cannot be opened, the remaining
        pages fail with that error at once instead of each waiting for a timeout.
        """
        if batch.open_error is not None:
            batch.failed[slot] = batch.open_error
            return None
        try:
            reader = self._reader_for_operation()
        except Exception as exc:
            batch.open_error = batch.failed[slot] = _message(exc)
            return None
        try:
            return action(reader, slot) or "done"
        except Exception as exc:
            batch.failed[slot] = _message(exc)
            self._operation_failed(exc)
            return None

    def _delete_locked(self, reader: FingerprintReader, slot: int) -> None:
        reader.delete(slot)
        self._digests.pop(slot, None)
        self._set_slots(lambda slots: slots - {slot})

    def _store_locked(self, reader: FingerprintReader, slot: int, template: bytes, present: set[int]) -> str:
        """Put `template` at `slot` unless it is already there: "added", "replaced" or "kept"."""
        wanted = _digest(template)
        if slot in present:
            known = self._digests.get(slot)
            if known is None:
                # reading a page back costs LoadChar + UpChar, ~600 bytes (~0.1 s at 57600 baud), only for
                # pages in use whose content this station has not seen since it opened the sensor. It saves a
                # rewrite (DownChar + Store + the driver's own read-back: twice the bytes, and a flash write,
                # and flash wears out) for every page that is already right, which after the first sync is all.
                known = _digest(reader.template(slot))
                self._digests[slot] = known
            if known == wanted:
                return "kept"
        reader.store_template(slot, template)  # verified by the driver's read-back
        self._digests[slot] = wanted
        self._set_slots(lambda slots: slots | {slot})
        return "replaced" if slot in present else "added"

    def _set_slots(self, change: Callable[[set[int]], set[int]]) -> None:
        with self._mutex:
            if self._slots is not None:
                self._slots = change(self._slots)
