"""Who is inside the server room now, since when; exit-button matching; overstays; rebuilt from the logbook.

One `Presence` per gateway (one room), shared by every door's authenticator, so it is thread-safe.
It holds no clock: every call says when it happened (epoch seconds), which keeps replay and tests exact.

Exit button (request-to-exit, nobody identified): with one person inside, that person is out. With
several inside the press is *unattributed*: nobody is marked out yet, and the candidates are returned
for the ``access.exit`` event. When the unattributed presses reach the number of people inside, all
of them are out. Between presses the count never reaches the number inside (an exit through a
reader lowers it), so the rule "count reaches headcount -> everyone out" is always judged on a press.

Visitors (docs/visits.md) are stays with an ``escort``: the escort and their visitors are one *party*, and
the exit-button rule counts parties, not people (one escort with two vendors leaves with one press).

Replay: `Presence.replay(events)` rebuilds the state from logbook events in seq order (``access.granted``
in/out, ``access.exit``, ``access.overstay``, ``visit.checked_out``), so a restart neither lets anyone
"leave" nor raises an overstay alarm a second time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def iso_utc(seconds: float) -> str:
    """Epoch seconds -> "2026-11-21T08:00:00.000Z", the store's timestamp form."""
    whole, ms = divmod(round(seconds * 1000), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{ms:03d}Z"


def parse_utc(text: str) -> float:
    """The store's timestamp form (e.g. 2026-11-21T08:00:00.000Z) -> epoch seconds, to the millisecond."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no time zone; logbook timestamps end in Z")
    return round(moment.timestamp(), 3)


@dataclass(frozen=True, slots=True)
class Stay:
    """One person's time inside, from one entry to its exit."""

    person: str
    name: str
    role: str
    door: str
    since: float  # epoch seconds of the entry
    escort: str | None = None  # a visitor: the staff member who admitted them (their party)
    visit: str | None = None  # a visitor: the visit id

    @property
    def party(self) -> str:
        """Who this stay leaves with: a visitor goes with their escort, everyone else alone."""
        return self.escort or self.person

    def as_dict(self, now: float) -> dict[str, Any]:
        out = {
            "person": self.person, "name": self.name, "role": self.role, "door": self.door,
            "since": iso_utc(self.since), "stay_s": round(max(0.0, now - self.since), 3),
        }
        if self.visit is not None:
            out.update(visit=self.visit, escort=self.escort)
        return out


@dataclass(frozen=True, slots=True)
class ExitMatch:
    """What one exit-button press did: `persons` marked out now, or the `candidates` when it is ambiguous."""

    persons: list[Stay] = field(default_factory=list)
    candidates: list[str] = field(default_factory=list)

    def event_fields(self, door: str, now: float) -> dict[str, Any]:
        """Fields of the ``access.exit`` event for this press."""
        return {
            "door": door, "via": "exit_button",
            "persons": [stay.as_dict(now) for stay in self.persons], "candidates": list(self.candidates),
        }


class Presence:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._stays: dict[str, Stay] = {}  # insertion order is entry order
        self._reported: set[str] = set()  # people whose current stay has raised access.overstay
        self._unattributed = 0  # exit-button presses not yet matched to anybody

    # -- entries and exits -------------------------------------------------------------------------

    def enter(self, person_id: str, name: str, role: str, door: str, at: float, *, escort: str | None = None,
              visit: str | None = None) -> Stay:
        """`person_id` came in; a person already inside starts a new stay (they must have left unseen).

        A visitor enters with `escort` (who admitted them) and `visit`: they and their escort are one party.
        """
        with self._lock:
            if self._stays.pop(person_id, None) is not None:
                self._reported.discard(person_id)
                # their unseen exit was most likely one of the unattributed presses
                self._unattributed = max(0, self._unattributed - 1)
            stay = Stay(person_id, name, role, door, at, escort, visit)
            self._stays[person_id] = stay
            return stay

    def exit(self, person_id: str, at: float) -> Stay | None:
        """`person_id` went out (an exit reader); their stay, or None when they were not inside."""
        with self._lock:
            stay = self._stays.pop(person_id, None)
            if stay is not None:
                self._reported.discard(person_id)
                self._settle()
            return stay

    def exit_button(self, door: str, at: float) -> ExitMatch:
        """Match a request-to-exit press at `door` to who is inside (see the module docstring)."""
        with self._lock:
            stays = self._ordered()
            if not stays:
                return ExitMatch([], [])
            if self._parties() == 1:  # one person, or one escort with their visitors: they leave together
                self._remove_all()
                return ExitMatch(stays, [])
            self._unattributed += 1
            if self._unattributed >= self._parties():
                self._remove_all()
                return ExitMatch(stays, [])
            return ExitMatch([], [stay.person for stay in stays])

    def _parties(self) -> int:
        return len({stay.party for stay in self._stays.values()})

    def _remove_all(self) -> None:
        self._stays.clear()
        self._reported.clear()
        self._unattributed = 0

    def _settle(self) -> None:
        # keep the count below the number of parties, so everyone is marked out only by a press
        self._unattributed = min(self._unattributed, max(0, self._parties() - 1))

    # -- questions ---------------------------------------------------------------------------------

    def _ordered(self) -> list[Stay]:
        return sorted(self._stays.values(), key=lambda stay: stay.since)  # stable: ties keep entry order

    def inside(self) -> list[Stay]:
        """Everyone inside, earliest entry first."""
        with self._lock:
            return self._ordered()

    def visitors_with(self, escort: str) -> list[Stay]:
        """The visitors inside whose party is `escort`'s."""
        with self._lock:
            return [stay for stay in self._ordered() if stay.escort == escort]

    def keys(self) -> set[str]:
        """Everyone inside, by person id or visitor key."""
        with self._lock:
            return set(self._stays)

    def is_inside(self, person_id: str) -> bool:
        with self._lock:
            return person_id in self._stays

    def get(self, person_id: str) -> Stay | None:
        with self._lock:
            return self._stays.get(person_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._stays)

    @property
    def unattributed_exits(self) -> int:
        """Exit-button presses since the last match that could not be given to anyone."""
        with self._lock:
            return self._unattributed

    # -- overstays ---------------------------------------------------------------------------------

    def overstays(self, now: float, max_stay_s: Callable[[str], float | None],
                  exempt: Callable[[Stay], bool] | None = None) -> list[Stay]:
        """Stays over their role's limit not reported before; each is returned once (and marked reported).

        `exempt` skips a stay for now (a visitor, whose visit has its own limit; an escort with visitors inside).
        """
        with self._lock:
            found = []
            for stay in self._ordered():
                if stay.person in self._reported or (exempt is not None and exempt(stay)):
                    continue
                limit = max_stay_s(stay.role)
                if limit is not None and now - stay.since > limit:
                    self._reported.add(stay.person)
                    found.append(stay)
            return found

    def mark_reported(self, person_id: str) -> bool:
        """Note that the current stay of `person_id` has had its overstay alarm; False when not inside."""
        with self._lock:
            if person_id not in self._stays:
                return False
            self._reported.add(person_id)
            return True

    def reported(self) -> set[str]:
        """People whose current stay has already raised access.overstay."""
        with self._lock:
            return set(self._reported)

    # -- rebuilding from the logbook ---------------------------------------------------------------

    def apply(self, event: Mapping[str, Any]) -> None:
        """Apply one logbook event ({"kind", "ts", "fields", optionally "source"}); other kinds are ignored.

        A `gateway.store.events.Event` works too (its `as_dict()` is used).
        """
        if not isinstance(event, Mapping) and hasattr(event, "as_dict"):
            event = event.as_dict()
        kind = event.get("kind")
        fields: Mapping[str, Any] = event.get("fields") or {}
        if kind == "access.granted":
            at = parse_utc(event["ts"])
            person = str(fields["person"])
            if fields.get("direction") == "in":
                door = fields.get("door") or str(event.get("source", "")).removeprefix("door:")
                self.enter(person, str(fields.get("name", "")), str(fields.get("role", "")), door, at,
                           escort=fields.get("escort"), visit=fields.get("visit") if fields.get("escort") else None)
            elif fields.get("direction") == "out":
                self.exit(person, at)
        elif kind == "access.exit":
            at = parse_utc(event["ts"])
            persons = fields.get("persons") or []
            with self._lock:
                for entry in persons:
                    self.exit(entry["person"] if isinstance(entry, Mapping) else str(entry), at)
                if not persons and fields.get("candidates"):
                    self._unattributed += 1  # the logbook said who went out; only count the ambiguous press
        elif kind == "access.overstay":
            self.mark_reported(str(fields["person"]))
        elif kind == "visit.checked_out":  # the desk's check-out: whoever of them is still inside is out
            at = parse_utc(event["ts"])
            for visitor in fields.get("visitors") or []:
                if isinstance(visitor, Mapping) and visitor.get("key"):
                    self.exit(str(visitor["key"]), at)
        # person.revoked and the rest: revoking someone does not walk them out of the room

    @classmethod
    def replay(cls, events: Iterable[Mapping[str, Any]]) -> Presence:
        """A Presence rebuilt from logbook events given in seq order."""
        presence = cls()
        for event in events:
            presence.apply(event)
        return presence


__all__ = ["ExitMatch", "Presence", "Stay", "iso_utc", "parse_utc"]
