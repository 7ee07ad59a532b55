"""Escorted entry at a door (access/admission.py) wired into a door's decision (access/authenticator.py).

Everything is real: a running StoreWriter on a SQLite file in tmp_path, AES-GCM with a generated key,
a PeopleRegistry with enrolled fingers, the VisitBook, Presence, AccessPolicy and DoorAccess. Fingers are
presented as the fingerprint station reports them (`FingerMatch`). Both clocks are settable, nothing
sleeps; the writer's asynchronous appends are read back after a flush event has committed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from access.admission import Admissions
from access.authenticator import DoorAccess
from access.crypto import TemplateCipher, generate_key_file
from access.finger_station import FingerMatch
from access.people import PeopleRegistry, Person
from access.policy import AccessPolicy
from access.presence import Presence, parse_utc
from access.visits import Visit, VisitBook, VisitRefusedError
from gateway.config.access import AccessConfig
from gateway.config.doors import DoorConfig
from gateway.config.visits import VisitsConfig
from gateway.doors import inside_rows, load_presence
from gateway.store.events import Event
from gateway.store.writer import StoreWriter
from tests.support.eventstore import committed_events

WIB = ZoneInfo("Asia/Jakarta")
T0 = datetime(2026, 11, 21, 9, 0, tzinfo=WIB).timestamp()  # a Saturday morning at the site
NIK = "3271014101900004"  # KTP: province 32, born 01-01-90, a woman (day + 40)
SIM = "123456789012"
PASPOR = "B1234567"
FULL_NUMBERS = (NIK, SIM, PASPOR)
DOOR = "main"
SOURCE = f"door:{DOOR}"
WINDOW_S = 60.0
VISITOR_FIELDS = {"door", "direction", "method", "person", "name", "role", "visit", "escort", "escort_name", "org",
                  "purpose", "approved_by", "approved_at", "id_type", "id_masked", "deadline"}


class WallClock:
    """Epoch seconds the tests move."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class MonoClock(WallClock):
    """A monotonic clock: callable (Admissions) and with .monotonic() (DoorAccess)."""

    def monotonic(self) -> float:
        return self.now


@dataclass
class Rig:
    writer: StoreWriter
    registry: PeopleRegistry
    book: VisitBook
    presence: Presence
    policy: AccessPolicy
    door: DoorAccess
    admissions: Admissions
    wall: WallClock
    mono: MonoClock
    officer: Person
    a: Person  # assigned escort
    b: Person  # assigned escort
    c: Person  # staff, never assigned
    slots: dict[str, int] = field(default_factory=dict)
    grants: list[tuple[str, str]] = field(default_factory=list)

    # -- the door ------------------------------------------------------------------------------------
    def finger(self, person: Person, direction: str = "in") -> dict[str, Any]:
        return self.door.on_finger(FingerMatch(DOOR, self.slots[person.id], 100, None), direction)

    # -- the logbook ---------------------------------------------------------------------------------
    def events(self, kind: str | None = None) -> list[Event]:
        """Every committed event (of `kind`), after whatever the door appended asynchronously has committed."""
        self.writer.append_and_wait("test.flush", "test", {})
        return [e for e in committed_events(self.writer.path, kind=kind) if e.kind != "test.flush"]

    def seq(self) -> int:
        """The seq of the last event committed so far: read `since(seq)` later for what happened after."""
        return self.writer.append_and_wait("test.flush", "test", {}).seq

    def since(self, seq: int, kind: str | None = None) -> list[Event]:
        return [e for e in self.events(kind) if e.seq > seq]

    # -- visits --------------------------------------------------------------------------------------
    def vendor(self, *, escorts: tuple[Person, ...] | None = None, arrive: bool = True, **kwargs: Any) -> Visit:
        """An approved vendor visit of two (Agus with a SIM, Rina with a KTP), escorts A and B, IDs deposited."""
        args: dict[str, Any] = {"kind": "vendor", "name": "Agus Salim", "org": "PT Jaringan Nusantara",
                                "id_type": "SIM", "id_number": SIM, "purpose": "ganti modul catu daya core switch",
                                "by": "desk-ani", "devices": ["core switch"],
                                "companions": [("Rina Wulandari", "KTP", NIK)]}
        args.update(kwargs)
        visit = self.book.request(**args)
        chosen = (self.a, self.b) if escorts is None else escorts
        self.book.approve(visit.id, by=self.officer.id, escorts=[p.id for p in chosen])
        if arrive:
            self.book.arrive(visit.id, received_by=self.c.id)
        return self.book.get(visit.id)

    def guest(self, **kwargs: Any) -> Visit:
        """An approved guest visit of one (Budi Hartono, passport), escort A, ID and gadgets deposited."""
        visit = self.book.request(kind="guest", name="Budi Hartono", org="Bappeda Kota", id_type="PASPOR",
                                  id_number=PASPOR, purpose="melihat ruang server untuk studi banding",
                                  by="desk-ani", **kwargs)
        self.book.approve(visit.id, by=self.officer.id, escorts=[self.a.id])
        self.book.arrive(visit.id, received_by=self.c.id, gadgets="1 ponsel")
        return self.book.get(visit.id)

    def admitted(self, visit: Visit, escort: Person | None = None) -> dict[str, Any]:
        """Arm the door for `visit` and let `escort` (A) authenticate: the visit's visitors are inside."""
        self.admissions.arm(visit.id, DOOR, "desk")
        result = self.finger(escort or self.a)
        assert result["decision"] == "granted" and result.get("visit") == visit.id, result
        return result

    def checkout(self, visit: Visit) -> Visit:
        return self.book.checkout(visit.id, by=self.officer.id, activities="modul catu daya diganti",
                                  checklist=[{"item": d, "ok": True, "note": "normal"} for d in visit.devices])


