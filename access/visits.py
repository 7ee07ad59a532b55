"""Guest and vendor visits: request, approval, ID deposit, escorted entry, extensions, check-out, overstays.

The contract is docs/visits.md. Every change goes through the store's one writer with the event that
records it, in one transaction (`StoreWriter.change`), and re-checks the visit's state inside that
transaction, so two desks acting at once cannot both approve or both check out. Every refusal is
recorded (`visit.refused`) before `VisitRefusedError` is raised. Reads use their own read-only
connection, so the CLI can show visits whether or not the gateway runs.

A visitor's full ID number is stored only as AES-GCM ciphertext with the access key; events, lists
and errors carry only the masked form. The derived status (`expired` above all) is computed with the
book's clock when a visit is loaded.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from access.crypto import TemplateCipher
from access.people import NoTemplateKeyError, PeopleRegistry, Person, PersonStateError, UnknownPersonError
from access.presence import iso_utc, parse_utc
from access.visitor_id import id_aad, mask_id, normalise_id
from drivers.errors import DcgateError, InvalidValueError
from gateway.config.visits import VisitsConfig
from gateway.store.database import open_for_reading
from gateway.store.events import Event
from gateway.store.writer import StoreWriter

SOURCE = "visits"
KINDS = ("guest", "vendor")
STORED_STATUSES = ("requested", "approved", "rejected", "checked_out")
#: statuses of a visit still going on (the desk's list, an escort's visits)
OPEN_STATUSES = ("requested", "approved", "arrived", "in_progress")
ALARM_CONDITIONS = ("escort_left", "escort_revoked")
ALARM_CLEAR_REASONS = ("escort_returned", "visitors_out", "checked_out")
MAX_VISITORS = 10
MAX_DEVICES = 20
MAX_EXTENSION_MIN = 24 * 60
_ID = re.compile(r"KJ-(\d{8})-(\d{3,})")
_KEY = re.compile(r"(KJ-\d{8}-\d{3,})\.(\d+)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # newlines and tabs allowed (activities)
_ID_TRIES = 5


class VisitRefusedError(DcgateError):
    """A visit step refused on the visit's merits (recorded as `visit.refused` before it is raised)."""

    exit_code = 2

    def __init__(self, message: str, *, reason: str, visit: str | None, step: str) -> None:
        super().__init__(message)
        self.reason, self.visit, self.step = reason, visit, step


class UnknownVisitError(DcgateError):
    exit_code = 2


class VisitChangedError(DcgateError):
    """The visit changed between reading it and writing (another desk, the door); nothing was written."""

    exit_code = 2


class _IdTaken(DcgateError):
    """The visit id read before the transaction was taken meanwhile; the request is retried with the next one."""


# -- the records ---------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Escort:
    person: str
    name: str | None
    nip: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"person": self.person, "name": self.name, "nip": self.nip}


@dataclass(frozen=True, slots=True)
class Extension:
    at: str
    by: str
    by_name: str | None
    minutes: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at, "by": self.by, "by_name": self.by_name, "minutes": self.minutes, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Visitor(Mapping[str, Any]):
    """One visitor; also a read-only mapping of `as_dict()` (``visitor["key"]``, ``visitor.get("deadline")``)."""

    visit: str
    n: int
    name: str
    id_type: str
    id_masked: str
    id_stored: bool  # the ciphertext is still held (False once erased for retention)
    arrived_at: str | None = None
    received_by: str | None = None
    received_by_name: str | None = None
    gadgets: str | None = None
    entered_at: str | None = None
    escort: str | None = None
    escort_name: str | None = None
    deadline: str | None = None
    exited_at: str | None = None
    returned_by: str | None = None
    returned_by_name: str | None = None
    overstay_at: str | None = None
    revealed: bool = False
    id_number: str | None = None

    @property
    def key(self) -> str:
        return f"{self.visit}.{self.n}"

    @property
    def overstay(self) -> bool:
        return self.overstay_at is not None

    @property
    def deposited(self) -> bool:
        """The visitor's ID is at the desk now: arrived and not yet checked out."""
        return self.arrived_at is not None and self.exited_at is None

    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "key": self.key, "name": self.name, "id_type": self.id_type,
                               "id_masked": self.id_masked}
        if self.revealed:
            out["id_number"] = self.id_number
        out.update({
            "arrived_at": self.arrived_at, "received_by": self.received_by, "received_by_name": self.received_by_name,
            "gadgets": self.gadgets, "entered_at": self.entered_at, "escort": self.escort,
            "escort_name": self.escort_name, "deadline": self.deadline, "exited_at": self.exited_at,
            "returned_by": self.returned_by, "returned_by_name": self.returned_by_name, "overstay": self.overstay,
        })
        return out


@dataclass(frozen=True, slots=True)
class Visit:
    id: str
    kind: str
    org: str
    purpose: str
    devices: tuple[str, ...]
    status: str  # derived (docs/visits.md "States"), computed with the book's clock when loaded
    stored_status: str
    expected_min: int
    window_start: str
    window_end: str
    requested_at: str
    requested_by: str
    limit_min: float  # the kind's limit plus every extension
    extra_min: int = 0
    approved_by: str | None = None
    approved_by_name: str | None = None
    approved_at: str | None = None
    escorts: tuple[Escort, ...] = ()
    rejected_by: str | None = None
    rejected_by_name: str | None = None
    rejected_at: str | None = None
    reject_reason: str | None = None
    extensions: tuple[Extension, ...] = ()
    visitors: tuple[Visitor, ...] = ()
    checked_out_at: str | None = None
    checked_out_by: str | None = None
    checked_out_by_name: str | None = None
    activities: str | None = None
    checklist: tuple[tuple[str, bool, str], ...] = ()
    escort_alarm: str | None = None
    escort_alarm_at: str | None = None

    @property
    def start(self) -> float:
        return parse_utc(self.window_start)

    @property
    def end(self) -> float:
        return parse_utc(self.window_end)

    @property
    def escort_ids(self) -> tuple[str, ...]:
        return tuple(escort.person for escort in self.escorts)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def visitor(self, n: int) -> Visitor:
        for visitor in self.visitors:
            if visitor.n == n:
                return visitor
        raise InvalidValueError(
            f"visit {self.id} has no visitor {n}; its visitors are {', '.join(str(v.n) for v in self.visitors)}"
        )

    @property
    def checkout(self) -> dict[str, Any] | None:
        """The final check-out (as in `as_dict()`), or None while the visit is not checked out."""
        if self.stored_status != "checked_out":
            return None
        return {"at": self.checked_out_at, "by": self.checked_out_by, "by_name": self.checked_out_by_name,
                "activities": self.activities, "checklist": _checklist_dicts(self.checklist)}

    def as_dict(self) -> dict[str, Any]:
        checkout = self.checkout
        alarm = None if self.escort_alarm is None else {"condition": self.escort_alarm, "since": self.escort_alarm_at}
        return {
            "id": self.id, "kind": self.kind, "org": self.org, "purpose": self.purpose, "devices": list(self.devices),
            "status": self.status, "expected_min": self.expected_min,
            "window": {"start": self.window_start, "end": self.window_end},
            "requested_at": self.requested_at, "requested_by": self.requested_by,
            "approved_by": self.approved_by, "approved_by_name": self.approved_by_name,
            "approved_at": self.approved_at, "escorts": [escort.as_dict() for escort in self.escorts],
            "rejected_by": self.rejected_by, "rejected_by_name": self.rejected_by_name,
            "rejected_at": self.rejected_at, "reject_reason": self.reject_reason,
            "limit_min": self.limit_min, "extensions": [extension.as_dict() for extension in self.extensions],
            "visitors": [visitor.as_dict() for visitor in self.visitors],
            "checkout": checkout, "escort_alarm": alarm,
        }


