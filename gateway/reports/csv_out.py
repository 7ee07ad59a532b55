"""What both outputs of a report share: the period, local times, numbers in words; and the CSV writer.

Times are stored in UTC; the SOP's cards are read on the wall clock of the room, so every day and
time in a report is in `[access] timezone` (WIB by default). A local day is a calendar day of that
zone: a reading at 23:30 UTC belongs to the next WIB day.

CSV: plain UTF-8 (no BOM), RFC 4180 (comma, CRLF, quotes where needed), one header row in Bahasa
Indonesia with English in parentheses, times in local ISO 8601 with their offset, decimals with a dot
(machine-readable; the PDF uses the Indonesian comma).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from gateway.errors import InvalidValueError

if TYPE_CHECKING:  # the cards import this module for their words; their CSV writers live here
    from gateway.reports.access_report import AccessReport
    from gateway.reports.env_card import DayRow, EnvCard
    from gateway.reports.power_card import PowerCard

MONTHS = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus", "September", "Oktober",
          "November", "Desember")
MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
             "November", "December")
DAYS = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")
ZONE_NAMES = {"Asia/Jakarta": "WIB", "Asia/Pontianak": "WIB", "Asia/Makassar": "WITA", "Asia/Jayapura": "WIT"}
DASH = "\u2014"  # what an empty field shows in a PDF
NO_DATA = "tidak ada data"
NO_DATA_EN = "no data"

_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


def parse_ts(text: str) -> datetime:
    """The store's UTC text ("2026-10-05T02:00:00.000Z") -> an aware datetime."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        raise InvalidValueError(
            f"waktu {text!r} tidak dikenali; tulis seperti 2026-10-01T00:00:00.000Z / time {text!r} is not the "
            "store's UTC form, e.g. 2026-10-01T00:00:00.000Z") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def store_ts(moment: datetime) -> str:
    """An aware datetime -> the store's UTC text, which compares correctly with event timestamps."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def zone_for(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidValueError(
            f"zona waktu {name!r} tidak dikenal; pakai nama IANA seperti Asia/Jakarta / time zone {name!r} is not "
            "known; use an IANA name such as Asia/Jakarta") from None


@dataclass(frozen=True)
class Period:
    """What a report covers: [start, end) in UTC, shown and cut into days in `zone`."""

    start: datetime
    end: datetime
    zone_name: str
    month: str | None = None  # "2026-10" for a monthly card

    @classmethod
    def for_month(cls, month: str, zone_name: str) -> Period:
        """A calendar month of the site's zone: October in WIB starts at 2026-09-30T17:00Z."""
        match = _MONTH.fullmatch(str(month).strip())
        if not match:
            raise InvalidValueError(
                f"bulan {month!r} tidak valid; tulis YYYY-MM, mis. 2026-10 / month {month!r} is not YYYY-MM, "
                "e.g. 2026-10")
        year, mon = int(match[1]), int(match[2])
        zone = zone_for(zone_name)
        nyear, nmon = (year + 1, 1) if mon == 12 else (year, mon + 1)
        start = datetime(year, mon, 1, tzinfo=zone).astimezone(UTC)
        end = datetime(nyear, nmon, 1, tzinfo=zone).astimezone(UTC)
        return cls(start, end, zone_name, f"{year:04d}-{mon:02d}")

    @classmethod
    def between(cls, since: str, until: str, zone_name: str) -> Period:
        start, end = parse_ts(since), parse_ts(until)
        zone_for(zone_name)
        if not start < end:
            raise InvalidValueError(
                f"awal periode {since} tidak sebelum akhirnya {until}; tukar keduanya / the period's start {since} "
                f"is not before its end {until}; swap them")
        return cls(start, end, zone_name)

    @property
    def zone(self) -> tzinfo:
        return zone_for(self.zone_name)

    @property
    def start_ts(self) -> str:
        return store_ts(self.start)

    @property
    def end_ts(self) -> str:
        return store_ts(self.end)

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)

    def days(self) -> list[date]:
        """Every local calendar day the period touches, in order."""
        first = self.local(self.start).date()
        last = self.local(self.end - timedelta(microseconds=1)).date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]

    def day_start(self, day: date) -> datetime:
        """Local midnight of `day` in UTC (clipped to the period)."""
        moment = datetime(day.year, day.month, day.day, tzinfo=self.zone).astimezone(UTC)
        return min(max(moment, self.start), self.end)

    def zone_label(self, moment: datetime | None = None) -> str:
        if self.zone_name in ZONE_NAMES:
            return ZONE_NAMES[self.zone_name]
        offset = self.local(moment or self.start).utcoffset() or timedelta(0)
        minutes = int(offset.total_seconds()) // 60
        sign, minutes = ("+" if minutes >= 0 else "-"), abs(minutes)
        return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"

    def label(self) -> str:
        """"Oktober 2026", or "1 Oktober 2026 00.00 – 15 Oktober 2026 00.00 WIB"."""
        if self.month:
            year, mon = map(int, self.month.split("-"))
            return f"{MONTHS[mon - 1]} {year}"
        return f"{self.when(self.start)} \u2013 {self.when(self.end)} {self.zone_label()}"

    def label_en(self) -> str:
        if self.month:
            year, mon = map(int, self.month.split("-"))
            return f"{MONTHS_EN[mon - 1]} {year}"
        return f"{self.local(self.start):%Y-%m-%d %H:%M} to {self.local(self.end):%Y-%m-%d %H:%M}"

    # -- words and numbers in the site's zone --------------------------------------------------
    def when(self, moment: datetime | None) -> str:
        """"5 Oktober 2026 09.00" (no zone: the page says which)."""
        if moment is None:
            return DASH
        local = self.local(moment)
        return f"{date_text(local.date())} {local:%H.%M}"

    def short(self, moment: datetime | None) -> str:
        """"05/10 09.00" inside the period's year, else "05/10/2027 09.00"."""
        if moment is None:
            return DASH
        local = self.local(moment)
        if local.year == self.local(self.start).year:
            return f"{local:%d/%m %H.%M}"
        return f"{local:%d/%m/%Y %H.%M}"

    def iso(self, moment: datetime | None) -> str:
        """Local ISO 8601 with the offset, for CSV: "2026-10-05T09:00:00+07:00"."""
        return "" if moment is None else self.local(moment).isoformat(timespec="seconds")