def keys(visit: Visit) -> list[str]:
    return [v.key for v in visit.visitors]


def refused_fields(event: Event) -> dict[str, Any]:
    fields = event.fields
    assert set(fields) == {"visit", "step", "reason", "by", "detail"}
    return fields


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[StoreWriter]:
    store = StoreWriter(tmp_path / "data" / "dcgate.db", synchronous="normal")
    store.start()
    yield store
    store.stop()


@pytest.fixture
def cipher(tmp_path: Path) -> TemplateCipher:
    return TemplateCipher.from_file(generate_key_file(tmp_path / "keys" / "access.key"))


@pytest.fixture
def visits_config() -> VisitsConfig:
    return VisitsConfig()


@pytest.fixture
def rig(writer: StoreWriter, cipher: TemplateCipher, visits_config: VisitsConfig) -> Rig:
    registry = PeopleRegistry(writer.path, writer, cipher)
    officer = registry.add("Ir. Siti Rahmawati", "PEG-0001", "officer", "admin")
    a = registry.add("Budi Santoso", "PEG-0002", "staff", "admin")
    b = registry.add("Citra Lestari", "PEG-0003", "staff", "admin")
    c = registry.add("Dedi Kurniawan", "PEG-0004", "staff", "admin")
    slots = {}
    for slot, person in enumerate((officer, a, b, c), start=1):
        registry.add_finger(person.id, slot, f"template-{slot}".encode() * 8, "admin", DOOR)
        slots[person.id] = slot
        assert registry.person_for_slot(slot).id == person.id
    wall, mono = WallClock(T0), MonoClock(1000.0)
    book = VisitBook(writer.path, writer, cipher, registry, visits_config, "Asia/Jakarta", clock=wall)
    presence = Presence()
    access_config = AccessConfig()
    policy = AccessPolicy(access_config)
    door_config = DoorConfig(name=DOOR, gpio="sim", lock_pin=23, contact_pin=24, auth="finger",
                             fingerprint={"port": "sim"}, exit_fingerprint={"port": "sim"})
    grants: list[tuple[str, str]] = []

    def emit(kind: str, source: str, fields: Any) -> object:
        return writer.append(kind, source, fields)

    door = DoorAccess(door_config, access_config, registry, policy, presence,
                      grant=lambda person, method: grants.append((person, method)), emit=emit, clock=mono,
                      wall_clock=wall)
    admissions = Admissions(book, presence, window_s=WINDOW_S, emit=emit, clock=mono, wall_clock=wall)
    door.admissions = admissions
    return Rig(writer, registry, book, presence, policy, door, admissions, wall, mono,
               officer, a, b, c, slots, grants)


# -- admission -------------------------------------------------------------------------------------------

