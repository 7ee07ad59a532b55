"""The power control card (*kartu kontrol perangkat kelistrikan*, *genset*, *bahan bakar*) for one month.

Everything comes from the `power.*` events (gateway/power/ups.py, generator.py): the outage log of
`build_outages`, generator runs, fuel levels, ATS switches and refuel alarms. The monitors write
transitions, not a stream: UPS battery and load are known only from the events that carry them
(startup snapshot, mains lost / restored, battery low, overload ...), fuel levels from
`power.fuel_level` (written at start and on every whole percent of change). The card says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlite_utils

from gateway.config.models import Config
from gateway.power.outages import build_outages
from gateway.reports.csv_out import (
    DASH,
    NO_DATA,
    Period,
    date_text,
    duration_text,
    num,
    parse_ts,
)
from gateway.reports.pdf import Column, ReportPDF
from gateway.store.events import iter_events

NOT_FITTED = "tidak terpasang / not installed"
#: the events that carry a fuel reading, and its fields in time order
FUEL_FIELDS = {"power.fuel_level": ("fuel_pct",), "power.generator_started": ("fuel_pct",),
               "power.generator_stopped": ("fuel_end_pct",), "power.refuelled": ("from_pct", "to_pct"),
               "power.refuel_needed": ("fuel_pct",), "power.refuel_needed_cleared": ("fuel_pct",)}
POSITIONS = {"mains": "PLN", "generator": "genset", "off": "mati / off"}
OTHER = {
    "power.battery_low": "baterai lemah / battery low", "power.battery_low_cleared": "baterai pulih / battery ok",
    "power.replace_battery": "ganti baterai / replace battery", "power.overload": "beban lebih / overload",
    "power.bypass": "bypass", "power.forced_shutdown": "UPS dimatikan paksa / forced shutdown",
    "power.ups_unreachable": "UPS tak terjangkau / UPS unreachable",
    "power.ups_reachable": "UPS terjangkau lagi / UPS reachable",
    "power.contact_fault": "kontak gagal dibaca / contact fault",
    "power.contact_fault_cleared": "kontak pulih / contact ok",
    "power.fuel_sensor_fault": "sensor BBM gagal / fuel sensor fault",
    "power.fuel_sensor_fault_cleared": "sensor BBM pulih / fuel sensor ok",
}


@dataclass
class Outage:
    ups: str
    start: datetime
    end: datetime | None  # None: still on battery
    duration_s: float | None
    lowest_battery: float | None
    highest_load: float | None
    end_known: bool
    start_uncertain_s: float | None


@dataclass
class Run:
    start: datetime | None  # the recorded start; with start_known False it was already running then
    start_known: bool
    end: datetime | None = None
    duration_s: float | None = None
    fuel_start: float | None = None
    fuel_end: float | None = None
    fuel_used_pct: float | None = None
    fuel_used_litres: float | None = None
    end_seen: bool = True  # False: the gateway restarted during the run; its end was not seen
    lost_at: datetime | None = None  # when the run was known to be over without its end being seen


@dataclass
class Day:
    day: date
    values: list[float] = field(default_factory=list)  # fuel levels in order, or UPS battery charges
    loads: list[float] = field(default_factory=list)
    events: int = 0


@dataclass
class Row:
    """One timed event of the card (refuel, ATS switch, refuel alarm, other)."""

    at: datetime
    kind: str
    fields: dict[str, Any]
    until: datetime | None = None  # refuel alarm: when it cleared


@dataclass
class PowerCard:
    period: Period
    now: datetime
    ups_name: str | None  # [ups] name
    ups: str | None  # what is fitted, in words; None: not configured
    ats: str | None
    generator: str | None
    outages: list[Outage]
    ups_days: dict[date, Day]
    runs: list[Run]
    fuel_days: dict[date, Day]
    refuels: list[Row]
    switches: list[Row]
    alarms: list[Row]
    others: list[Row]

    @property
    def has_data(self) -> bool:
        return any((self.outages, self.ups_days, self.runs, self.fuel_days, self.refuels, self.switches,
                    self.alarms, self.others))


def fitted(config: Config) -> tuple[str | None, str | None, str | None]:
    ups = f"{config.ups.name} (NUT {config.ups.host}:{config.ups.port})" if config.ups else None
    power = config.power
    ats = gen = None
    if power is not None and power.ats is not None:
        ats = "kontak GPIO / GPIO contacts" if getattr(power.ats, "source", "") == "gpio" else "Modbus"
    if power is not None and power.generator is not None:
        g = power.generator
        gen = "genset" + (f", tangki / tank {num(g.tank_litres, 0)} L" if g.tank_litres else "") + \
              (", sensor BBM / fuel sensor" if g.fuel is not None else ", tanpa sensor BBM / no fuel sensor")
    return ups, ats, gen


def build(db: sqlite_utils.Database, config: Config, period: Period, now: datetime) -> PowerCard:
    start, end = period.start_ts, period.end_ts
    outages = [Outage(r.ups, parse_ts(r.started), parse_ts(r.ended) if r.ended else None, r.duration_s,
                      r.lowest_battery_pct, r.highest_load_pct, r.end_known, r.start_uncertain_s)
               for r in build_outages(db) if r.started < end and (r.ended is None or r.ended >= start)]
    ups_days: dict[date, Day] = {}
    fuel_days: dict[date, Day] = {}
    refuels: list[Row] = []
    switches: list[Row] = []
    alarms: list[Row] = []
    others: list[Row] = []
    runs: list[Run] = []
    open_run: Run | None = None
    open_alarm: Row | None = None
    for event in iter_events(db, kind="power.*", until=end):
        f = event.fields
        at = parse_ts(event.ts)
        inside = event.ts >= start
        # runs and refuel alarms may begin before the period and end in it
        if event.kind == "power.generator_started":
            open_run = Run(at, True, fuel_start=number(f.get("fuel_pct")))
            runs.append(open_run)
        elif event.kind == "power.generator_status" and f.get("reason") == "startup":
            if open_run is not None:  # a restart while running: the old run's end was not seen
                open_run.end_seen, open_run.lost_at, open_run = False, at, None
            if f.get("running"):
                open_run = Run(at, False, fuel_start=number(f.get("fuel_pct")))
                runs.append(open_run)
        elif event.kind == "power.generator_stopped":
            run = open_run or Run(None, False)
            if open_run is None:
                runs.append(run)
            known = bool(f.get("start_known"))
            run.start = parse_ts(f["run_started"]) if f.get("run_started") else run.start
            run.start_known = known
            run.end, run.duration_s = at, number(f.get("duration_s"))
            run.fuel_start = number(f.get("fuel_start_pct")) if f.get("fuel_start_pct") is not None else run.fuel_start
            run.fuel_end, run.fuel_used_pct = number(f.get("fuel_end_pct")), number(f.get("fuel_used_pct"))
            run.fuel_used_litres = number(f.get("fuel_used_litres"))
            open_run = None
        elif event.kind == "power.refuel_needed":
            open_alarm = Row(at, event.kind, f)
            alarms.append(open_alarm)
        elif event.kind == "power.refuel_needed_cleared" and open_alarm is not None:
            open_alarm.until, open_alarm = at, None
        if not inside:
            continue
        day = period.local(at).date()
        levels = [number(f.get(k)) for k in FUEL_FIELDS.get(event.kind, ())]
        if any(v is not None for v in levels):
            fuel_days.setdefault(day, Day(day)).values += [v for v in levels if v is not None]
        if event.kind == "power.refuelled":
            refuels.append(Row(at, event.kind, f))
        elif event.kind in ("power.ats_switched", "power.ats_status"):
            switches.append(Row(at, event.kind, f))
        elif event.kind in OTHER:
            others.append(Row(at, event.kind, f))
        battery = [number(f.get(k)) for k in ("battery_charge_pct", "lowest_battery_pct")]
        load = [number(f.get(k)) for k in ("load_pct", "highest_load_pct")]
        if isinstance(f.get("ups"), str) and any(v is not None for v in (*battery, *load)):
            entry = ups_days.setdefault(day, Day(day))
            entry.values += [v for v in battery if v is not None]
            entry.loads += [v for v in load if v is not None]
            entry.events += 1
    runs = [r for r in runs if (r.end or r.lost_at or period.end) >= period.start
            and (r.start is None or r.start < period.end)]
    alarms = [a for a in alarms if a.at < period.end and (a.until is None or a.until >= period.start)]
    ups, ats, gen = fitted(config)
    return PowerCard(period, now, config.ups.name if config.ups else None, ups, ats, gen, outages, ups_days, runs,
                     fuel_days, refuels, switches, alarms, others)


def number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def pct(value: Any, digits: int = 1) -> str:
    """45.0 -> "45,0 %"; nothing -> "—"."""
    value = number(value)
    return DASH if value is None else f"{num(value, digits)} %"


# -- words -------------------------------------------------------------------------------------------

def _outage_start(card: PowerCard, o: Outage) -> str:
    text = card.period.when(o.start)
    if o.start_uncertain_s is None:  # the gateway started during the outage
        return text + " (sudah padam saat gateway mulai / already out at gateway start)"
    if o.start_uncertain_s >= 60:
        return text + f" (bisa sampai {duration_text(o.start_uncertain_s)} lebih awal / may have begun earlier)"
    return text


def _outage_end(card: PowerCard, o: Outage) -> str:
    if o.end is None:
        return "berlangsung / ongoing"
    return card.period.when(o.end) + ("" if o.end_known else " (paling lambat / at the latest)")


def _outage_duration(card: PowerCard, o: Outage) -> str:
    if o.end is None:
        return f"\u2265 {duration_text((card.now - o.start).total_seconds())} (berlangsung)"
    return duration_text(o.duration_s)


def _run_start(card: PowerCard, r: Run) -> str:
    if r.start is None:
        return "tidak diketahui / unknown"
    return card.period.when(r.start) + ("" if r.start_known else " (sudah berjalan / already running)")


def _run_end(card: PowerCard, r: Run) -> str:
    if r.end is None:
        return "berlangsung / running" if r.end_seen else "tidak teramati / not seen"
    return card.period.when(r.end)


def _run_duration(card: PowerCard, r: Run) -> str:
    if r.end is None:
        if r.end_seen and r.start is not None:
            return f"\u2265 {duration_text((card.now - r.start).total_seconds())}"
        return DASH
    return ("\u2265 " if not r.start_known else "") + duration_text(r.duration_s)


def _fuel_used(r: Run) -> str:
    if r.fuel_used_pct is None:
        return DASH
    return f"{num(r.fuel_used_pct)} %" + (f" ({num(r.fuel_used_litres)} L)" if r.fuel_used_litres is not None else "")


def switch_words(row: Row) -> tuple[str, str, str]:
    f = row.fields
    if row.kind == "power.ats_status":
        return DASH, POSITIONS.get(str(f.get("position")), str(f.get("position"))), "posisi saat gateway mulai / " \
                                                                                     "position at gateway start"
    note = "" if f.get("uncertain_s") is None else f"bisa sampai {num(f['uncertain_s'], 0)} s lebih awal"
    return (POSITIONS.get(str(f.get("from")), str(f.get("from"))), POSITIONS.get(str(f.get("to")), str(f.get("to"))),
            note)


def _section(pdf: ReportPDF, fitted: str | None, has_rows: bool) -> bool:
    """False (and says so) when the device is neither configured nor in the events."""
    if fitted is None and not has_rows:
        pdf.empty("tidak terpasang", "not installed")
        return False
    if fitted is None:
        pdf.note("Tidak ada di konfigurasi sekarang; kejadian di bawah tercatat saat masih terpasang.",
                 "Not in the configuration now; the events below were recorded while it was.")
    return True


def render_pdf(card: PowerCard, pdf: ReportPDF) -> int:
    p = card.period
    zone = p.zone_label()
    # the summary counts the time inside the period; the table shows each outage whole
    total_out = sum((min(o.end or card.now, p.end) - max(o.start, p.start)).total_seconds() for o in card.outages)
    used = [r.fuel_used_pct for r in card.runs if r.fuel_used_pct is not None]
    pdf.heading("Ringkasan periode", "Summary of the period")
    pdf.grid([Column("Perihal", "item", 0.45), Column("Nilai", "value", 0.55)], [
        ["UPS", card.ups or NOT_FITTED], ["ATS", card.ats or NOT_FITTED], ["Genset / generator", card.generator or
                                                                          NOT_FITTED],
        ["Pemadaman PLN / mains outages", f"{len(card.outages)} kali, {duration_text(total_out)} dalam periode ini"
         + (" (1 berlangsung)" if any(o.end is None for o in card.outages) else "")],
        ["Genset berjalan / generator runs", f"{len(card.runs)} kali"],
        ["BBM terpakai / fuel used", f"{num(sum(used))} %" if used else DASH],
        ["Pengisian BBM / refuels", f"{len(card.refuels)} kali"],
        ["Perpindahan ATS / ATS switches", str(sum(1 for s in card.switches if s.kind == "power.ats_switched"))],
        ["Peringatan isi BBM / refuel needed", f"{len(card.alarms)} kali"]], width=0.8)
    if not card.has_data:
        pdf.para(f"{NO_DATA.capitalize()} kelistrikan untuk periode ini. / No power events in this period.",
                 style="B")
    rows = 0
    pdf.heading("Pemadaman listrik PLN", "mains outages")
    if _section(pdf, card.ups, bool(card.outages)):
        pdf.grid([Column("No", "no.", 0.05, "R"), Column("UPS", "UPS", 0.1), Column(f"Mulai ({zone})", "start", 0.2),
                  Column(f"Selesai ({zone})", "end", 0.22), Column("Durasi", "duration", 0.17),
                  Column("Baterai terendah", "lowest battery", 0.13, "R"),
                  Column("Beban tertinggi", "highest load", 0.13, "R")],
                 [[str(i), o.ups, _outage_start(card, o), _outage_end(card, o), _outage_duration(card, o),
                   pct(o.lowest_battery, 0), pct(o.highest_load, 0)]
                  for i, o in enumerate(card.outages, 1)], marked=[o.end is None for o in card.outages])
        rows += len(card.outages)
    pdf.heading("UPS per hari", "UPS battery and load per day")
    if _section(pdf, card.ups, bool(card.ups_days)):
        days = sorted(card.ups_days.values(), key=lambda d: d.day)
        pdf.grid([Column("Tanggal", "date", 0.3), Column("Baterai terendah", "lowest battery", 0.22, "R"),
                  Column("Beban tertinggi", "highest load", 0.22, "R"), Column("Dasar (kejadian)", "based on events",
                                                                               0.26, "R")],
                 [[date_text(d.day), f"{num(min(d.values), 0)} %" if d.values else DASH,
                   f"{num(max(d.loads), 0)} %" if d.loads else DASH, str(d.events)] for d in days])
        pdf.note("UPS dicatat hanya saat statusnya berubah (mulai, PLN padam/pulih, baterai lemah, beban lebih), "
                 "bukan berkala: angka harian adalah nilai terendah/tertinggi dari kejadian itu saja; hari tanpa "
                 "kejadian tidak ditampilkan.",
                 "The UPS is recorded on change only, not periodically: daily figures are the lowest/highest of "
                 "those events; days without UPS events are not shown.")
        rows += len(days)
    pdf.heading("Genset berjalan", "generator runs")
    if _section(pdf, card.generator or card.ats, bool(card.runs)):
        pdf.grid([Column("No", "no.", 0.05, "R"), Column(f"Mulai ({zone})", "start", 0.27),
                  Column(f"Berhenti ({zone})", "stop", 0.2), Column("Durasi", "duration", 0.18),
                  Column("BBM awal\u2192akhir", "fuel start\u2192end", 0.13, "R"),
                  Column("BBM terpakai", "fuel used", 0.17, "R")],
                 [[str(i), _run_start(card, r), _run_end(card, r), _run_duration(card, r),
                   f"{num(r.fuel_start, 0)}\u2192{num(r.fuel_end, 0)} %", _fuel_used(r)]
                  for i, r in enumerate(card.runs, 1)], marked=[r.end is None for r in card.runs])
        rows += len(card.runs)
    pdf.heading("Bahan bakar per hari", "fuel level per day")
    if _section(pdf, card.generator, bool(card.fuel_days or card.refuels)):
        days = sorted(card.fuel_days.values(), key=lambda d: d.day)
        pdf.grid([Column("Tanggal", "date", 0.3), Column("Awal", "first", 0.15, "R"),
                  Column("Akhir", "last", 0.15, "R"), Column("Terendah", "lowest", 0.15, "R"),
                  Column("Dasar (kejadian)", "based on events", 0.25, "R")],
                 [[date_text(d.day), f"{num(d.values[0])} %", f"{num(d.values[-1])} %", f"{num(min(d.values))} %",
                   str(len(d.values))] for d in days])
        pdf.note("Dari kejadian yang membawa level BBM: power.fuel_level (saat mulai dan setiap perubahan \u2265 1 %), "
                 "genset mulai/berhenti, pengisian, peringatan isi BBM.",
                 "From the events that carry a fuel level: fuel_level (at start and on every change of 1 % or more), "
                 "generator start/stop, refuels, refuel alarms.")
        rows += len(days)
        pdf.heading("Pengisian bahan bakar", "refuels", size=9)
        pdf.grid([Column(f"Waktu ({zone})", "time", 0.3), Column("Dari", "from", 0.15, "R"),
                  Column("Menjadi", "to", 0.15, "R"), Column("Ditambah", "added", 0.4, "R")],
                 [[p.when(r.at), pct(r.fields.get("from_pct")), pct(r.fields.get("to_pct")),
                   pct(r.fields.get("added_pct")) + (f" ({num(number(r.fields['added_litres']))} L)"
                                                     if r.fields.get("added_litres") is not None else "")]
                  for r in card.refuels])
        rows += len(card.refuels)
    pdf.heading("Perpindahan ATS", "ATS switches")
    if _section(pdf, card.ats, bool(card.switches)):
        pdf.grid([Column(f"Waktu ({zone})", "time", 0.3), Column("Dari", "from", 0.15), Column("Ke", "to", 0.15),
                  Column("Keterangan", "note", 0.4)],
                 [[p.when(s.at), *switch_words(s)] for s in card.switches])
        rows += len(card.switches)
    pdf.heading("Peringatan isi BBM", "refuel needed alarms")
    if _section(pdf, card.generator, bool(card.alarms)):
        pdf.grid([Column(f"Muncul ({zone})", "raised", 0.25), Column("Sebab", "reason", 0.15),
                  Column("BBM", "fuel", 0.12, "R"), Column("Sisa jam", "hours left", 0.13, "R"),
                  Column(f"Pulih ({zone})", "cleared", 0.35)],
                 [[p.when(a.at), {"level": "level BBM", "hours": "sisa jam"}.get(str(a.fields.get("reason")), DASH),
                   pct(a.fields.get("fuel_pct")), num(number(a.fields.get("hours_left"))),
                   p.when(a.until) if a.until else "belum pulih / active"] for a in card.alarms],
                 marked=[a.until is None for a in card.alarms])
        rows += len(card.alarms)
    if card.others:
        pdf.heading("Kejadian lain", "other power events")
        pdf.grid([Column(f"Waktu ({zone})", "time", 0.25), Column("Kejadian", "event", 0.4),
                  Column("Rincian", "details", 0.35)],
                 [[p.when(o.at), OTHER[o.kind], _detail(o.fields)] for o in card.others])
        rows += len(card.others)
    pdf.heading("Catatan", "notes", keep=20)
    pdf.note(f"Waktu dalam {zone} ({p.zone_name}). Pemadaman yang melewati batas bulan tampil di kedua bulan. "
             "\u201cPaling lambat\u201d: akhir pemadaman terjadi saat gateway tidak memantau. Durasi genset dari jam "
             "monoton gateway; \u2265: genset sudah berjalan saat gateway mulai.",
             "Local times. An outage across a month's end shows in both months. \u201cAt the latest\u201d: the end "
             "happened while the gateway was not watching. \u2265: running already when the gateway started.")
    pdf.signatures()
    return rows


def _detail(fields: dict[str, Any]) -> str:
    parts = [f"UPS {fields['ups']}" if fields.get("ups") else "", str(fields.get("error") or ""),
             f"baterai {pct(fields.get('battery_charge_pct'), 0)}" if fields.get("battery_charge_pct") is not None
             else "", f"beban {pct(fields.get('load_pct'), 0)}" if fields.get("load_pct") is not None else ""]
    return ", ".join(p for p in parts if p)
