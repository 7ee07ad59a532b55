"""`dcgate key|person|enroll|finger|door|inside`: people, their biometrics, and the doors.

Changes go to the running gateway over the control socket (it holds the sensors, the cameras and the
one writer). When the gateway is stopped, people and image enrolment still work: the command takes
the data directory's lock and writes through its own writer, exactly as the service would.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
from pathlib import Path
from typing import Any

from gateway.cli.common import load, run_offline
from gateway.config.models import Config
from gateway.control.client import call
from gateway.errors import ServiceNotRunningError

#: seconds a command waits for the gateway: enrolment waits for a finger, a face for a blink
SLOW_TIMEOUT_S = 180.0
OFFLINE_OPS = ("person.add", "person.activate", "person.deactivate", "person.revoke", "enroll.face")


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    _register_key(commands, common)
    _register_person(commands, common)
    _register_enroll(commands, common)
    finger = commands.add_parser("finger", parents=[common], help="fingerprint sensors")
    fsub = finger.add_subparsers(dest="finger_command", metavar="SUBCOMMAND", required=True)
    sync = fsub.add_parser("sync", parents=[common],
                           help="make a door's sensor hold exactly the enrolled templates (a new or replaced "
                                "sensor gets every template; revoked ones are erased)")
    sync.add_argument("door", metavar="DOOR", help="door name from the config")
    sync.set_defaults(handler=lambda a: _print(_desk(a, "finger.sync", {"door": a.door})))
    _register_door(commands, common)
    inside = commands.add_parser("inside", parents=[common], help="who is in the server room now, since when")
    inside.add_argument("--json", action="store_true", help="JSON instead of text")
    inside.set_defaults(handler=_inside)


# -- key ---------------------------------------------------------------------------------------------
def _register_key(commands: Any, common: argparse.ArgumentParser) -> None:
    key = commands.add_parser("key", parents=[common], help="the key that encrypts biometric templates")
    sub = key.add_subparsers(dest="key_command", metavar="SUBCOMMAND", required=True)
    gen = sub.add_parser("generate", parents=[common],
                         help="write a new random AES-256 key, owner-only; refuses to overwrite an existing one")
    gen.add_argument("path", metavar="FILE", help="where to write it, e.g. /etc/dcgate/biometric.key")
    gen.set_defaults(handler=_key_generate)


def _key_generate(args: argparse.Namespace) -> int:
    from access.crypto import generate_key_file

    path = generate_key_file(Path(args.path))
    print(f"kunci dibuat / key written: {path} (mode 600). Simpan cadangannya di tempat aman / back it up safely: "
          "without it no template can be read.")
    return 0


# -- person ------------------------------------------------------------------------------------------
def _by_default() -> str:
    return os.environ.get("SUDO_USER") or getpass.getuser()


def _register_person(commands: Any, common: argparse.ArgumentParser) -> None:
    person = commands.add_parser("person", parents=[common], help="people who may open the door")
    sub = person.add_subparsers(dest="person_command", metavar="SUBCOMMAND", required=True)
    add = sub.add_parser("add", parents=[common], help="add a person; prints the new id")
    add.add_argument("--name", required=True, help="full name")
    add.add_argument("--nip", required=True, help="employee number (NIP, 18 digits for civil servants)")
    add.add_argument("--role", required=True, choices=["staff", "officer", "admin"], help="role")
    add.add_argument("--by", default=None, metavar="NAME", help="who enrols them (default: your login name)")
    add.set_defaults(handler=_person_add)
    listing = sub.add_parser("list", parents=[common], help="list people (revoked ones with --all)")
    listing.add_argument("--all", action="store_true", help="include revoked people")
    listing.add_argument("--json", action="store_true", help="one JSON object per person")
    listing.set_defaults(handler=_person_list)
    show = sub.add_parser("show", parents=[common], help="one person, with their enrolled biometrics")
    show.add_argument("person", metavar="ID", help="id (or its first 4+ characters) or NIP")
    show.set_defaults(handler=_person_show)
    for name, op, text in (
        ("revoke", "person.revoke", "revoke for good: refused at once, templates erased from the database and "
                                    "every sensor (UU PDP)"),
        ("deactivate", "person.deactivate", "refuse at the door for now, keeping the templates (leave, suspension)"),
        ("activate", "person.activate", "let a deactivated person in again"),
    ):
        cmd = sub.add_parser(name, parents=[common], help=text)
        cmd.add_argument("person", metavar="ID", help="id (or its first 4+ characters) or NIP")
        cmd.add_argument("--by", default=None, metavar="NAME", help="who decides (default: your login name)")
        cmd.add_argument("--reason", default="", metavar="TEXT", help="why (recorded in the logbook)")
        cmd.set_defaults(handler=_person_change, op=op)


def _person_add(args: argparse.Namespace) -> int:
    result = _desk(args, "person.add", {"name": args.name, "nip": args.nip, "role": args.role,
                                        "by": args.by or _by_default()})
    print(result["id"])
    return 0


def _person_change(args: argparse.Namespace) -> int:
    result = _desk(args, args.op, {"person": args.person, "by": args.by or _by_default(), "reason": args.reason})
    _print(result)
    return 0


def _registry(config: Config) -> Any:
    from access.people import PeopleRegistry

    return PeopleRegistry(config.database_path, None, None)


def _person_list(args: argparse.Namespace) -> int:
    config = load(args)
    if not config.database_path.exists():
        print("(kosong / empty)")
        return 0
    people = _registry(config).list(include_revoked=args.all)
    if args.json:
        for person in people:
            print(json.dumps(person.as_dict(), ensure_ascii=False))
        return 0
    if not people:
        print("(kosong / empty)")
    for p in people:
        biometrics = f"wajah/face {p.faces}, jari/finger {list(p.finger_slots) or '-'}"
        print(f"{p.id}  {p.name:<28} {p.nip:<20} {p.role:<8} {p.status:<9} {biometrics}")
    return 0


def _person_show(args: argparse.Namespace) -> int:
    _print(_registry(load(args)).get(args.person).as_dict())
    return 0


# -- enroll ------------------------------------------------------------------------------------------
def _register_enroll(commands: Any, common: argparse.ArgumentParser) -> None:
    enroll = commands.add_parser("enroll", parents=[common], help="enrol a person's face or fingerprint")
    sub = enroll.add_subparsers(dest="enroll_command", metavar="SUBCOMMAND", required=True)
    face = sub.add_parser("face", parents=[common],
                          help="enrol a face from photos (each checked: one face, size, sharpness, light) or a "
                               "door camera")
    face.add_argument("person", metavar="PERSON_ID", help="id (or its first 4+ characters) or NIP")
    source = face.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", action="append", metavar="FILE", help="a photo; repeat for several samples")
    source.add_argument("--camera", metavar="DOOR", help="take the samples from this door's camera")
    face.add_argument("--samples", type=int, default=5, help="samples to take from the camera (default 5)")
    face.add_argument("--min-samples", type=int, default=1,
                      help="photos that must pass the checks (default 1)")
    face.add_argument("--by", default=None, metavar="NAME", help="who enrols (default: your login name)")
    face.set_defaults(handler=_enroll_face)
    finger = sub.add_parser("finger", parents=[common],
                            help="enrol a fingerprint on a door's sensor (place, lift, place again)")
    finger.add_argument("person", metavar="PERSON_ID", help="id (or its first 4+ characters) or NIP")
    finger.add_argument("--door", required=True, metavar="DOOR", help="door whose sensor takes the scans")
    finger.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the finger (default 30)")
    finger.add_argument("--by", default=None, metavar="NAME", help="who enrols (default: your login name)")
    finger.set_defaults(handler=_enroll_finger)


def _enroll_face(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"person": args.person, "by": args.by or _by_default(), "samples": args.samples,
                              "min_samples": args.min_samples}
    if args.camera:
        params["camera"] = args.camera
    else:
        params["images"] = [str(Path(image).resolve()) for image in args.image]  # the service has its own cwd
    _print(_desk(args, "enroll.face", params))
    return 0


def _enroll_finger(args: argparse.Namespace) -> int:
    print("Tempelkan jari pada sensor, angkat, tempelkan lagi / Place the finger, lift it, place it again",
          flush=True)
    _print(_desk(args, "enroll.finger", {"person": args.person, "door": args.door, "by": args.by or _by_default(),
                                         "timeout": args.timeout}))
    return 0


# -- door --------------------------------------------------------------------------------------------
def _register_door(commands: Any, common: argparse.ArgumentParser) -> None:
    door = commands.add_parser("door", parents=[common], help="the doors of a running gateway")
    sub = door.add_subparsers(dest="door_command", metavar="SUBCOMMAND", required=True)
    status = sub.add_parser("status", parents=[common], help="each door's state, readers and pending factor")
    status.set_defaults(handler=lambda a: _print(_desk(a, "door.status", {})))
    present = sub.add_parser("present", parents=[common],
                             help="show the simulated camera a photo or video, or put a simulated finger on the "
                                  "sensor; prints the decision as JSON")
    present.add_argument("door", metavar="DOOR", help="door name from the config")
    what = present.add_mutually_exclusive_group(required=True)
    what.add_argument("--face", metavar="IMAGE", help="a photo held to the camera")
    what.add_argument("--video", metavar="FILE", help="a video file played to the camera")
    what.add_argument("--finger", type=int, metavar="SLOT",
                      help="simulated finger N (a finger enrolled in the simulator goes into slot N)")
    present.add_argument("--exit", action="store_true", help="present at the exit reader instead (inside)")
    present.set_defaults(handler=_present)


def _present(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"door": args.door, "direction": "out" if args.exit else "in"}
    if args.face:
        params["face"] = str(Path(args.face).resolve())
    elif args.video:
        params["video"] = str(Path(args.video).resolve())
    else:
        params["finger"] = args.finger
    result = _desk(args, "door.present", params)
    print(json.dumps(result, ensure_ascii=False))
    return 0


def _inside(args: argparse.Namespace) -> int:
    config = load(args)
    try:
        rows = call(config.control_socket_path, "inside", {})
    except ServiceNotRunningError:
        from gateway.doors import DoorSet
        from gateway.visit_desk import build_visit_book

        book = build_visit_book(config, None) if config.database_path.exists() else None
        rows = DoorSet.inside_offline(config, book)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return 0
    if not rows:
        print("tidak ada orang di dalam / nobody inside")
    names = {row["person"]: row["name"] for row in rows}
    for row in rows:
        flag = "  MELEBIHI BATAS / OVERSTAY" if row.get("overstay") else ""
        if row.get("visit"):
            kind = {"guest": "tamu/guest", "vendor": "vendor"}.get(str(row.get("kind")), str(row["role"]))
            escort = row.get("escort_name") or names.get(row.get("escort"), row.get("escort"))
            left = row.get("time_left_s")
            remaining = "" if left is None else (f"  sisa/left {max(left, 0) / 60:.0f} min" if left >= 0 else
                                                 f"  lewat/over {-left / 60:.0f} min")
            print(f"{row['name']:<28} {kind:<11} {row['visit']}  pendamping/escort {escort}  "
                  f"sejak/since {row['since']}{remaining}{flag}")
            continue
        escorting = f"  mendampingi/escorting {len(row['escorting'])}" if row.get("escorting") else ""
        print(f"{row['name']:<28} {row['role']:<11} sejak/since {row['since']}  pintu/door {row['door']}  "
              f"{row['stay_s'] / 3600:.1f} h{escorting}{flag}")
    return 0


# -- plumbing ----------------------------------------------------------------------------------------
def _print(result: Any) -> int:
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


def _desk(args: argparse.Namespace, op: str, params: dict[str, Any]) -> Any:
    """Ask the running gateway; when it is stopped, do what needs no door hardware here."""
    config = load(args)
    try:
        return call(config.control_socket_path, op, params, timeout=SLOW_TIMEOUT_S)
    except ServiceNotRunningError:
        if op not in OFFLINE_OPS:
            raise
    return _offline(config, op, params)


def _offline(config: Config, op: str, params: dict[str, Any]) -> Any:
    from access.crypto import TemplateCipher
    from access.people import PeopleRegistry
    from gateway.access_desk import AccessDesk

    def desk(writer: Any) -> AccessDesk:
        key = config.access.key_file
        registry = PeopleRegistry(config.database_path, writer, TemplateCipher.from_file(key) if key else None)
        return AccessDesk(config, registry, None)

    return run_offline(config, desk, op, params)
