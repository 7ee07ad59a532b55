"""Escorted entry: a door armed for one visit, and the escort's part in who is inside.

`dcgate visit admit VISIT --door DOOR` arms the door for `visits.admit_window_s`. The next successful
authentication there by an assigned escort admits the visit's arrived visitors with them (one
`access.granted` per visitor, linked to the escort, the approval and the purpose). Someone else who
authenticates meanwhile enters in their own right; the refused attempt is logged and the door stays
armed for the right escort. An assigned escort refused by the door (inactive, revoked, outside their
hours) is logged against the visit too. A window that passes with no escort is logged as
``admit_timeout``.

The escort stays with their visitors: identified leaving while any of them is inside (and no other
assigned escort of the visit is inside) raises ``visit.escort_alarm`` ``escort_left``; revoking an
escort whose visitors are inside raises ``escort_revoked``. The alarm clears when an assigned,
active escort is back inside, when the visitors are out, or at check-out (docs/visits.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from access.presence import Presence, iso_utc

if TYPE_CHECKING:
    from access.people import Person
    from access.visits import VisitBook

log = logging.getLogger(__name__)

Emit = Callable[[str, str, Mapping[str, Any]], object]
#: door denial reasons that mean the escort themself may not open doors now
_INACTIVE = ("inactive", "revoked")


@dataclass(frozen=True, slots=True)
class Armed:
    visit: str
    door: str
    escorts: frozenset[str]
    by: str
    until: float  # monotonic
    until_wall: float  # epoch seconds, for people


class Admissions:
    """Thread-safe: the door stations, the control socket and the health loop all call in."""

    def __init__(self, book: VisitBook, presence: Presence, window_s: float, emit: Emit, *,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time) -> None:
        self.book, self.presence, self.window_s = book, presence, window_s
        self._emit, self._clock, self._wall = emit, clock, wall_clock
        self._armed: dict[str, Armed] = {}  # by door
        self._changed = threading.Condition()
        self._outcomes: dict[str, list[dict[str, Any]]] = {}  # by visit: what happened since it was armed

    # -- arming --------------------------------------------------------------------------------------
    def arm(self, visit_ref: str, door: str, by: str) -> dict[str, Any]:
        """Arm `door` for the visit, after checking it may be admitted now; raises VisitRefusedError."""
        visit = self.book.check_admissible(visit_ref, inside=self.presence.keys(), by=by)
        with self._changed:
            current = self._armed.get(door)
            busy = current is not None and current.visit != visit.id and current.until > self._clock()
        if busy:
            assert current is not None
            raise self.book.refuse(
                visit.id, step="admit", reason="door_busy", by=by, source=f"door:{door}",
                detail=f"door {door} is waiting for the escort of {current.visit} until {iso_utc(current.until_wall)}",
            )
        armed = Armed(visit.id, door, frozenset(visit.escort_ids), by, self._clock() + self.window_s,
                      self._wall() + self.window_s)
        with self._changed:
            self._armed[door] = armed
            self._outcomes[visit.id] = []
        self._emit("visit.admit_armed", f"door:{door}", {"visit": visit.id, "door": door, "by": by,
                                                          "window_s": self.window_s})
        inside = self.presence.keys()
        waiting = [v["key"] for v in visit.visitors if v["arrived_at"] and v["exited_at"] is None
                   and v["key"] not in inside]
        return {"visit": visit.id, "door": door, "armed_until": iso_utc(armed.until_wall), "window_s": self.window_s,
                "escorts": [{"person": e["person"], "name": e["name"]} for e in visit.as_dict()["escorts"]],
                "visitors": waiting}

    def armed_at(self, door: str) -> Armed | None:
        with self._changed:
            armed = self._armed.get(door)
            return armed if armed is not None and armed.until > self._clock() else None

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._changed:
            now = self._clock()
            return {door: {"visit": a.visit, "armed_until": iso_utc(a.until_wall)}
                    for door, a in self._armed.items() if a.until > now}

    def wait(self, visit: str, timeout: float) -> dict[str, Any] | None:
        """Block until the visit armed at a door is admitted or refused; its outcome, or None on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                done = [o for o in self._outcomes.get(visit, []) if o.get("final")]
                if done:
                    return done[-1]
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(left)

    # -- at the door ---------------------------------------------------------------------------------
    def escort_for(self, door: str, person_id: str) -> str | None:
        """The visit `person_id` is about to admit at `door` (an assigned escort of the armed visit)."""
        armed = self.armed_at(door)
        return armed.visit if armed is not None and person_id in armed.escorts else None

    def after_grant(self, door: str, person: Person, method: str) -> dict[str, Any]:
        """An entry was granted at `door`: admit the armed visit with this escort, or log why not."""
        from access.visits import VisitRefusedError

        armed = self.armed_at(door)
        if armed is None:
            return {}
        try:
            entries = self.book.admit(armed.visit, escort=person.id, door=door, method=method,
                                      inside=self.presence.keys())
        except VisitRefusedError as exc:
            final = exc.reason != "escort_not_assigned"  # the door stays armed for the right escort
            if final:
                self._disarm(armed)
            refused = {"visit": armed.visit, "reason": exc.reason, "message": str(exc)}
            self._outcome(armed.visit, refused | {"final": final, "admitted": []})
            return {"visit_refused": refused}
        now = self._wall()
        for fields in entries:
            self.presence.enter(str(fields["person"]), str(fields["name"]), str(fields["role"]), door, now,
                                escort=person.id, visit=armed.visit)
        self._disarm(armed)
        admitted = [{"key": f["person"], "name": f["name"], "deadline": f.get("deadline")} for f in entries]
        self._outcome(armed.visit, {"visit": armed.visit, "final": True, "escort": person.id, "admitted": admitted})
        return {"visit": armed.visit, "admitted": admitted}

    def after_denial(self, door: str, person: Person | None, reason: str) -> dict[str, Any]:
        """An entry was refused at `door`: when it was an assigned escort of the armed visit, log it there."""
        armed = self.armed_at(door)
        if armed is None or person is None or person.id not in armed.escorts:
            return {}
        visit_reason = "escort_inactive" if reason in _INACTIVE else "escort_denied"
        error = self.book.refuse(armed.visit, step="admit", reason=visit_reason, by=person.id,
                                 source=f"door:{door}", detail=f"{person.name}: {reason}")
        refused = {"visit": armed.visit, "reason": visit_reason, "message": str(error)}
        self._outcome(armed.visit, refused | {"final": False, "admitted": []})
        return {"visit_refused": refused}

    def after_exit(self, door: str, person: Person) -> None:
        """`person` was identified leaving: are they an escort leaving visitors behind?"""
        self._escort_gone(person.id, "escort_left", f"door:{door}")

    def escort_revoked(self, person_id: str) -> None:
        self._escort_gone(person_id, "escort_revoked", "visits")

    # -- the health loop -----------------------------------------------------------------------------
    def tick(self) -> None:
        """Windows that passed without an escort; escort alarms whose cause has gone."""
        now = self._clock()
        with self._changed:
            lapsed = [a for a in self._armed.values() if a.until <= now]
            for armed in lapsed:
                del self._armed[armed.door]
        for armed in lapsed:
            try:
                error = self.book.refuse(armed.visit, step="admit", reason="admit_timeout", by=armed.by,
                                         source=f"door:{armed.door}",
                                         detail=f"no assigned escort authenticated at {armed.door} within "
                                                f"{self.window_s:g} s")
                self._outcome(armed.visit, {"visit": armed.visit, "reason": "admit_timeout", "message": str(error),
                                            "final": True, "admitted": []})
            except Exception as exc:  # the health loop must go on; the logbook writer reports its own trouble
                log.error("visit %s: could not record the admission timeout: %s", armed.visit, exc)
        self._clear_escort_alarms()

    def _clear_escort_alarms(self) -> None:
        inside = self.presence.keys()
        for visit in self.book.list():
            if visit.escort_alarm is None:
                continue
            keys = {v["key"] for v in visit.visitors}
            if not keys & inside:
                self.book.clear_escort_alarm(visit.id, reason="visitors_out", source="visits")
            elif any(e in inside and self._usable(e) for e in visit.escort_ids):
                self.book.clear_escort_alarm(visit.id, reason="escort_returned", source="visits")

    # -- helpers -------------------------------------------------------------------------------------
    def _escort_gone(self, person_id: str, condition: str, source: str) -> None:
        left_behind = self.presence.visitors_with(person_id)
        by_visit: dict[str, list[str]] = {}
        for stay in left_behind:
            by_visit.setdefault(stay.visit or "", []).append(stay.person)
        inside = self.presence.keys()
        for visit_id, keys in by_visit.items():
            if not visit_id:
                continue
            visit = self.book.get(visit_id)
            others = [e for e in visit.escort_ids if e != person_id and e in inside and self._usable(e)]
            if others and condition == "escort_left":
                continue  # another assigned escort is with them
            self.book.set_escort_alarm(visit_id, condition=condition, escort=person_id, visitors_inside=keys,
                                       source=source)

    def _usable(self, person_id: str) -> bool:
        from access.people import UnknownPersonError

        try:
            person = self.book.registry.get(person_id)
        except UnknownPersonError:
            return False
        return person.active and not person.revoked

    def _disarm(self, armed: Armed) -> None:
        with self._changed:
            if self._armed.get(armed.door) == armed:
                del self._armed[armed.door]

    def _outcome(self, visit: str, outcome: dict[str, Any]) -> None:
        with self._changed:
            self._outcomes.setdefault(visit, []).append(outcome)
            if len(self._outcomes) > 64:  # only recent visits are waited on
                self._outcomes.pop(next(iter(self._outcomes)))
            self._changed.notify_all()


__all__ = ["Admissions", "Armed"]
