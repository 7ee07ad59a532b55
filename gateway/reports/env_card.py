"""The *kartu kontrol suhu & kelembaban*: a month of room temperature and humidity, per probe and local day.

Built from per-minute aggregates (`gateway.readings.readings(every="minute")`), so pruned raw
readings count as well; where only hourly aggregates are left (older than `readings_minute_days`)
the day's values are still shown, but minutes outside the standard cannot be told and show "t/a".

Definitions (also printed as the card's footnote):
- A minute is *outside the standard* when the mean temperature or the mean humidity of that minute
  is outside the probe's limits (`Config.thresholds_for(probe)`: temperature_low_c..temperature_high_c,
  humidity_low_pct..humidity_high_pct, limits themselves inside). For a probe read less often than
  once a minute, a reading stands for the minutes up to its interval (`interval_s`).
- A *failed* minute has no value because the probe reported a fault (from `env.probe_failed` to
  `env.probe_recovered`) or its readings carried no value; a *no-data* minute has no reading at all
  (gateway stopped, probe not yet fitted). Minutes after the report was made are not counted.
- An *excursion* is a run of consecutive outside minutes; its worst value is the most extreme single
  reading beyond the violated limit.
- The daily mean is weighted by readings (each minute's mean times its count).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlite_utils

from gateway.config.models import Config
from gateway.readings import readings
from gateway.reports.csv_out import (
    DASH,
    DAYS,
    NO_DATA,
    Period,
    duration_text,
    num,
    parse_ts,
)
from gateway.reports.pdf import Column, ReportPDF, range_text
from gateway.store.events import iter_events

QUANTITY = {"temperature": "suhu", "humidity": "kelembaban", "rate": "laju suhu", "probe": "probe"}
CONDITION = {"high": "tinggi", "low": "rendah", "rising_fast": "naik cepat", "falling_fast": "turun cepat",
             "stale": "data berhenti", "fault": "gangguan"}
SEVERITY = {"warning": "peringatan", "critical": "kritis"}


@dataclass
class Stat:
    """Lowest, highest and reading-weighted mean of one quantity."""

    low: float | None = None
    high: float | None = None
    total: float = 0.0
    n: int = 0

    def add(self, low: Any, mean: Any, high: Any, count: int) -> None:
        if mean is not None:
            self.merge(Stat(low, high, mean * count, count))

    def merge(self, other: Stat) -> None:
        self.low, self.high = _low(self.low, other.low), _high(self.high, other.high)
        self.total, self.n = self.total + other.total, self.n + other.n

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None


@dataclass
class DayRow:
    day: date | None  # None: the period's total
    readings: int = 0
    t: Stat = field(default_factory=Stat)  # temperature, °C
    h: Stat = field(default_factory=Stat)  # relative humidity, %
    outside_min: int | None = 0  # None: only hourly aggregates, outside minutes cannot be told
    failed_min: int = 0
    nodata_min: int = 0
    expected_min: int = 0

    def merge(self, other: DayRow) -> None:
        self.readings += other.readings
        self.t.merge(other.t)
        self.h.merge(other.h)
        self.outside_min = None if self.outside_min is None or other.outside_min is None \
            else self.outside_min + other.outside_min
        self.failed_min += other.failed_min
        self.nodata_min += other.nodata_min
        self.expected_min += other.expected_min


@dataclass
class Excursion:
    start: datetime
    end: datetime
    worst: dict[str, tuple[str, float]]  # quantity -> ("high" | "low", most extreme reading)

    @property
    def minutes(self) -> int:
        return round((self.end - self.start).total_seconds() / 60)


@dataclass
class AlarmRow:
    at: datetime
    alarm_id: str
    quantity: str
    condition: str
    severity: str
    value: float | None
    limit: float | None
    cleared: datetime | None = None
    worst_severity: str | None = None


@dataclass
class ProbeCard:
    name: str
    configured: bool
    limits: tuple[float, float, float, float]  # temperature low, high; humidity low, high
    interval_s: float
    days: list[DayRow]
    total: DayRow
    excursions: list[Excursion] = field(default_factory=list)
    alarms: list[AlarmRow] = field(default_factory=list)


@dataclass
class EnvCard:
    period: Period
    probes: list[ProbeCard]

    @property
    def has_data(self) -> bool:
        return any(p.total.readings or p.total.failed_min or p.alarms for p in self.probes)


def build(db: sqlite_utils.Database, config: Config, period: Period, now: datetime) -> EnvCard:
    names = [p.name for p in config.probes]
    seen = _probes_seen(db, period)
    probes = names + sorted(seen - set(names))
    faults = _fault_intervals(db, period)
    alarms = _alarms(db, period)
    return EnvCard(period, [_probe(db, config, period, now, name, name in names, faults.get(name, []),
                                   alarms.get(name, [])) for name in probes])


def _probes_seen(db: sqlite_utils.Database, period: Period) -> set[str]:
    """Probes with readings in the period, pruned ones (only in the aggregates) included."""
    rows = db.conn.execute(
        "SELECT json_extract(payload, '$.probe') FROM events WHERE kind = 'env.reading' AND payload != '' "
        "AND ts >= :s AND ts < :u UNION SELECT probe FROM readings_minute WHERE minute >= substr(:s, 1, 16) "
        "AND minute < substr(:u, 1, 16) UNION SELECT probe FROM readings_hour WHERE hour >= substr(:s, 1, 13) "
        "AND hour < substr(:u, 1, 13)", {"s": period.start_ts, "u": period.end_ts})
    return {row[0] for row in rows if isinstance(row[0], str)}


def _fault_intervals(db: sqlite_utils.Database, period: Period) -> dict[str, list[tuple[datetime, datetime | None]]]:
    """Per probe: (failed at, recovered at or None) from env.probe_failed / env.probe_recovered."""
    out: dict[str, list[tuple[datetime, datetime | None]]] = {}
    open_at: dict[str, datetime] = {}
    for event in iter_events(db, kind="env.probe_*", until=period.end_ts):
        probe = event.fields.get("probe") if event.payload else None
        if not isinstance(probe, str):
            continue
        if event.kind == "env.probe_failed":
            open_at.setdefault(probe, parse_ts(event.ts))
        elif event.kind == "env.probe_recovered" and probe in open_at:
            out.setdefault(probe, []).append((open_at.pop(probe), parse_ts(event.ts)))
    for probe, since in open_at.items():
        out.setdefault(probe, []).append((since, None))
    return out


def _alarms(db: sqlite_utils.Database, period: Period) -> dict[str, list[AlarmRow]]:
    """env.alarm.raised in the period, with their clear time and worst severity (found in any later event)."""
    rows: dict[str, AlarmRow] = {}
    by_probe: dict[str, list[AlarmRow]] = {}
    for event in iter_events(db, kind="env.alarm.*"):
        f = event.fields
        alarm_id = f.get("alarm_id")
        if event.kind == "env.alarm.raised" and period.start_ts <= event.ts < period.end_ts:
            row = AlarmRow(parse_ts(event.ts), str(alarm_id), str(f.get("quantity")), str(f.get("condition")),
                           str(f.get("severity")), _float(f.get("value")), _float(f.get("limit")))
            row.worst_severity = row.severity
            rows[str(alarm_id)] = row
            by_probe.setdefault(str(f.get("probe")), []).append(row)
        elif str(alarm_id) in rows:
            row = rows[str(alarm_id)]
            if event.kind == "env.alarm.cleared" and row.cleared is None:
                row.cleared = parse_ts(event.ts)
            elif event.kind == "env.alarm.severity_changed" and f.get("severity") == "critical":
                row.worst_severity = "critical"
    return by_probe


def _probe(db: sqlite_utils.Database, config: Config, period: Period, now: datetime, name: str, configured: bool,
           faults: list[tuple[datetime, datetime | None]], alarms: list[AlarmRow]) -> ProbeCard:
    limits = config.thresholds_for(name)
    band = (limits.temperature_low_c, limits.temperature_high_c, limits.humidity_low_pct, limits.humidity_high_pct)
    interval = next((float(getattr(p, "interval_s", 60.0)) for p in config.probes if p.name == name), 60.0)
    span = max(1, math.ceil(interval / 60))  # minutes one reading stands for
    total = int((period.end - period.start).total_seconds() // 60)
    horizon = max(0, min(total, int((min(now, period.end) - period.start).total_seconds() // 60)))
    days = [DayRow(day) for day in period.days()]
    starts = [int((period.day_start(d.day) - period.start).total_seconds() // 60) for d in days if d.day]

    def day_of(index: int) -> DayRow:
        return days[bisect.bisect_right(starts, index) - 1]

    values: dict[int, tuple[float | None, float | None]] = {}  # minute -> (temperature mean, humidity mean)
    extremes: dict[int, tuple[Any, ...]] = {}  # minute -> (t_min, t_max, h_min, h_max)
    hourly: set[int] = set()  # minutes known only through an hourly aggregate
    failed: set[int] = set()
    for row in readings(db, name, since=period.start_ts, until=period.end_ts, every="minute"):
        moment = datetime.fromisoformat(row["period"] + (":00" if len(row["period"]) == 16 else ":00:00"))
        index = int((moment.replace(tzinfo=UTC) - period.start).total_seconds() // 60)
        if not 0 <= index < total:  # the aggregate tiers match the end by prefix: its own minute is not ours
            continue
        t = (row["temperature_min_c"], row["temperature_mean_c"], row["temperature_max_c"])
        h = (row["humidity_min_pct"], row["humidity_mean_pct"], row["humidity_max_pct"])
        day = day_of(index)
        day.readings += row["count"]
        day.t.add(*t, row["count"])
        day.h.add(*h, row["count"])
        good = t[1] is not None or h[1] is not None
        if len(row["period"]) == 13:
            (hourly if good else failed).update(range(index, min(index + 60, total)))
        elif good:
            values[index] = (t[1], h[1])
            extremes[index] = (t[0], t[2], h[0], h[2])
        else:
            failed.add(index)  # readings without a value are failed reads, never a value
    for since, until in faults:
        first = max(0, int((since - period.start).total_seconds() // 60))
        last = horizon if until is None else min(horizon, int((until - period.start).total_seconds() // 60))
        failed.update(range(first, last))

    excursions: list[Excursion] = []
    run: Excursion | None = None
    source = -1  # the minute whose reading stands for the current one
    for index in range(horizon):
        day = day_of(index)
        day.expected_min += 1
        if index in values:
            source = index
        if index in hourly:  # an hour's aggregate cannot tell which minutes were outside; a fault still shows
            day.outside_min = None
            day.failed_min += index in failed
            run = None
            continue
        if source < 0 or index - source >= span:
            if index in failed:
                day.failed_min += 1
            else:
                day.nodata_min += 1
            run = None
            continue
        worst = _outside(values[source], extremes[source], band)
        if not worst:
            run = None
            continue
        if day.outside_min is not None:
            day.outside_min += 1
        moment = period.start + timedelta(minutes=index)
        if run is None:
            run = Excursion(moment, moment, {})
            excursions.append(run)
        run.end = moment + timedelta(minutes=1)
        for quantity, (side, value) in worst.items():
            before = run.worst.get(quantity)
            if before is None or (value > before[1] if side == "high" else value < before[1]):
                run.worst[quantity] = (side, value)

    total_row = DayRow(None)
    for day in days:
        total_row.merge(day)
    return ProbeCard(name, configured, band, interval, days, total_row, excursions, alarms)


def _outside(value: tuple[float | None, float | None], extremes: tuple[Any, ...],
             band: tuple[float, float, float, float]) -> dict[str, tuple[str, float]]:
    """Which quantities of this minute are outside the standard, each with its most extreme reading."""
    out: dict[str, tuple[str, float]] = {}
    for quantity, mean, low_value, high_value, low, high in (
            ("temperature", value[0], extremes[0], extremes[1], band[0], band[1]),
            ("humidity", value[1], extremes[2], extremes[3], band[2], band[3])):
        if mean is None:
            continue
        if mean > high:
            out[quantity] = ("high", high_value if high_value is not None else mean)
        elif mean < low:
            out[quantity] = ("low", low_value if low_value is not None else mean)
    return out


def _low(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else min(a, b)


def _high(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else max(a, b)


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# -- words -------------------------------------------------------------------------------------------

def _worst_text(excursion: Excursion, unit_t: str = "\u00b0C") -> str:
    parts = []
    for quantity, (side, value) in excursion.worst.items():
        unit = unit_t if quantity == "temperature" else "%"
        parts.append(f"{QUANTITY[quantity]} {num(value)} {unit} ({'maks' if side == 'high' else 'min'})")
    return "; ".join(parts)


def note(day: DayRow) -> str:
    notes = []
    if day.outside_min:
        notes.append("di luar standar")
    if day.failed_min:
        notes.append("gangguan sensor")
    if day.outside_min is None:
        notes.append("data per jam")
    if not day.readings and not day.failed_min:
        notes.append(NO_DATA if day.expected_min else "belum berlangsung")  # a day still to come
    return ", ".join(notes)


def _minutes(value: int | None) -> str:
    return "t/a" if value is None else str(value)


def _day_label(day: date) -> str:
    return f"{DAYS[day.weekday()][:3]}, {day.day}"


def _summary_cells(total: DayRow) -> list[str]:
    return [str(total.readings), num(total.t.low), num(total.t.mean), num(total.t.high), num(total.h.low),
            num(total.h.mean), num(total.h.high), _minutes(total.outside_min), str(total.failed_min),
            str(total.nodata_min)]


VALUE_COLUMNS = [Column("Jumlah baca", "readings", 0.07, "R"),
                 Column("min", "temp. min", 0.065, "R"), Column("rerata", "temp. mean", 0.07, "R"),
                 Column("maks", "temp. max", 0.065, "R"),
                 Column("min", "RH min", 0.065, "R"), Column("rerata", "RH mean", 0.07, "R"),
                 Column("maks", "RH max", 0.065, "R"),
                 Column("di luar standar", "outside standard", 0.08, "R"),
                 Column("gagal baca", "failed reads", 0.07, "R"), Column("tanpa data", "no data", 0.07, "R")]
VALUE_GROUPS = [("", 1), ("Suhu (\u00b0C) / temperature", 3), ("Kelembaban (%) / humidity", 3),
                ("Menit / minutes", 3)]


def render_pdf(card: EnvCard, pdf: ReportPDF) -> int:
    """Lay the card out on `pdf`; returns the number of data rows (days × probes, excursions, alarms)."""
    period = card.period
    zone = period.zone_label()
    rows_written = 0
    pdf.heading("Ringkasan periode", "Summary of the period")
    if not card.probes:
        pdf.empty("tidak ada probe terpasang dan tidak ada data", "no probe configured and no data")
    summary = [[p.name, *_summary_cells(p.total), str(len(p.excursions)), str(len(p.alarms))] for p in card.probes]
    pdf.grid([Column("Probe", "probe", 0.1), *VALUE_COLUMNS, Column("Ekskursi", "excursions", 0.085, "R"),
              Column("Alarm", "alarms", 0.06, "R")], summary, marked=[bool(p.total.outside_min) for p in card.probes],
             groups=[("", 1), *VALUE_GROUPS, ("", 1), ("", 1)])
    if card.probes and not card.has_data:
        pdf.para(f"{NO_DATA.capitalize()} untuk periode ini: tidak ada pembacaan yang tersimpan. / No readings "
                 "are stored for this period.", style="B")
    for number, probe in enumerate(card.probes):
        t_low, t_high, h_low, h_high = probe.limits
        if number:  # one probe per page; the first follows the summary
            pdf.add_page()
        pdf.heading(f"Probe {probe.name}", "probe" + ("" if probe.configured else " (tidak ada di konfigurasi / "
                                                                                   "not in the configuration)"))
        pdf.para(f"Standar / standard: suhu {range_text(t_low, t_high, chr(176) + 'C')}, kelembaban "
                 f"{range_text(h_low, h_high, '%')} \u00b7 selang baca / interval {num(probe.interval_s, 0)} s \u00b7 "
                 f"{verdict(probe)}")
        pdf.ln(1)
        if probe.total.readings:
            labels = [str(d.day.day) for d in probe.days if d.day]
            pdf.daily_chart("Suhu harian", "daily temperature", "\u00b0C", labels, [d.t.low for d in probe.days],
                            [d.t.mean for d in probe.days], [d.t.high for d in probe.days], (t_low, t_high))
            pdf.daily_chart("Kelembaban harian", "daily relative humidity", "%", labels, [d.h.low for d in probe.days],
                            [d.h.mean for d in probe.days], [d.h.high for d in probe.days], (h_low, h_high))
        pdf.heading("Pembacaan harian", f"daily readings ({zone})", keep=40)
        daily = [[_day_label(d.day), *_summary_cells(d)[:10], note(d)] for d in probe.days if d.day]
        pdf.grid([Column("Tanggal", "date", 0.08), *VALUE_COLUMNS, Column("Keterangan", "note", 0.13)],
                 [*daily, ["Total", *_summary_cells(probe.total), ""]],
                 marked=[bool(d.outside_min) for d in probe.days] + [False],
                 groups=[("", 1), *VALUE_GROUPS, ("", 1)])
        rows_written += len(daily)
        pdf.heading("Ekskursi (di luar standar)", "excursions outside the standard")
        pdf.grid([Column("No", "no.", 0.05, "R"), Column(f"Mulai ({zone})", "start", 0.21),
                  Column(f"Selesai ({zone})", "end", 0.21), Column("Durasi", "duration", 0.13),
                  Column("Nilai terburuk", "worst value", 0.4)],
                 [[str(i), period.when(e.start), period.when(e.end), duration_text(e.minutes * 60), _worst_text(e)]
                  for i, e in enumerate(probe.excursions, 1)])
        rows_written += len(probe.excursions)
        pdf.heading("Alarm yang muncul", "alarms raised")
        pdf.grid([Column(f"Muncul ({zone})", "raised", 0.17), Column("Besaran", "quantity", 0.12),
                  Column("Kondisi", "condition", 0.12), Column("Tingkat", "severity", 0.12),
                  Column("Nilai / batas", "value / limit", 0.14, "R"), Column(f"Pulih ({zone})", "cleared", 0.17),
                  Column("Lama", "duration", 0.16)],
                 [[period.when(a.at), QUANTITY.get(a.quantity, a.quantity), CONDITION.get(a.condition, a.condition),
                   SEVERITY.get(a.worst_severity or a.severity, a.severity),
                   DASH if a.quantity == "probe" else f"{num(a.value)} / {num(a.limit)}",
                   period.when(a.cleared) if a.cleared else "belum pulih / active",
                   duration_text((a.cleared - a.at).total_seconds()) if a.cleared else ""] for a in probe.alarms])
        rows_written += len(probe.alarms)
    pdf.heading("Catatan", "notes", keep=25)
    pdf.note(
        f"Hari dan jam dalam {zone} ({period.zone_name}). Menit di luar standar: menit yang rata-rata suhu atau "
        "kelembabannya di luar batas standar probe itu (batas sendiri masih di dalam); untuk probe yang dibaca "
        "lebih jarang dari sekali per menit, satu pembacaan berlaku selama selang bacanya. Menit gagal baca: "
        "probe melaporkan gangguan (env.probe_failed s.d. env.probe_recovered) atau pembacaan tanpa nilai. Menit "
        "tanpa data: tidak ada pembacaan sama sekali (gateway mati, probe belum terpasang). Ekskursi: menit di luar "
        "standar yang berurutan; nilai terburuk adalah pembacaan paling ekstrem. Rata-rata ditimbang per pembacaan. "
        "t/a: hanya agregat per jam yang tersisa. Nilai tidak pernah diisi perkiraan.",
        "Local days and times. Minutes outside: the minute's mean temperature or humidity is outside the probe's "
        "limits (the limits themselves are inside); a slower probe's reading stands for its interval. Failed "
        "minutes: the probe reported a fault or a reading had no value. No-data minutes: no reading at all. An "
        "excursion is a run of consecutive minutes outside; its worst value is the most extreme reading. Means are "
        "weighted by readings. t/a: only hourly aggregates are left. Nothing is ever estimated.")
    pdf.signatures()
    return rows_written


def verdict(probe: ProbeCard) -> str:
    t = probe.total
    if not t.readings:
        return f"{NO_DATA} / no data"
    if t.outside_min:
        return (f"{t.outside_min} menit di luar standar dalam {len(probe.excursions)} ekskursi / {t.outside_min} "
                f"minutes outside in {len(probe.excursions)} excursions")
    if t.outside_min is None:
        return "sebagian hanya data per jam / partly hourly data only"
    return "sesuai standar selama ada data / within the standard while measured"
