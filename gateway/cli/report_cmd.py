"""`dcgate report ...`: the SOP's monthly cards (temperature & humidity, power, access) as PDF or CSV.

Read from the store file, so it works whether or not the gateway runs. The format follows the output
file's suffix (.pdf or .csv); the file is written atomically (a temporary file in the same directory,
then renamed), so a half-written report never sits where the officer expects the real one.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from gateway.cli.common import load, parse_time
from gateway.errors import InvalidValueError
from gateway.reports import FORMATS, KINDS, Period, Report, make_report

KIND_WORDS = {"env": "kartu suhu & kelembaban", "power": "kartu kelistrikan", "access": "buku log akses"}


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    report = commands.add_parser("report", parents=[common],
                                 help="laporan bulanan / monthly reports: env, power, access (PDF or CSV)")
    sub = report.add_subparsers(dest="report_command", metavar="SUBCOMMAND", required=True)
    monthly = sub.add_parser("monthly", parents=[common],
                             help="one month's card: temperature & humidity, power, or the access logbook")
    monthly.add_argument("--month", metavar="YYYY-MM", required=True,
                         help="the month, in the site's time zone ([access] timezone, WIB by default)")
    monthly.add_argument("--kind", choices=KINDS, required=True,
                         help="env: temperature & humidity; power: outages, UPS, generator, fuel, ATS; access: logbook")
    monthly.add_argument("--out", metavar="FILE", required=True, type=Path,
                         help="output file; .pdf or .csv decides the format")
    monthly.set_defaults(handler=_monthly)
    access = sub.add_parser("access", parents=[common], help="the access logbook for any period, as PDF or CSV")
    access.add_argument("--since", metavar="TIME", required=True,
                        help="start (included): 7d (ago), 2026-10-01, 2026-10-01T08:00; without a zone the time is "
                             "the site's ([access] timezone), as printed in the report")
    access.add_argument("--until", metavar="TIME", default=None, help="end (excluded), same forms; default now")
    access.add_argument("--out", metavar="FILE", required=True, type=Path,
                        help="output file; .pdf or .csv decides the format")
    access.set_defaults(handler=_access)


def format_of(out: Path) -> str:
    """"pdf" or "csv" from the file name; anything else is refused (exit status 2)."""
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise InvalidValueError(
            f"berkas keluaran {out} harus berakhiran .pdf atau .csv / output file {out} must end in .pdf or .csv "
            f"(e.g. --out laporan-{out.stem or 'bulanan'}.pdf)")
    return fmt


def _monthly(args: argparse.Namespace) -> int:
    fmt = format_of(args.out)
    _check_target(args.out)
    config = load(args)
    report = make_report(config, args.kind, Period.for_month(args.month, config.access.timezone), fmt)
    return _write(report, args.out)


def _access(args: argparse.Namespace) -> int:
    fmt = format_of(args.out)
    _check_target(args.out)
    config = load(args)
    zone = config.access.zone
    # parse both before reading anything: a typo in --until must not leave half a report behind
    since = _time(args.since, zone)
    until = _time(args.until, zone) if args.until else parse_time("0s")
    report = make_report(config, "access", Period.between(since, until, config.access.timezone), fmt)
    return _write(report, args.out)


def _time(text: str, zone: tzinfo) -> str:
    """parse_time, but a time without a zone is on the site's clock (what the report prints and staff type),
    whatever zone the Pi itself is set to."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return parse_time(text)  # 15m / 2h / 7d ago, or an error naming the accepted forms
    return parse_time(moment.replace(tzinfo=zone).isoformat() if moment.tzinfo is None else text)


def _check_target(out: Path) -> None:
    if out.is_dir():
        raise InvalidValueError(f"{out} adalah direktori; beri nama berkas / {out} is a directory; give a file name")
    if not out.parent.is_dir():
        raise InvalidValueError(f"direktori {out.parent} tidak ada; buat dulu / directory {out.parent} does not exist; "
                                "create it first")


def write_atomically(out: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, rename: readers see the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o640)  # reports name people: not world-readable
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write(report: Report, out: Path) -> int:
    write_atomically(out, report.data)
    size = len(report.data)
    pages = f", {report.pages} halaman/pages" if report.pages is not None else ""
    print(f"{KIND_WORDS[report.kind]} ({report.kind}) {report.period.label()} -> {out} "
          f"({report.fmt.upper()}, {_size(size)}{pages}, {report.rows} baris/rows, seq {report.head_seq})")
    return 0


def _size(size: int) -> str:
    return f"{size} B" if size < 1024 else f"{size / 1024:.1f} KiB"
