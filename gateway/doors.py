"""The doors in the service: wiring each `[[doors]]` entry to its hardware, readers and decision.

Per door: a `DoorController` on the lock relay and contacts (GPIO or simulated pins), a `FaceStation`
on the camera, a `FingerStation` per fingerprint sensor (entry, and exit if fitted), and a `DoorAccess`
that turns what the readers saw into the logbook and, on a grant, an unlock. Shared by all doors: the
people registry, the policy, and `Presence` (one room), rebuilt from the logbook at start.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from access.authenticator import DoorAccess
from access.door import DoorController, relay_on_when_locked
from access.finger_station import FingerMatch, FingerStation
from access.people import PeopleRegistry
from access.policy import AccessPolicy
from access.presence import Presence
from drivers.errors import DcgateError
from gateway.config.doors import DoorConfig, FingerprintConfig
from gateway.config.models import Config
from gateway.store.database import open_for_reading

if TYPE_CHECKING:  # the face stack (dlib, OpenCV, numpy) is loaded only for a door with a camera
    from access.face_match import FaceMatcher, RecognizerSettings

log = logging.getLogger(__name__)

Emit = Callable[[str, str, Mapping[str, Any]], object]
PRESENCE_KINDS = ("access.granted", "access.exit", "access.overstay", "visit.checked_out")


class UnknownDoorError(DcgateError):
    exit_code = 2


@dataclass
class Door:
    config: DoorConfig
    controller: DoorController
    access: DoorAccess
    matcher: FaceMatcher | None
    face: Any = None  # FaceStation
    fingers: dict[str, FingerStation] = field(default_factory=dict)  # "in" / "out"
    sim_door: Any = None  # drivers.sim.gpio.SimDoor when gpio = "sim"
    sim_sensors: list[tuple[Any, Any]] = field(default_factory=list)  # (FingerprintEmulator, PtyLink), sim only


class DoorSet:
    def __init__(self, config: Config, registry: PeopleRegistry, emit: Emit, *, board: Any = None) -> None:
        self.config, self.registry, self._emit = config, registry, emit
        self.policy = AccessPolicy(config.access)
        self.presence = load_presence(config.database_path)
        self._board = board
        self.doors: dict[str, Door] = {}
        self._faces: tuple[list[str], Any] | None = None
        self.visits: Any = None  # access.visits.VisitBook, once attach_visits() is called
        self.admissions: Any = None  # access.admission.Admissions
        self._next_id_sweep = 0.0

    def attach_visits(self, book: Any, admissions: Any) -> None:
        """Escorted visits: every door's decision admits armed visits; the tick watches their time limits."""
        self.visits, self.admissions = book, admissions
        for door in self.doors.values():
            door.access.admissions = admissions

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        if any(d.camera is not None for d in self.config.doors) and self.registry.cipher is not None:
            self._faces = self.registry.face_templates()
        for door_config in self.config.doors:
            door = self._build(door_config)
            self.doors[door_config.name] = door
            door.controller.start()
            if door.face is not None:
                door.face.start()
            for station in door.fingers.values():
                station.start()
        self._provision_all()

    def stop(self) -> None:
        for door in self.doors.values():
            if door.face is not None:
                door.face.stop()
            for station in door.fingers.values():
                station.stop()
            door.controller.stop()  # leaves the door locked
            for emulator, link in door.sim_sensors:
                emulator.stop()
                link.close()

    def tick(self) -> None:
        """Health-loop work: second factors that timed out, people over their maximum stay, visits' limits."""
        for door in self.doors.values():
            door.access.tick()
        now = time.time()
        for stay in self.presence.overstays(now, self.policy.max_stay_s, exempt=self._escorting):
            limit = self.policy.max_stay_s(stay.role) or 0
            self._emit("access.overstay", f"door:{stay.door}",
                       stay.as_dict(now) | {"max_stay_h": round(limit / 3600, 2)})
        if self.visits is None:
            return
        for work in (self.admissions.tick, lambda: self.visits.overstays(self.presence.keys(), now)):
            try:
                work()
            except Exception as exc:  # one bad visit must not stop the doors' own housekeeping
                log.error("visits: %s", exc)
        if now >= self._next_id_sweep:  # UU PDP: full ID numbers go once their retention ends
            self._next_id_sweep = now + 3600
            try:
                self.visits.erase_old_ids(now)
            except Exception as exc:
                log.error("visits: could not erase expired ID numbers: %s", exc)

    def _escorting(self, stay: Any) -> bool:
        """No access.overstay for a visitor (their visit has its limit) or an escort whose visitors are inside."""
        return stay.escort is not None or bool(self.presence.visitors_with(stay.person))

    def door(self, name: str) -> Door:
        try:
            return self.doors[name]
        except KeyError:
            known = ", ".join(self.doors) or "none configured"
            raise UnknownDoorError(f"no door {name!r} (doors: {known})") from None

    def snapshot(self) -> dict[str, Any]:
        out = {}
        armed = self.admissions.snapshot() if self.admissions is not None else {}
        for name, door in self.doors.items():
            out[name] = door.controller.snapshot() | {
                "auth": door.config.auth,
                "pending": door.access.pending(),
                "visit_armed": armed.get(name),
                "camera": None if door.face is None else door.face.status(),
                "fingerprint": {k: s.status() for k, s in door.fingers.items()},
            }
        return out

    def inside(self) -> list[dict[str, Any]]:
        return inside_rows(self.presence, self.policy, self.visits)

    @staticmethod
    def inside_offline(config: Config, visits: Any = None) -> list[dict[str, Any]]:
        """`dcgate inside` while the gateway is stopped: the same answer, from the logbook."""
        return inside_rows(load_presence(config.database_path), AccessPolicy(config.access), visits)

    # -- building ----------------------------------------------------------------------------------
    def _build(self, cfg: DoorConfig) -> Door:
        source = f"door:{cfg.name}"
        sim_door = None
        if cfg.gpio == "sim":
            from drivers.sim.gpio import SimBoard

            self._board = self._board or SimBoard()
            sim_door = self._board.wire_door(lock_pin=cfg.lock_pin, contact_pin=cfg.contact_pin,
                                             exit_button_pin=cfg.exit_button_pin,
                                             lock_active_high=cfg.lock_active_high, fail_safe=cfg.fail_safe,
                                             contact_normally_open=cfg.contact_normally_open)
            lock, contact, exit_button = sim_door.lock_output(), sim_door.contact_input(), sim_door.exit_input()
            buzzer = None if cfg.buzzer_pin is None else self._board.output("buzzer", cfg.buzzer_pin)
        else:
            lock, contact, exit_button, buzzer = _gpio_parts(cfg)

        def door_emit(kind: str, src: str, fields: Mapping[str, Any]) -> None:
            self._emit(kind, src, fields)
            if kind == "door.opened" and fields.get("reason") == "exit_button":
                now = time.time()
                match = self.presence.exit_button(cfg.name, now)
                if match.persons or match.candidates:
                    self._emit("access.exit", source, match.event_fields(cfg.name, now))

        controller = DoorController(cfg.name, lock, contact, exit_button, cfg.unlock_s, cfg.held_open_s, door_emit,
                                    fail_safe=cfg.fail_safe, contact_normally_open=cfg.contact_normally_open,
                                    buzzer=buzzer)
        access = DoorAccess(cfg, self.config.access, self.registry, self.policy, self.presence,
                            lambda person, method: controller.grant(person, method), self._emit)
        door = Door(cfg, controller, access, None, sim_door=sim_door)
        if cfg.camera is not None:
            from access.face_match import FaceMatcher

            door.matcher = FaceMatcher(cfg.match_threshold)
            if self._faces is not None and self._faces[0]:
                door.matcher.add_many(*self._faces)
            door.face = self._face_station(cfg, door.matcher, access)
        for direction, reader in (("in", cfg.fingerprint), ("out", cfg.exit_fingerprint)):
            if reader is not None:
                door.fingers[direction] = self._finger_station(cfg.name, direction, reader, access, door)
        return door

    def _face_station(self, cfg: DoorConfig, matcher: FaceMatcher, access: DoorAccess) -> Any:
        from access.face_station import FaceStation
        from drivers.camera import OpenCvCamera

        camera = cfg.camera
        assert camera is not None
        factory = None if camera.simulated else (lambda: OpenCvCamera(_camera_source(camera.source)))
        return FaceStation(cfg.name, matcher, recognizer_settings(cfg), lambda d: access.on_face(d, "in"),
                           camera_factory=factory, idle_fps=camera.idle_fps)

    def _finger_station(self, door: str, direction: str, reader: FingerprintConfig, access: DoorAccess,
                        parts: Door) -> FingerStation:
        from drivers.fingerprint import FingerprintReader

        sim = None
        port = reader.port
        if reader.simulated:
            from drivers.sim.pty_link import start_sim_sensor

            sim, link = start_sim_sensor(capacity=reader.capacity, baudrate=reader.baudrate)
            parts.sim_sensors.append((sim, link))
            port = link.port
        password = reader.password()

        def on_match(match: FingerMatch) -> None:
            access.on_finger(match, direction)

        return FingerStation(f"{door}-{direction}" if direction == "out" else door,
                             lambda: FingerprintReader(port, reader.baudrate, password), on_match, sim=sim)

    # -- templates ---------------------------------------------------------------------------------
    def stations(self) -> list[tuple[str, FingerStation]]:
        return [(name if key == "in" else f"{name}/exit", station)
                for name, door in self.doors.items() for key, station in door.fingers.items()]

    def _provision_all(self) -> None:
        """Bring every sensor in line with the database (adds missing templates, erases revoked ones)."""
        if not self.stations():
            return
        try:
            wanted = self.registry.finger_templates() if self.registry.cipher is not None else {}
        except DcgateError as exc:
            log.error("fingerprint templates cannot be read, sensors left as they are: %s", exc)
            return

        def run() -> None:
            for name, station in self.stations():
                try:
                    report = station.provision(wanted)
                    log.info("fingerprint %s: provisioned (%s)", name, report)
                except Exception as exc:  # a sensor that is away now is provisioned by `dcgate finger sync`
                    log.warning("fingerprint %s: could not provision at start: %s", name, exc)

        threading.Thread(target=run, name="finger-provision", daemon=True).start()

    def add_face(self, person_id: str, template: Any) -> None:
        for door in self.doors.values():
            if door.matcher is not None:
                door.matcher.add(person_id, template)

    def remove_face(self, person_id: str) -> None:
        for door in self.doors.values():
            if door.matcher is not None:
                door.matcher.remove(person_id)

    def erase_slots(self, slots: tuple[int, ...]) -> dict[str, str]:
        results: dict[str, str] = {}
        for name, station in self.stations():
            try:
                outcome = station.erase(slots)
                failed = {k: v for k, v in outcome.items() if v != "erased"} if isinstance(outcome, dict) else {}
                results[name] = "erased" if not failed else f"failed: {failed}"
            except Exception as exc:
                results[name] = f"failed: {exc}"
        return results