def _checklist_dicts(items: Iterable[tuple[str, bool, str]]) -> list[dict[str, Any]]:
    return [{"item": item, "ok": ok, "note": note} for item, ok, note in items]


def derive_status(stored: str, window_end: str, visitors: Sequence[Visitor], now: float) -> str:
    """The reported status (docs/visits.md "States") of a visit at `now`."""
    if stored != "approved":
        return stored
    if any(visitor.entered_at for visitor in visitors):
        return "in_progress"
    if now > parse_utc(window_end):
        return "expired"
    if any(visitor.arrived_at for visitor in visitors):
        return "arrived"
    return "approved"


# -- checking input --------------------------------------------------------------------------------------

def _text(value: object, key: str, max_len: int, *, fix: str = "", lines: bool = False) -> str:
    """A required free text: stripped (runs of spaces collapsed unless `lines`), 1..max_len, no control chars."""
    hint = f". Fix: {fix}" if fix else ""
    if not isinstance(value, str):
        raise InvalidValueError(f"{key} must be text, got {type(value).__name__}{hint}")
    text = value.strip() if lines else " ".join(value.split())
    if not text:
        raise InvalidValueError(f"{key} is empty{hint or '. Fix: write it out'}")
    if len(text) > max_len:
        raise InvalidValueError(f"{key} is {len(text)} characters, over the {max_len} allowed. Fix: shorten it")
    if (_CONTROL_BUT_LINES if lines else _CONTROL).search(text):
        raise InvalidValueError(f"{key} {text[:40]!r} holds control characters. Fix: use plain printable text")
    return text


