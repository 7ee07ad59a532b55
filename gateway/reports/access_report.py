"""The access logbook (*buku log akses pusat data*) for a period: each stay, refusals, door alarms.

A stay is an entry paired with its exit, exactly as the gateway itself decides who is inside: the
logbook's presence events are replayed through `access.presence.Presence` (exit readers, exit-button
presses matched to parties, check-out at the desk, a second entry meaning the first exit went
unseen). Staying inside across the period's edges is shown: a stay belongs to every period it
overlaps, with its real entry and exit times. Visitors appear with their visit key and only the
masked ID number the events carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from access.logbook import METHODS, REASONS, LogEntry, query
from access.presence import Presence
from gateway.doors import PRESENCE_KINDS
from gateway.reports.csv_out import DASH, NO_DATA, Period, duration_text, parse_ts
from gateway.reports.pdf import Column, ReportPDF
from gateway.store.database import open_for_reading

ROLE = {"staff": "staf", "officer": "staf (pejabat)", "admin": "staf (admin)", "guest": "tamu", "vendor": "vendor"}
ROLE_EN = {"staff": "staff", "officer": "staff", "admin": "staff", "guest": "guest", "vendor": "vendor"}
VISITORS = ("guest", "vendor")
STEPS = {"request": "pengajuan / request", "approve": "persetujuan / approval", "reject": "penolakan / rejection",
         "arrive": "titip identitas / ID deposit", "admit": "masuk / admission", "extend": "perpanjangan / extension",
         "checkout": "check-out"}
UNSEEN = "tidak tercatat (masuk lagi) / not recorded (entered again)"
ALERTS = {"door.forced": "pintu dibobol / door forced", "door.held_open": "pintu tertahan terbuka / door held open"}
_REPORT_KINDS = (*PRESENCE_KINDS, "visit.overstay", "access.denied", "visit.refused", *ALERTS)


@dataclass
class Stay:
    key: str  # person id, or visit key "KJ-20261012-001.1"
    name: str
    nip: str | None
    role: str
    door_in: str
    entered: datetime
    method: str
    entry_seq: int
    visit: str | None = None
    escort: str | None = None
    purpose: str | None = None
    org: str | None = None
    id_text: str | None = None  # a visitor's ID type and masked number, as the event holds it
    exited: datetime | None = None
    door_out: str | None = None
    exit_how: str | None = None  # None while inside
    exit_seq: int | None = None
    closed: datetime | None = None  # when the stay was known to be over; None: still inside
    overstay: bool = False

    @property
    def inside(self) -> bool:
        return self.closed is None

    @property
    def duration_s(self) -> float | None:
        return None if self.exited is None else (self.exited - self.entered).total_seconds()


@dataclass
class Refusal:
    at: datetime
    door: str | None
    who: str
    reason: str
    method: str
    seq: int
    step: str | None = None  # a visit step (visit.refused); None: the door refused


@dataclass
class AccessReport:
    period: Period
    now: datetime
    stays: list[Stay]
    refusals: list[Refusal]
    alerts: list[tuple[datetime, str, str]]  # (time, door, what)
    overstays: int

    @property
    def has_data(self) -> bool:
        return bool(self.stays or self.refusals or self.alerts)


def build(db_path: Path, period: Period, now: datetime) -> AccessReport:
    # from the start of the logbook: who was inside when the period began matters
    entries = query(db_path, kinds=_REPORT_KINDS, until=period.end_ts)
    names = _names(db_path)
    presence = Presence()
    stays: list[Stay] = []
    open_stays: dict[str, Stay] = {}
    refusals: list[Refusal] = []
    alerts: list[tuple[datetime, str, str]] = []
    overstays = 0
    start, end = period.start_ts, period.end_ts
    for entry in entries:
        at = parse_ts(entry.ts)
        in_period = start <= entry.ts < end
        if entry.kind in ("access.overstay", "visit.overstay"):
            stay = open_stays.get(str(entry.fields.get("person")))
            if stay is not None:
                stay.overstay = True
            overstays += in_period
        if entry.kind not in PRESENCE_KINDS:
            if in_period and entry.kind in ("access.denied", "visit.refused"):
                refusals.append(_refusal(entry, at, names))
            elif in_period and entry.kind in ALERTS:
                alerts.append((at, entry.door or DASH, ALERTS[entry.kind]))
            continue
        _replay(presence, entry, at, open_stays)
        if entry.kind == "access.granted" and entry.direction == "in" and entry.people:
            stay = _stay(entry, at)
            open_stays[stay.key] = stay
            stays.append(stay)
    if open_stays:  # exits after the period's end still count: a stay across midnight shows its real exit
        for entry in query(db_path, kinds=PRESENCE_KINDS, since=end):
            _replay(presence, entry, parse_ts(entry.ts), open_stays)
            if not open_stays:
                break
    # a stay belongs to every period it overlaps (one that went unseen: until it was known to be over)
    shown = [s for s in stays if s.entered < period.end and (s.closed is None or s.closed >= period.start)]
    return AccessReport(period, now, shown, refusals, alerts, overstays)


def _replay(presence: Presence, entry: LogEntry, at: datetime, open_stays: dict[str, Stay]) -> None:
    """Apply one presence event; close the stays it ended (an exit, or a new entry: the old exit went unseen)."""
    before = {stay.person: stay for stay in presence.inside()}
    presence.apply({"kind": entry.kind, "ts": entry.ts, "source": entry.source, "fields": entry.fields})
    for key, was in before.items():
        current = presence.get(key)
        if current is was or key not in open_stays:
            continue
        stay = open_stays.pop(key)
        stay.closed = at
        if current is None:
            stay.exited, stay.door_out, stay.exit_seq, stay.exit_how = at, entry.door, entry.seq, _exit_how(entry)
        else:
            stay.exit_how = UNSEEN


def _names(db_path: Path) -> dict[str, str]:
    """Person id -> name, for a visit step refused to someone (its event names them by id only)."""
    db = open_for_reading(db_path)
    try:
        if not db["people"].exists():
            return {}
        return {row[0]: row[1] for row in db.conn.execute("SELECT id, name FROM people")}
    finally:
        db.close()


def _stay(entry: LogEntry, at: datetime) -> Stay:
    f = entry.fields
    person = entry.people[0]
    id_text = " ".join(str(f[k]) for k in ("id_type", "id_masked") if f.get(k)) or None
    return Stay(key=person.id, name=person.name or person.id, nip=person.nip, role=str(f.get("role") or person.role
                                                                                      or ""),
                door_in=entry.door or DASH, entered=at, method=METHODS.get(entry.method or "", entry.method or DASH),
                entry_seq=entry.seq, visit=f.get("visit") if f.get("escort") else None,
                escort=f.get("escort_name") or f.get("escort"), purpose=f.get("purpose"), org=f.get("org"),
                id_text=id_text)


def _exit_how(entry: LogEntry) -> str:
    if entry.kind == "access.granted":
        return f"{METHODS.get(entry.method or '', entry.method or '')} (pembaca keluar / exit reader)"
    if entry.kind == "access.exit":
        return "tombol keluar / exit button" if entry.fields.get("via") == "exit_button" else str(entry.fields.get(
            "via") or "keluar / exit")
    return "check-out di meja / desk check-out"


def _refusal(entry: LogEntry, at: datetime, names: dict[str, str]) -> Refusal:
    f = entry.fields
    reason = str(entry.reason or f.get("reason") or "?")
    if entry.kind == "visit.refused":
        by = str(f.get("by") or DASH)
        step = str(f.get("step") or "")
        return Refusal(at, entry.door, f"{names.get(by, by)} (kunjungan / visit {f.get('visit') or DASH})",
                       REASONS.get(reason, reason), DASH, entry.seq, STEPS.get(step, step))
    who = entry.people[0].label() if entry.people else "tidak dikenal / unknown"
    method = METHODS.get(entry.method or "", entry.method or DASH)
    if entry.direction == "out":
        method += " (keluar / out)"
    return Refusal(at, entry.door, who, REASONS.get(reason, reason), method, entry.seq)


# -- words -------------------------------------------------------------------------------------------

def _identity(stay: Stay) -> str:
    if stay.role in VISITORS:
        return "\n".join(part for part in (stay.key, stay.id_text) if part)
    return stay.nip or stay.key


def _exit_text(report: AccessReport, stay: Stay) -> str:
    if stay.exited is not None:
        return f"{report.period.when(stay.exited)}\n{stay.exit_how}"
    return stay.exit_how or "masih di dalam / still inside"


def _duration(report: AccessReport, stay: Stay) -> str:
    if stay.duration_s is not None:
        return duration_text(stay.duration_s)
    if stay.inside:
        return f"\u2265 {duration_text((report.now - stay.entered).total_seconds())}"
    return DASH


def render_pdf(report: AccessReport, pdf: ReportPDF) -> int:
    p = report.period
    zone = p.zone_label()
    counts = {kind: sum(1 for s in report.stays if ROLE_EN.get(s.role) == kind) for kind in ("staff", "guest",
                                                                                               "vendor")}
    pdf.heading("Ringkasan periode", "Summary of the period")
    pdf.grid([Column("Perihal", "item", 0.75), Column("Jumlah", "count", 0.25, "R")], [
        ["Kunjungan staf / staff stays", str(counts["staff"])], ["Tamu / guests", str(counts["guest"])],
        ["Vendor / vendors", str(counts["vendor"])],
        ["Masih di dalam / still inside", str(sum(1 for s in report.stays if s.inside))],
        ["Melebihi batas waktu / overstays", str(report.overstays)],
        ["Ditolak di pintu / refused at the door", str(sum(1 for r in report.refusals if r.step is None))],
        ["Langkah kunjungan ditolak / visit steps refused", str(sum(1 for r in report.refusals if r.step))],
        ["Pintu dibobol atau tertahan / door forced or held open", str(len(report.alerts))]], width=0.5)
    if not report.has_data:
        pdf.para(f"{NO_DATA.capitalize()} akses untuk periode ini. / No access recorded in this period.", style="B")
    pdf.heading("Masuk dan keluar ruang server", "entries and exits")
    pdf.grid([Column("No", "no.", 0.03, "R"), Column("Nama", "name", 0.11),
              Column("NIP / kunci kunjungan", "NIP / visit key, ID", 0.125), Column("Jenis", "kind", 0.06),
              Column("Pintu", "door", 0.045), Column(f"Masuk ({zone})", "entry", 0.1),
              Column(f"Keluar ({zone})", "exit", 0.15), Column("Lama", "duration", 0.08),
              Column("Keperluan", "purpose", 0.12), Column("Pendamping", "escort", 0.08),
              Column("Metode masuk", "method", 0.11)],
             [[str(i), s.name + (" (melebihi batas / overstay)" if s.overstay else ""), _identity(s),
               ROLE.get(s.role, s.role), s.door_in, p.when(s.entered), _exit_text(report, s), _duration(report, s),
               (s.purpose or DASH) + (f"\n{s.org}" if s.org else ""), s.escort or DASH, s.method]
              for i, s in enumerate(report.stays, 1)],
             marked=[s.inside or s.overstay for s in report.stays])
    pdf.heading("Akses ditolak", "refusals")
    pdf.grid([Column("No", "no.", 0.04, "R"), Column(f"Waktu ({zone})", "time", 0.14), Column("Pintu", "door", 0.07),
              Column("Siapa", "who", 0.25), Column("Alasan", "reason", 0.3), Column("Metode / langkah", "method / step",
                                                                                   0.2)],
             [[str(i), p.when(r.at), r.door or DASH, r.who, r.reason, r.step or r.method]
              for i, r in enumerate(report.refusals, 1)])
    pdf.heading("Pintu dibobol / tertahan terbuka", "door forced / held open")
    pdf.grid([Column(f"Waktu ({zone})", "time", 0.3), Column("Pintu", "door", 0.2), Column("Kejadian", "event", 0.5)],
             [[p.when(at), door, what] for at, door, what in report.alerts], marked=[True] * len(report.alerts))
    pdf.heading("Catatan", "notes", keep=20)
    pdf.note(f"Waktu dalam {zone} ({p.zone_name}). Kunjungan yang melewati batas periode tampil dengan waktu masuk "
             "dan keluar sebenarnya. Nomor identitas pengunjung hanya ditampilkan tersamar. Keperluan staf tidak "
             "dicatat oleh pintu. Baris berwarna: masih di dalam atau melebihi batas waktu.",
             "Local times. A stay across the period's edge shows its real entry and exit. Visitors' ID numbers are "
             "masked. Tinted rows: still inside or over the time allowed.")
    pdf.signatures()
    return len(report.stays) + len(report.refusals) + len(report.alerts)
