"""The SOP's monthly reports from the event store: PDF cards in Bahasa Indonesia (English second) and CSV.

- ``env``: *kartu kontrol suhu & kelembaban* (gateway/reports/env_card.py)
- ``power``: *kartu kontrol perangkat kelistrikan*, generator and fuel (power_card.py)
- ``access``: *buku log akses pusat data* (access_report.py)

The store is opened read-only (the gateway may be running or not) and read in one snapshot, so every
figure and the footer's last event (seq and hash, for `dcgate log verify`) agree. A period with no
data still gives a valid report that says so ("tidak ada data"); nothing is ever estimated. Days and
times are in `[access] timezone` (WIB by default), and a month is that zone's calendar month.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gateway.config.models import Config
from gateway.errors import InvalidValueError, StoreError
from gateway.reports import access_report, env_card, power_card
from gateway.reports.csv_out import Period, access_csv, env_csv, power_csv
from gateway.reports.pdf import ReportMeta, ReportPDF, range_text
from gateway.store.database import open_for_reading
from gateway.store.events import last_event_head

__all__ = ["FORMATS", "KINDS", "Period", "Report", "make_report", "monthly_report", "period_report"]

KINDS = ("env", "power", "access")
FORMATS = ("pdf", "csv")

#: kind -> (title, English title, running header name)
TITLES = {
    "env": ("KARTU KONTROL SUHU & KELEMBABAN RUANG SERVER", "Monthly temperature & humidity control card",
            "Kartu kontrol suhu & kelembaban"),
    "power": ("KARTU KONTROL PERANGKAT KELISTRIKAN", "Monthly power control card: mains, UPS, ATS, generator, fuel",
              "Kartu kontrol kelistrikan"),
    "access": ("BUKU LOG AKSES PUSAT DATA", "Data centre access logbook", "Buku log akses pusat data"),
}


@dataclass(frozen=True)
class Report:
    kind: str
    fmt: str
    period: Period
    data: bytes
    rows: int  # data rows: CSV lines after the header; in a PDF the table rows with data
    pages: int | None  # PDF only
    head_seq: int
    head_hash: str


def monthly_report(config: Config, kind: str, month: str, fmt: str, *, now: datetime | None = None) -> bytes:
    """The card `kind` (env, power, access) for `month` ("YYYY-MM", the site's calendar month) as PDF or CSV."""
    _check(kind, fmt)
    return make_report(config, kind, Period.for_month(month, config.access.timezone), fmt, now=now).data


def period_report(config: Config, kind: str = "access", *, since: str, until: str, fmt: str,
                  now: datetime | None = None) -> bytes:
    """A report over [since, until) (store UTC text, e.g. "2026-10-01T00:00:00.000Z"); days in the site's zone."""
    _check(kind, fmt)
    return make_report(config, kind, Period.between(since, until, config.access.timezone), fmt, now=now).data


def make_report(config: Config, kind: str, period: Period, fmt: str, *, now: datetime | None = None,
                font_dirs: Sequence[Path | str] | None = None) -> Report:
    """The report with what the CLI prints about it (rows, pages, the store's head)."""
    _check(kind, fmt)
    path = config.database_path
    if not path.exists():
        raise StoreError(
            f"penyimpanan kejadian tidak ada di {path}; jalankan gateway sekali atau periksa data_dir / no event "
            f"store at {path}: start the gateway once, or check data_dir")
    now = (now or datetime.now(UTC)).astimezone(UTC)
    db = open_for_reading(path)
    try:
        db.conn.execute("BEGIN")  # one snapshot (taken at the first read) for every figure and the head
        card: env_card.EnvCard | power_card.PowerCard | access_report.AccessReport
        if kind == "env":
            card = env_card.build(db, config, period, now)
        elif kind == "power":
            card = power_card.build(db, config, period, now)
        else:  # the logbook reads on its own connection; the head read after it covers all it saw
            card = access_report.build(path, period, now)
        head_seq, head_hash = last_event_head(db)
        db.conn.execute("COMMIT")
    finally:
        db.close()
    if fmt == "csv":
        data, rows = {"env": env_csv, "power": power_csv, "access": access_csv}[kind](card)  # type: ignore[operator]
        return Report(kind, fmt, period, data, rows, None, head_seq, head_hash)
    title, title_en, short = TITLES[kind]
    meta = ReportMeta(title, title_en, short, config.site, config.gateway, period, now, head_seq, head_hash)
    pdf = ReportPDF(meta, orientation="L" if kind == "access" else "P", font_dirs=font_dirs)
    pdf.title_block(_facts(config, kind, period))
    if isinstance(card, env_card.EnvCard):
        rows = env_card.render_pdf(card, pdf)
    elif isinstance(card, power_card.PowerCard):
        rows = power_card.render_pdf(card, pdf)
    else:
        rows = access_report.render_pdf(card, pdf)
    data = pdf.render()
    return Report(kind, fmt, period, data, rows, pdf.page_no(), head_seq, head_hash)


def _check(kind: str, fmt: str) -> None:
    if kind not in KINDS:
        raise InvalidValueError(
            f"jenis laporan {kind!r} tidak dikenal; pilih {', '.join(KINDS)} / report kind {kind!r} is not one of "
            f"{', '.join(KINDS)}")
    if fmt not in FORMATS:
        raise InvalidValueError(
            f"format {fmt!r} tidak dikenal; pilih pdf atau csv (nama berkas .pdf / .csv) / format {fmt!r} is not "
            "pdf or csv (a .pdf or .csv file name)")


def _facts(config: Config, kind: str, period: Period) -> list[tuple[str, str, str]]:
    """The title block's facts: where, which gateway, when, and what the card is about."""
    facts = [("Lokasi", "site", config.site), ("Gateway", "gateway", config.gateway),
             ("Periode", "period", f"{period.label()} ({period.label_en()})"),
             ("Zona waktu", "time zone", f"{period.zone_label()} ({period.zone_name})")]
    t = config.thresholds
    if kind == "env":
        facts += [("Probe", "probes", ", ".join(p.name for p in config.probes) or "\u2014"),
                  ("Standar ruangan", "room standard",
                   f"suhu {range_text(t.temperature_low_c, t.temperature_high_c, chr(176) + 'C')}, kelembaban "
                   f"{range_text(t.humidity_low_pct, t.humidity_high_pct, '%')}")]
    elif kind == "power":
        ups, ats, gen = power_card.fitted(config)
        none = "tidak terpasang"
        facts += [("UPS", "UPS", ups or none), ("ATS / genset", "ATS / generator", f"{ats or none} / {gen or none}")]
    else:
        facts += [("Pintu", "doors", ", ".join(d.name for d in config.doors) or "\u2014"),
                  ("Sumber", "source", "buku log gateway (berantai hash) / the gateway's hash-chained logbook")]
    return facts
