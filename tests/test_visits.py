"""Guest and vendor visits (docs/visits.md): the `[visits]` config, the 0006 tables and `VisitBook`.

Everything is real: SQLite files in tmp_path written by a running StoreWriter, AES-256-GCM with a
generated key file, a PeopleRegistry with enrolled people. Time is a settable clock, never a sleep.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from access.crypto import TemplateCipher, generate_key_file
from access.people import NoTemplateKeyError, PeopleRegistry, Person, PersonStateError
from access.presence import iso_utc, parse_utc
from access.visits import (
    UnknownVisitError,
    Visit,
    VisitBook,
    VisitRefusedError,
)
from drivers.errors import DcgateError, InvalidValueError
from gateway.config.visits import VisitsConfig
from gateway.store.database import open_for_reading
from gateway.store.events import Event
from gateway.store.writer import StoreWriter
from tests.support.eventstore import committed_events

WIB = ZoneInfo("Asia/Jakarta")
T0 = datetime(2026, 11, 21, 9, 0, tzinfo=WIB).timestamp()  # a Saturday morning at the site
NIK = "3271014101900004"  # KTP: province 32, born 01-01-90, a woman (day + 40)
NIK_2 = "3174051203850001"
SIM = "123456789012"
PASPOR = "B1234567"
FULL_NUMBERS = (NIK, NIK_2, SIM, PASPOR)
ID_FORMAT = re.compile(r"KJ-\d{8}-\d{3}")


class Clock:
    """The book's clock: tests move it, nothing sleeps."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


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
def registry(writer: StoreWriter, cipher: TemplateCipher) -> PeopleRegistry:
    return PeopleRegistry(writer.path, writer, cipher)


class People:
    def __init__(self, registry: PeopleRegistry) -> None:
        self.officer = registry.add("Ir. Siti Rahmawati", "PEG-0001", "officer", "admin")
        self.budi = registry.add("Budi Santoso", "PEG-0002", "staff", "admin")
        self.citra = registry.add("Citra Lestari", "PEG-0003", "staff", "admin")
        dedi = registry.add("Dedi Kurniawan", "PEG-0004", "staff", "admin")
        self.inactive = registry.set_active(dedi.id, False, "admin", "on leave")
        eko = registry.add("Eko Prasetyo", "PEG-0005", "staff", "admin")
        self.revoked = registry.revoke(eko.id, "admin", "left the job").person


@pytest.fixture
def people(registry: PeopleRegistry) -> People:
    return People(registry)


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def config() -> VisitsConfig:
    return VisitsConfig()


@pytest.fixture
def book(writer: StoreWriter, cipher: TemplateCipher, registry: PeopleRegistry, people: People, clock: Clock,
         config: VisitsConfig) -> VisitBook:
    return VisitBook(writer.path, writer, cipher, registry, config, clock=clock)


def events(book: VisitBook, kind: str | None = None) -> list[Event]:
    return committed_events(book.db_path, kind=kind)


def refusals(book: VisitBook) -> list[dict[str, Any]]:
    return [event.fields for event in events(book, "visit.refused")]


def refused(book: VisitBook, reason: str, action: Callable[[], Any], *, step: str | None = None,
            source: str = "visits") -> VisitRefusedError:
    """`action` raises VisitRefusedError(reason), and a `visit.refused` with that reason was recorded first."""
    before = len(events(book, "visit.refused"))
    with pytest.raises(VisitRefusedError) as info:
        action()
    error = info.value
    assert error.reason == reason, str(error)
    assert error.exit_code == 2
    recorded = events(book, "visit.refused")[before:]
    assert [e.fields["reason"] for e in recorded] == [reason]
    assert recorded[0].source == source
    fields = recorded[0].fields
    assert set(fields) == {"visit", "step", "reason", "by", "detail"}
    assert fields["visit"] == error.visit and fields["step"] == error.step
    if step is not None:
        assert error.step == step
    assert " / " in str(error)  # Indonesian first, then English
    return error