def inside_rows(presence: Presence, policy: AccessPolicy, visits: Any = None) -> list[dict[str, Any]]:
    """Everyone inside; a visitor's row has their visit, escort and time left (from the visit book)."""
    now = time.time()
    rows = []
    for stay in presence.inside():
        if stay.visit is not None:
            rows.append(stay.as_dict(now) | _visitor_row(stay, visits, now))
            continue
        limit = policy.max_stay_s(stay.role)
        row = stay.as_dict(now) | {"max_stay_h": None if limit is None else round(limit / 3600, 2),
                                   "overstay": limit is not None and now - stay.since > limit}
        escorting = [v.person for v in presence.visitors_with(stay.person)]
        if escorting:
            row.update(escorting=escorting, overstay=False)  # the visit's limit watches the group
        rows.append(row)
    return rows


def _visitor_row(stay: Any, visits: Any, now: float) -> dict[str, Any]:
    from access.presence import parse_utc

    row: dict[str, Any] = {"escort": stay.escort, "escort_name": None, "deadline": None, "time_left_s": None,
                           "overstay": False}
    if visits is None:
        return row
    try:
        visit, visitor = visits.visitor(stay.person)
    except DcgateError:
        return row
    row.update(org=visit.org, purpose=visit.purpose, kind=visit.kind, escort_name=visitor.get("escort_name"),
               deadline=visitor.get("deadline"))
    if visitor.get("deadline"):
        left = parse_utc(visitor["deadline"]) - now
        row.update(time_left_s=round(left, 1), overstay=left < 0)
    return row