def date_text(day: date, *, weekday: bool = False) -> str:
    text = f"{day.day} {MONTHS[day.month - 1]} {day.year}"
    return f"{DAYS[day.weekday()]}, {text}" if weekday else text


def num(value: float | None, digits: int = 1) -> str:
    """21.46 -> "21,5" (Indonesian decimal comma); None -> "—"."""
    if value is None:
        return DASH
    text = f"{value:.{digits}f}"
    return text.replace(".", ",")


def csv_num(value: float | None, digits: int = 2) -> str:
    """For CSV: a dot, trailing zeros dropped ("21.5", "45"); None -> ""."""
    if value is None:
        return ""
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def duration_text(seconds: float | None) -> str:
    """8100 -> "2 jam 15 menit"; 600 -> "10 menit"; 90000 -> "1 hari 1 jam"."""
    if seconds is None:
        return DASH
    total = max(0, round(seconds / 60))
    days, rest = divmod(total, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days} hari" if days else "", f"{hours} jam" if hours else "", f"{minutes} menit" if minutes else ""]
    return " ".join(p for p in parts if p) or "0 menit"


def minutes_of(seconds: float | None) -> str:
    """For CSV: a duration in whole minutes ("" when unknown)."""
    return "" if seconds is None else str(round(seconds / 60))


def write_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> tuple[bytes, int]:
    """RFC 4180 CSV bytes (UTF-8, no BOM) and the number of data rows."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    count = 0
    for row in rows:
        writer.writerow(["" if cell is None else cell for cell in row])
        count += 1
    return out.getvalue().encode("utf-8"), count


def _table(columns: Sequence[tuple[str, str]]) -> tuple[list[list[Any]], Any]:
    """Rows, and an `add(**cells)` that puts cells named by the columns' keys in their place."""
    rows: list[list[Any]] = []

    def add(**cells: Any) -> None:
        rows.append([cells.get(key, "") for key, _ in columns])

    return rows, add


ENV_COLUMNS = (
    ("section", "bagian (section)"), ("probe", "probe (probe)"), ("date", "tanggal (date)"),
    ("start", "mulai (start)"), ("end", "selesai (end)"), ("readings", "jumlah baca (readings)"),
    ("t_min", "suhu min (temperature min) °C"), ("t_mean", "suhu rerata (temperature mean) °C"),
    ("t_max", "suhu maks (temperature max) °C"), ("h_min", "kelembaban min (humidity min) %"),
    ("h_mean", "kelembaban rerata (humidity mean) %"), ("h_max", "kelembaban maks (humidity max) %"),
    ("outside", "menit di luar standar (minutes outside standard)"),
    ("failed", "menit gagal baca (failed-read minutes)"), ("nodata", "menit tanpa data (no-data minutes)"),
    ("quantity", "besaran (quantity)"), ("condition", "kondisi (condition)"),
    ("worst", "nilai terburuk (worst value)"), ("minutes", "durasi menit (duration minutes)"),
    ("note", "keterangan (note)"),
)