def _moment(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidValueError(f"{key} must be a time (epoch seconds), got {value!r}")
    return float(value)


def _positive_int(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValueError(f"{key} must be a whole number of minutes, got {value!r}")
    return value


def _visitor_numbers(value: Sequence[int] | None) -> list[int] | None:
    if value is None:
        return None
    numbers: list[int] = []
    for n in value:
        if isinstance(n, bool) or not isinstance(n, int):
            raise InvalidValueError(f"visitor numbers are whole numbers (1, 2, ...), got {n!r}")
        if n not in numbers:
            numbers.append(n)
    if not numbers:
        raise InvalidValueError("no visitor given. Fix: name the visitors by number (1, 2, ...) or leave it out")
    return numbers


# -- refusal messages: Indonesian first, then English, each naming the value -------------------------------

def _both(indonesian: str, english: str) -> str:
    return f"{indonesian} / {english}"


#: the standard message of each reason, for refusals recorded without their own (mostly the door's)
_MESSAGES: dict[str, tuple[str, str]] = {
    "not_approved": ("kunjungan {visit} belum disetujui ({detail})", "visit {visit} is not approved ({detail})"),
    "rejected": ("kunjungan {visit} ditolak ({detail})", "visit {visit} was rejected ({detail})"),
    "expired": ("masa berlaku kunjungan {visit} sudah berakhir ({detail})",
                "visit {visit}'s approved window is over ({detail})"),
    "not_yet_valid": ("kunjungan {visit} belum berlaku ({detail})", "visit {visit} is not valid yet ({detail})"),
    "already_decided": ("kunjungan {visit} sudah diputuskan ({detail})", "visit {visit} was already decided "
                                                                        "({detail})"),
    "not_officer": ("bukan penanggung jawab aktif ({detail})", "not an active officer ({detail})"),
    "escort_not_assigned": ("bukan pendamping kunjungan {visit} ({detail})",
                            "not an assigned escort of visit {visit} ({detail})"),
    "escort_inactive": ("pendamping kunjungan {visit} tidak aktif ({detail})",
                        "an escort of visit {visit} is inactive or revoked ({detail})"),
    "escort_denied": ("pendamping kunjungan {visit} ditolak oleh pintu ({detail})",
                      "an assigned escort of visit {visit} was refused by the door ({detail})"),
    "id_not_deposited": ("belum ada kartu identitas yang dititipkan untuk kunjungan {visit}",
                         "no ID has been deposited for visit {visit}"),
    "already_inside": ("semua tamu kunjungan {visit} sudah di dalam ({detail})",
                       "every arrived visitor of visit {visit} is already inside ({detail})"),
    "checked_out": ("kunjungan {visit} sudah selesai ({detail})", "visit {visit} is already checked out ({detail})"),
    "not_arrived": ("belum ada tamu kunjungan {visit} yang datang", "nobody has arrived for visit {visit}"),
    "gadgets_required": ("tamu kunjungan {visit} wajib menitipkan gawai", "guests of visit {visit} deposit their "
                                                                           "gadgets"),
    "checklist_incomplete": ("daftar periksa kunjungan {visit} belum lengkap ({detail})",
                             "visit {visit}'s exit checklist is incomplete ({detail})"),
    "admit_timeout": ("pendamping kunjungan {visit} tidak datang ke pintu ({detail})",
                      "no assigned escort of visit {visit} came to the door ({detail})"),
    "door_busy": ("pintu sedang menunggu kunjungan lain ({detail})", "the door is armed for another visit "
                                                                      "({detail})"),
}


class VisitBook:
    def __init__(
        self,
        db_path: Path,
        writer: StoreWriter | None,
        cipher: TemplateCipher | None,
        registry: PeopleRegistry,
        config: VisitsConfig,
        timezone: str = "Asia/Jakarta",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db_path, self.writer, self.cipher = db_path, writer, cipher
        self.registry, self.config, self.clock = registry, config, clock
        self.zone = ZoneInfo(timezone)
        #: the last visit event committed by `checkout` (its seq and hash go into the minutes)
        self.last_event: Event | None = None

    # == reading =========================================================================================
    def _read(self) -> sqlite3.Connection:
        return open_for_reading(self.db_path).conn

    def get(self, ref: str) -> Visit:
        """By id, in any case (kj-20261121-001)."""
        visits = self._load("WHERE id = ?", (_visit_ref(ref),))
        if not visits:
            raise UnknownVisitError(
                f"no visit {ref.strip()!r}. Fix: give an id like KJ-20261121-001; `dcgate visit list` shows them "
                "(`dcgate visit list --all` for closed ones too)"
            )
        return visits[0]

    def list(self, *, include_closed: bool = False, since: float | str | None = None) -> list[Visit]:
        """Newest first. Open visits only unless `include_closed`; a visit whose window expired still counts
        as open while a visitor's ID is held at the desk (it must be returned at check-out)."""
        where, params = [], []
        if not include_closed:
            where.append("status IN ('requested', 'approved')")
        if since is not None:
            where.append("requested_at >= ?")
            params.append(since if isinstance(since, str) else iso_utc(_moment(since, "since")))
        sql = ("WHERE " + " AND ".join(where) if where else "") + " ORDER BY requested_at DESC, id DESC"
        visits = self._load(sql, tuple(params))
        if include_closed:
            return visits
        return [v for v in visits if v.is_open or (v.status == "expired" and any(x.deposited for x in v.visitors))]

    def escort_visits(self, person_id: str) -> list[Visit]:
        """Open approved visits (approved, arrived, in progress) this person is an assigned escort of."""
        return [visit for visit in self._load("WHERE status = 'approved' ORDER BY requested_at DESC, id DESC", ())
                if visit.status in ("approved", "arrived", "in_progress") and person_id in visit.escort_ids]

    def visitor(self, key: str) -> tuple[Visit, dict[str, Any]]:
        """A visitor by key ("KJ-20261121-001.2") -> their visit and their `as_dict()`."""
        match = _KEY.fullmatch(key.strip())
        if not match:
            raise UnknownVisitError(f"{key!r} is not a visitor key like KJ-20261121-001.1 (visit id, a dot, number)")
        visit = self.get(match.group(1))
        n = int(match.group(2))
        for visitor in visit.visitors:
            if visitor.n == n:
                return visit, visitor.as_dict()
        raise UnknownVisitError(f"visit {visit.id} has no visitor {n}; `dcgate visit show {visit.id}` lists them")

    def reveal(self, ref: str, *, by: str) -> Visit:
        """The visit with each visitor's full ID number (None once erased); officers only, audited."""
        visit = self.get(ref)
        officer = self._officer(visit, "reveal", by)
        cipher = self._cipher()
        conn = self._read()
        try:
            rows = {n: (nonce, ciphertext) for n, nonce, ciphertext in conn.execute(
                "SELECT n, id_nonce, id_cipher FROM visitors WHERE visit_id = ?", (visit.id,))}
        finally:
            conn.close()
        numbers: dict[int, str | None] = {}
        for n, (nonce, ciphertext) in rows.items():
            numbers[n] = None if ciphertext is None else cipher.decrypt(
                nonce, ciphertext, id_aad(visit.id, n)).decode()
        # recorded before anything is shown: a failed record shows nothing
        self._writer().append("visit.id_viewed", SOURCE,
                              {"visit": visit.id, "by": officer.id, "by_name": officer.name}).result()
        return replace(visit, visitors=tuple(replace(v, revealed=True, id_number=numbers.get(v.n))
                                             for v in visit.visitors))

    def _load(self, where: str, params: tuple[Any, ...]) -> list[Visit]:
        now = self.clock()
        people = {person.id: person for person in self.registry.list(include_revoked=True)}
        conn = self._read()
        try:
            rows = conn.execute(f"SELECT {_VISIT_COLUMNS} FROM visits {where}", params).fetchall()
            visits = []
            for row in rows:
                visitors = conn.execute(f"SELECT {_VISITOR_COLUMNS} FROM visitors WHERE visit_id = ? ORDER BY n",
                                        (row[0],)).fetchall()
                extensions = conn.execute("SELECT at, by, minutes, reason FROM visit_extensions WHERE visit_id = ? "
                                          "ORDER BY at, rowid", (row[0],)).fetchall()
                visits.append(self._visit(row, visitors, extensions, people, now))
            return visits
        finally:
            conn.close()

    def _visit(self, row: tuple[Any, ...], visitor_rows: list[tuple[Any, ...]], extension_rows: list[tuple[Any, ...]],
               people: Mapping[str, Person], now: float) -> Visit:
        (visit_id, kind, org, purpose, devices, expected_min, window_start, window_end, requested_at, requested_by,
         status, approved_by, approved_at, escorts, rejected_by, rejected_at, reject_reason, extra_min,
         checked_out_at, checked_out_by, activities, checklist, escort_alarm, escort_alarm_at) = row

        def name(person_id: str | None) -> str | None:
            person = people.get(person_id) if person_id else None
            return None if person is None else person.name

        limit = self.config.limit_min(kind) + extra_min
        visitors = tuple(
            Visitor(visit_id, n, vname, id_type, id_masked, bool(stored), arrived_at, received_by, name(received_by),
                    gadgets, entered_at, escort, name(escort),
                    None if entered_at is None else iso_utc(parse_utc(entered_at) + limit * 60),
                    exited_at, returned_by, name(returned_by), overstay_at)
            for (n, vname, id_type, id_masked, stored, arrived_at, received_by, gadgets, entered_at, escort,
                 exited_at, returned_by, overstay_at) in visitor_rows
        )
        escort_list = tuple(Escort(pid, name(pid), people[pid].nip if pid in people else None)
                            for pid in json.loads(escorts))
        return Visit(
            id=visit_id, kind=kind, org=org, purpose=purpose, devices=tuple(json.loads(devices)),
            status=derive_status(status, window_end, visitors, now), stored_status=status,
            expected_min=expected_min, window_start=window_start, window_end=window_end,
            requested_at=requested_at, requested_by=requested_by, limit_min=limit, extra_min=extra_min,
            approved_by=approved_by, approved_by_name=name(approved_by), approved_at=approved_at,
            escorts=escort_list, rejected_by=rejected_by, rejected_by_name=name(rejected_by),
            rejected_at=rejected_at, reject_reason=reject_reason,
            extensions=tuple(Extension(at, by, name(by), minutes, reason)
                             for at, by, minutes, reason in extension_rows),
            visitors=visitors, checked_out_at=checked_out_at, checked_out_by=checked_out_by,
            checked_out_by_name=name(checked_out_by), activities=activities,
            checklist=tuple((c["item"], c["ok"], c["note"]) for c in json.loads(checklist or "[]")),
            escort_alarm=escort_alarm, escort_alarm_at=escort_alarm_at,
        )

    # == refusals ========================================================================================
    def refuse(self, visit: str | None, *, step: str, reason: str, by: str, detail: str,
               indonesian: str | None = None, english: str | None = None,
               source: str = SOURCE) -> VisitRefusedError:
        """Record `visit.refused` and return the error for the caller to raise (`raise book.refuse(...)`).

        Public so the door's admission (admit_timeout, escort_denied, door_busy) records refusals the same way;
        without `indonesian` / `english` the message is the reason's standard one, with the detail.
        """
        self._writer().append("visit.refused", source, {"visit": visit, "step": step, "reason": reason, "by": by,
                                                         "detail": detail}).result()
        if indonesian is None or english is None:
            default_id, default_en = _MESSAGES.get(reason, ("kunjungan {visit} ditolak ({reason})",
                                                            "visit {visit} refused ({reason})"))
            values = {"visit": visit or "-", "detail": detail, "reason": reason}
            indonesian = default_id.format(**values) if indonesian is None else indonesian
            english = default_en.format(**values) if english is None else english
        return VisitRefusedError(_both(indonesian, english), reason=reason, visit=visit, step=step)

    def _state_refusal(self, visit: Visit, step: str, by: str, source: str = SOURCE) -> None:
        """Refuse a step on a rejected, checked-out or still requested visit."""
        if visit.stored_status == "rejected":
            raise self.refuse(
                visit.id, step=step, reason="rejected", by=by, source=source,
                detail=f"rejected at {visit.rejected_at}: {visit.reject_reason}",
                indonesian=f"kunjungan {visit.id} ditolak ({visit.reject_reason})",
                english=f"visit {visit.id} was rejected ({visit.reject_reason})")
        if visit.stored_status == "checked_out":
            raise self.refuse(
                visit.id, step=step, reason="checked_out", by=by, source=source,
                detail=f"checked out at {visit.checked_out_at}",
                indonesian=f"kunjungan {visit.id} sudah selesai (check-out {visit.checked_out_at})",
                english=f"visit {visit.id} is already checked out ({visit.checked_out_at})")
        if visit.stored_status == "requested":
            raise self.refuse(
                visit.id, step=step, reason="not_approved", by=by, source=source, detail="status: requested",
                indonesian=f"kunjungan {visit.id} belum disetujui (status: requested)",
                english=f"visit {visit.id} is not approved (status: requested)")

    def _expired(self, visit: Visit, step: str, by: str, source: str = SOURCE) -> VisitRefusedError:
        return self.refuse(
            visit.id, step=step, reason="expired", by=by, source=source, detail=f"window ended {visit.window_end}",
            indonesian=f"masa berlaku kunjungan {visit.id} sudah berakhir ({visit.window_end})",
            english=f"visit {visit.id}'s approved window ended at {visit.window_end}")

    def _officer(self, visit: Visit | None, step: str, by: str) -> Person:
        """An active, non-revoked officer, or the refusal `not_officer`."""
        visit_id = None if visit is None else visit.id
        try:
            person = self.registry.get(by)
        except UnknownPersonError:
            raise self.refuse(
                visit_id, step=step, reason="not_officer", by=by, detail=f"no person {by!r}",
                indonesian=f"{by!r} tidak terdaftar sebagai penanggung jawab",
                english=f"{by!r} is not a known person (see `dcgate person list`)") from None
        if person.role != "officer" or not person.active or person.revoked:
            state = person.status if person.role == "officer" else f"role {person.role}"
            raise self.refuse(
                visit_id, step=step, reason="not_officer", by=person.id, detail=f"{person.name}: {state}",
                indonesian=f"{person.name} ({state}) bukan penanggung jawab aktif; hanya penanggung jawab yang boleh "
                           f"melakukan {step}",
                english=f"{person.name} ({state}) is not an active officer; only an officer may {step}")
        return person

    def _active_person(self, ref: str, key: str) -> Person:
        """Desk staff (received_by, returned_by, by): known, active and not revoked."""
        person = self.registry.get(ref)
        if not person.active or person.revoked:
            raise PersonStateError(
                f"{key} {person.name} ({person.id}) is {person.status}. Fix: give an active person "
                "(`dcgate person list`)"
            )
        return person

    # == requesting and deciding ===========================================================================
    def request(self, *, kind: str, name: str, org: str, id_type: str, id_number: str, purpose: str, by: str,
                start: float | None = None, end: float | None = None, expected_min: int | None = None,
                devices: Sequence[str] = (), companions: Sequence[tuple[str, str, str]] = ()) -> Visit:
        """A new visit, status `requested`; `companions` are more visitors (name, id_type, id_number)."""
        writer = self._writer()
        if self.cipher is None:
            raise NoTemplateKeyError(
                "visits keep ID numbers (KTP, SIM, passport) encrypted with the access key, and none is set. Fix: "
                "dcgate key generate /etc/dcgate/biometric.key, then set [access] key_file to it"
            )
        if kind not in KINDS:
            raise InvalidValueError(f"visit kind {kind!r} is not one of guest, vendor. Fix: --kind guest or vendor")
        org = _text(org, "org", 100, fix="give the visitor's organisation (company, office)")
        purpose = _text(purpose, "purpose", 500, fix="give a clear reason for the visit (the SOP asks for one)")
        requested_by = _text(by, "requested_by", 64, fix="give the login name of who records the request")
        now = self.clock()
        start_s, end_s = self._window(start, end, now)
        limit = self.config.limit_min(kind)
        expected = max(1, math.ceil(limit)) if expected_min is None else _positive_int(expected_min, "expected_min")
        if not 1 <= expected <= max(1, math.ceil(limit)):
            key = "guest_max_min" if kind == "guest" else "vendor_max_h"
            raise InvalidValueError(
                f"expected_min {expected} is outside 1 to {limit}, the {kind} limit (visits.{key}). Fix: ask for at "
                "most the limit; an officer can extend during the visit"
            )
        device_list = self._devices(kind, devices)
        people = [(name, id_type, id_number), *companions]
        if len(people) > MAX_VISITORS:
            raise InvalidValueError(
                f"{len(people)} visitors in one visit, over the {MAX_VISITORS} allowed. Fix: split the group into "
                "several visits"
            )
        visitors: list[tuple[str, str, str]] = []
        seen: dict[tuple[str, str], int] = {}
        for n, person in enumerate(people, start=1):
            if not isinstance(person, tuple | list) or len(person) != 3:
                raise InvalidValueError(f"companion {person!r} is not (name, id_type, id_number)")
            vname = _text(person[0], f"visitor {n} name", 100, fix="give the name as on the ID card")
            vtype, number = normalise_id(person[1], person[2])
            if (vtype, number) in seen:
                raise InvalidValueError(
                    f"visitors {seen[(vtype, number)]} and {n} give the same {vtype} {mask_id(number)}. Fix: each "
                    "visitor deposits their own ID"
                )
            seen[(vtype, number)] = n
            visitors.append((vname, vtype, number))

        day = datetime.fromtimestamp(now, self.zone).strftime("%Y%m%d")
        for _ in range(_ID_TRIES):
            visit_id = self._next_id(day)
            rows = []
            for n, (vname, vtype, number) in enumerate(visitors, start=1):
                nonce, ciphertext = self.cipher.encrypt(number.encode(), id_aad(visit_id, n))
                rows.append((visit_id, n, vname, vtype, mask_id(number), nonce, ciphertext))
            fields = {
                # "kind" is the envelope's (the event kind): the visit's kind is "visit_kind" in every event
                "visit": visit_id, "visit_kind": kind, "org": org, "purpose": purpose, "devices": device_list,
                "window": {"start": iso_utc(start_s), "end": iso_utc(end_s)}, "expected_min": expected,
                "by": requested_by,
                "visitors": [{"n": r[1], "key": f"{visit_id}.{r[1]}", "name": r[2], "id_type": r[3],
                              "id_masked": r[4]} for r in rows],
            }
            visit_row = (visit_id, kind, org, purpose, json.dumps(device_list, ensure_ascii=False), expected,
                         iso_utc(start_s), iso_utc(end_s), iso_utc(now), requested_by)

            def insert(conn: sqlite3.Connection, visit_id: str = visit_id, visit_row: tuple[Any, ...] = visit_row,
                       rows: list[tuple[Any, ...]] = rows) -> None:
                # the id is the day's count + 1 as this transaction sees it; read before, so it may be stale
                if _next_id(conn, day) != visit_id:
                    raise _IdTaken(visit_id)
                conn.execute("INSERT INTO visits (id, kind, org, purpose, devices, expected_min, window_start, "
                             "window_end, requested_at, requested_by, status) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'requested')", visit_row)
                conn.executemany("INSERT INTO visitors (visit_id, n, name, id_type, id_masked, id_nonce, id_cipher) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

            try:
                writer.change("visit.requested", SOURCE, fields, insert)
            except _IdTaken:
                continue
            return self.get(visit_id)
        raise VisitChangedError(f"could not number a new visit for {day}: other requests kept taking the id; "
                                "run it again")

    def approve(self, ref: str, *, by: str, escorts: Sequence[str], start: float | None = None,
                end: float | None = None, note: str = "") -> Visit:
        visit = self.get(ref)
        officer = self._officer(visit, "approve", by)
        self._undecided(visit, "approve", officer.id)
        chosen: list[Person] = []
        for ref_ in escorts:
            try:
                person = self.registry.get(ref_)
            except UnknownPersonError:
                raise self.refuse(
                    visit.id, step="approve", reason="escort_inactive", by=officer.id, detail=f"no person {ref_!r}",
                    indonesian=f"pendamping {ref_!r} tidak terdaftar",
                    english=f"escort {ref_!r} is not a known person (see `dcgate person list`)") from None
            if not person.active or person.revoked:
                raise self.refuse(
                    visit.id, step="approve", reason="escort_inactive", by=officer.id,
                    detail=f"{person.name} ({person.id}): {person.status}",
                    indonesian=f"pendamping {person.name} ({person.status}) tidak dapat mendampingi",
                    english=f"escort {person.name} is {person.status} and cannot escort")
            if person.id not in {p.id for p in chosen}:
                chosen.append(person)
        if not chosen:
            raise InvalidValueError("an approval assigns at least one escort. Fix: --escort PERSON (staff who will "
                                    "authenticate at the door with the visitors)")
        note = "" if not note else _text(note, "note", 500)
        now = self.clock()
        start_s = visit.start if start is None else start
        end_s = visit.end if end is None else end
        start_s, end_s = self._window(start_s, end_s, now)
        window = {"start": iso_utc(start_s), "end": iso_utc(end_s)}
        escort_ids = [p.id for p in chosen]
        fields: dict[str, Any] = {
            "visit": visit.id, "visit_kind": visit.kind, "by": officer.id, "by_name": officer.name,
            "escorts": [{"person": p.id, "name": p.name} for p in chosen], "window": window,
            "limit_min": visit.limit_min,
        }
        if note:
            fields["note"] = note

        def update(conn: sqlite3.Connection) -> None:
            changed = conn.execute(
                "UPDATE visits SET status = 'approved', approved_by = ?, approved_at = ?, escorts = ?, "
                "window_start = ?, window_end = ? WHERE id = ? AND status = 'requested'",
                (officer.id, iso_utc(now), json.dumps(escort_ids), window["start"], window["end"], visit.id)).rowcount
            _changed_unless(changed, visit.id)

        self._writer().change("visit.approved", SOURCE, fields, update)
        return self.get(visit.id)

    def reject(self, ref: str, *, by: str, reason: str) -> Visit:
        visit = self.get(ref)
        officer = self._officer(visit, "reject", by)
        self._undecided(visit, "reject", officer.id)
        reason = _text(reason, "reason", 500, fix="say why the visit is refused; the requester is told")
        now = self.clock()

        def update(conn: sqlite3.Connection) -> None:
            changed = conn.execute(
                "UPDATE visits SET status = 'rejected', rejected_by = ?, rejected_at = ?, reject_reason = ? "
                "WHERE id = ? AND status = 'requested'", (officer.id, iso_utc(now), reason, visit.id)).rowcount
            _changed_unless(changed, visit.id)

        self._writer().change("visit.rejected", SOURCE, {"visit": visit.id, "by": officer.id,
                                                         "by_name": officer.name, "reason": reason}, update)
        return self.get(visit.id)

    def _undecided(self, visit: Visit, step: str, by: str) -> None:
        if visit.stored_status != "requested":
            raise self.refuse(
                visit.id, step=step, reason="already_decided", by=by, detail=f"status: {visit.status}",
                indonesian=f"kunjungan {visit.id} sudah diputuskan (status: {visit.status})",
                english=f"visit {visit.id} was already decided (status: {visit.status})")

    # == at the desk and the door ===========================================================================
    def arrive(self, ref: str, *, received_by: str, visitors: Sequence[int] | None = None,
               gadgets: str | None = None) -> Visit:
        """Visitors deposit their ID (and guests their gadgets) at the desk."""
        visit = self.get(ref)
        self._state_refusal(visit, "arrive", received_by)
        if visit.status == "expired":
            raise self._expired(visit, "arrive", received_by)
        receiver = self._active_person(received_by, "received_by")
        # any answer will do, "tidak ada" / "none" too; only silence is refused for a guest
        gadgets = _text(gadgets, "gadgets", 500) if isinstance(gadgets, str) and gadgets.strip() else None
        if visit.kind == "guest" and gadgets is None:
            raise self.refuse(
                visit.id, step="arrive", reason="gadgets_required", by=receiver.id, detail="no gadgets recorded",
                indonesian=f"tamu kunjungan {visit.id} wajib menitipkan gawai; tulis apa yang dititipkan, atau "
                           "\"tidak ada\"",
                english=f"guests of visit {visit.id} deposit their gadgets; say what was deposited, or \"none\"")
        numbers = _visitor_numbers(visitors)
        if numbers is None:
            chosen = [v for v in visit.visitors if v.arrived_at is None]
            if not chosen:
                raise InvalidValueError(f"every visitor of visit {visit.id} has already arrived")
        else:
            chosen = [visit.visitor(n) for n in numbers]
            already = [v.n for v in chosen if v.arrived_at is not None]
            if already:
                raise InvalidValueError(f"visitor(s) {', '.join(map(str, already))} of visit {visit.id} already "
                                        "arrived")
        now = iso_utc(self.clock())
        fields = {
            "visit": visit.id, "received_by": receiver.id, "received_by_name": receiver.name,
            "visitors": [{"n": v.n, "key": v.key, "name": v.name, "id_type": v.id_type, "id_masked": v.id_masked,
                          "gadgets": gadgets} for v in chosen],
        }

        def update(conn: sqlite3.Connection) -> None:
            _still(conn, visit.id, "approved")
            for v in chosen:
                changed = conn.execute(
                    "UPDATE visitors SET arrived_at = ?, received_by = ?, gadgets = ? "
                    "WHERE visit_id = ? AND n = ? AND arrived_at IS NULL",
                    (now, receiver.id, gadgets, visit.id, v.n)).rowcount
                _changed_unless(changed, visit.id)

        self._writer().change("visit.arrived", SOURCE, fields, update)
        return self.get(visit.id)

    def check_admissible(self, ref: str, *, inside: set[str], now: float | None = None, source: str = SOURCE,
                         by: str = "") -> Visit:
        """May this visit's waiting visitors be let in now? Returns the visit, or records and raises the refusal."""
        visit = self.get(ref)
        now = self.clock() if now is None else now
        self._state_refusal(visit, "admit", by, source)
        if now < visit.start:
            raise self.refuse(
                visit.id, step="admit", reason="not_yet_valid", by=by, source=source,
                detail=f"window starts {visit.window_start}",
                indonesian=f"kunjungan {visit.id} baru berlaku mulai {visit.window_start}",
                english=f"visit {visit.id} is valid only from {visit.window_start}")
        if now > visit.end:
            raise self._expired(visit, "admit", by, source)
        waiting = [v for v in visit.visitors if v.deposited]
        if not waiting:
            raise self.refuse(
                visit.id, step="admit", reason="id_not_deposited", by=by, source=source,
                detail="no visitor has an ID deposited",
                indonesian=f"belum ada tamu kunjungan {visit.id} yang menitipkan kartu identitas",
                english=f"no visitor of visit {visit.id} has deposited an ID at the desk")
        if all(v.key in inside for v in waiting):
            keys = ", ".join(v.key for v in waiting)
            raise self.refuse(
                visit.id, step="admit", reason="already_inside", by=by, source=source, detail=f"inside: {keys}",
                indonesian=f"semua tamu kunjungan {visit.id} sudah berada di dalam ({keys})",
                english=f"every arrived visitor of visit {visit.id} is already inside ({keys})")
        usable = [p for p in self._escort_people(visit) if p is not None and p.active and not p.revoked]
        if not usable:
            names = ", ".join(e.name or e.person for e in visit.escorts)
            raise self.refuse(
                visit.id, step="admit", reason="escort_inactive", by=by, source=source,
                detail=f"no usable escort among {names}",
                indonesian=f"tidak ada pendamping aktif untuk kunjungan {visit.id} ({names})",
                english=f"no assigned escort of visit {visit.id} is active ({names})")
        return visit

    def admit(self, ref: str, *, escort: str, door: str, method: str, inside: set[str],
              now: float | None = None) -> list[dict[str, Any]]:
        """An assigned escort authenticated at a door armed for the visit: each waiting visitor not inside enters.

        Writes one `access.granted` per visitor (with their first entry and escort, in the same transaction)
        and returns those events' fields.
        """
        now = self.clock() if now is None else now
        source = f"door:{door}"
        visit = self.check_admissible(ref, inside=inside, now=now, source=source, by=escort)
        try:
            person: Person | None = self.registry.get(escort)
        except UnknownPersonError:
            person = None
        if person is None or person.id not in visit.escort_ids:
            who = escort if person is None else f"{person.name} ({person.id})"
            raise self.refuse(
                visit.id, step="admit", reason="escort_not_assigned", by=escort if person is None else person.id,
                source=source, detail=f"{who} ({method}) is not among {', '.join(visit.escort_ids)}",
                indonesian=f"{who} bukan pendamping yang ditugaskan untuk kunjungan {visit.id}",
                english=f"{who} is not an assigned escort of visit {visit.id}")
        if not person.active or person.revoked:
            raise self.refuse(
                visit.id, step="admit", reason="escort_inactive", by=person.id, source=source,
                detail=f"{person.name} ({method}): {person.status}",
                indonesian=f"pendamping {person.name} ({person.status}) tidak dapat mendampingi",
                english=f"escort {person.name} is {person.status} and cannot escort")
        entered = iso_utc(now)
        granted = []
        for visitor in visit.visitors:
            if not visitor.deposited or visitor.key in inside:
                continue
            first = visitor.entered_at or entered
            fields = {
                "door": door, "direction": "in", "method": "escorted", "person": visitor.key, "name": visitor.name,
                "role": visit.kind, "visit": visit.id, "escort": person.id, "escort_name": person.name,
                "org": visit.org, "purpose": visit.purpose,
                "approved_by": visit.approved_by, "approved_at": visit.approved_at, "id_type": visitor.id_type,
                "id_masked": visitor.id_masked, "deadline": iso_utc(parse_utc(first) + visit.limit_min * 60),
            }

            def enter(conn: sqlite3.Connection, n: int = visitor.n) -> None:
                _still(conn, visit.id, "approved")
                changed = conn.execute(
                    "UPDATE visitors SET entered_at = coalesce(entered_at, ?), escort = ? "
                    "WHERE visit_id = ? AND n = ? AND arrived_at IS NOT NULL AND exited_at IS NULL",
                    (entered, person.id, visit.id, n)).rowcount
                _changed_unless(changed, visit.id)

            self._writer().change("access.granted", source, fields, enter)
            granted.append(fields)
        return granted

    def extend(self, ref: str, *, by: str, minutes: int, reason: str) -> Visit:
        """More time for an approved visit (usually one in progress); clears overstays the new limit covers."""
        visit = self.get(ref)
        officer = self._officer(visit, "extend", by)
        self._state_refusal(visit, "extend", officer.id)
        if visit.status == "expired":
            raise self._expired(visit, "extend", officer.id)
        minutes = _positive_int(minutes, "minutes")
        if not 1 <= minutes <= MAX_EXTENSION_MIN:
            raise InvalidValueError(f"an extension of {minutes} min is outside 1 to {MAX_EXTENSION_MIN} (one day). "
                                    "Fix: extend again later if more is needed")
        reason = _text(reason, "reason", 500, fix="say why the visit needs more time")
        now = self.clock()
        limit = visit.limit_min + minutes
        deadlines = {v.key: iso_utc(parse_utc(v.entered_at) + limit * 60)
                     for v in visit.visitors if v.entered_at and v.exited_at is None}
        fields = {"visit": visit.id, "by": officer.id, "by_name": officer.name, "minutes": minutes, "reason": reason,
                  "limit_min": limit, "deadlines": deadlines}

        def update(conn: sqlite3.Connection) -> None:
            changed = conn.execute("UPDATE visits SET extra_min = extra_min + ? WHERE id = ? AND status = 'approved' "
                                   "AND extra_min = ?", (minutes, visit.id, visit.extra_min)).rowcount
            _changed_unless(changed, visit.id)
            conn.execute("INSERT INTO visit_extensions (visit_id, at, by, minutes, reason) VALUES (?, ?, ?, ?, ?)",
                         (visit.id, iso_utc(now), officer.id, minutes, reason))

        self._writer().change("visit.extended", SOURCE, fields, update)
        for v in visit.visitors:
            if v.overstay_at is not None and v.key in deadlines and parse_utc(deadlines[v.key]) > now:
                self._clear_overstay(visit.id, v.n, "extended")
        return self.get(visit.id)

    def checkout(self, ref: str, *, by: str, activities: str, checklist: Sequence[Mapping[str, Any]] = (),
                 visitors: Sequence[int] | None = None, returned_by: str | None = None,
                 now: float | None = None) -> Visit:
        """Visitors leave and take their ID back; the last one out closes the visit (`self.last_event` then holds
        the committed `visit.checked_out` event, whose seq and hash the minutes cite)."""
        visit = self.get(ref)
        now = self.clock() if now is None else now
        self._state_refusal(visit, "checkout", by)
        if not any(v.arrived_at for v in visit.visitors):
            raise self.refuse(
                visit.id, step="checkout", reason="not_arrived", by=by, detail="no visitor arrived",
                indonesian=f"belum ada tamu kunjungan {visit.id} yang datang",
                english=f"nobody has arrived for visit {visit.id}")
        officer = self._active_person(by, "by")
        returner = officer if returned_by is None else self._active_person(returned_by, "returned_by")
        activities = _text(activities, "activities", 4000, lines=True,
                           fix="record what was done inside (the SOP's activity record)")
        items = _checklist(checklist)
        numbers = _visitor_numbers(visitors)
        if numbers is None:
            leaving = [v for v in visit.visitors if v.deposited]
        else:
            leaving = [visit.visitor(n) for n in numbers]
            wrong = [v.n for v in leaving if not v.deposited]
            if wrong:
                raise InvalidValueError(
                    f"visitor(s) {', '.join(map(str, wrong))} of visit {visit.id} have no ID at the desk (not arrived "
                    "or already out). Fix: check out only visitors who arrived and are not out"
                )
        if not leaving:
            raise InvalidValueError(f"no visitor of visit {visit.id} is waiting to check out")
        leaving_ns = {v.n for v in leaving}
        final = all(not v.deposited for v in visit.visitors if v.n not in leaving_ns)
        if final and visit.kind == "vendor":
            listed = {" ".join(item.split()).casefold() for item, _, _ in items}
            missing = [d for d in visit.devices if " ".join(d.split()).casefold() not in listed]
            if missing:
                names = ", ".join(missing)
                raise self.refuse(
                    visit.id, step="checkout", reason="checklist_incomplete", by=officer.id, detail=f"missing: {names}",
                    indonesian=f"daftar periksa kunjungan {visit.id} belum lengkap; belum ada hasil untuk: {names}",
                    english=f"visit {visit.id}'s exit checklist has no result for: {names}")
        at = iso_utc(now)
        fields = {
            "visit": visit.id, "by": officer.id, "by_name": officer.name, "activities": activities,
            "checklist": _checklist_dicts(items), "final": final,
            "visitors": [{"n": v.n, "key": v.key, "name": v.name, "exited_at": at, "returned_by": returner.id,
                          "returned_by_name": returner.name} for v in leaving],
        }

        def update(conn: sqlite3.Connection) -> None:
            _still(conn, visit.id, "approved")
            for v in leaving:
                changed = conn.execute(
                    "UPDATE visitors SET exited_at = ?, returned_by = ? WHERE visit_id = ? AND n = ? "
                    "AND arrived_at IS NOT NULL AND exited_at IS NULL", (at, returner.id, visit.id, v.n)).rowcount
                _changed_unless(changed, visit.id)
            left = conn.execute("SELECT count(*) FROM visitors WHERE visit_id = ? AND arrived_at IS NOT NULL "
                                "AND exited_at IS NULL", (visit.id,)).fetchone()[0]
            if (left == 0) != final:
                raise VisitChangedError(f"visit {visit.id} changed meanwhile (a visitor arrived); run it again")
            if final:
                conn.execute(
                    "UPDATE visits SET status = 'checked_out', checked_out_at = ?, checked_out_by = ?, "
                    "activities = ?, checklist = ? WHERE id = ?",
                    (at, officer.id, activities, json.dumps(_checklist_dicts(items), ensure_ascii=False), visit.id))

        pending = self._writer().append("visit.checked_out", SOURCE, fields, update)
        self.last_event = pending.result()
        for v in leaving:
            if v.overstay_at is not None:
                self._clear_overstay(visit.id, v.n, "checked_out")
        if final and visit.escort_alarm is not None:
            self.clear_escort_alarm(visit.id, reason="checked_out", source=SOURCE)
        return self.get(visit.id)

    # == watching =========================================================================================
    def overstays(self, inside: set[str], now: float | None = None) -> list[dict[str, Any]]:
        """Raise `visit.overstay` once for each visitor inside past their deadline; clear it for those who left."""
        now = self.clock() if now is None else now
        written: list[dict[str, Any]] = []
        conn = self._read()
        try:
            entered = conn.execute(
                "SELECT x.visit_id, x.n, x.name, x.entered_at, x.escort, v.kind, v.extra_min FROM visitors x "
                "JOIN visits v ON v.id = x.visit_id WHERE v.status = 'approved' AND x.entered_at IS NOT NULL "
                "AND x.exited_at IS NULL AND x.overstay_at IS NULL ORDER BY x.entered_at").fetchall()
            flagged = conn.execute("SELECT visit_id, n FROM visitors WHERE overstay_at IS NOT NULL "
                                   "ORDER BY overstay_at").fetchall()
        finally:
            conn.close()
        for visit_id, n, name, entered_at, escort, kind, extra_min in entered:
            key = f"{visit_id}.{n}"
            limit = self.config.limit_min(kind) + extra_min
            deadline = parse_utc(entered_at) + limit * 60
            if key not in inside or now <= deadline:
                continue
            fields = {"visit": visit_id, "person": key, "name": name, "visit_kind": kind, "escort": escort,
                      "since": entered_at, "deadline": iso_utc(deadline), "limit_min": limit}

            def flag(conn: sqlite3.Connection, visit_id: str = visit_id, n: int = n) -> None:
                changed = conn.execute("UPDATE visitors SET overstay_at = ? WHERE visit_id = ? AND n = ? "
                                       "AND overstay_at IS NULL AND exited_at IS NULL",
                                       (iso_utc(now), visit_id, n)).rowcount
                _changed_unless(changed, visit_id)

            if self._change_if_unchanged("visit.overstay", SOURCE, fields, flag):
                written.append(fields)
        for visit_id, n in flagged:
            if f"{visit_id}.{n}" not in inside:
                fields = self._clear_overstay(visit_id, n, "left")
                if fields is not None:
                    written.append(fields)
        return written

    def _clear_overstay(self, visit_id: str, n: int, reason: str) -> dict[str, Any] | None:
        fields = {"visit": visit_id, "person": f"{visit_id}.{n}", "reason": reason}

        def clear(conn: sqlite3.Connection) -> None:
            changed = conn.execute("UPDATE visitors SET overstay_at = NULL WHERE visit_id = ? AND n = ? "
                                   "AND overstay_at IS NOT NULL", (visit_id, n)).rowcount
            _changed_unless(changed, visit_id)

        return fields if self._change_if_unchanged("visit.overstay_cleared", SOURCE, fields, clear) else None

    def set_escort_alarm(self, ref: str, *, condition: str, escort: str, visitors_inside: Sequence[str],
                         source: str) -> Visit:
        """The escort left (or was revoked) while their visitors are inside; no event if already raised so."""
        if condition not in ALARM_CONDITIONS:
            raise InvalidValueError(f"escort alarm condition {condition!r} is not one of {', '.join(ALARM_CONDITIONS)}")
        visit = self.get(ref)
        if visit.escort_alarm == condition:
            return visit
        try:
            escort_name: str | None = self.registry.get(escort).name
        except UnknownPersonError:
            escort_name = None
        fields = {"visit": visit.id, "condition": condition, "escort": escort, "escort_name": escort_name,
                  "visitors_inside": list(visitors_inside)}
        at = iso_utc(self.clock())

        def update(conn: sqlite3.Connection) -> None:
            changed = conn.execute("UPDATE visits SET escort_alarm = ?, escort_alarm_at = ? WHERE id = ? "
                                   "AND escort_alarm IS ?", (condition, at, visit.id, visit.escort_alarm)).rowcount
            _changed_unless(changed, visit.id)

        self._change_if_unchanged("visit.escort_alarm", source, fields, update)
        return self.get(visit.id)

    def clear_escort_alarm(self, ref: str, *, reason: str, source: str) -> Visit:
        """An assigned escort is back, the visitors are out, or the visit is checked out; no event if not raised."""
        if reason not in ALARM_CLEAR_REASONS:
            raise InvalidValueError(f"escort alarm clearing reason {reason!r} is not one of "
                                    f"{', '.join(ALARM_CLEAR_REASONS)}")
        visit = self.get(ref)
        if visit.escort_alarm is None:
            return visit
        fields = {"visit": visit.id, "condition": visit.escort_alarm, "reason": reason}

        def update(conn: sqlite3.Connection) -> None:
            changed = conn.execute("UPDATE visits SET escort_alarm = NULL, escort_alarm_at = NULL WHERE id = ? "
                                   "AND escort_alarm IS ?", (visit.id, visit.escort_alarm)).rowcount
            _changed_unless(changed, visit.id)

        self._change_if_unchanged("visit.escort_alarm_cleared", source, fields, update)
        return self.get(visit.id)

    def erase_old_ids(self, now: float | None = None) -> int:
        """Erase the full ID numbers of visits that ended over `visits.id_retention_days` ago; the masks stay."""
        now = self.clock() if now is None else now
        cutoff = iso_utc(now - self.config.id_retention_days * 86400)
        conn = self._read()
        try:
            rows = conn.execute(_ERASABLE_SQL, (cutoff, cutoff, cutoff)).fetchall()
        finally:
            conn.close()
        if not rows:
            return 0
        visit_ids = [row[0] for row in rows]
        count = sum(row[1] for row in rows)

        def erase(conn: sqlite3.Connection) -> None:
            marks = ", ".join("?" * len(visit_ids))
            changed = conn.execute(f"UPDATE visitors SET id_nonce = NULL, id_cipher = NULL WHERE visit_id IN "
                                   f"({marks}) AND id_cipher IS NOT NULL", visit_ids).rowcount
            if changed != count:  # the record must say exactly what went
                raise VisitChangedError("visitors changed while erasing their ID numbers; run it again")

        writer = self._writer()
        writer.change("visit.id_erased", SOURCE, {"visits": visit_ids, "count": count}, erase)
        writer.checkpoint()  # the WAL still holds the old pages until a checkpoint truncates it
        return count

    # == plumbing =========================================================================================
    def _window(self, start: float | None, end: float | None, now: float) -> tuple[float, float]:
        start_s = now if start is None else _moment(start, "start")
        if end is None:
            local = datetime.fromtimestamp(start_s, self.zone)
            end_s = local.replace(hour=23, minute=59, second=59, microsecond=0).timestamp()
        else:
            end_s = _moment(end, "end")
        if end_s <= start_s:
            raise InvalidValueError(f"window end {iso_utc(end_s)} is not after its start {iso_utc(start_s)}. Fix: "
                                    "give an end after the start")
        if end_s <= now:
            raise InvalidValueError(f"window end {iso_utc(end_s)} is already past. Fix: give a window that has not "
                                    "ended")
        days = self.config.max_window_days
        if end_s - start_s > days * 86400:
            raise InvalidValueError(
                f"window {iso_utc(start_s)} to {iso_utc(end_s)} is over {days} days (visits.max_window_days). Fix: "
                "approve a shorter window, and a new visit for later work"
            )
        return start_s, end_s

    def _devices(self, kind: str, devices: Sequence[str]) -> list[str]:
        if isinstance(devices, str):
            raise InvalidValueError("devices is a list of device names, not one text")
        out = []
        for device in devices:
            name = _text(device, "device", 100, fix="name the device to be serviced, e.g. \"core switch rack 2\"")
            if name not in out:
                out.append(name)
        if out and kind != "vendor":
            raise InvalidValueError("devices are only for vendor visits (the devices to be serviced); a guest may "
                                    "only look. Fix: leave devices out, or make it a vendor visit")
        if len(out) > MAX_DEVICES:
            raise InvalidValueError(f"{len(out)} devices, over the {MAX_DEVICES} allowed in one visit. Fix: split the "
                                    "work into several visits")
        return out

    def _next_id(self, day: str) -> str:
        conn = self._read()
        try:
            return _next_id(conn, day)
        finally:
            conn.close()

    def _escort_people(self, visit: Visit) -> list[Person | None]:
        people = []
        for person_id in visit.escort_ids:
            try:
                people.append(self.registry.get(person_id))
            except UnknownPersonError:
                people.append(None)
        return people

    def _change_if_unchanged(self, kind: str, source: str, fields: Mapping[str, Any],
                             inside: Callable[[sqlite3.Connection], None]) -> bool:
        """A change that another caller may have made first (overstays, alarms): False when it was."""
        try:
            self._writer().change(kind, source, fields, inside)
        except VisitChangedError:
            return False
        return True

    def _writer(self) -> StoreWriter:
        if self.writer is None:
            raise DcgateError("this visit book is read-only (no store writer); changes go through the running "
                              "gateway, or stop it to work offline")
        return self.writer

    def _cipher(self) -> TemplateCipher:
        if self.cipher is None:
            raise NoTemplateKeyError("ID numbers are encrypted with the access key and none is set. Fix: set "
                                     "[access] key_file (made with dcgate key generate)")
        return self.cipher


def _visit_ref(ref: str) -> str:
    if not isinstance(ref, str):
        raise UnknownVisitError(f"a visit id is text like KJ-20261121-001, got {ref!r}")
    return ref.strip().upper()


def _next_id(conn: sqlite3.Connection, day: str) -> str:
    prefix = f"KJ-{day}-"
    last = conn.execute("SELECT max(CAST(substr(id, ?) AS INTEGER)) FROM visits WHERE id LIKE ?",
                        (len(prefix) + 1, prefix + "%")).fetchone()[0]
    return f"{prefix}{(last or 0) + 1:03d}"


def _still(conn: sqlite3.Connection, visit_id: str, status: str) -> None:
    row = conn.execute("SELECT status FROM visits WHERE id = ?", (visit_id,)).fetchone()
    if row is None or row[0] != status:
        raise VisitChangedError(f"visit {visit_id} changed meanwhile (now {row[0] if row else 'gone'}); run it again")


def _changed_unless(rowcount: int, visit_id: str) -> None:
    if rowcount != 1:
        raise VisitChangedError(f"visit {visit_id} changed meanwhile (another desk or a door); run it again")


def _checklist(items: Sequence[Mapping[str, Any]]) -> list[tuple[str, bool, str]]:
    out = []
    for i, entry in enumerate(items, start=1):
        if not isinstance(entry, Mapping) or set(entry) - {"item", "ok", "note"} or "item" not in entry \
                or "ok" not in entry:
            raise InvalidValueError(f"checklist entry {i} {entry!r} is not {{item, ok, note?}}. Fix: e.g. "
                                    "{\"item\": \"core switch\", \"ok\": true, \"note\": \"links up\"}")
        if not isinstance(entry["ok"], bool):
            raise InvalidValueError(f"checklist entry {i}: ok must be true or false, got {entry['ok']!r}")
        note = entry.get("note") or ""
        out.append((_text(entry["item"], f"checklist entry {i} item", 100), entry["ok"],
                    "" if not note else _text(note, f"checklist entry {i} note", 500)))
    if len(out) > MAX_DEVICES * 2:
        raise InvalidValueError(f"{len(out)} checklist entries, over the {MAX_DEVICES * 2} allowed")
    return out


_VISIT_COLUMNS = (
    "id, kind, org, purpose, devices, expected_min, window_start, window_end, requested_at, requested_by, status, "
    "approved_by, approved_at, escorts, rejected_by, rejected_at, reject_reason, extra_min, checked_out_at, "
    "checked_out_by, activities, checklist, escort_alarm, escort_alarm_at"
)
_VISITOR_COLUMNS = (
    "n, name, id_type, id_masked, id_cipher IS NOT NULL, arrived_at, received_by, gadgets, entered_at, escort, "
    "exited_at, returned_by, overstay_at"
)
# a visit ended at its check-out, its rejection, or the end of a window nobody entered in
_ERASABLE_SQL = """
    SELECT v.id, (SELECT count(*) FROM visitors x WHERE x.visit_id = v.id AND x.id_cipher IS NOT NULL) AS held
    FROM visits v
    WHERE ((v.status = 'checked_out' AND v.checked_out_at < ?)
        OR (v.status = 'rejected' AND v.rejected_at < ?)
        OR (v.status IN ('requested', 'approved') AND v.window_end < ?
            AND NOT EXISTS (SELECT 1 FROM visitors x WHERE x.visit_id = v.id AND x.entered_at IS NOT NULL)))
      AND held > 0
    ORDER BY v.id
"""
