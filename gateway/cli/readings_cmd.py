"""`dcgate readings PROBE`: a probe's temperature and humidity history (works whether or not the gateway runs)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

from gateway.cli.common import load, parse_time
from gateway.errors import UnknownDeviceError
from gateway.readings import BUCKETS, readings
from gateway.store.database import open_for_reading


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    parser = commands.add_parser("readings", parents=[common],
                                 help="a probe's temperature and humidity history, raw or per minute/hour/day")
    parser.add_argument("probe", help="the probe's name from the config")
    parser.add_argument("--since", metavar="T", help="from this time: 15m, 2h, 7d ago, or ISO 8601")
    parser.add_argument("--until", metavar="T", help="before this time (same forms as --since)")
    parser.add_argument("--every", choices=list(BUCKETS), default="raw",
                        help="raw readings (default), or min/mean/max per minute, hour or day (UTC)")
    parser.add_argument("--csv", action="store_true", help="CSV with a header row instead of JSON lines")
    parser.set_defaults(handler=_readings)


def _readings(args: argparse.Namespace) -> int:
    config = load(args)
    if args.probe not in {p.name for p in config.probes}:
        known = ", ".join(p.name for p in config.probes) or "none"
        raise UnknownDeviceError(f"no probe {args.probe!r} in {args.config or 'the config'}; configured: {known}")
    since = parse_time(args.since) if args.since else None
    until = parse_time(args.until) if args.until else None
    db = open_for_reading(config.database_path)
    try:
        rows = readings(db, args.probe, since=since, until=until, every=args.every)
        first = next(rows, None)
        if first is None:
            print(f"no readings of {args.probe} in that period", file=sys.stderr)
            return 0
        if args.csv:
            writer = csv.DictWriter(sys.stdout, fieldnames=list(first))
            writer.writeheader()
            writer.writerow(first)
            writer.writerows(rows)
        else:
            for row in (first, *rows):
                print(json.dumps(row, ensure_ascii=False))
    finally:
        db.close()
    return 0
