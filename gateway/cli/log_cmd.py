"""`dcgate log`: the access logbook (buku log akses); `dcgate log verify`: walk the hash chain.

Both only read the store, so they work whether or not the gateway is running.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, tzinfo
from typing import Any

from access.logbook import entry_line, query, write_csv
from gateway.cli.common import load, parse_time
from gateway.store.database import open_for_reading
from gateway.store.events import verify

EMPTY = "(kosong / empty)"


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    log = commands.add_parser(
        "log", parents=[common],
        help="the access logbook (buku log akses): who entered, left or was refused, and what the doors did",
    )
    log.add_argument("--person", metavar="P", help="only this person: id, NIP or full name")
    log.add_argument("--visit", metavar="VISIT", help="only this visit: its steps and its visitors' entries")
    log.add_argument("--door", metavar="D", help="only this door (its name in [[doors]])")
    log.add_argument("--since", metavar="T", help="from this time: 15m, 2h, 7d ago, or ISO 8601")
    log.add_argument("--until", metavar="T", help="before this time (same forms as --since)")
    form = log.add_mutually_exclusive_group()
    form.add_argument("--csv", action="store_true",
                      help="CSV with a bilingual header row; local times with their UTC offset")
    form.add_argument("--json", action="store_true", help="one JSON object per entry")
    log.set_defaults(handler=_logbook)
    # optional: `dcgate log` alone lists the logbook, `dcgate log verify` checks the chain as before
    sub = log.add_subparsers(dest="log_command", metavar="SUBCOMMAND", required=False)
    check = sub.add_parser(
        "verify", parents=[common],
        help="check every event's hash and link; exit 0 if intact, 1 naming the first altered or removed event",
    )
    check.set_defaults(handler=_verify)


def _logbook(args: argparse.Namespace) -> int:
    config = load(args)
    tz = config.access.zone  # [access] timezone, Asia/Jakarta (WIB) unless the site says otherwise
    # parse both before reading anything: a typo in --until must not print half an answer
    since = _time(args.since, tz) if args.since else None
    until = _time(args.until, tz) if args.until else None
    entries = query(config.database_path, person=args.person, door=args.door, since=since, until=until,
                    visit=args.visit)
    if args.csv:
        write_csv(entries, sys.stdout, tz)
    elif args.json:
        for entry in entries:
            print(json.dumps(entry.as_dict(tz), ensure_ascii=False))
    else:
        for entry in entries:
            print(entry_line(entry, tz))
    if not entries:
        # stdout stays valid CSV / JSON lines; the person at the terminal still sees why it is blank
        print(EMPTY, file=sys.stderr if args.csv or args.json else sys.stdout)
    return 0


def _time(text: str, tz: tzinfo) -> str:
    """parse_time, but a time without a zone is in the logbook's zone: the one its lines are printed in,
    which is what staff read and type, whatever zone the Pi's own clock is set to."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return parse_time(text)  # 15m / 2h / 7d ago, or an error naming the accepted forms
    return parse_time(moment.replace(tzinfo=tz).isoformat() if moment.tzinfo is None else text)


def _verify(args: argparse.Namespace) -> int:
    config = load(args)
    db = open_for_reading(config.database_path)
    try:
        result = verify(db)
    finally:
        db.close()
    if result.ok:
        print(f"OK: {result.events} events, chain intact, head seq {result.head_seq} hash {result.head_hash}")
        return 0
    print(f"TAMPERED: {result.problem}", file=sys.stderr)
    print(f"  {result.events} events before it are intact (up to seq {result.head_seq})", file=sys.stderr)
    return 1