def test_an_assigned_escort_admits_the_armed_visit(rig: Rig) -> None:
    visit = rig.vendor()
    start = rig.seq()
    armed = rig.admissions.arm(visit.id, DOOR, "desk")
    assert armed["visit"] == visit.id and armed["door"] == DOOR and armed["window_s"] == WINDOW_S
    assert parse_utc(armed["armed_until"]) == pytest.approx(T0 + WINDOW_S)
    assert armed["escorts"] == [{"person": rig.a.id, "name": rig.a.name}, {"person": rig.b.id, "name": rig.b.name}]
    assert armed["visitors"] == keys(visit)
    assert rig.admissions.armed_at(DOOR).visit == visit.id
    assert rig.admissions.snapshot() == {DOOR: {"visit": visit.id, "armed_until": armed["armed_until"]}}
    assert rig.admissions.wait(visit.id, 0.05) is None  # nobody came yet

    rig.wall.advance(5)
    rig.mono.advance(5)
    result = rig.finger(rig.a)
    assert result["decision"] == "granted" and result["person"] == rig.a.id and result["method"] == "finger"
    assert result["visit"] == visit.id
    assert [entry["key"] for entry in result["admitted"]] == keys(visit)
    assert "visit_refused" not in result and "visit_error" not in result
    assert rig.grants == [(rig.a.id, "finger")]  # the lock opens once, for the escort

    events = rig.since(start)
    assert [(e.kind, e.source) for e in events] == [("visit.admit_armed", SOURCE)] + [("access.granted", SOURCE)] * 3
    assert events[0].fields == {"visit": visit.id, "door": DOOR, "by": "desk", "window_s": WINDOW_S}
    escort = events[1].fields
    assert escort["person"] == rig.a.id and escort["direction"] == "in" and escort["visit"] == visit.id
    assert "escort" not in escort
    deadline = parse_utc(visit.visitors[0].arrived_at) + 5 + 8 * 3600
    for event, visitor in zip(events[2:], visit.visitors, strict=True):
        fields = event.fields
        assert set(fields) == VISITOR_FIELDS
        assert fields["person"] == visitor.key and fields["name"] == visitor.name
        assert (fields["direction"], fields["method"], fields["role"]) == ("in", "escorted", "vendor")
        assert (fields["escort"], fields["escort_name"]) == (rig.a.id, rig.a.name)
        assert fields["visit"] == visit.id and fields["purpose"] == visit.purpose and fields["org"] == visit.org
        assert fields["approved_by"] == rig.officer.id and fields["approved_at"] == visit.approved_at
        assert (fields["id_type"], fields["id_masked"]) == (visitor.id_type, visitor.id_masked)
        assert parse_utc(fields["deadline"]) == pytest.approx(deadline)
    assert [e["deadline"] for e in result["admitted"]] == [e.fields["deadline"] for e in events[2:]]
    assert not [e.seq for e in rig.events() for number in FULL_NUMBERS if number in e.payload]

    for visitor in visit.visitors:
        stay = rig.presence.get(visitor.key)
        assert stay is not None and stay.escort == rig.a.id and stay.visit == visit.id and stay.role == "vendor"
    assert rig.presence.keys() == {rig.a.id, *keys(visit)}
    assert rig.admissions.armed_at(DOOR) is None
    assert rig.admissions.snapshot() == {}
    outcome = rig.admissions.wait(visit.id, 0.1)
    assert outcome is not None and outcome["final"] and outcome["escort"] == rig.a.id
    assert outcome["admitted"] == result["admitted"]
    stored = rig.book.get(visit.id)
    assert stored.status == "in_progress"
    assert [(v.escort, v.entered_at is not None) for v in stored.visitors] == [(rig.a.id, True)] * 2


def test_the_escorts_own_event_names_the_visitors_it_admitted(rig: Rig) -> None:
    """docs/visits.md: the escort's own access.granted carries `visit` and `admitted` (visitor keys)."""
    visit = rig.vendor()
    rig.admitted(visit)
    escort = [e for e in rig.events("access.granted") if e.fields["person"] == rig.a.id]
    assert len(escort) == 1
    assert escort[0].fields.get("visit") == visit.id
    assert escort[0].fields.get("admitted") == keys(visit), escort[0].fields