def env_csv(card: EnvCard) -> tuple[bytes, int]:
    """One row per probe and local day, a total per probe, then excursions (one per quantity) and alarms."""
    from gateway.reports.env_card import note, verdict

    p = card.period
    rows, add = _table(ENV_COLUMNS)

    def values(d: DayRow) -> dict[str, Any]:
        return {"readings": d.readings, "t_min": csv_num(d.t.low), "t_mean": csv_num(d.t.mean),
                "t_max": csv_num(d.t.high), "h_min": csv_num(d.h.low), "h_mean": csv_num(d.h.mean),
                "h_max": csv_num(d.h.high), "outside": "" if d.outside_min is None else d.outside_min,
                "failed": d.failed_min, "nodata": d.nodata_min}

    for probe in card.probes:
        for d in probe.days:
            assert d.day is not None
            add(section="harian (daily)", probe=probe.name, date=d.day.isoformat(), start=p.iso(p.day_start(d.day)),
                end=p.iso(p.day_start(d.day + timedelta(days=1))), note=note(d), **values(d))
        add(section="total (period total)", probe=probe.name, start=p.iso(p.start), end=p.iso(p.end),
            note=verdict(probe), **values(probe.total))
        for e in probe.excursions:
            for quantity, (side, value) in e.worst.items():
                add(section="ekskursi (excursion)", probe=probe.name, date=p.local(e.start).date().isoformat(),
                    start=p.iso(e.start), end=p.iso(e.end), quantity=quantity, condition=side, worst=csv_num(value),
                    minutes=e.minutes)
        for a in probe.alarms:
            add(section="alarm (alarm)", probe=probe.name, date=p.local(a.at).date().isoformat(), start=p.iso(a.at),
                end=p.iso(a.cleared), quantity=a.quantity, condition=f"{a.condition} {a.worst_severity}",
                worst="" if a.quantity == "probe" else csv_num(a.value),
                minutes=minutes_of((a.cleared - a.at).total_seconds() if a.cleared else None),
                note="" if a.cleared else "belum pulih (active)")
    if not rows:
        add(section="keterangan (note)", note=f"{NO_DATA} ({NO_DATA_EN})")
    return write_csv([title for _, title in ENV_COLUMNS], rows)


POWER_COLUMNS = (
    ("section", "bagian (section)"), ("device", "perangkat (device)"), ("date", "tanggal (date)"),
    ("start", "mulai (start)"), ("end", "selesai (end)"), ("minutes", "durasi menit (duration minutes)"),
    ("battery", "baterai terendah % (lowest battery)"), ("load", "beban tertinggi % (highest load)"),
    ("fuel_first", "BBM awal % (fuel first)"), ("fuel_last", "BBM akhir % (fuel last)"),
    ("fuel_min", "BBM terendah % (fuel lowest)"), ("fuel_used", "BBM terpakai % (fuel used)"),
    ("litres", "BBM liter (fuel litres)"), ("from", "dari (from)"), ("to", "ke (to)"),
    ("events", "jumlah kejadian (events)"), ("note", "keterangan (note)"),
)


