"""The access logbook (*buku log akses*): door and people events read back from the event store.

Read-only: the logbook *is* the hash-chained `events` table, so there is nothing to keep in step.
Filters run in SQLite (json_extract over the payload), so a year of readings is never loaded to
find one person's entries. Text and CSV put Indonesian first and English second, for the staff
who keep the room.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.store.database import open_for_reading

LOGBOOK_KINDS: tuple[str, ...] = (
    "access.granted", "access.denied", "access.pending", "access.exit", "access.overstay",
    "door.opened", "door.closed", "door.held_open", "door.forced", "door.exit_button",
    "person.added", "person.activated", "person.deactivated", "person.revoked",
    "biometric.enrolled", "biometric.erased",
    # guests and vendors (docs/visits.md): the SOP's buku log akses holds their steps too
    "visit.requested", "visit.approved", "visit.rejected", "visit.arrived", "visit.refused", "visit.admit_armed",
    "visit.extended", "visit.overstay", "visit.overstay_cleared", "visit.escort_alarm",
    "visit.escort_alarm_cleared", "visit.checked_out", "visit.id_viewed", "visit.id_erased",
)

CSV_COLUMNS: tuple[str, ...] = (
    "waktu/time", "pintu/door", "kejadian/event", "arah/direction", "orang/person", "nama/name", "NIP",
    "peran/role", "metode/method", "alasan/reason", "jarak/distance", "keyakinan/confidence", "seq", "id",
    "kunjungan/visit", "pendamping/escort", "keperluan/purpose",
)

DEFAULT_ZONE = "Asia/Jakarta"


def default_zone() -> tzinfo:
    """WIB. A Pi image without tzdata still gets the right clock: Jakarta has no daylight saving."""
    try:
        return ZoneInfo(DEFAULT_ZONE)
    except ZoneInfoNotFoundError:
        return timezone(timedelta(hours=7), "WIB")


@dataclass(frozen=True, slots=True)
class PersonRef:
    """Someone an entry is about: as the event recorded them, gaps filled from the `people` table."""

    id: str
    name: str | None = None
    nip: str | None = None
    role: str | None = None

    def label(self) -> str:
        if self.name and self.nip:
            return f"{self.name} ({self.nip})"
        if self.name:
            return f"{self.name} [{self.id}]"
        return self.id


@dataclass(frozen=True, slots=True, eq=False)
class LogEntry:
    seq: int
    id: str
    ts: str  # UTC, as stored
    kind: str
    source: str
    door: str | None
    people: tuple[PersonRef, ...]  # one for most kinds; everyone marked out for access.exit
    direction: str | None
    method: str | None
    reason: str | None
    distance: float | None
    confidence: float | None
    fields: dict[str, Any]

    @property
    def person(self) -> str | None:
        return self.people[0].id if self.people else None

    def local_time(self, tz: tzinfo | None = None) -> datetime:
        return datetime.fromisoformat(self.ts.replace("Z", "+00:00")).astimezone(tz or default_zone())

    def as_dict(self, tz: tzinfo | None = None) -> dict[str, Any]:
        return {
            "time": self.local_time(tz).isoformat(timespec="milliseconds"), "ts": self.ts, "seq": self.seq,
            "id": self.id, "kind": self.kind, "source": self.source, "door": self.door,
            "people": [{"id": p.id, "name": p.name, "nip": p.nip, "role": p.role} for p in self.people],
            "direction": self.direction, "method": self.method, "reason": self.reason,
            "distance": self.distance, "confidence": self.confidence, "fields": self.fields,
        }


# -- query ---------------------------------------------------------------------------------------

# nullif: a pruned env.reading has an empty payload, and SQLite may test json before kind
_BODY = "nullif(payload, '')"
_PERSON_IN_EXIT = (
    f"EXISTS (SELECT 1 FROM json_each({_BODY}, '$.persons') AS p WHERE "
    "(CASE p.type WHEN 'object' THEN json_extract(p.value, '$.person') ELSE p.value END) "
    "IN (SELECT value FROM json_each(?)))"
)


def query(
    db_path: Path,
    *,
    person: str | None = None,
    door: str | None = None,
    since: str | None = None,
    until: str | None = None,
    kinds: Sequence[str] = LOGBOOK_KINDS,
    visit: str | None = None,
) -> list[LogEntry]:
    """Logbook entries, oldest first. `person` is an id, a NIP or a full name (any case);
    `door` a door name; `since` (inclusive) and `until` (exclusive) UTC text as from `parse_time`."""
    db = open_for_reading(db_path)
    conn = db.conn
    try:
        has_people = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'people'").fetchone() is not None
        where = ["kind IN (SELECT value FROM json_each(?))"]
        params: list[Any] = [json.dumps(list(kinds))]
        if person is not None:
            ids = json.dumps(_resolve_person(conn, person) if has_people else [person])
            where.append(f"(json_extract({_BODY}, '$.person') IN (SELECT value FROM json_each(?)) "
                         f"OR (kind = 'access.exit' AND {_PERSON_IN_EXIT}))")
            params += [ids, ids]
        if visit is not None:  # the visit's own steps and its visitors' entries (person = "VISIT.N")
            wanted = visit.strip().upper()
            where.append(f"(json_extract({_BODY}, '$.visit') = ? OR json_extract({_BODY}, '$.person') LIKE ?)")
            params += [wanted, wanted + ".%"]
        if door is not None:
            where.append(f"(json_extract({_BODY}, '$.door') = ? OR source = ?)")
            params += [door, f"door:{door}"]
        if since:
            where.append("ts >= ?")
            params.append(since)
        if until:
            where.append("ts < ?")
            params.append(until)
        rows = conn.execute(
            f"SELECT seq, id, ts, kind, source, payload FROM events WHERE {' AND '.join(where)} ORDER BY seq",
            params,
        ).fetchall()
        decoded = [(row, json.loads(row[5]) if row[5] else {}) for row in rows]
        known = _people(conn, {pid for _row, f in decoded for pid in _person_ids(f)}) if has_people else {}
    finally:
        db.close()
    return [_entry(row, fields, known) for row, fields in decoded]


def _resolve_person(conn: Any, person: str) -> list[str]:
    """The ids `person` may mean: itself, and whoever has it as NIP (spaces ignored) or as full name."""
    found = conn.execute(
        "SELECT id FROM people WHERE id = ? OR replace(nip, ' ', '') = ? OR lower(trim(name)) = lower(?)",
        (person, person.replace(" ", ""), person.strip()),
    ).fetchall()
    return [person, *(row[0] for row in found if row[0] != person)]


def _people(conn: Any, ids: set[str]) -> dict[str, PersonRef]:
    if not ids:
        return {}
    rows = conn.execute(
        "SELECT id, name, nip, role FROM people WHERE id IN (SELECT value FROM json_each(?))",
        (json.dumps(sorted(ids)),),
    )
    return {row[0]: PersonRef(*row) for row in rows}


def _person_ids(fields: dict[str, Any]) -> list[str]:
    ids = [fields["person"]] if isinstance(fields.get("person"), str) else []
    for item in fields.get("persons") or ():
        pid = item.get("person") if isinstance(item, dict) else item
        if isinstance(pid, str):
            ids.append(pid)
    return ids


def _entry(row: tuple[Any, ...], fields: dict[str, Any], known: dict[str, PersonRef]) -> LogEntry:
    seq, event_id, ts, kind, source, _payload = row
    people = []
    for pid in _person_ids(fields):
        table = known.get(pid, PersonRef(pid))
        # the event's own record wins: it is what was true then (a name may have changed since)
        own = fields if pid == fields.get("person") else {}
        people.append(PersonRef(pid, own.get("name") or table.name, own.get("nip") or table.nip,
                                own.get("role") or table.role))
    door = fields.get("door") if isinstance(fields.get("door"), str) else None
    if door is None and source.startswith("door:"):
        door = source.removeprefix("door:")
    return LogEntry(
        seq=seq, id=event_id, ts=ts, kind=kind, source=source, door=door, people=tuple(people),
        direction=fields.get("direction"), method=fields.get("method"), reason=fields.get("reason"),
        distance=_number(fields.get("distance")), confidence=_number(fields.get("confidence")), fields=fields,
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# -- one line per entry --------------------------------------------------------------------------

REASONS: dict[str, str] = {
    "unknown_face": "wajah tidak dikenal / unknown face",
    "unknown_finger": "sidik jari tidak dikenal / unknown fingerprint",
    "inactive": "orang nonaktif / person inactive",
    "revoked": "akses dicabut / access revoked",
    "outside_schedule": "di luar jadwal / outside schedule",
    "liveness_failed": "uji keaslian gagal / liveness check failed",
    "second_factor_timeout": "faktor kedua tidak datang / second factor timed out",
    "second_factor_mismatch": "kedua faktor beda orang / the two factors name different people",
    "anti_passback": "sudah di dalam / already inside (anti-passback)",
    "sensor_error": "sensor bermasalah / sensor error",
}
REASONS.update({  # a visit step refused (docs/visits.md)
    "not_approved": "belum disetujui / not approved",
    "rejected": "ditolak pejabat / rejected by the officer",
    "expired": "izin kedaluwarsa / approval expired",
    "not_yet_valid": "belum waktunya / window not started",
    "already_decided": "sudah diputuskan / already decided",
    "not_officer": "bukan pejabat penanggung jawab / not an officer",
    "escort_not_assigned": "bukan pendamping yang ditugaskan / escort not assigned",
    "escort_inactive": "pendamping nonaktif / escort inactive",
    "escort_denied": "pendamping ditolak pintu / escort refused at the door",
    "id_not_deposited": "identitas belum dititipkan / ID not deposited",
    "already_inside": "pengunjung sudah di dalam / visitor already inside",
    "checked_out": "kunjungan sudah selesai / visit checked out",
    "not_arrived": "pengunjung belum datang / visitor not arrived",
    "gadgets_required": "gawai tamu belum dititipkan / guest gadgets not deposited",
    "checklist_incomplete": "daftar periksa belum lengkap / checklist incomplete",
    "admit_timeout": "pendamping tidak datang / no escort came",
    "door_busy": "pintu menunggu kunjungan lain / door armed for another visit",
})
METHODS = {"face": "wajah/face", "finger": "sidik jari/finger", "face+finger": "wajah+sidik jari/face+finger",
           "escorted": "didampingi/escorted"}
OPEN_REASONS = {
    "grant": "akses diberikan / access granted", "exit_button": "tombol keluar / exit button",
    "forced": "dibobol / forced", "at_boot": "terbuka saat gateway mulai / open at gateway start",
}
LABELS = {
    "access.pending": "MENUNGGU/PENDING",
    "access.exit": "KELUAR/EXIT",
    "access.overstay": "MELEBIHI BATAS/OVERSTAY",
    "door.opened": "PINTU TERBUKA / DOOR OPENED",
    "door.closed": "PINTU TERTUTUP / DOOR CLOSED",
    "door.held_open": "PINTU TERTAHAN TERBUKA / DOOR HELD OPEN",
    "door.forced": "PINTU DIBOBOL / DOOR FORCED",
    "door.exit_button": "TOMBOL KELUAR / EXIT BUTTON",
    "person.added": "ORANG DITAMBAHKAN / PERSON ADDED",
    "person.activated": "DIAKTIFKAN / ACTIVATED",
    "person.deactivated": "DINONAKTIFKAN / DEACTIVATED",
    "person.revoked": "AKSES DICABUT / REVOKED",
    "biometric.enrolled": "BIOMETRIK DIDAFTARKAN / BIOMETRIC ENROLLED",
    "biometric.erased": "BIOMETRIK DIHAPUS / BIOMETRIC ERASED",
    "visit.requested": "KUNJUNGAN DIAJUKAN / VISIT REQUESTED",
    "visit.approved": "KUNJUNGAN DISETUJUI / VISIT APPROVED",
    "visit.rejected": "KUNJUNGAN DITOLAK / VISIT REJECTED",
    "visit.arrived": "IDENTITAS DITITIPKAN / ID DEPOSITED",
    "visit.refused": "LANGKAH DITOLAK / STEP REFUSED",
    "visit.admit_armed": "PINTU MENUNGGU PENDAMPING / DOOR WAITING FOR ESCORT",
    "visit.extended": "WAKTU DIPERPANJANG / TIME EXTENDED",
    "visit.overstay": "PENGUNJUNG MELEBIHI BATAS / VISITOR OVERSTAY",
    "visit.overstay_cleared": "BATAS WAKTU PULIH / OVERSTAY CLEARED",
    "visit.escort_alarm": "ALARM PENDAMPING / ESCORT ALARM",
    "visit.escort_alarm_cleared": "ALARM PENDAMPING PULIH / ESCORT ALARM CLEARED",
    "visit.checked_out": "KUNJUNGAN SELESAI / VISIT CHECKED OUT",
    "visit.id_viewed": "NOMOR IDENTITAS DILIHAT / ID NUMBER VIEWED",
    "visit.id_erased": "NOMOR IDENTITAS DIHAPUS / ID NUMBERS ERASED",
}


def entry_line(entry: LogEntry, tz: tzinfo | None = None) -> str:
    """e.g. `2026-11-21 08:01:02  main    MASUK/IN   Budi Santoso (199001012015011001)  wajah/face 0.41`."""
    f = entry.fields
    who = ", ".join(p.label() for p in entry.people)
    if entry.kind == "access.granted":
        label = "KELUAR/OUT" if entry.direction == "out" else "MASUK/IN"
        parts = [f"{label:<10} {who}", _method(entry), *_visit_details(entry)]
    elif entry.kind.startswith("visit."):
        parts = [LABELS.get(entry.kind, entry.kind), *_visit_details(entry)]
    elif entry.kind == "access.denied":
        reason = entry.reason or "?"
        label = "DITOLAK/DENIED" + (" (keluar/out)" if entry.direction == "out" else "")
        parts = [f"{label} {reason} ({REASONS.get(reason, reason)})", who, _method(entry)]
    elif entry.kind == "access.pending":
        waiting = METHODS.get(f.get("waiting_for") or "", f.get("waiting_for") or "?")
        parts = [LABELS[entry.kind], who, _method(entry),
                 f"menunggu/waiting for {waiting}" + (f" ≤ {f['within_s']:g} s" if _number(f.get("within_s")) else "")]
    elif entry.kind == "access.exit":
        parts = [LABELS[entry.kind], OPEN_REASONS.get(f.get("via") or "", f.get("via") or "")]
        if entry.people:
            stays = _stays(f)
            parts.append(", ".join(p.label() + (f" lama/stay {_hours(stays[p.id])}" if p.id in stays else "")
                                   for p in entry.people))
        else:
            candidates = [c.get("person") if isinstance(c, dict) else c for c in f.get("candidates") or ()]
            parts.append("tanpa nama / unattributed"
                         + (f"; kandidat/candidates: {', '.join(map(str, candidates))}" if candidates else ""))
    elif entry.kind == "access.overstay":
        since = f.get("since")
        parts = [LABELS[entry.kind], who]
        if isinstance(since, str):
            parts.append(f"di dalam sejak/inside since {_local(since, tz)}")
        if _number(f.get("stay_s")) is not None:
            parts.append(f"lama/stay {_hours(f['stay_s'])}"
                         + (f" (maks/max {f['max_stay_h']:g} jam/h)" if _number(f.get("max_stay_h")) else ""))
    elif entry.kind == "door.opened":
        parts = [LABELS[entry.kind], OPEN_REASONS.get(entry.reason or "", entry.reason or ""), who, _method(entry)]
    elif entry.kind == "door.closed":
        parts = [LABELS[entry.kind], _seconds("terbuka/open", f.get("open_s"))]
        if f.get("held_open"):
            parts.append("sempat tertahan / was held open")
        if f.get("forced"):
            parts.append("setelah dibobol / after forced entry")
    elif entry.kind == "door.held_open":
        parts = [LABELS[entry.kind], _seconds("terbuka/open", f.get("open_s")),
                 _seconds("batas/limit", f.get("held_open_s")), who]
    elif entry.kind == "door.exit_button":
        parts = [LABELS[entry.kind], _seconds("buka/unlock", f.get("unlock_s"))]
    elif entry.kind in LABELS:
        parts = [LABELS[entry.kind], who, *_admin_details(entry)]
    else:  # a kind the caller asked for that the logbook has no words for
        parts = [entry.kind, " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in f.items())]
    when = entry.local_time(tz).strftime("%Y-%m-%d %H:%M:%S")
    return f"{when}  {entry.door or '-':<6}  " + "  ".join(p for p in parts if p)


def _method(entry: LogEntry) -> str:
    if not entry.method:
        return ""
    text = METHODS.get(entry.method, entry.method)
    if entry.distance is not None:
        text += f" {entry.distance:.2f}"
    if entry.confidence is not None:
        text += f" {entry.confidence:g}"
    if _number(entry.fields.get("slot")) is not None:
        text += f" (slot {entry.fields['slot']})"
    return text


def _visit_details(entry: LogEntry) -> list[str]:
    """The visit an entry belongs to, in a few words: never the full ID number (the events do not hold it)."""
    f = entry.fields
    out = []
    if f.get("visit"):
        out.append(f"kunjungan/visit {f['visit']}")
    if entry.kind == "access.granted" and f.get("escort"):
        role = {"guest": "tamu/guest", "vendor": "vendor"}.get(str(f.get("role")), "")
        out += [role, f"pendamping/escort {f.get('escort_name') or f['escort']}"]
        if f.get("purpose"):
            out.append(f"keperluan/purpose: {f['purpose']}")
    if entry.kind == "visit.requested":
        names = ", ".join(f"{v.get('name')} ({v.get('id_type')} {v.get('id_masked')})" for v in f.get("visitors") or ())
        out += [str(f.get("kind") or ""), f"{f.get('org') or ''}: {names}", f"keperluan/purpose: {f.get('purpose')}"]
    if entry.kind == "visit.approved" and f.get("escorts"):
        out.append("pendamping/escort " + ", ".join(str(e.get("name") or e.get("person")) for e in f["escorts"]))
    if entry.kind == "visit.extended":
        out.append(f"+{f.get('minutes')} min")
    if entry.kind in ("visit.overstay", "visit.overstay_cleared") and f.get("name"):
        out.append(str(f["name"]))
    if entry.kind.startswith("visit.escort_alarm"):
        out.append(str(f.get("condition") or ""))
    if entry.kind == "visit.checked_out" and f.get("activities"):
        out.append(f"kegiatan/activities: {f['activities']}")
    if entry.kind == "visit.refused":
        reason = str(f.get("reason") or "?")
        out += [f"{f.get('step') or ''}: {reason} ({REASONS.get(reason, reason)})", str(f.get("detail") or "")]
    if entry.kind.startswith("visit.") and entry.kind != "visit.refused":
        by = f.get("by_name") or f.get("by") or f.get("received_by_name")
        if by:
            out.append(f"oleh/by {by}")
        if f.get("reason"):
            out.append(f"alasan/reason: {f['reason']}")
    return [part for part in out if part]


def _admin_details(entry: LogEntry) -> list[str]:
    f = entry.fields
    out = []
    if entry.kind == "person.added" and f.get("role"):
        out.append(f"peran/role {f['role']}")
    if entry.kind.startswith("biometric."):
        out.append(METHODS.get(entry.method or "", entry.method or ""))
        if f.get("samples"):
            out.append(f"sampel/samples {f['samples']}")
        if f.get("slot") is not None:
            out.append(f"slot {f['slot']}")
        if f.get("slots"):
            out.append("slot " + ", ".join(map(str, f["slots"])))
        if isinstance(f.get("sensors"), dict):
            out.append("sensor: " + ", ".join(f"{k}={v}" for k, v in f["sensors"].items()))
    if entry.kind == "person.revoked" and f.get("erased") is not None:
        out.append(f"templat dihapus/templates erased {f['erased']}")
    if f.get("by"):
        out.append(f"oleh/by {f['by']}")
    if entry.reason:
        out.append(f"alasan/reason: {entry.reason}")
    return out


def _stays(fields: dict[str, Any]) -> dict[str, float]:
    """stay_s per person: a {person: seconds} map, or carried inside each `persons` item."""
    stays = fields.get("stay_s")
    found = {k: v for k, v in stays.items() if _number(v) is not None} if isinstance(stays, dict) else {}
    for item in fields.get("persons") or ():
        if isinstance(item, dict) and isinstance(item.get("person"), str) and _number(item.get("stay_s")) is not None:
            found[item["person"]] = item["stay_s"]
    return found


def _hours(seconds: float) -> str:
    minutes = int(seconds) // 60
    return f"{minutes // 60}:{minutes % 60:02d}"


def _seconds(label: str, value: Any) -> str:
    return f"{label} {value:.0f} s" if _number(value) is not None else ""


def _local(ts: str, tz: tzinfo | None) -> str:
    try:
        moment = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return ts
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(tz or default_zone()).strftime("%Y-%m-%d %H:%M:%S")


# -- CSV -----------------------------------------------------------------------------------------

def csv_row(entry: LogEntry, tz: tzinfo | None = None) -> list[str]:
    """One row in CSV_COLUMNS order; several people (an exit) are joined with '; '."""

    def joined(values: Iterable[str | None]) -> str:
        return "; ".join(v or "" for v in values)

    return [
        entry.local_time(tz).isoformat(timespec="milliseconds"), entry.door or "", entry.kind,
        entry.direction or "", joined(p.id for p in entry.people), joined(p.name for p in entry.people),
        joined(p.nip for p in entry.people), joined(p.role for p in entry.people), entry.method or "",
        entry.reason or "", "" if entry.distance is None else f"{entry.distance:g}",
        "" if entry.confidence is None else f"{entry.confidence:g}", str(entry.seq), entry.id,
        str(entry.fields.get("visit") or ""), str(entry.fields.get("escort_name") or entry.fields.get("escort") or ""),
        str(entry.fields.get("purpose") or ""),
    ]


def write_csv(entries: Iterable[LogEntry], out: TextIO, tz: tzinfo | None = None) -> None:
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    writer.writerows(csv_row(entry, tz) for entry in entries)
