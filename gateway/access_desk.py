"""What officers ask of the access system: people, enrolment, revocation, sensor sync, presentations.

The same object serves the control socket inside the running service (with the doors, their
sensors and cameras) and the CLI when the service is stopped (people and image enrolment only:
the sensors and cameras belong to the service). Every reply is plain JSON and never holds a
template.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from access.people import PeopleRegistry, Person, PersonStateError
from drivers.errors import DcgateError, InvalidValueError
from gateway.config.models import Config
from gateway.errors import ServiceNotRunningError

if TYPE_CHECKING:  # dlib and OpenCV load ~150 MB of models: only face work imports them
    from access.face_match import FaceMatcher
    from gateway.doors import DoorSet

log = logging.getLogger(__name__)

SOURCE = "access"


class NeedsServiceError(ServiceNotRunningError):
    """The operation needs the door hardware, which only the running gateway holds."""


def _text(params: Mapping[str, Any], key: str, *, required: bool = True, default: str = "") -> str:
    value = params.get(key, default)
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidValueError(f"{key} must be given as text")
    return value


class AccessDesk:
    def __init__(self, config: Config, registry: PeopleRegistry, doors: DoorSet | None) -> None:
        self.config, self.registry, self.doors = config, registry, doors
        self.on_revoked: Callable[[str], None] | None = None  # escorted visits: an escort revoked mid-visit

    def handlers(self) -> dict[str, Any]:
        """Control-socket operations, by name."""
        return {
            "person.list": lambda p: [person.as_dict() for person in self.registry.list(
                include_revoked=bool(p.get("all")))],
            "person.add": self.person_add,
            "person.activate": lambda p: self.person_set_active(p, True),
            "person.deactivate": lambda p: self.person_set_active(p, False),
            "person.revoke": self.person_revoke,
            "enroll.face": self.enroll_face,
            "enroll.finger": self.enroll_finger,
            "finger.sync": self.finger_sync,
            "door.present": self.door_present,
            "door.status": lambda _p: self._doors().snapshot(),
            "inside": lambda _p: self._doors().inside(),
        }

    # -- people -----------------------------------------------------------------------------------
    def person_add(self, params: Mapping[str, Any]) -> dict[str, Any]:
        person = self.registry.add(_text(params, "name"), _text(params, "nip"), _text(params, "role"),
                                   _text(params, "by"))
        return person.as_dict()

    def person_set_active(self, params: Mapping[str, Any], active: bool) -> dict[str, Any]:
        person = self.registry.set_active(_text(params, "person"), active, _text(params, "by"),
                                          _text(params, "reason", required=False))
        return person.as_dict()

    def person_revoke(self, params: Mapping[str, Any]) -> dict[str, Any]:
        by = _text(params, "by")
        revocation = self.registry.revoke(_text(params, "person"), by, _text(params, "reason", required=False))
        person = revocation.person
        sensors: dict[str, str] = {}
        if self.doors is not None:
            self.doors.remove_face(person.id)  # at once: the next frame no longer matches them
            if revocation.finger_slots:
                sensors = self.doors.erase_slots(revocation.finger_slots)
        elif revocation.finger_slots:
            sensors = {name: "not_running: erased when the gateway next starts (it syncs every sensor)"
                       for name in self._configured_sensors()}
        if self.on_revoked is not None:
            try:
                self.on_revoked(person.id)
            except Exception as exc:  # the revocation stands; the visit alarm is reported, not lost silently
                log.error("person %s revoked, but their escorted visits could not be checked: %s", person.id, exc)
        if revocation.finger_slots or revocation.faces:
            self.registry.writer.append("biometric.erased", SOURCE, {  # type: ignore[union-attr]
                "person": person.id, "name": person.name, "by": by, "faces": revocation.faces,
                "slots": list(revocation.finger_slots), "sensors": sensors,
            })
        return {"person": person.as_dict(), "erased": {"faces": revocation.faces,
                                                       "finger_slots": list(revocation.finger_slots),
                                                       "sensors": sensors}}

    # -- enrolment --------------------------------------------------------------------------------
    def enroll_face(self, params: Mapping[str, Any]) -> dict[str, Any]:
        from enrollment.face_quality import enroll_samples

        person = self._enrollable(_text(params, "person"))
        by = _text(params, "by")
        images, door_name = params.get("images") or [], params.get("camera")
        matcher = self._face_matcher()
        if door_name:
            door = self._doors().door(str(door_name))
            if door.config.camera is None or door.config.camera.simulated:
                raise InvalidValueError(f"door {door_name!r} has no real camera to enrol from. Fix: use --image")
            enrolment = self._from_camera(door, person, matcher, int(params.get("samples", 5)))
        else:
            if not isinstance(images, list) or not images or not all(isinstance(i, str) for i in images):
                raise InvalidValueError("give at least one --image FILE, or --camera DOOR")
            missing = [i for i in images if not Path(i).is_file()]
            if missing:
                raise InvalidValueError(f"no such image file: {', '.join(missing)}")
            enrolment = enroll_samples(images, person_id=person.id, matcher=matcher,
                                       min_samples=int(params.get("min_samples", 1)))
        template_id = self.registry.add_face(person.id, enrolment.template, enrolment.accepted, by,
                                             str(door_name) if door_name else None)
        if self.doors is not None:
            self.doors.add_face(person.id, enrolment.template)
        return {"person": person.id, "name": person.name, "template": template_id, "accepted": enrolment.accepted,
                "refused": [{"sample": r.sample, "reason": r.reason, "message": str(r)} for r in enrolment.refused]}

    def _from_camera(self, door: Any, person: Person, matcher: FaceMatcher, samples: int) -> Any:
        from drivers.camera import OpenCvCamera
        from enrollment.face_quality import enroll_from_camera
        from gateway.doors import _camera_source

        station = door.face
        station.stop()  # the camera is the station's; lend it to the enrolment, then give it back
        try:
            with OpenCvCamera(_camera_source(door.config.camera.source)) as camera:
                return enroll_from_camera(camera, samples=samples, person_id=person.id, matcher=matcher)
        finally:
            station.start()

    def enroll_finger(self, params: Mapping[str, Any]) -> dict[str, Any]:
        person = self._enrollable(_text(params, "person"))
        by = _text(params, "by")
        door = self._doors().door(_text(params, "door"))
        station = door.fingers.get("in")
        if station is None:
            raise InvalidValueError(f"door {door.config.name!r} has no fingerprint sensor")
        capacity = door.config.fingerprint.capacity if door.config.fingerprint else 200
        used = self.registry.used_slots()
        slot = next((s for s in range(capacity) if s not in used), None)
        if slot is None:
            raise InvalidValueError(
                f"all {capacity} fingerprint slots are in use; revoke someone or fit a larger sensor"
            )
        slot, template = station.enroll(slot, timeout=float(params.get("timeout", 20)))
        try:
            template_id = self.registry.add_finger(person.id, slot, template, by, door.config.name)
        except DcgateError:
            station.erase((slot,))  # the sensor must not keep what the database refused
            raise
        copies = {}
        others = [(name, other) for name, other in self._doors().stations() if other is not station]
        wanted = self.registry.finger_templates() if others else {}  # read and decrypted once, not per sensor
        for name, other in others:
            try:
                copies[name] = _plain(other.provision(wanted))
            except Exception as exc:
                copies[name] = f"failed: {exc}; run `dcgate finger sync`"
        return {"person": person.id, "name": person.name, "slot": slot, "template": template_id,
                "door": door.config.name, "copied_to": copies}

    def finger_sync(self, params: Mapping[str, Any]) -> dict[str, Any]:
        door = self._doors().door(_text(params, "door"))
        wanted = self.registry.finger_templates()
        out = {}
        for key, station in door.fingers.items():
            out[key] = _plain(station.provision(wanted))
        if not out:
            raise InvalidValueError(f"door {door.config.name!r} has no fingerprint sensor")
        return {"door": door.config.name, "templates": len(wanted), "sensors": out}

    # -- presenting (the simulator and tests) -------------------------------------------------------
    def door_present(self, params: Mapping[str, Any]) -> dict[str, Any]:
        from access.face_station import still_source, video_source
        from gateway.doors import recognizer_settings

        door = self._doors().door(_text(params, "door"))
        timeout = float(params.get("timeout", 30))
        face, video, finger = params.get("face"), params.get("video"), params.get("finger")
        if sum(x is not None for x in (face, video, finger)) != 1:
            raise InvalidValueError("present exactly one of --face IMAGE, --video FILE, --finger N")
        if face is not None or video is not None:
            if door.face is None:
                raise InvalidValueError(f"door {door.config.name!r} has no camera")
            path = Path(str(face or video))
            if not path.is_file():
                raise InvalidValueError(f"no such file: {path}")
            settings = recognizer_settings(door.config)
            source = still_source(path, settings) if face is not None else video_source(path)
            return door.access.on_face(door.face.present(source, timeout), "in")
        station = door.fingers.get(str(params.get("direction", "in")))
        if station is None:
            raise InvalidValueError(f"door {door.config.name!r} has no such fingerprint sensor")
        if not isinstance(finger, int) or finger < 0:
            raise InvalidValueError(f"--finger must be a finger number >= 0, got {finger!r}")
        got: list[dict[str, Any]] = []
        ready = threading.Event()

        def take(result: dict[str, Any]) -> None:
            got.append(result)
            ready.set()

        door.access.wait_next(take)
        try:
            station.present_sim(finger)
            if not ready.wait(timeout):
                raise DcgateError(f"door {door.config.name!r}: the sensor reported nothing within {timeout:g} s")
        finally:
            door.access.cancel_wait(take)
        return got[0]

    # -- helpers ----------------------------------------------------------------------------------
    def _doors(self) -> DoorSet:
        if self.doors is None:
            raise NeedsServiceError("this needs the door hardware, which the running gateway holds. "
                                    "Fix: start it (systemctl start dcgate, or dcgate run)")
        return self.doors

    def _enrollable(self, ref: str) -> Person:
        person = self.registry.get(ref)
        if person.revoked:
            raise PersonStateError(f"person {person.id} ({person.name}) is revoked; add them anew")
        return person

    def _face_matcher(self) -> FaceMatcher:
        from access.face_match import FaceMatcher

        matcher = FaceMatcher()
        ids, vectors = self.registry.face_templates()
        if ids:
            matcher.add_many(ids, vectors)
        return matcher

    def _configured_sensors(self) -> list[str]:
        names = []
        for door in self.config.doors:
            if door.fingerprint is not None:
                names.append(door.name)
            if door.exit_fingerprint is not None:
                names.append(f"{door.name}/exit")
        return names


def _plain(report: Any) -> Any:
    if hasattr(report, "as_dict"):
        return report.as_dict()
    if hasattr(report, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(report)
    return report


__all__ = ["AccessDesk", "NeedsServiceError"]
