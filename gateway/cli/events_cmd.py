"""`dcgate events`: read the event log (works whether or not the gateway is running)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from gateway.cli.common import load, parse_time
from gateway.store.database import open_for_reading
from gateway.store.events import Event, iter_events

FOLLOW_POLL_S = 0.5


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    events = commands.add_parser("events", parents=[common], help="list events from the log, oldest first")
    events.add_argument("--kind", help="only this kind, or a prefix ending in * (e.g. 'env.*')")
    events.add_argument("--since", metavar="T", help="from this time: 15m, 2h, 7d ago, or ISO 8601")
    events.add_argument("--until", metavar="T", help="before this time (same forms as --since)")
    events.add_argument("--last", type=_positive_int, metavar="N", help="only the newest N matching events")
    events.add_argument("--follow", "-f", action="store_true", help="keep printing new events as they are committed")
    events.add_argument("--json", action="store_true", help="one JSON object per line instead of text")
    events.set_defaults(handler=_events)


def _positive_int(text: str) -> int:
    """--last N: 0 or a negative N used to print the whole log (or skip its first events) instead."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not 1 or more")
    return value


def _events(args: argparse.Namespace) -> int:
    config = load(args)
    since = parse_time(args.since) if args.since else None
    until = parse_time(args.until) if args.until else None
    db = open_for_reading(config.database_path)
    show = _print_json if args.json else _print_text
    # one snapshot point: everything up to it is listed, everything after it is followed
    newest = db.conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
    matching = (e for e in iter_events(db, kind=args.kind, since=since, until=until) if e.seq <= newest)
    for event in (list(matching)[-args.last:] if args.last else matching):
        show(event)
    after = newest
    sys.stdout.flush()
    while args.follow:
        time.sleep(FOLLOW_POLL_S)  # a CLI reader polling its own file; the service never polls
        for event in iter_events(db, kind=args.kind, after_seq=after):
            show(event)
            after = event.seq
        sys.stdout.flush()
    return 0


def _print_text(event: Event) -> None:
    fields = " ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in event.fields.items())
    print(f"{event.ts}  #{event.seq:<7} {event.kind:<22} {event.source:<16} {fields}")


def _print_json(event: Event) -> None:
    print(json.dumps(event.as_dict(), ensure_ascii=False))