def test_the_escorts_event_names_no_visit_when_the_admission_was_refused(rig: Rig) -> None:
    """The window ends while the door is armed: the escort enters alone, so their event must not claim the visit."""
    end = rig.wall.now + 3600
    visit = rig.vendor(end=end)
    rig.wall.now = end - 10
    rig.admissions.arm(visit.id, DOOR, "desk")
    rig.wall.advance(20)  # past the window's end, still within the door's admit window
    rig.mono.advance(20)
    result = rig.finger(rig.a)
    assert result["decision"] == "granted"
    assert result["visit_refused"]["reason"] == "expired"
    assert not rig.presence.keys() & set(keys(visit))
    refused = rig.events("visit.refused")
    assert [(e.source, e.fields["reason"]) for e in refused] == [(SOURCE, "expired")]
    escort = [e for e in rig.events("access.granted") if e.fields["person"] == rig.a.id]
    assert "visit" not in escort[0].fields, escort[0].fields


def test_someone_not_assigned_enters_alone_and_the_door_stays_armed(rig: Rig) -> None:
    visit = rig.vendor()
    rig.admissions.arm(visit.id, DOOR, "desk")
    start = rig.seq()
    result = rig.finger(rig.c)
    assert result["decision"] == "granted" and result["person"] == rig.c.id
    assert "visit" not in result and "admitted" not in result
    assert result["visit_refused"]["visit"] == visit.id
    assert result["visit_refused"]["reason"] == "escort_not_assigned"
    assert " / " in result["visit_refused"]["message"]
    events = rig.since(start)
    assert [e.kind for e in events] == ["access.granted", "visit.refused"]
    assert events[0].fields["person"] == rig.c.id and "visit" not in events[0].fields
    assert events[1].source == SOURCE
    fields = refused_fields(events[1])
    assert (fields["visit"], fields["step"], fields["reason"], fields["by"]) == (
        visit.id, "admit", "escort_not_assigned", rig.c.id)
    assert rig.presence.keys() == {rig.c.id}
    assert rig.admissions.armed_at(DOOR).visit == visit.id
    assert rig.admissions.wait(visit.id, 0.05) is None  # not final: the right escort may still come

    result = rig.finger(rig.a)
    assert [entry["key"] for entry in result["admitted"]] == keys(visit)
    assert rig.presence.keys() == {rig.c.id, rig.a.id, *keys(visit)}
    assert rig.admissions.armed_at(DOOR) is None
    assert rig.admissions.wait(visit.id, 0.1)["escort"] == rig.a.id


def test_an_inactive_assigned_escort_is_refused_and_logged_against_the_visit(rig: Rig) -> None:
    visit = rig.vendor()
    rig.registry.set_active(rig.b.id, False, "admin", "on leave")
    rig.admissions.arm(visit.id, DOOR, "desk")  # A is still usable
    start = rig.seq()
    result = rig.finger(rig.b)
    assert result["decision"] == "denied" and result["reason"] == "inactive" and result["person"] == rig.b.id
    assert result["visit_refused"]["reason"] == "escort_inactive"
    assert rig.grants == []
    events = rig.since(start)
    assert [e.kind for e in events] == ["access.denied", "visit.refused"]
    assert events[0].fields["reason"] == "inactive"
    assert events[1].source == SOURCE
    fields = refused_fields(events[1])
    assert (fields["visit"], fields["reason"], fields["by"]) == (visit.id, "escort_inactive", rig.b.id)
    assert rig.b.name in fields["detail"]
    assert rig.admissions.armed_at(DOOR).visit == visit.id
    assert rig.presence.keys() == set()


def test_a_window_without_an_escort_lapses_as_admit_timeout(rig: Rig) -> None:
    visit = rig.vendor()
    rig.admissions.arm(visit.id, DOOR, "desk")
    rig.mono.advance(WINDOW_S - 1)
    rig.admissions.tick()
    assert rig.admissions.armed_at(DOOR).visit == visit.id
    assert rig.events("visit.refused") == []
    rig.mono.advance(1)
    assert rig.admissions.armed_at(DOOR) is None  # no escort is taken once the window is over
    start = rig.seq()
    rig.admissions.tick()
    events = rig.since(start)
    assert [(e.kind, e.source) for e in events] == [("visit.refused", SOURCE)]
    fields = refused_fields(events[0])
    assert (fields["visit"], fields["step"], fields["reason"], fields["by"]) == (visit.id, "admit", "admit_timeout",
                                                                                 "desk")
    outcome = rig.admissions.wait(visit.id, 0.1)
    assert outcome is not None and outcome["final"] and outcome["reason"] == "admit_timeout"
    assert outcome["admitted"] == []
    rig.admissions.tick()  # recorded once
    assert len(rig.events("visit.refused")) == 1
    result = rig.finger(rig.a)  # the escort now enters alone
    assert "visit" not in result and "visit_refused" not in result
    assert rig.presence.keys() == {rig.a.id}


