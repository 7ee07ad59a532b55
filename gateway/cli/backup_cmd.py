"""`dcgate backup`: copy the database now (SOP Tegal 7); `dcgate backup list`: the copies in a directory.

With the gateway running the copy is made by it (control op `backup.run`), so its `backup.completed`
event goes through the one writer; with the gateway stopped it is made here, through the data
directory's own writer, as the service would. The work is `gateway/backup.py`'s; this module only
turns arguments into a request and the reply into text.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
from pathlib import Path
from typing import Any

from gateway.cli.common import load, offline_writer
from gateway.config.models import Config
from gateway.control.client import call
from gateway.errors import InvalidValueError, ServiceNotRunningError

#: a large database on an SD card takes minutes; the reply only comes when the copy is checked
BACKUP_TIMEOUT_S = 3600.0
EMPTY = "(kosong / empty)"


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    backup = commands.add_parser(
        "backup", parents=[common],
        help="copy the database now (online, checked, owner-only) into DIR, with a line in DIR/laporan-backup.csv",
    )
    backup.add_argument("--to", metavar="DIR", help="directory for the copy (default: [backup] dir)")
    backup.add_argument("--keep-days", metavar="N", type=_days,
                        help="then delete this gateway's copies there older than N days "
                             "(default: [backup] keep_days when DIR is [backup] dir, else none)")
    backup.add_argument("--json", action="store_true", help="print the result as JSON")
    backup.set_defaults(handler=_backup)
    # optional, as in `dcgate log`: `dcgate backup` alone makes a copy
    sub = backup.add_subparsers(dest="backup_command", metavar="SUBCOMMAND", required=False)
    listing = sub.add_parser("list", parents=[common], help="this gateway's copies in DIR, newest first")
    # SUPPRESS: `dcgate backup --to X list` keeps the X given before the subcommand
    listing.add_argument("--to", metavar="DIR", default=argparse.SUPPRESS,
                         help="directory to list (default: [backup] dir)")
    listing.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    listing.set_defaults(handler=_list)


def _days(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 36500:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of days over 0, e.g. 365")
    return value


def _by() -> str:
    try:
        name = os.environ.get("SUDO_USER") or getpass.getuser()  # the person behind sudo, not root
    except Exception:  # no name for this uid (a bare container)
        name = str(os.getuid())
    return "cli:" + name


def _params(args: argparse.Namespace, config: Config) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if args.to:
        # absolute: the running gateway resolves paths from its own working directory, not this shell's
        params["to"] = str(Path(args.to).expanduser().absolute())
    elif config.backup is None:
        raise InvalidValueError(
            "tidak ada direktori backup / no backup directory. Perbaiki / Fix: dcgate backup --to DIR, or set "
            "[backup] dir in the config")
    return params


def _backup(args: argparse.Namespace) -> int:
    config = load(args)
    params = {**_params(args, config), "by": _by()}
    if args.keep_days is not None:
        params["keep_days"] = args.keep_days
    try:
        result = call(config.control_socket_path, "backup.run", params, timeout=BACKUP_TIMEOUT_S)
    except ServiceNotRunningError:
        result = _offline(config, params)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(report_line(result))
    return 0


def _offline(config: Config, params: dict[str, Any]) -> dict[str, Any]:
    """The gateway is stopped: make the copy here; its events go through the data directory's writer."""
    from gateway.backup import backup_handlers

    with offline_writer(config) as writer:
        return backup_handlers(config, writer.append_and_wait)["backup.run"](params)


def report_line(result: dict[str, Any]) -> str:
    deleted = len(result.get("deleted") or [])
    return (f"backup selesai / backup done: {result['path']} ({_size(result['bytes'])}), "
            f"sha256 {result['sha256'][:16]}…, seq terakhir / last seq {result['last_seq']}, "
            f"durasi / duration {result['duration_s']:.1f} s, dihapus / deleted {deleted}")


def _size(n: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("kB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _list(args: argparse.Namespace) -> int:
    from gateway.backup import backup_handlers

    config = load(args)
    # only reads a directory: no need for the gateway, nor for its writer
    listing = backup_handlers(config, None)["backup.list"](_params(args, config))
    if getattr(args, "json", False):
        print(json.dumps(listing, ensure_ascii=False))
        return 0
    for item in listing["backups"]:
        print(f"{item['name']}  {_size(item['bytes']):>9}  {item['taken_at']}")
    if not listing["backups"]:
        print(f"{EMPTY}: {listing['dir']}")
    return 0