def power_csv(card: PowerCard) -> tuple[bytes, int]:
    """Outages, UPS per day, generator runs, fuel per day, refuels, ATS, refuel alarms, other events."""
    from gateway.reports.power_card import number, switch_words

    p = card.period
    rows, add_row = _table(POWER_COLUMNS)

    def add(section: str, moment: datetime | None = None, day: date | None = None, **cells: Any) -> None:
        when = day or (p.local(moment).date() if moment is not None else None)
        cells.update(section=section, date=when.isoformat() if when else "")
        if moment is not None:
            cells.setdefault("start", p.iso(moment))
        add_row(**cells)

    for o in card.outages:
        add("pemadaman (outage)", o.start, device=o.ups, end=p.iso(o.end), minutes=minutes_of(o.duration_s),
            battery=csv_num(o.lowest_battery), load=csv_num(o.highest_load),
            note="berlangsung (ongoing)" if o.end is None else "" if o.end_known else "akhir paling lambat (latest)")
    for d in sorted(card.ups_days.values(), key=lambda d: d.day):
        add("ups harian (UPS daily)", day=d.day, device=card.ups_name or "", events=d.events,
            battery=csv_num(min(d.values)) if d.values else "", load=csv_num(max(d.loads)) if d.loads else "",
            note="dari kejadian saat berubah (events on change)")
    for r in card.runs:
        how = ("berlangsung (running)" if r.end_seen else "akhir tidak teramati (end not seen)") if r.end is None \
            else "" if r.start_known else "sudah berjalan saat gateway mulai (running at gateway start)"
        add("genset (generator run)", r.start, device="generator", end=p.iso(r.end), minutes=minutes_of(r.duration_s),
            fuel_first=csv_num(r.fuel_start), fuel_last=csv_num(r.fuel_end), fuel_used=csv_num(r.fuel_used_pct),
            litres=csv_num(r.fuel_used_litres), note=how)
    for d in sorted(card.fuel_days.values(), key=lambda d: d.day):
        add("bbm harian (fuel daily)", day=d.day, device="generator", fuel_first=csv_num(d.values[0]),
            fuel_last=csv_num(d.values[-1]), fuel_min=csv_num(min(d.values)), events=len(d.values))
    for r in card.refuels:
        f = r.fields
        add("pengisian bbm (refuel)", r.at, device="generator", fuel_first=csv_num(number(f.get("from_pct"))),
            fuel_last=csv_num(number(f.get("to_pct"))), litres=csv_num(number(f.get("added_litres"))),
            note=f"+{csv_num(number(f.get('added_pct')))} %")
    for s in card.switches:
        add("ats (ATS)", s.at, device="ats", note=switch_words(s)[2], **{
            "from": str(s.fields.get("from") or ""), "to": str(s.fields.get("to") or s.fields.get("position") or "")})
    for a in card.alarms:
        add("perlu isi bbm (refuel needed)", a.at, device="generator", end=p.iso(a.until),
            fuel_min=csv_num(number(a.fields.get("fuel_pct"))), note=str(a.fields.get("reason") or ""))
    for o in card.others:
        add("kejadian lain (other event)", o.at, device=str(o.fields.get("ups") or o.fields.get("reader") or ""),
            battery=csv_num(number(o.fields.get("battery_charge_pct"))), load=csv_num(number(o.fields.get("load_pct"))),
            note=o.kind)
    if not rows:
        add("keterangan (note)", note=f"{NO_DATA} ({NO_DATA_EN})")
    return write_csv([title for _, title in POWER_COLUMNS], rows)


ACCESS_COLUMNS = (
    ("section", "bagian (section)"), ("name", "nama (name)"), ("nip", "NIP atau kunci kunjungan (NIP or visit key)"),
    ("kind", "jenis (kind)"), ("role", "peran (role)"), ("visit", "kunjungan (visit)"),
    ("org", "instansi (organisation)"), ("id", "identitas tersamar (masked ID)"), ("door_in", "pintu masuk (door in)"),
    ("entered", "waktu masuk (entry time)"), ("method", "metode masuk (entry method)"),
    ("door_out", "pintu keluar (door out)"), ("exited", "waktu keluar (exit time)"), ("how", "cara keluar (how out)"),
    ("minutes", "lama menit (minutes inside)"), ("purpose", "keperluan (purpose)"), ("escort", "pendamping (escort)"),
    ("reason", "alasan (reason)"), ("seq_in", "seq masuk (entry seq)"), ("seq_out", "seq keluar (exit seq)"),
    ("note", "keterangan (note)"),
)


def access_csv(report: AccessReport) -> tuple[bytes, int]:
    """One row per stay, then refusals and door alarms."""
    from gateway.reports.access_report import ROLE_EN, VISITORS

    p = report.period
    rows, add = _table(ACCESS_COLUMNS)
    for s in report.stays:
        add(section="kunjungan (stay)", name=s.name, nip=s.key if s.role in VISITORS else (s.nip or s.key),
            kind=ROLE_EN.get(s.role, s.role), role=s.role, visit=s.visit or "", org=s.org or "", id=s.id_text or "",
            door_in=s.door_in, entered=p.iso(s.entered), method=s.method, door_out=s.door_out or "",
            exited=p.iso(s.exited), how=s.exit_how or "masih di dalam (still inside)",
            minutes=minutes_of(s.duration_s), purpose=s.purpose or "", escort=s.escort or "", seq_in=s.entry_seq,
            seq_out=s.exit_seq or "", note="melebihi batas (overstay)" if s.overstay else "")
    for r in report.refusals:
        add(section="penolakan (refusal)", name=r.who, door_in=r.door or "", entered=p.iso(r.at),
            method=r.step or r.method, reason=r.reason, seq_in=r.seq)
    for at, door, what in report.alerts:
        add(section="pintu (door alarm)", door_in=door, entered=p.iso(at), note=what)
    if not rows:
        add(section="keterangan (note)", note=f"{NO_DATA} ({NO_DATA_EN})")
    return write_csv([title for _, title in ACCESS_COLUMNS], rows)