def test_a_door_armed_for_one_visit_is_busy_for_another(rig: Rig) -> None:
    first, second = rig.vendor(), rig.vendor(name="Joko Widodo", id_number="987654321098", companions=[])
    rig.admissions.arm(first.id, DOOR, "desk")
    start = rig.seq()
    with pytest.raises(VisitRefusedError) as info:
        rig.admissions.arm(second.id, DOOR, "desk-2")
    assert (info.value.reason, info.value.visit, info.value.step) == ("door_busy", second.id, "admit")
    assert first.id in str(info.value)
    events = rig.since(start)
    assert [(e.kind, e.source) for e in events] == [("visit.refused", SOURCE)]
    assert refused_fields(events[0])["reason"] == "door_busy" and events[0].fields["by"] == "desk-2"
    assert rig.admissions.armed_at(DOOR).visit == first.id
    assert rig.admissions.arm(first.id, DOOR, "desk")["visit"] == first.id  # re-arming the same visit is fine

    rig.mono.advance(WINDOW_S)
    rig.admissions.tick()
    start = rig.seq()
    armed = rig.admissions.arm(second.id, DOOR, "desk-2")
    assert armed["visitors"] == keys(second)
    assert [e.kind for e in rig.since(start)] == ["visit.admit_armed"]
    result = rig.finger(rig.a)
    assert [entry["key"] for entry in result["admitted"]] == keys(second)
    assert not rig.presence.keys() & set(keys(first))


def test_a_lapsed_arming_replaced_before_the_tick_is_still_logged_as_admit_timeout(rig: Rig) -> None:
    """The window of the first visit passed with no escort; the desk arms another before the health loop ticks."""
    first, second = rig.vendor(), rig.vendor(name="Joko Widodo", id_number="987654321098", companions=[])
    rig.admissions.arm(first.id, DOOR, "desk")
    rig.mono.advance(WINDOW_S + 1)
    rig.admissions.arm(second.id, DOOR, "desk")
    rig.admissions.tick()
    timeouts = [e.fields["visit"] for e in rig.events("visit.refused") if e.fields["reason"] == "admit_timeout"]
    assert timeouts == [first.id]
    outcome = rig.admissions.wait(first.id, 0.1)
    assert outcome is not None and outcome["reason"] == "admit_timeout"


@pytest.mark.parametrize("reason", ["not_approved", "id_not_deposited", "already_inside", "expired"])
def test_refusals_at_arming(rig: Rig, reason: str) -> None:
    if reason == "not_approved":
        visit = rig.book.request(kind="vendor", name="Agus Salim", org="PT Jaringan Nusantara", id_type="SIM",
                                 id_number=SIM, purpose="ganti modul catu daya", by="desk-ani")
    elif reason == "id_not_deposited":
        visit = rig.vendor(arrive=False)
    elif reason == "already_inside":
        visit = rig.vendor()
        rig.admitted(visit)
    else:
        visit = rig.vendor()
        rig.wall.now = visit.end + 1
    start = rig.seq()
    with pytest.raises(VisitRefusedError) as info:
        rig.admissions.arm(visit.id, DOOR, "desk")
    error = info.value
    assert (error.reason, error.visit, error.step, error.exit_code) == (reason, visit.id, "admit", 2)
    assert " / " in str(error)
    events = rig.since(start)
    assert [e.kind for e in events] == ["visit.refused"]
    fields = refused_fields(events[0])
    assert (fields["visit"], fields["step"], fields["reason"], fields["by"]) == (visit.id, "admit", reason, "desk")
    assert rig.admissions.armed_at(DOOR) is None


