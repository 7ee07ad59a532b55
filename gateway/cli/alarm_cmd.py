"""`dcgate alarm list|ack`: the active alarms, and acknowledging one (who, when, note)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from gateway.alarms import alarm_as_dict, load_alarm_book
from gateway.cli.common import load
from gateway.control.client import call


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    alarm = commands.add_parser("alarm", parents=[common], help="active alarms and their acknowledgements")
    sub = alarm.add_subparsers(dest="alarm_command", metavar="SUBCOMMAND", required=True)
    listing = sub.add_parser("list", parents=[common],
                             help="list the active alarms, oldest first (works whether or not the gateway runs)")
    listing.add_argument("--json", action="store_true", help="one JSON object per alarm instead of text")
    listing.set_defaults(handler=_list)
    ack = sub.add_parser("ack", parents=[common],
                         help="acknowledge an active alarm: it stays active until the room is back in standard")
    ack.add_argument("alarm_id", metavar="ID", help="alarm id from `dcgate alarm list` (or its first 4+ characters)")
    ack.add_argument("--by", required=True, metavar="NAME", help="who acknowledges (recorded in the logbook)")
    ack.add_argument("--note", default="", metavar="TEXT", help="what is being done about it")
    ack.set_defaults(handler=_ack)


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _list(args: argparse.Namespace) -> int:
    alarms = [alarm_as_dict(a) for a in load_alarm_book(load(args)).active()]
    if args.json:
        for alarm in alarms:
            print(json.dumps(alarm, ensure_ascii=False))
        return 0
    if not alarms:
        print("no active alarms")
        return 0
    for a in alarms:
        acks = "; ".join(f"acknowledged by {k['by']} {_when(k['at'])}" + (f": {k['note']}" if k["note"] else "")
                         for k in a["acknowledgements"]) or "NOT acknowledged"
        print(f"{a['alarm_id']}  {a['severity'].upper():<8} {a['probe']} {a['quantity']} {a['condition']} "
              f"value {a['value']} limit {a['limit']} since {_when(a['since'])}  [{acks}]")
    return 0


def _ack(args: argparse.Namespace) -> int:
    config = load(args)
    result = call(config.control_socket_path, "alarm.ack",
                  {"alarm_id": args.alarm_id, "by": args.by, "note": args.note})
    print(f"alarm {result['alarm_id']} ({result['probe']} {result['condition']}) acknowledged by {result['by']}")
    return 0