def recognizer_settings(cfg: DoorConfig) -> RecognizerSettings:
    from access.face_match import RecognizerSettings

    return RecognizerSettings(agree_frames=cfg.agree_frames, liveness=cfg.liveness)


def _camera_source(source: int | str) -> int | str | Path:
    if isinstance(source, str) and "://" not in source:
        return Path(source)
    return source


def _gpio_parts(cfg: DoorConfig) -> tuple[Any, Any, Any, Any]:
    from drivers.contacts import GpioContact
    from drivers.gpio import GpioOutputPin

    lock = GpioOutputPin(f"{cfg.name} lock", cfg.lock_pin, active_high=cfg.lock_active_high,
                         initial=relay_on_when_locked(cfg.fail_safe))
    contact = GpioContact(f"{cfg.name} contact", cfg.contact_pin)
    exit_button = None if cfg.exit_button_pin is None else GpioContact(f"{cfg.name} exit", cfg.exit_button_pin)
    buzzer = None if cfg.buzzer_pin is None else GpioOutputPin(f"{cfg.name} buzzer", cfg.buzzer_pin)
    return lock, contact, exit_button, buzzer


def load_presence(database: Path) -> Presence:
    """Who is inside, replayed from the logbook (works whether or not the gateway runs)."""
    if not database.exists():
        return Presence()
    db = open_for_reading(database)
    try:
        rows = db.conn.execute(
            "SELECT kind, ts, source, payload FROM events WHERE kind IN (?, ?, ?, ?) ORDER BY seq", PRESENCE_KINDS
        ).fetchall()
    finally:
        db.close()
    return Presence.replay({"kind": k, "ts": ts, "source": src, "fields": json.loads(p)} for k, ts, src, p in rows)


__all__ = ["Door", "DoorSet", "UnknownDoorError", "inside_rows", "load_presence", "recognizer_settings"]