def test_arming_refuses_a_visit_whose_escorts_are_all_unusable(rig: Rig) -> None:
    visit = rig.vendor(escorts=(rig.b,))
    rig.registry.set_active(rig.b.id, False, "admin", "on leave")
    with pytest.raises(VisitRefusedError) as info:
        rig.admissions.arm(visit.id, DOOR, "desk")
    assert info.value.reason == "escort_inactive"
    assert [e.fields["reason"] for e in rig.events("visit.refused")] == ["escort_inactive"]
    assert rig.admissions.armed_at(DOOR) is None


# -- the escort stays with the visitors -----------------------------------------------------------------

def alarms(rig: Rig, start: int) -> list[tuple[str, str, dict[str, Any]]]:
    return [(e.kind, e.source, e.fields) for e in rig.since(start)
            if e.kind in ("visit.escort_alarm", "visit.escort_alarm_cleared")]


def test_an_escort_leaving_first_raises_an_alarm_that_clears_when_they_return(rig: Rig) -> None:
    visit = rig.vendor()
    rig.admitted(visit)
    start = rig.seq()
    result = rig.finger(rig.a, "out")
    assert result["decision"] == "granted" and result["direction"] == "out"
    assert rig.presence.keys() == set(keys(visit))
    assert alarms(rig, start) == [("visit.escort_alarm", SOURCE, {
        "visit": visit.id, "condition": "escort_left", "escort": rig.a.id, "escort_name": rig.a.name,
        "visitors_inside": keys(visit)})]
    assert rig.book.get(visit.id).as_dict()["escort_alarm"]["condition"] == "escort_left"
    rig.admissions.tick()  # nobody is back: the alarm stands
    assert len(alarms(rig, start)) == 1

    rig.finger(rig.a, "in")  # the door is not armed: an ordinary entry
    rig.admissions.tick()
    assert alarms(rig, start)[1:] == [("visit.escort_alarm_cleared", "visits", {
        "visit": visit.id, "condition": "escort_left", "reason": "escort_returned"})]
    assert rig.book.get(visit.id).escort_alarm is None
    rig.admissions.tick()
    assert len(alarms(rig, start)) == 2


def test_no_alarm_while_another_assigned_escort_is_inside(rig: Rig) -> None:
    visit = rig.vendor()
    rig.admitted(visit)
    rig.finger(rig.b)
    start = rig.seq()
    rig.finger(rig.a, "out")
    assert alarms(rig, start) == []
    assert rig.book.get(visit.id).escort_alarm is None


def test_the_last_assigned_escort_leaving_raises_the_alarm(rig: Rig) -> None:
    """A admitted the visit, B joined; A leaves (B is with them), then B leaves too: nobody escorts them now."""
    visit = rig.vendor()
    rig.admitted(visit)
    rig.finger(rig.b)
    rig.finger(rig.a, "out")
    start = rig.seq()
    rig.finger(rig.b, "out")
    assert rig.presence.keys() == set(keys(visit))  # the visitors are alone in the room
    raised = alarms(rig, start)
    assert [(kind, fields["condition"]) for kind, _, fields in raised] == [("visit.escort_alarm", "escort_left")]
    assert raised[0][2]["visitors_inside"] == keys(visit)


def test_an_escort_alarm_clears_when_the_visitors_are_out(rig: Rig) -> None:
    visit = rig.vendor()
    rig.admitted(visit)
    start = rig.seq()
    rig.finger(rig.a, "out")
    assert [fields["condition"] for _, _, fields in alarms(rig, start)] == ["escort_left"]
    match = rig.presence.exit_button(DOOR, rig.wall.advance(30))  # the visitors are one party (A's): one press
    assert sorted(stay.person for stay in match.persons) == keys(visit) and match.candidates == []
    rig.admissions.tick()
    assert alarms(rig, start)[1:] == [("visit.escort_alarm_cleared", "visits", {
        "visit": visit.id, "condition": "escort_left", "reason": "visitors_out"})]


