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


@dataclass(frozen=True, slots=True)
class Plan:
    """An assigned escort is being let in at an armed door: the visitors coming with them."""

    armed: Armed
    coming: list[dict[str, Any]]  # [{key, name}]
    assigned: bool = True  # False: someone else entered while the door waited for the visit's escort

    @property
    def visit(self) -> str:
        return self.armed.visit


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
        visit = self.book.check_admissible(visit_ref, inside=self.presence.keys(), by=by, source=f"door:{door}")
        armed = Armed(visit.id, door, frozenset(visit.escort_ids), by, self._clock() + self.window_s,
                      self._wall() + self.window_s)
        with self._changed:  # the check and the arming in one step: two desks cannot both take the door
            current = self._armed.get(door)
            lapsed = current if current is not None and current.until <= self._clock() else None
            busy = current if current is not None and lapsed is None and current.visit != visit.id else None
            if busy is None:
                self._armed[door] = armed
                self._outcomes[visit.id] = []
        if lapsed is not None and lapsed.visit != visit.id:
            self._lapse(lapsed)  # its window passed before the health loop noticed: still logged
        if busy is not None:
            raise self.book.refuse(
                visit.id, step="admit", reason="door_busy", by=by, source=f"door:{door}",
                detail=f"door {door} is waiting for the escort of {busy.visit} until {iso_utc(busy.until_wall)}",
            )
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
    def prepare(self, door: str, person: Person) -> Plan | dict[str, Any] | None:
        """Before an entry granted at `door` is logged: the visit this escort brings in (a `Plan`), a refusal
        to report (``{"visit_refused": ...}``), or None when the door is not armed."""
        from access.visits import VisitRefusedError

        armed = self.armed_at(door)
        if armed is None:
            return None
        if person.id not in armed.escorts:  # they enter in their own right; the door waits for the right escort
            return Plan(armed, [], assigned=False)
        inside = self.presence.keys()
        try:
            visit = self.book.check_admissible(armed.visit, inside=inside, source=f"door:{door}", by=person.id)
        except VisitRefusedError as exc:
            self._disarm(armed)
            return self._refused(armed, exc.reason, exc, final=True)
        coming = [{"key": v["key"], "name": v["name"]} for v in visit.visitors
                  if v["arrived_at"] and v["exited_at"] is None and v["key"] not in inside]
        return Plan(armed, coming)

    def admit(self, plan: Plan, person: Person, method: str) -> dict[str, Any]:
        """After the escort's entry is logged: one entry per visitor, linked to them; the door is disarmed."""
        from access.visits import VisitRefusedError

        armed = plan.armed
        if not plan.assigned:  # logged after their own entry, which it refers to
            error = self.book.refuse(armed.visit, step="admit", reason="escort_not_assigned", by=person.id,
                                     source=f"door:{armed.door}", detail=f"{person.name} is not an assigned escort")
            return self._refused(armed, "escort_not_assigned", error, final=False)
        self._disarm(armed)
        try:
            entries = self.book.admit(armed.visit, escort=person.id, door=armed.door, method=method,
                                      inside=self.presence.keys())
        except VisitRefusedError as exc:  # changed between the check and now (another desk): logged by the book
            return self._refused(armed, exc.reason, exc, final=True)
        now = self._wall()
        for fields in entries:
            self.presence.enter(str(fields["person"]), str(fields["name"]), str(fields["role"]), armed.door, now,
                                escort=person.id, visit=armed.visit)
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
        return self._refused(armed, visit_reason, error, final=False)

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
            self._lapse(armed)
        self._clear_escort_alarms()

    def _lapse(self, armed: Armed) -> None:
        try:
            error = self.book.refuse(armed.visit, step="admit", reason="admit_timeout", by=armed.by,
                                     source=f"door:{armed.door}",
                                     detail=f"no assigned escort authenticated at {armed.door} within "
                                            f"{self.window_s:g} s")
            self._refused(armed, "admit_timeout", error, final=True)
        except Exception as exc:  # the health loop must go on; the logbook writer reports its own trouble
            log.error("visit %s: could not record the admission timeout: %s", armed.visit, exc)

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
        """`person_id` left or lost their right to escort: every open visit they escort whose visitors are
        inside with no other usable assigned escort raises an alarm (whoever admitted the visitors)."""
        inside = self.presence.keys()
        for visit in self.book.escort_visits(person_id):
            keys = [v["key"] for v in visit.visitors if v["key"] in inside]
            if not keys:
                continue
            if any(e != person_id and e in inside and self._usable(e) for e in visit.escort_ids):
                continue  # another assigned escort is with them
            self.book.set_escort_alarm(visit.id, condition=condition, escort=person_id, visitors_inside=keys,
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

    def _refused(self, armed: Armed, reason: str, error: Exception, *, final: bool) -> dict[str, Any]:
        refused = {"visit": armed.visit, "reason": reason, "message": str(error)}
        self._outcome(armed.visit, refused | {"final": final, "admitted": []})
        return {"visit_refused": refused}

    def _outcome(self, visit: str, outcome: dict[str, Any]) -> None:
        with self._changed:
            self._outcomes.setdefault(visit, []).append(outcome)
            if len(self._outcomes) > 64:  # only recent visits are waited on
                self._outcomes.pop(next(iter(self._outcomes)))
            self._changed.notify_all()


__all__ = ["Admissions", "Armed", "Plan"]
