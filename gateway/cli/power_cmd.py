"""`dcgate power outages`: the outage log the SOP asks staff to keep by hand (start, end, duration)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

from gateway.cli.common import load
from gateway.power.outages import build_outages
from gateway.store.database import open_for_reading

COLUMNS = ("ups", "started", "ended", "duration_s", "lowest_battery_pct", "highest_load_pct", "start_uncertain_s",
           "end_known", "open")


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    power = commands.add_parser("power", parents=[common], help="power: the UPS outage log")
    sub = power.add_subparsers(dest="power_command", metavar="SUBCOMMAND", required=True)
    outages = sub.add_parser("outages", parents=[common],
                             help="mains outages: start, end, duration, lowest battery, highest load")
    outages.add_argument("--month", metavar="YYYY-MM", help="only outages that overlap this month (UTC)")
    form = outages.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="one JSON object per outage")
    form.add_argument("--csv", action="store_true", help="CSV with a header row")
    outages.set_defaults(handler=_outages)


def _outages(args: argparse.Namespace) -> int:
    config = load(args)
    db = open_for_reading(config.database_path)
    try:
        records = [r.as_dict() for r in build_outages(db, month=args.month)]
    finally:
        db.close()
    if args.json:
        for record in records:
            print(json.dumps(record, ensure_ascii=False))
    elif args.csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)
    elif not records:
        print("no mains outages recorded" + (f" in {args.month}" if args.month else ""))
    else:
        for r in records:
            duration = "still on battery" if r["open"] else f"{r['duration_s']:.0f} s"
            print(f"{r['started']} -> {r['ended'] or '...'}  {duration}  ups {r['ups']}  "
                  f"lowest battery {r['lowest_battery_pct']} %  highest load {r['highest_load_pct']} %")
    return 0