def test_revoking_an_escort_mid_visit_raises_an_alarm_that_only_checkout_clears(rig: Rig) -> None:
    visit = rig.vendor(escorts=(rig.a,))
    rig.admitted(visit)
    revocation = rig.registry.revoke(rig.a.id, "admin", "left the job")
    assert revocation.finger_slots == (rig.slots[rig.a.id],)
    start = rig.seq()
    rig.admissions.escort_revoked(rig.a.id)
    assert alarms(rig, start) == [("visit.escort_alarm", "visits", {
        "visit": visit.id, "condition": "escort_revoked", "escort": rig.a.id, "escort_name": rig.a.name,
        "visitors_inside": keys(visit)})]
    assert rig.presence.is_inside(rig.a.id)  # revoking does not walk anyone out
    rig.admissions.tick()  # the revoked escort is the only one inside: no escort_returned
    rig.admissions.escort_revoked(rig.a.id)  # raised once
    assert len(alarms(rig, start)) == 1
    assert rig.book.get(visit.id).escort_alarm == "escort_revoked"

    rig.checkout(visit)
    assert alarms(rig, start)[1:] == [("visit.escort_alarm_cleared", "visits", {
        "visit": visit.id, "condition": "escort_revoked", "reason": "checked_out"})]
    assert rig.book.get(visit.id).escort_alarm is None


# -- parties, time limits, replay, the inside list -------------------------------------------------------

def test_an_escort_and_their_visitors_leave_with_one_press(rig: Rig) -> None:
    visit = rig.vendor()
    rig.admitted(visit)
    now = rig.wall.advance(60)
    match = rig.presence.exit_button(DOOR, now)
    assert sorted(stay.person for stay in match.persons) == sorted([rig.a.id, *keys(visit)])
    assert match.candidates == [] and rig.presence.keys() == set()
    rig.writer.append_and_wait("access.exit", SOURCE, match.event_fields(DOOR, now))
    assert load_presence(rig.writer.path).keys() == set()


def test_two_parties_need_two_presses(rig: Rig) -> None:
    visit = rig.vendor()
    rig.admitted(visit)
    rig.finger(rig.c)  # C on their own: a second party
    everyone = {rig.a.id, rig.c.id, *keys(visit)}
    now = rig.wall.advance(60)
    first = rig.presence.exit_button(DOOR, now)
    assert first.persons == [] and set(first.candidates) == everyone
    assert rig.presence.keys() == everyone and rig.presence.unattributed_exits == 1
    rig.writer.append_and_wait("access.exit", SOURCE, first.event_fields(DOOR, now))
    replayed = load_presence(rig.writer.path)
    assert replayed.keys() == everyone and replayed.unattributed_exits == 1
    second = rig.presence.exit_button(DOOR, now + 5)
    assert {stay.person for stay in second.persons} == everyone and rig.presence.keys() == set()
    rig.writer.append_and_wait("access.exit", SOURCE, second.event_fields(DOOR, now + 5))
    assert [len(e.fields["persons"]) for e in rig.events("access.exit")] == [0, 4]
    assert load_presence(rig.writer.path).keys() == set()


@pytest.mark.parametrize("visits_config", [VisitsConfig(guest_max_min=0.5)])
def test_a_guest_over_time_raises_overstay_and_the_escort_is_exempt_while_with_them(rig: Rig) -> None:
    visit = rig.guest()
    (key,) = keys(visit)
    rig.admitted(visit)
    stays = AccessPolicy(AccessConfig(roles={"staff": {"max_stay_h": 0.001}}))  # 3.6 s for staff

    def exempt(stay: Any) -> bool:
        return stay.escort is not None or bool(rig.presence.visitors_with(stay.person))

    rig.wall.advance(30)
    assert rig.book.overstays(rig.presence.keys()) == []
    start = rig.seq()
    now = rig.wall.advance(1)
    written = rig.book.overstays(rig.presence.keys())
    assert [w["person"] for w in written] == [key]
    events = rig.since(start)
    assert [(e.kind, e.source) for e in events] == [("visit.overstay", "visits")]
    fields = events[0].fields
    assert (fields["visit"], fields["person"], fields["visit_kind"], fields["escort"], fields["limit_min"]) == (
        visit.id, key, "guest", rig.a.id, 0.5)
    assert parse_utc(fields["deadline"]) == pytest.approx(now - 1)
    assert rig.book.overstays(rig.presence.keys()) == []  # raised once
    assert rig.book.get(visit.id).visitors[0].overstay
    # A has been inside 31 s, over the staff limit, but their guest is with them
    assert rig.presence.overstays(now, stays.max_stay_s, exempt=exempt) == []

    start = rig.seq()
    rig.book.extend(visit.id, by=rig.officer.id, minutes=10, reason="diskusi belum selesai")
    assert [(e.kind, e.fields.get("reason")) for e in rig.since(start)] == [
        ("visit.extended", "diskusi belum selesai"), ("visit.overstay_cleared", "extended")]
    assert rig.since(start, "visit.overstay_cleared")[0].fields == {"visit": visit.id, "person": key,
                                                                     "reason": "extended"}
    assert not rig.book.get(visit.id).visitors[0].overstay

    rig.presence.exit(key, now)  # the desk checked the guest out: the escort is on their own again
    assert [stay.person for stay in rig.presence.overstays(now, stays.max_stay_s, exempt=exempt)] == [rig.a.id]


