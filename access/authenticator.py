"""One door's access decision: who is presenting, does the door's auth mode hold, does policy allow it.

Readers report what they saw (`on_face` from the camera station, `on_finger` from the fingerprint
station); this class turns that into exactly one `access.granted` / `access.denied` (or, for the first
of two factors, `access.pending`) and, on a grant, tells the door controller to unlock. Every
presentation is written to the logbook, refused ones too.

Modes (``[[doors]] auth``):
- ``face`` / ``finger``: that factor alone; the other reader, if fitted, is ignored for entry.
- ``face_or_finger``: whichever comes first.
- ``face_and_finger``: both, naming the same person, within ``access.second_factor_s`` of each other.
  Policy is checked on the first factor, so an inactive person is refused at once, not after both.

Exits (direction ``out``, from an exit reader) are granted to anyone known and not revoked, whatever
the schedule: nobody is kept in the room by a policy. A door's mechanical egress works regardless.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from access.finger_station import FingerMatch
from access.people import PeopleRegistry, Person, UnknownPersonError
from access.policy import AccessPolicy, PersonView
from access.presence import Presence
from gateway.config.access import AccessConfig
from gateway.config.doors import DoorConfig

if TYPE_CHECKING:  # only a door with a camera loads the face stack
    from access.admission import Admissions
    from access.face_match import FaceDecision

log = logging.getLogger(__name__)

Emit = Callable[[str, str, Mapping[str, Any]], object]
Grant = Callable[[str, str], None]  # person id, method
NO_DISTANCE = 2.0  # the recogniser's "nobody enrolled to compare with"; not a distance to log


@dataclass
class _Pending:
    person: Person
    method: str  # the factor already given
    at: float  # monotonic
    evidence: dict[str, Any]


class DoorAccess:
    """Thread-safe: the camera and fingerprint stations call in from their own threads."""

    def __init__(self, door: DoorConfig, access: AccessConfig, registry: PeopleRegistry, policy: AccessPolicy,
                 presence: Presence, grant: Grant, emit: Emit, *, clock: Any = time,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.door, self.access, self.registry, self.policy, self.presence = door, access, registry, policy, presence
        self._grant, self._emit, self._clock, self._wall = grant, emit, clock, wall_clock
        self._source = f"door:{door.name}"
        self._mutex = threading.Lock()
        self._pending: _Pending | None = None
        self._waiters: list[Callable[[dict[str, Any]], None]] = []
        self.admissions: Admissions | None = None  # escorted visits (access/admission.py), when the service has them

    # -- readers call these -------------------------------------------------------------------
    def on_face(self, decision: FaceDecision | None, direction: str = "in") -> dict[str, Any]:
        evidence: dict[str, Any] = {}
        if decision is not None and decision.distance < NO_DISTANCE:
            evidence["distance"] = round(decision.distance, 4)
        if decision is None:
            return self._deny("face", direction, "no_face", None, evidence)
        if decision.outcome == "unknown_face":
            return self._deny("face", direction, "unknown_face", None, evidence)
        person = self._person(decision.person_id)
        if person is None or person.revoked:
            return self._deny("face", direction, "unknown_face" if person is None else "revoked", person, evidence)
        if decision.outcome == "liveness_failed":
            return self._deny("face", direction, "liveness_failed", person, evidence)
        return self._identified(person, "face", direction, evidence)

    def on_finger(self, match: FingerMatch, direction: str = "in") -> dict[str, Any]:
        evidence: dict[str, Any] = {"slot": match.slot, "confidence": match.confidence}
        if match.error is not None:
            return self._deny("finger", direction, "sensor_error", None, evidence | {"error": match.error})
        if match.slot is None:
            return self._deny("finger", direction, "unknown_finger", None, evidence)
        person = self.registry.person_for_slot(match.slot)
        if person is None:  # a slot the database no longer maps: an erased (revoked) template still on a sensor
            return self._deny("finger", direction, "unknown_finger", None, evidence)
        return self._identified(person, "finger", direction, evidence)

    def tick(self) -> None:
        """Time out a first factor whose second did not come."""
        with self._mutex:
            pending = self._pending
            if pending is None or self._clock.monotonic() - pending.at < self.access.second_factor_s:
                return
            self._pending = None
        self._deny(pending.method, "in", "second_factor_timeout", pending.person, pending.evidence)

    def wait_next(self, callback: Callable[[dict[str, Any]], None]) -> None:
        """Call `callback` once with the next decision at this door (`dcgate door present` waits on it)."""
        with self._mutex:
            self._waiters.append(callback)

    def cancel_wait(self, callback: Callable[[dict[str, Any]], None]) -> None:
        with self._mutex:
            if callback in self._waiters:
                self._waiters.remove(callback)

    def pending(self) -> dict[str, Any] | None:
        with self._mutex:
            p = self._pending
            if p is None:
                return None
            left = max(0.0, self.access.second_factor_s - (self._clock.monotonic() - p.at))
            return {"person": p.person.id, "name": p.person.name, "method": p.method, "within_s": round(left, 1)}

    # -- the decision ---------------------------------------------------------------------------
    def _identified(self, person: Person, method: str, direction: str, evidence: dict[str, Any]) -> dict[str, Any]:
        if direction == "out":
            if person.revoked:
                return self._deny(method, direction, "revoked", person, evidence)
            return self._allow(person, method, direction, evidence)
        reason = self.policy.check_entry(
            _view(person), datetime.fromtimestamp(self._wall(), UTC),
            already_inside=self.presence.is_inside(person.id), anti_passback=self.door.anti_passback,
        )
        if reason is not None:
            with self._mutex:
                if self._pending is not None and self._pending.person.id == person.id:
                    self._pending = None  # this refusal closes their own first factor; someone else's runs on
            return self._deny(method, direction, reason, person, evidence)
        if not self._needs_both() or method not in ("face", "finger"):
            return self._allow(person, method, direction, evidence)
        with self._mutex:
            pending = self._pending
            now = self._clock.monotonic()
            if pending is None or pending.method == method or now - pending.at > self.access.second_factor_s:
                self._pending = _Pending(person, method, now, evidence)
                expired = pending if pending is not None and pending.method != method else None
                first = True
            else:
                self._pending = None
                first = False
        if first:
            if expired is not None:
                self._deny(expired.method, "in", "second_factor_timeout", expired.person, expired.evidence)
            waiting = "finger" if method == "face" else "face"
            result = self._result("pending", None, person, method, direction, evidence)
            result.update(waiting_for=waiting, within_s=self.access.second_factor_s)
            self._record("access.pending", result)
            return result
        assert pending is not None
        both = pending.evidence | evidence
        if pending.person.id != person.id:
            return self._deny("face+finger", direction, "second_factor_mismatch", person,
                              both | {"first_person": pending.person.id})
        return self._allow(person, "face+finger", direction, both)

    def _needs_both(self) -> bool:
        return self.door.auth == "face_and_finger"

    def _allow(self, person: Person, method: str, direction: str, evidence: dict[str, Any]) -> dict[str, Any]:
        result = self._result("granted", None, person, method, direction, evidence)
        admissions = self.admissions
        plan = None
        if direction == "in":
            if admissions is not None:
                plan = self._visit_part(lambda: admissions.prepare(self.door.name, person), result)
                if isinstance(plan, dict):  # refused: reported with the escort's own entry
                    result.update(plan)
                    plan = None
                elif plan is not None and plan.assigned:  # the escort's entry names the visit and who comes
                    result.update(visit=plan.visit, admitted=[visitor["key"] for visitor in plan.coming])
            self.presence.enter(person.id, person.name, person.role, self.door.name, self._wall())
        else:
            self.presence.exit(person.id, self._wall())
        self._record("access.granted", result, notify=False)
        try:
            self._grant(person.id, method)
        except Exception as exc:  # the logbook says granted; the door could not act on it: say so, stay locked
            log.error("door %s: could not unlock for %s: %s", self.door.name, person.id, exc)
            result["unlock_error"] = str(exc)
        if admissions is not None and plan is not None:
            self._visit_part(lambda: result.update(admissions.admit(plan, person, method)), result)
        elif admissions is not None and direction == "out":
            self._visit_part(lambda: admissions.after_exit(self.door.name, person), result)
        self._notify(result)
        return result

    def _visit_part(self, work: Callable[[], Any], result: dict[str, Any]) -> Any:
        """The visit side of a decision; a failure there is logged and reported, and the person's own stands."""
        try:
            return work()
        except Exception as exc:
            log.error("door %s: visit handling for %s failed: %s", self.door.name, result.get("person"), exc)
            result["visit_error"] = str(exc)
            return None

    def _deny(self, method: str, direction: str, reason: str, person: Person | None,
              evidence: dict[str, Any]) -> dict[str, Any]:
        result = self._result("denied", reason, person, method, direction, evidence)
        self._record("access.denied", result, notify=False)
        if self.admissions is not None and direction == "in":
            try:
                result.update(self.admissions.after_denial(self.door.name, person, reason))
            except Exception as exc:
                log.error("door %s: could not log the refusal against the armed visit: %s", self.door.name, exc)
        self._notify(result)
        return result

    def _result(self, decision: str, reason: str | None, person: Person | None, method: str, direction: str,
                evidence: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = {"decision": decision, "door": self.door.name, "direction": direction,
                                  "method": method, "reason": reason, "person": None, "name": None, "role": None}
        if person is not None:
            result.update(person=person.id, name=person.name, role=person.role, nip=person.nip)
        result.update({k: v for k, v in evidence.items() if v is not None})
        return result

    def _record(self, kind: str, result: dict[str, Any], *, notify: bool = True) -> None:
        fields = {k: v for k, v in result.items() if k != "decision" and v is not None}
        self._emit(kind, self._source, fields)
        if notify:
            self._notify(result)

    def _notify(self, result: dict[str, Any]) -> None:
        with self._mutex:
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter(result)

    def _person(self, person_id: str | None) -> Person | None:
        if person_id is None:
            return None
        try:
            return self.registry.get(person_id)
        except UnknownPersonError:
            return None


def _view(person: Person) -> PersonView:
    return PersonView(id=person.id, name=person.name, nip=person.nip, role=person.role, active=person.active,
                      revoked=person.revoked)
