"""`dcgate log verify`: walk the hash chain; exit 1 naming the first altered or removed event."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from gateway.cli.common import load
from gateway.store.database import open_for_reading
from gateway.store.events import verify


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    log = commands.add_parser("log", parents=[common], help="the tamper-evident event log")
    sub = log.add_subparsers(dest="log_command", metavar="SUBCOMMAND", required=True)
    check = sub.add_parser(
        "verify", parents=[common],
        help="check every event's hash and link; exit 0 if intact, 1 naming the first altered or removed event",
    )
    check.set_defaults(handler=_verify)


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