def test_presence_replayed_from_the_logbook_keeps_the_parties(rig: Rig) -> None:
    visit = rig.vendor()
    rig.admitted(visit)
    rig.events()  # everything committed
    replayed = load_presence(rig.writer.path)
    assert replayed.keys() == {rig.a.id, *keys(visit)}
    escort = replayed.get(rig.a.id)
    assert escort.escort is None and escort.visit is None  # the escort's own event names the visit, not a party
    for visitor in visit.visitors:
        stay = replayed.get(visitor.key)
        assert (stay.escort, stay.visit, stay.role, stay.door) == (rig.a.id, visit.id, "vendor", DOOR)
    assert [stay.person for stay in replayed.visitors_with(rig.a.id)] == keys(visit)
    events = [e.as_dict() for e in rig.events() if e.kind in ("access.granted", "access.exit", "access.overstay",
                                                               "visit.checked_out")]
    assert Presence.replay(events).keys() == replayed.keys()
    press = replayed.exit_button(DOOR, time.time())  # one party: one press and the whole party is out
    assert press.candidates == [] and replayed.keys() == set()

    rig.checkout(visit)
    rig.events()
    assert load_presence(rig.writer.path).keys() == {rig.a.id}


def test_the_inside_list_shows_visitors_with_their_escort_and_time_left(rig: Rig) -> None:
    # inside_rows reads the real clock: put the visit in real time, the escort in for 4 h (over staff's 3 h)
    rig.wall.now = float(int(time.time()) - 4 * 3600)  # whole seconds, not ahead of now
    visit = rig.vendor(start=rig.wall.now, end=rig.wall.now + 12 * 3600)
    rig.admitted(visit)
    rows = {row["person"]: row for row in inside_rows(rig.presence, rig.policy, rig.book)}
    assert set(rows) == {rig.a.id, *keys(visit)}
    for visitor in visit.visitors:
        row = rows[visitor.key]
        assert (row["visit"], row["escort"], row["escort_name"]) == (visit.id, rig.a.id, rig.a.name)
        assert (row["org"], row["purpose"], row["kind"]) == (visit.org, visit.purpose, "vendor")
        assert parse_utc(row["deadline"]) == pytest.approx(rig.wall.now + 8 * 3600)
        assert 4 * 3600 - 60 < row["time_left_s"] <= 4 * 3600
        assert row["overstay"] is False
    escort = rows[rig.a.id]
    assert escort["escorting"] == keys(visit)
    assert escort["stay_s"] > 3 * 3600 and escort["max_stay_h"] == 3
    assert escort["overstay"] is False  # the visit's limit watches the group
    assert "visit" not in escort

    without_book = {row["person"]: row for row in inside_rows(rig.presence, rig.policy)}
    assert without_book[keys(visit)[0]]["escort"] == rig.a.id and without_book[keys(visit)[0]]["deadline"] is None


def test_a_revoked_escorts_stale_finger_slot_names_nobody(rig: Rig) -> None:
    """A revoked escort's finger is erased from the database: the sensor's stale slot names nobody."""
    visit = rig.vendor()
    rig.admissions.arm(visit.id, DOOR, "desk")
    slot = rig.slots[rig.a.id]
    rig.registry.revoke(rig.a.id, "admin", "left the job")
    result = rig.door.on_finger(FingerMatch(DOOR, slot, 100, None), "in")
    assert result["decision"] == "denied" and result["reason"] == "unknown_finger"
    assert "visit_refused" not in result
    assert rig.admissions.armed_at(DOOR).visit == visit.id
    assert [e.kind for e in rig.events() if e.kind.startswith(("access.", "visit.refused"))] == ["access.denied"]
