"""`dcgate user add|list|passwd|role|disable|enable`: accounts of the web console.

There is no default account, ever: the first admin is made here. A password is read from a file (its
first line; owner-only, like every secret file) or from `-`, standard input (asked twice without echo
at a terminal); never from the command line, where `ps` and the shell history would show it, and it
is never printed. Changes go to the running gateway over the control socket (so it can end that
account's sessions) or, when it is stopped, through the data directory's own writer.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.cli.access_cmd import _by_default
from gateway.cli.common import load, run_offline
from gateway.config.base import check_secret_file
from gateway.control.client import call
from gateway.errors import InvalidValueError, ServiceNotRunningError

EMPTY = "(belum ada akun / no accounts yet)"
ROLE_HELP = "viewer, staff, officer or admin (each may what the one before may, and more)"
FILE_HELP = "file whose first line is the password (owner-only: chmod 600), or - for standard input"


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    user = commands.add_parser("user", parents=[common],
                               help="web console accounts (akun konsol): add, list, password, role, disable, enable")
    sub = user.add_subparsers(dest="user_command", metavar="SUBCOMMAND", required=True)

    add = sub.add_parser("add", parents=[common], help="make a console account (the first one: --role admin)")
    add.add_argument("name", metavar="NAME", help="account name: 2-32 lower-case letters, digits, . _ -")
    add.add_argument("--role", required=True, metavar="ROLE", help=ROLE_HELP)
    add.add_argument("--password-file", required=True, metavar="FILE", help=FILE_HELP)
    add.add_argument("--person", metavar="NIP_OR_ID",
                     help="link the account to this person of the access registry (an officer account: an officer, "
                          "who then approves visits in the console)")
    add.set_defaults(handler=_add)

    listing = sub.add_parser("list", parents=[common], help="list console accounts (never their passwords)")
    listing.add_argument("--json", action="store_true", help="one JSON object per account")
    listing.set_defaults(handler=_list)

    passwd = sub.add_parser("passwd", parents=[common], help="set a new password (the account's sessions end)")
    passwd.add_argument("name", metavar="NAME")
    passwd.add_argument("--password-file", required=True, metavar="FILE", help=FILE_HELP)
    passwd.set_defaults(handler=_passwd)

    role = sub.add_parser("role", parents=[common], help="change an account's role (the last admin stays admin)")
    role.add_argument("name", metavar="NAME")
    role.add_argument("role", metavar="ROLE", help=ROLE_HELP)
    role.set_defaults(handler=_role)

    for name, text in (("disable", "refuse the account's sign-ins and end its sessions (it stays in the logbook)"),
                       ("enable", "let a disabled account sign in again")):
        cmd = sub.add_parser(name, parents=[common], help=text)
        cmd.add_argument("name", metavar="NAME")
        cmd.set_defaults(handler=_set_active, op=f"user.{name}")


# -- handlers ----------------------------------------------------------------------------------------
def _add(args: argparse.Namespace) -> int:
    params = {"name": args.name, "role": args.role, "password": read_password(args.password_file), "by": _by()}
    if args.person:
        params["person"] = args.person
    user = _desk(args, "user.add", params)
    linked = f"; tertaut ke / linked to {user['person_name']} ({user['person_id']})" if user.get("person_id") else ""
    print(f"Akun {user['role']} {user['name']!r} dibuat / console account created{linked}")
    return 0


def _passwd(args: argparse.Namespace) -> int:
    user = _desk(args, "user.passwd", {"name": args.name, "password": read_password(args.password_file),
                                       "by": _by()})
    print(f"Kata sandi akun {user['name']!r} diganti / password changed")
    return 0


def _role(args: argparse.Namespace) -> int:
    user = _desk(args, "user.role", {"name": args.name, "role": args.role, "by": _by()})
    print(f"Peran akun {user['name']!r} diubah / role changed: {user.get('from', '?')} -> {user['role']}")
    return 0


def _set_active(args: argparse.Namespace) -> int:
    user = _desk(args, args.op, {"name": args.name, "by": _by()})
    word = "diaktifkan / enabled" if user["active"] else "dinonaktifkan / disabled"
    print(f"Akun {user['name']!r} {word}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from gateway.cli.visit_cmd import show_time
    from gateway.web.users import UserBook

    config = load(args)
    users = UserBook(config.database_path, None).list() if config.database_path.exists() else []
    if args.json:
        for user in users:
            print(json.dumps(user.as_dict(), ensure_ascii=False))
        return 0
    if not users:
        print(EMPTY)
        return 0
    zone = ZoneInfo(config.access.timezone)
    for u in users:
        status = "aktif/active" if u.active else "nonaktif/disabled"
        person = f"{u.person_name} ({u.person_id})" if u.person_id else "-"
        print(f"{u.name:<20} {u.role:<8} {status:<18} {show_time(u.created_at, zone):<22} {u.created_by:<16} {person}")
    return 0


# -- helpers -----------------------------------------------------------------------------------------
def read_password(source: str) -> str:
    """The first line of an owner-only file, or of standard input for `-`; without its line ending only
    (the account rules refuse leading or trailing spaces rather than silently dropping them)."""
    if source == "-":
        if sys.stdin.isatty():
            first = getpass.getpass("Kata sandi / password: ")
            if getpass.getpass("Ulangi / again: ") != first:
                raise InvalidValueError("kedua kata sandi berbeda / the two passwords differ. Fix: type it again")
            return first
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise InvalidValueError("masukan standar kosong / standard input is empty. Fix: write the password on "
                                    "its first line")
        return line
    path = Path(source).expanduser()
    try:
        check_secret_file(path, "--password-file")
        with path.open(encoding="utf-8") as stream:
            return stream.readline().rstrip("\r\n")
    except UnicodeDecodeError:  # its message would quote bytes of the password
        raise InvalidValueError(f"berkas kata sandi ditolak / --password-file {str(path)!r} is not UTF-8 text. "
                                "Fix: write the password as plain text") from None
    except ValueError as exc:
        raise InvalidValueError(f"berkas kata sandi ditolak / {exc}") from None
    except OSError as exc:
        raise InvalidValueError(f"berkas kata sandi tidak terbaca / --password-file {str(path)!r}: {exc.strerror}. "
                                "Fix: check its owner and mode") from None


def _by() -> str:
    return "cli:" + _by_default()  # the login name behind sudo, like every other `--by` default


def _desk(args: argparse.Namespace, op: str, params: dict[str, Any]) -> Any:
    """Ask the running gateway; when it is stopped, do it here through the data directory's writer."""
    from gateway.web.users import UserDesk

    config = load(args)
    try:
        return call(config.control_socket_path, op, params)
    except ServiceNotRunningError:
        pass
    return run_offline(config, lambda writer: UserDesk.offline(config, writer), op, params)