def query(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    db = open_for_reading(db_path)
    try:
        return db.conn.execute(sql, params).fetchall()
    finally:
        db.close()


def guest(book: VisitBook, **kwargs: Any) -> Visit:
    args: dict[str, Any] = {"kind": "guest", "name": "Rina Wulandari", "org": "Bappeda Kota", "id_type": "KTP",
                            "id_number": NIK, "purpose": "melihat ruang server untuk studi banding",
                            "by": "desk-ani"}
    args.update(kwargs)
    return book.request(**args)


def vendor(book: VisitBook, **kwargs: Any) -> Visit:
    args: dict[str, Any] = {"kind": "vendor", "name": "Agus Salim", "org": "PT Jaringan Nusantara",
                            "id_type": "SIM", "id_number": SIM, "purpose": "ganti modul catu daya core switch",
                            "by": "desk-ani", "devices": ["core switch", "UPS 2"]}
    args.update(kwargs)
    return book.request(**args)


def approved(book: VisitBook, people: People, visit: Visit, *escorts: Person) -> Visit:
    return book.approve(visit.id, by=people.officer.id, escorts=[e.id for e in escorts or (people.budi,)])


def inside_guest(book: VisitBook, people: People) -> tuple[Visit, str]:
    """An approved guest who deposited ID and gadgets and was admitted by Budi one minute later."""
    visit = approved(book, people, guest(book))
    book.arrive(visit.id, received_by=people.citra.id, gadgets="1 ponsel")
    book.admit(visit.id, escort=people.budi.id, door="main", method="face", inside={people.budi.id},
               now=book.clock() + 60)
    return book.get(visit.id), f"{visit.id}.1"


# -- config and schema ---------------------------------------------------------------------------------

def test_visits_config_defaults_limits_and_bounds() -> None:
    config = VisitsConfig()
    assert (config.guest_max_min, config.vendor_max_h, config.admit_window_s, config.id_retention_days,
            config.max_window_days) == (10, 8, 60, 90, 31)
    assert config.limit_min("guest") == 10 and config.limit_min("vendor") == 480
    assert VisitsConfig(vendor_max_h=2.5).limit_min("vendor") == 150
    with pytest.raises(InvalidValueError, match="tamu"):
        config.limit_min("tamu")
    for bad in ({"guest_max_min": 0}, {"guest_max_min": 241}, {"vendor_max_h": 0}, {"vendor_max_h": 25},
                {"admit_window_s": 5}, {"admit_window_s": 601}, {"id_retention_days": 0},
                {"max_window_days": 367}, {"guest_minutes": 10}):
        with pytest.raises(ValidationError):
            VisitsConfig(**bad)
    assert all(field.description for field in VisitsConfig.model_fields.values())


def test_migration_creates_the_visit_tables(writer: StoreWriter) -> None:
    names = {row[0] for row in query(writer.path, "SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
    assert {"visits", "visitors", "visit_extensions", "visits_status", "visits_requested_at"} <= names
    columns = {row[1] for row in query(writer.path, "PRAGMA table_info(visitors)")}
    assert {"id_masked", "id_nonce", "id_cipher", "overstay_at", "escort"} <= columns


# -- requesting ----------------------------------------------------------------------------------------

def test_request_records_a_guest_visit_with_the_id_masked(book: VisitBook) -> None:
    visit = guest(book, companions=[("Tono Wijaya", "paspor", "b123-4567")])
    assert visit.id == "KJ-20261121-001" and ID_FORMAT.fullmatch(visit.id)
    assert visit.status == "requested" and visit.stored_status == "requested"
    assert visit.expected_min == 10 and visit.limit_min == 10  # the guest limit by default
    # the window runs from now to the end of the local (WIB) day
    assert visit.window_start == iso_utc(T0) == "2026-11-21T02:00:00.000Z"
    assert visit.window_end == "2026-11-21T16:59:59.000Z"
    assert visit.requested_by == "desk-ani" and visit.requested_at == iso_utc(T0)
    assert [(v.n, v.key, v.name, v.id_type, v.id_masked) for v in visit.visitors] == [
        (1, "KJ-20261121-001.1", "Rina Wulandari", "KTP", "3271••••••••0004"),
        (2, "KJ-20261121-001.2", "Tono Wijaya", "PASPOR", "B1••••67"),
    ]
    [event] = events(book, "visit.requested")
    assert event.source == "visits"
    assert event.fields == {
        "visit": visit.id, "visit_kind": "guest", "org": "Bappeda Kota",
        "purpose": "melihat ruang server untuk studi banding", "devices": [],
        "window": {"start": visit.window_start, "end": visit.window_end}, "expected_min": 10, "by": "desk-ani",
        "visitors": [
            {"n": 1, "key": "KJ-20261121-001.1", "name": "Rina Wulandari", "id_type": "KTP",
             "id_masked": "3271••••••••0004"},
            {"n": 2, "key": "KJ-20261121-001.2", "name": "Tono Wijaya", "id_type": "PASPOR", "id_masked": "B1••••67"},
        ],
    }


def test_visit_ids_count_each_site_day_and_are_found_in_any_case(book: VisitBook, clock: Clock) -> None:
    assert [guest(book, id_number=n).id for n in (NIK, NIK_2)] == ["KJ-20261121-001", "KJ-20261121-002"]
    assert vendor(book).id == "KJ-20261121-003"
    # 17:30 UTC is already the 22nd in Jakarta: the site's date counts, from 001 again
    clock.now = datetime(2026, 11, 21, 17, 30, tzinfo=ZoneInfo("UTC")).timestamp()
    assert guest(book).id == "KJ-20261122-001"
    assert book.get("kj-20261121-002").id == "KJ-20261121-002"
    assert book.get("  KJ-20261122-001 ").id == "KJ-20261122-001"
    with pytest.raises(UnknownVisitError, match="dcgate visit list") as info:
        book.get("KJ-20261121-009")
    assert info.value.exit_code == 2


def test_request_windows_default_and_are_checked(book: VisitBook, clock: Clock, config: VisitsConfig) -> None:
    start = T0 + 86400
    visit = vendor(book, start=start, expected_min=480)
    assert visit.window_start == iso_utc(start) and visit.window_end == "2026-11-22T16:59:59.000Z"
    explicit = vendor(book, start=start, end=start + 7200, id_number="1234567890123")
    assert (explicit.start, explicit.end) == (start, start + 7200)
    with pytest.raises(InvalidValueError, match="not after its start"):
        guest(book, start=start, end=start)
    with pytest.raises(InvalidValueError, match="max_window_days"):
        vendor(book, end=T0 + (config.max_window_days + 1) * 86400)
    assert vendor(book, end=T0 + config.max_window_days * 86400).end == T0 + 31 * 86400
    with pytest.raises(InvalidValueError, match="already past"):
        guest(book, start=T0 - 7200, end=T0 - 3600)


def test_expected_minutes_are_held_to_the_kinds_limit(book: VisitBook) -> None:
    with pytest.raises(InvalidValueError, match="an officer can extend during the visit") as info:
        guest(book, expected_min=11)
    assert "expected_min 11" in str(info.value) and "guest_max_min" in str(info.value)
    with pytest.raises(InvalidValueError, match="vendor_max_h"):
        vendor(book, expected_min=481)
    with pytest.raises(InvalidValueError):
        guest(book, expected_min=0)
    assert guest(book, expected_min=5).expected_min == 5
    assert vendor(book).expected_min == 480


@pytest.mark.parametrize(("change", "message"), [
    ({"kind": "tamu"}, "guest, vendor"),
    ({"name": "  "}, "visitor 1 name is empty"),
    ({"org": "x" * 101}, "org is 101 characters"),
    ({"purpose": ""}, "purpose is empty"),
    ({"purpose": "lihat\x07server"}, "control characters"),
    ({"by": "y" * 65}, "requested_by"),
    ({"devices": ["router"]}, "only for vendor visits"),
    ({"id_number": "1234"}, "KTP number"),
    ({"id_type": "KTA"}, "ID type"),
    ({"companions": [("Tono", "KTP", "3271-0141-0190-0004")]}, "the same KTP 3271••••••••0004"),
    ({"companions": [(f"Peserta {i}", "SIM", f"1234567890{i:02d}") for i in range(10)]}, "over the 10 allowed"),
])
def test_request_refuses_bad_input_without_recording_anything(book: VisitBook, change: dict[str, Any],
                                                              message: str) -> None:
    before = len(events(book))
    with pytest.raises(InvalidValueError, match=re.escape(message)):
        guest(book, **change)
    assert len(events(book)) == before and query(book.db_path, "SELECT count(*) FROM visits") == [(0,)]


def test_vendor_devices_are_checked(book: VisitBook) -> None:
    visit = vendor(book, devices=["core switch", " core   switch ", "UPS 2"])
    assert visit.devices == ("core switch", "UPS 2")
    with pytest.raises(InvalidValueError, match="over the 20 allowed"):
        vendor(book, devices=[f"server {i}" for i in range(21)])
    with pytest.raises(InvalidValueError, match="device is 101 characters"):
        vendor(book, devices=["d" * 101])


def test_requesting_needs_a_writer_and_a_key(book: VisitBook, registry: PeopleRegistry, config: VisitsConfig) -> None:
    no_key = VisitBook(book.db_path, book.writer, None, registry, config)
    with pytest.raises(NoTemplateKeyError, match=r"encrypted.*dcgate key generate.*\[access\] key_file"):
        guest(no_key)
    read_only = VisitBook(book.db_path, None, book.cipher, registry, config)
    with pytest.raises(DcgateError, match="read-only"):
        guest(read_only)
    visit = guest(book)
    assert read_only.get(visit.id).id == visit.id  # reading needs neither


# -- deciding ------------------------------------------------------------------------------------------

def test_approve_assigns_escorts_and_may_change_the_window(book: VisitBook, people: People, clock: Clock) -> None:
    visit = vendor(book)
    clock.advance(300)
    start, end = T0 + 3600, T0 + 5 * 3600
    done = book.approve(visit.id.lower(), by=people.officer.nip, escorts=[people.budi.nip, people.citra.id],
                        start=start, end=end, note="bawa APD")
    assert done.status == "approved" and done.stored_status == "approved"
    assert done.approved_by == people.officer.id and done.approved_by_name == "Ir. Siti Rahmawati"
    assert done.approved_at == iso_utc(T0 + 300)
    assert [e.as_dict() for e in done.escorts] == [
        {"person": people.budi.id, "name": "Budi Santoso", "nip": "PEG-0002"},
        {"person": people.citra.id, "name": "Citra Lestari", "nip": "PEG-0003"},
    ]
    assert (done.start, done.end) == (start, end)
    [event] = events(book, "visit.approved")
    assert event.fields == {
        "visit": visit.id, "visit_kind": "vendor", "by": people.officer.id, "by_name": "Ir. Siti Rahmawati",
        "escorts": [{"person": people.budi.id, "name": "Budi Santoso"},
                    {"person": people.citra.id, "name": "Citra Lestari"}],
        "window": {"start": iso_utc(start), "end": iso_utc(end)}, "limit_min": 480, "note": "bawa APD",
    }
    other = book.approve(guest(book).id, by=people.officer.id, escorts=[people.budi.id])
    assert other.window_end == "2026-11-21T16:59:59.000Z"  # the requested window is kept
    with pytest.raises(InvalidValueError, match="at least one escort"):
        book.approve(guest(book, id_number=NIK_2).id, by=people.officer.id, escorts=[])


def test_approve_and_reject_need_an_active_officer(book: VisitBook, people: People, registry: PeopleRegistry) -> None:
    visit = guest(book)
    error = refused(book, "not_officer", lambda: book.approve(visit.id, by=people.budi.id, escorts=[people.citra.id]),
                    step="approve")
    assert "Budi Santoso" in str(error) and "bukan penanggung jawab" in str(error)
    assert refusals(book)[-1]["by"] == people.budi.id
    refused(book, "not_officer", lambda: book.reject(visit.id, by="nobody-here", reason="x"), step="reject")
    assert refusals(book)[-1]["by"] == "nobody-here"
    registry.set_active(people.officer.id, False, "admin")
    refused(book, "not_officer", lambda: book.approve(visit.id, by=people.officer.id, escorts=[people.budi.id]))
    assert book.get(visit.id).status == "requested"


def test_escorts_must_be_active(book: VisitBook, people: People) -> None:
    visit = guest(book)
    error = refused(book, "escort_inactive",
                    lambda: book.approve(visit.id, by=people.officer.id, escorts=[people.budi.id, people.inactive.id]))
    assert "Dedi Kurniawan" in str(error) and "inactive" in str(error)
    error = refused(book, "escort_inactive",
                    lambda: book.approve(visit.id, by=people.officer.id, escorts=[people.revoked.id]))
    assert "Eko Prasetyo" in str(error) and "revoked" in str(error)
    refused(book, "escort_inactive", lambda: book.approve(visit.id, by=people.officer.id, escorts=["PEG-9999"]))
    assert book.get(visit.id).status == "requested" and not events(book, "visit.approved")


def test_reject_records_the_reason_and_closes_every_later_step(book: VisitBook, people: People,
                                                                clock: Clock) -> None:
    visit = guest(book)
    with pytest.raises(InvalidValueError, match="reason is empty"):
        book.reject(visit.id, by=people.officer.id, reason=" ")
    clock.advance(60)
    done = book.reject(visit.id, by=people.officer.id, reason="tidak ada surat pengantar")
    assert done.status == "rejected" and done.reject_reason == "tidak ada surat pengantar"
    assert done.rejected_by == people.officer.id and done.rejected_by_name == "Ir. Siti Rahmawati"
    assert done.rejected_at == iso_utc(T0 + 60)
    assert events(book, "visit.rejected")[0].fields == {
        "visit": visit.id, "by": people.officer.id, "by_name": "Ir. Siti Rahmawati",
        "reason": "tidak ada surat pengantar"}
    error = refused(book, "already_decided",
                    lambda: book.approve(visit.id, by=people.officer.id, escorts=[people.budi.id]))
    assert f"kunjungan {visit.id} sudah diputuskan (status: rejected)" in str(error)
    refused(book, "already_decided", lambda: book.reject(visit.id, by=people.officer.id, reason="lagi"))
    refused(book, "rejected", lambda: book.arrive(visit.id, received_by=people.citra.id, gadgets="none"))
    refused(book, "rejected", lambda: book.check_admissible(visit.id, inside=set()))
    refused(book, "rejected", lambda: book.extend(visit.id, by=people.officer.id, minutes=5, reason="x"))
    refused(book, "rejected", lambda: book.checkout(visit.id, by=people.citra.id, activities="x"))
    assert book.list() == [] and [v.id for v in book.list(include_closed=True)] == [visit.id]


def test_approving_an_approved_visit_is_already_decided(book: VisitBook, people: People) -> None:
    visit = approved(book, people, guest(book))
    refused(book, "already_decided", lambda: approved(book, people, visit))
    refused(book, "already_decided", lambda: book.reject(visit.id, by=people.officer.id, reason="berubah pikiran"))


# -- arriving ------------------------------------------------------------------------------------------

def test_arrive_needs_an_approved_visit_and_a_guests_gadgets(book: VisitBook, people: People, clock: Clock) -> None:
    visit = guest(book, companions=[("Tono Wijaya", "SIM", SIM)])
    error = refused(book, "not_approved", lambda: book.arrive(visit.id, received_by=people.citra.id, gadgets="none"),
                    step="arrive")
    assert str(error) == (f"kunjungan {visit.id} belum disetujui (status: requested) / "
                          f"visit {visit.id} is not approved (status: requested)")
    approved(book, people, visit)
    refused(book, "gadgets_required", lambda: book.arrive(visit.id, received_by=people.citra.id))
    refused(book, "gadgets_required", lambda: book.arrive(visit.id, received_by=people.citra.id, gadgets="  "))
    with pytest.raises(PersonStateError, match="inactive"):
        book.arrive(visit.id, received_by=people.inactive.id, gadgets="none")
    with pytest.raises(InvalidValueError, match="no visitor 3"):
        book.arrive(visit.id, received_by=people.citra.id, gadgets="none", visitors=[3])
    clock.advance(120)
    done = book.arrive(visit.id, received_by=people.citra.nip, gadgets="tidak ada", visitors=[2])
    assert done.status == "arrived"
    second = done.visitor(2)
    assert (second.arrived_at, second.received_by, second.received_by_name, second.gadgets) == (
        iso_utc(T0 + 120), people.citra.id, "Citra Lestari", "tidak ada")
    assert done.visitor(1).arrived_at is None
    assert events(book, "visit.arrived")[0].fields == {
        "visit": visit.id, "received_by": people.citra.id, "received_by_name": "Citra Lestari",
        "visitors": [{"n": 2, "key": f"{visit.id}.2", "name": "Tono Wijaya", "id_type": "SIM",
                      "id_masked": "1234••••9012", "gadgets": "tidak ada"}]}
    with pytest.raises(InvalidValueError, match="already arrived"):
        book.arrive(visit.id, received_by=people.citra.id, gadgets="none", visitors=[2])
    rest = book.arrive(visit.id, received_by=people.citra.id, gadgets="1 laptop")  # the others by default
    assert rest.visitor(1).gadgets == "1 laptop"
    with pytest.raises(InvalidValueError, match="already arrived"):
        book.arrive(visit.id, received_by=people.citra.id, gadgets="none")


def test_vendors_may_arrive_without_gadgets(book: VisitBook, people: People) -> None:
    visit = approved(book, people, vendor(book))
    assert book.arrive(visit.id, received_by=people.citra.id).visitor(1).gadgets is None


def test_arriving_after_the_window_is_expired(book: VisitBook, people: People, clock: Clock) -> None:
    visit = approved(book, people, guest(book))
    assert book.get(visit.id).status == "approved"
    clock.now = visit.end + 1
    assert book.get(visit.id).status == "expired"
    refused(book, "expired", lambda: book.arrive(visit.id, received_by=people.citra.id, gadgets="none"))
    assert book.list() == []
    assert [v.status for v in book.list(include_closed=True)] == ["expired"]


# -- admissibility and the door ------------------------------------------------------------------------

def test_check_admissible_refuses_in_the_contracts_order(book: VisitBook, people: People, clock: Clock,
                                                         registry: PeopleRegistry) -> None:
    requested = guest(book)
    refused(book, "not_approved", lambda: book.check_admissible(requested.id, inside=set()), step="admit")
    later = book.approve(requested.id, by=people.officer.id, escorts=[people.budi.id], start=T0 + 3600,
                         end=T0 + 7200)
    error = refused(book, "not_yet_valid", lambda: book.check_admissible(later.id, inside=set(), source="door:main",
                                                                         by=people.budi.id), source="door:main")
    assert later.window_start in str(error)
    refused(book, "expired", lambda: book.check_admissible(later.id, inside=set(), now=T0 + 7201))
    refused(book, "id_not_deposited", lambda: book.check_admissible(later.id, inside=set(), now=T0 + 3700))
    book.arrive(later.id, received_by=people.citra.id, gadgets="none")
    key = f"{later.id}.1"
    refused(book, "already_inside", lambda: book.check_admissible(later.id, inside={key}, now=T0 + 3700))
    registry.set_active(people.budi.id, False, "admin")
    refused(book, "escort_inactive", lambda: book.check_admissible(later.id, inside=set(), now=T0 + 3700))
    registry.set_active(people.budi.id, True, "admin")
    assert book.check_admissible(later.id, inside=set(), now=T0 + 3700).id == later.id


def test_admit_writes_one_grant_per_visitor_with_the_escort(book: VisitBook, people: People, clock: Clock) -> None:
    visit = guest(book, companions=[("Tono Wijaya", "SIM", SIM)])
    book.approve(visit.id, by=people.officer.id, escorts=[people.budi.id, people.citra.id])
    book.arrive(visit.id, received_by=people.citra.id, gadgets="2 ponsel")
    clock.advance(90)
    granted = book.admit(visit.id, escort=people.budi.id, door="main", method="finger", inside={people.budi.id})
    deadline = iso_utc(T0 + 90 + 600)
    assert [g["person"] for g in granted] == [f"{visit.id}.1", f"{visit.id}.2"]
    assert granted[0] == {
        "door": "main", "direction": "in", "method": "escorted", "person": f"{visit.id}.1", "name": "Rina Wulandari",
        "role": "guest", "visit": visit.id, "escort": people.budi.id, "escort_name": "Budi Santoso",
        "org": "Bappeda Kota", "purpose": "melihat ruang server untuk studi banding",
        "approved_by": people.officer.id, "approved_at": iso_utc(T0), "id_type": "KTP",
        "id_masked": "3271••••••••0004", "deadline": deadline,
    }
    stored = events(book, "access.granted")
    assert [e.fields for e in stored] == granted and {e.source for e in stored} == {"door:main"}
    now = book.get(visit.id)
    assert now.status == "in_progress"
    first = now.visitor(1)
    assert (first.entered_at, first.escort, first.escort_name, first.deadline) == (
        iso_utc(T0 + 90), people.budi.id, "Budi Santoso", deadline)
    # out with the escort and back in with the other one: the first entry (and deadline) stays
    clock.advance(120)
    again = book.admit(visit.id, escort=people.citra.id, door="main", method="face", inside={f"{visit.id}.2"})
    assert [g["person"] for g in again] == [f"{visit.id}.1"] and again[0]["deadline"] == deadline
    assert book.get(visit.id).visitor(1).escort == people.citra.id
    assert book.get(visit.id).visitor(1).entered_at == iso_utc(T0 + 90)


def test_admit_refuses_escorts_not_assigned_or_inactive(book: VisitBook, people: People,
                                                         registry: PeopleRegistry) -> None:
    visit = guest(book)
    book.approve(visit.id, by=people.officer.id, escorts=[people.budi.id, people.citra.id])
    book.arrive(visit.id, received_by=people.citra.id, gadgets="none")
    error = refused(book, "escort_not_assigned",
                    lambda: book.admit(visit.id, escort=people.officer.id, door="main", method="face", inside=set()),
                    source="door:main")
    assert "Ir. Siti Rahmawati" in str(error)
    assert refusals(book)[-1]["by"] == people.officer.id
    registry.set_active(people.citra.id, False, "admin")
    refused(book, "escort_inactive",
            lambda: book.admit(visit.id, escort=people.citra.id, door="main", method="face", inside=set()),
            source="door:main")
    assert not events(book, "access.granted") and book.get(visit.id).status == "arrived"


# -- extending and overstays ---------------------------------------------------------------------------

def test_overstay_is_raised_once_and_cleared_when_the_visitor_left(book: VisitBook, people: People,
                                                                    clock: Clock) -> None:
    visit, key = inside_guest(book, people)
    deadline = parse_utc(visit.visitor(1).deadline or "")
    assert deadline == T0 + 60 + 600
    assert book.overstays({key}, now=deadline) == []
    raised = book.overstays({key}, now=deadline + 1)
    assert raised == [{"visit": visit.id, "person": key, "name": "Rina Wulandari", "visit_kind": "guest",
                       "escort": people.budi.id, "since": iso_utc(T0 + 60), "deadline": iso_utc(deadline),
                       "limit_min": 10}]
    assert [e.fields for e in events(book, "visit.overstay")] == raised
    assert book.overstays({key}, now=deadline + 300) == []  # once per stay
    clock.now = deadline + 300
    assert book.get(visit.id).visitor(1).overstay and book.get(visit.id).as_dict()["visitors"][0]["overstay"]
    cleared = book.overstays(set())
    assert cleared == [{"visit": visit.id, "person": key, "reason": "left"}]
    assert not book.get(visit.id).visitor(1).overstay
    assert book.overstays(set()) == []


def test_extend_raises_the_deadline_and_clears_an_overstay(book: VisitBook, people: People, clock: Clock) -> None:
    visit, key = inside_guest(book, people)
    refused(book, "not_officer", lambda: book.extend(visit.id, by=people.budi.id, minutes=10, reason="x"),
            step="extend")
    clock.now = T0 + 60 + 600 + 30
    assert len(book.overstays({key})) == 1
    with pytest.raises(InvalidValueError, match="outside 1 to 1440"):
        book.extend(visit.id, by=people.officer.id, minutes=0, reason="lebih lama")
    with pytest.raises(InvalidValueError, match="reason is empty"):
        book.extend(visit.id, by=people.officer.id, minutes=15, reason="")
    done = book.extend(visit.id, by=people.officer.id, minutes=15, reason="diskusi lanjutan")
    new_deadline = iso_utc(T0 + 60 + 25 * 60)
    assert done.limit_min == 25 and done.extra_min == 15 and done.visitor(1).deadline == new_deadline
    assert [x.as_dict() for x in done.extensions] == [
        {"at": iso_utc(clock.now), "by": people.officer.id, "by_name": "Ir. Siti Rahmawati", "minutes": 15,
         "reason": "diskusi lanjutan"}]
    assert events(book, "visit.extended")[0].fields == {
        "visit": visit.id, "by": people.officer.id, "by_name": "Ir. Siti Rahmawati", "minutes": 15,
        "reason": "diskusi lanjutan", "limit_min": 25, "deadlines": {key: new_deadline}}
    assert [e.fields for e in events(book, "visit.overstay_cleared")] == [
        {"visit": visit.id, "person": key, "reason": "extended"}]
    assert not done.visitor(1).overstay
    assert book.overstays({key}) == []  # within the new deadline
    assert len(book.overstays({key}, now=parse_utc(new_deadline) + 1)) == 1


def test_extend_refuses_requested_and_expired_visits(book: VisitBook, people: People, clock: Clock) -> None:
    visit = guest(book)
    refused(book, "not_approved", lambda: book.extend(visit.id, by=people.officer.id, minutes=5, reason="x"))
    approved(book, people, visit)
    assert book.extend(visit.id, by=people.officer.id, minutes=5, reason="datang terlambat").limit_min == 15
    clock.now = visit.end + 1
    refused(book, "expired", lambda: book.extend(visit.id, by=people.officer.id, minutes=5, reason="x"))


# -- check-out -----------------------------------------------------------------------------------------

def test_checkout_partial_then_final(book: VisitBook, people: People, clock: Clock) -> None:
    visit = guest(book, companions=[("Tono Wijaya", "SIM", SIM), ("Wati", "PASPOR", PASPOR)])
    refused(book, "not_approved", lambda: book.checkout(visit.id, by=people.citra.id, activities="x"))
    approved(book, people, visit)
    refused(book, "not_arrived", lambda: book.checkout(visit.id, by=people.citra.id, activities="melihat"),
            step="checkout")
    book.arrive(visit.id, received_by=people.citra.id, gadgets="ponsel", visitors=[1, 2])
    book.admit(visit.id, escort=people.budi.id, door="main", method="face", inside=set())
    keys = [f"{visit.id}.1", f"{visit.id}.2"]
    clock.advance(11 * 60)
    assert len(book.overstays(set(keys))) == 2
    book.set_escort_alarm(visit.id, condition="escort_left", escort=people.budi.id, visitors_inside=keys,
                          source="door:main")
    with pytest.raises(InvalidValueError, match="activities is empty"):
        book.checkout(visit.id, by=people.citra.id, activities=" ")
    with pytest.raises(InvalidValueError, match="no ID at the desk"):
        book.checkout(visit.id, by=people.citra.id, activities="x", visitors=[3])

    part = book.checkout(visit.id, by=people.citra.id, activities="melihat rak server", visitors=[2])
    assert part.status == "in_progress" and part.visitor(2).exited_at == iso_utc(clock.now)
    assert part.visitor(2).returned_by == people.citra.id and part.visitor(2).returned_by_name == "Citra Lestari"
    assert part.checkout is None and part.as_dict()["checkout"] is None
    first = events(book, "visit.checked_out")[0].fields
    assert first["final"] is False and [v["n"] for v in first["visitors"]] == [2]

    clock.advance(60)
    checklist = [{"item": "pintu terkunci", "ok": True}]
    done = book.checkout(visit.id, by=people.citra.id, returned_by=people.budi.id, checklist=checklist,
                         activities="melihat rak server\nberdiskusi dengan staf")
    assert done.status == "checked_out" and done.escort_alarm is None
    assert done.checkout == {"at": iso_utc(clock.now), "by": people.citra.id, "by_name": "Citra Lestari",
                             "activities": "melihat rak server\nberdiskusi dengan staf",
                             "checklist": [{"item": "pintu terkunci", "ok": True, "note": ""}]}
    final = events(book, "visit.checked_out")[-1]
    assert final.fields == {
        "visit": visit.id, "by": people.citra.id, "by_name": "Citra Lestari",
        "activities": "melihat rak server\nberdiskusi dengan staf",
        "checklist": [{"item": "pintu terkunci", "ok": True, "note": ""}], "final": True,
        "visitors": [{"n": 1, "key": keys[0], "name": "Rina Wulandari", "exited_at": iso_utc(clock.now),
                      "returned_by": people.budi.id, "returned_by_name": "Budi Santoso"}]}
    assert book.last_event is not None and book.last_event.seq == final.seq and book.last_event.hash == final.hash
    assert sorted(e.fields["person"] for e in events(book, "visit.overstay_cleared")
                  if e.fields["reason"] == "checked_out") == keys
    assert events(book, "visit.escort_alarm_cleared")[-1].fields == {
        "visit": visit.id, "condition": "escort_left", "reason": "checked_out"}
    assert done.visitor(3).arrived_at is None  # Wati never came
    refused(book, "checked_out", lambda: book.checkout(visit.id, by=people.citra.id, activities="x"))
    refused(book, "checked_out", lambda: book.check_admissible(visit.id, inside=set()))
    refused(book, "checked_out", lambda: book.arrive(visit.id, received_by=people.citra.id, gadgets="none"))
    assert book.list() == [] and book.overstays(set()) == []


def test_vendor_checkout_needs_a_result_for_every_device(book: VisitBook, people: People) -> None:
    visit = approved(book, people, vendor(book))
    book.arrive(visit.id, received_by=people.citra.id)
    book.admit(visit.id, escort=people.budi.id, door="main", method="face", inside=set())
    error = refused(book, "checklist_incomplete",
                    lambda: book.checkout(visit.id, by=people.budi.id, activities="ganti modul",
                                          checklist=[{"item": "Core  Switch", "ok": True}]))
    assert "UPS 2" in str(error) and "core switch" not in str(error)
    with pytest.raises(InvalidValueError, match="ok must be true or false"):
        book.checkout(visit.id, by=people.budi.id, activities="x", checklist=[{"item": "UPS 2", "ok": "ya"}])
    done = book.checkout(visit.id, by=people.budi.id, activities="ganti modul catu daya",
                         checklist=[{"item": "core switch", "ok": True, "note": "link up"},
                                    {"item": "UPS 2", "ok": False, "note": "baterai lemah, dijadwalkan ulang"}])
    assert done.status == "checked_out"
    assert done.as_dict()["checkout"]["checklist"][1] == {"item": "UPS 2", "ok": False,
                                                          "note": "baterai lemah, dijadwalkan ulang"}


# -- escort alarms -------------------------------------------------------------------------------------

def test_escort_alarms_are_set_and_cleared_once(book: VisitBook, people: People, clock: Clock) -> None:
    visit, key = inside_guest(book, people)
    raised = book.set_escort_alarm(visit.id, condition="escort_left", escort=people.budi.id, visitors_inside=[key],
                                   source="door:main")
    assert raised.escort_alarm == "escort_left" and raised.as_dict()["escort_alarm"] == {
        "condition": "escort_left", "since": iso_utc(clock.now)}
    book.set_escort_alarm(visit.id, condition="escort_left", escort=people.budi.id, visitors_inside=[key],
                          source="door:main")
    [event] = events(book, "visit.escort_alarm")
    assert event.source == "door:main" and event.fields == {
        "visit": visit.id, "condition": "escort_left", "escort": people.budi.id, "escort_name": "Budi Santoso",
        "visitors_inside": [key]}
    assert book.clear_escort_alarm(visit.id, reason="escort_returned", source="visits").escort_alarm is None
    book.clear_escort_alarm(visit.id, reason="escort_returned", source="visits")
    assert [e.fields for e in events(book, "visit.escort_alarm_cleared")] == [
        {"visit": visit.id, "condition": "escort_left", "reason": "escort_returned"}]
    with pytest.raises(InvalidValueError):
        book.set_escort_alarm(visit.id, condition="lost", escort=people.budi.id, visitors_inside=[], source="visits")


# -- reads ---------------------------------------------------------------------------------------------

def test_derived_statuses_lists_and_lookups(book: VisitBook, people: People, clock: Clock) -> None:
    requested = guest(book)
    approved_visit = approved(book, people, guest(book, id_number=NIK_2))
    rejected = book.reject(guest(book, id_number=SIM, id_type="SIM").id, by=people.officer.id, reason="penuh")
    arrived = approved(book, people, vendor(book), people.citra)
    book.arrive(arrived.id, received_by=people.budi.id)
    running, _ = inside_guest(book, people)
    statuses = {v.id: v.as_dict()["status"] for v in book.list(include_closed=True)}
    assert statuses == {requested.id: "requested", approved_visit.id: "approved", rejected.id: "rejected",
                        arrived.id: "arrived", running.id: "in_progress"}
    assert [v.id for v in book.list()] == [running.id, arrived.id, approved_visit.id, requested.id]  # newest first
    assert [v.id for v in book.list(since=T0 + 1)] == []  # every request was made at T0
    assert [v.id for v in book.escort_visits(people.citra.id)] == [arrived.id]
    assert [v.id for v in book.escort_visits(people.budi.id)] == [running.id, approved_visit.id]
    found, visitor = book.visitor(f"{arrived.id.lower()}.1")
    assert found.id == arrived.id and visitor["name"] == "Agus Salim" and visitor["arrived_at"] == iso_utc(T0)
    with pytest.raises(UnknownVisitError):
        book.visitor(f"{arrived.id}.5")
    with pytest.raises(UnknownVisitError):
        book.visitor("Agus")
    # the day ends: whoever never entered is expired, a visit with an ID still at the desk stays listed
    clock.now = datetime(2026, 11, 22, 0, 30, tzinfo=WIB).timestamp()
    statuses = {v.id: v.status for v in book.list(include_closed=True)}
    assert statuses[approved_visit.id] == "expired" and statuses[running.id] == "in_progress"
    assert statuses[arrived.id] == "expired" and statuses[requested.id] == "requested"
    assert [v.id for v in book.list()] == [running.id, arrived.id, requested.id]  # the vendor's ID is still held


def test_as_dict_has_exactly_the_contracts_shape(book: VisitBook, people: People) -> None:
    visit, _ = inside_guest(book, people)
    data = visit.as_dict()
    assert list(data) == ["id", "kind", "org", "purpose", "devices", "status", "expected_min", "window",
                          "requested_at", "requested_by", "approved_by", "approved_by_name", "approved_at", "escorts",
                          "rejected_by", "rejected_by_name", "rejected_at", "reject_reason", "limit_min",
                          "extensions", "visitors", "checkout", "escort_alarm"]
    assert list(data["window"]) == ["start", "end"] and list(data["escorts"][0]) == ["person", "name", "nip"]
    assert list(data["visitors"][0]) == ["n", "key", "name", "id_type", "id_masked", "arrived_at", "received_by",
                                         "received_by_name", "gadgets", "entered_at", "escort", "escort_name",
                                         "deadline", "exited_at", "returned_by", "returned_by_name", "overstay"]
    json.dumps(data)  # plain JSON
    visitor = visit.visitors[0]
    assert visitor["key"] == visitor.key and dict(visitor) == data["visitors"][0]


# -- ID numbers: masked everywhere, encrypted at rest, revealed only to an officer, erased in time ---------

def test_full_id_numbers_never_reach_events_or_the_database_file(book: VisitBook, people: People,
                                                                  writer: StoreWriter) -> None:
    visit = guest(book, companions=[("Tono Wijaya", "SIM", SIM), ("Wati", "PASPOR", PASPOR)])
    other = vendor(book, id_type="KTP", id_number=NIK_2)
    for v in (visit, other):
        approved(book, people, v)
        book.arrive(v.id, received_by=people.citra.id, gadgets="none")
        book.admit(v.id, escort=people.budi.id, door="main", method="face", inside=set())
    book.reveal(visit.id, by=people.officer.id)
    refused(book, "checklist_incomplete", lambda: book.checkout(other.id, by=people.budi.id, activities="x"))
    payloads = [event.payload for event in events(book)]
    assert any("3271••••••••0004" in p for p in payloads)
    for number in FULL_NUMBERS:
        assert not any(number in p for p in payloads), number
    rows = query(book.db_path, "SELECT id_masked, length(id_nonce), length(id_cipher) FROM visitors ORDER BY rowid")
    assert rows[0] == ("3271••••••••0004", 12, 16 + 16)
    wal = book.db_path.with_name(book.db_path.name + "-wal")
    raw = book.db_path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    for number in FULL_NUMBERS:
        assert number.encode() not in raw, number


def test_reveal_is_for_officers_and_audited(book: VisitBook, people: People) -> None:
    visit = guest(book, companions=[("Tono Wijaya", "paspor", "b123 4567")])
    refused(book, "not_officer", lambda: book.reveal(visit.id, by=people.budi.id), step="reveal")
    assert not events(book, "visit.id_viewed")
    shown = book.reveal(visit.id, by=people.officer.nip)
    assert [v.id_number for v in shown.visitors] == [NIK, PASPOR]
    assert shown.as_dict()["visitors"][0]["id_number"] == NIK
    assert list(shown.as_dict()["visitors"][0])[5] == "id_number"
    assert "id_number" not in book.get(visit.id).as_dict()["visitors"][0]
    assert [e.fields for e in events(book, "visit.id_viewed")] == [
        {"visit": visit.id, "by": people.officer.id, "by_name": "Ir. Siti Rahmawati"}]


def test_old_id_numbers_are_erased_after_retention(book: VisitBook, people: People, clock: Clock,
                                                   config: VisitsConfig) -> None:
    done, _ = inside_guest(book, people)
    book.checkout(done.id, by=people.citra.id, activities="melihat")
    rejected = book.reject(guest(book, id_number=NIK_2).id, by=people.officer.id, reason="tidak lengkap")
    lapsed = approved(book, people, guest(book, id_number=SIM, id_type="SIM"))  # nobody ever came
    running = approved(book, people, vendor(book, id_number="1234567890123"))
    book.arrive(running.id, received_by=people.citra.id)
    book.admit(running.id, escort=people.budi.id, door="main", method="face", inside=set())
    assert book.erase_old_ids() == 0 and not events(book, "visit.id_erased")
    clock.now = lapsed.end + config.id_retention_days * 86400 - 60
    assert book.erase_old_ids() == 2  # the checked-out and the rejected visit ended at T0
    clock.advance(120)
    assert book.erase_old_ids() == 1  # the lapsed window, a day later
    assert [e.fields for e in events(book, "visit.id_erased")] == [
        {"visits": sorted([done.id, rejected.id]), "count": 2}, {"visits": [lapsed.id], "count": 1}]
    assert book.erase_old_ids() == 0
    held = dict(query(book.db_path, "SELECT visit_id, id_cipher IS NOT NULL FROM visitors"))
    assert held == {done.id: 0, rejected.id: 0, lapsed.id: 0, running.id: 1}  # an unfinished visit keeps it
    shown = book.reveal(done.id, by=people.officer.id)
    assert shown.visitors[0].id_number is None and shown.visitors[0].id_masked == "3271••••••••0004"
    assert book.get(done.id).visitors[0].id_stored is False
