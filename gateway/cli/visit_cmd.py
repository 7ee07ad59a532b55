"""`dcgate visit ...`: guests (*tamu*) and vendors (*vendor, rekanan*), from the request to the minutes.

The steps of the SOP: request, an officer approves (assigning escorts) or rejects, the visitors arrive
and deposit their IDs, the door is armed so that an assigned escort's own grant admits them, an
officer extends the time, and the escort checks them out (activities, checklist, the *berita acara*
PDF). Each step goes to the running gateway over the control socket; when it is stopped, every step
except arming a door is done here through the data directory's own writer, as the service would.
The rules and the refusals are the desk's (`gateway/visit_desk.py`, docs/visits.md); this module
only turns arguments into requests and replies into text.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from access.presence import iso_utc
from gateway.cli.access_cmd import SLOW_TIMEOUT_S, _by_default
from gateway.cli.common import load, run_offline
from gateway.config.models import Config
from gateway.control.client import call
from gateway.errors import InvalidValueError, ServiceNotRunningError

#: operations that need the doors, which only the running gateway holds
SERVICE_ONLY_OPS = ("visit.admit",)
EMPTY = "(kosong / empty)"

KIND_WORDS = {"guest": "tamu", "vendor": "vendor"}
STATUS_WORDS = {
    "requested": "diajukan/requested",
    "approved": "disetujui/approved",
    "rejected": "ditolak/rejected",
    "expired": "kedaluwarsa/expired",
    "arrived": "tiba/arrived",
    "in_progress": "berlangsung/in progress",
    "checked_out": "selesai/checked out",
}
ALARM_WORDS = {
    "escort_left": "pendamping keluar lebih dulu / the escort left first",
    "escort_revoked": "akses pendamping dicabut / the escort was revoked",
}
CHECK_OK = ("ok", "baik", "berfungsi", "yes")
CHECK_FAIL = ("fail", "gagal", "rusak", "tidak", "no")
TIME_EXAMPLES = '+30m, +2h, +1d, 09:30, "2026-11-21 09:30" or 2026-11-21T09:30+07:00'

_RELATIVE = re.compile(r"^\+\s*(\d+(?:\.\d+)?)\s*([mhd])$", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_CLOCK = re.compile(r"^(\d{1,2})[:.](\d{2})$")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# the form the commands print ("21-11-2026 09.15 WIB"), so a time can be copied from a listing
_PRINTED = re.compile(r"^(\d{1,2})-(\d{1,2})-(\d{4})[ T](\d{1,2})[:.](\d{2})(?:\s+(WIB|WITA|WIT))?$", re.IGNORECASE)
_ZONE_WORDS = {"WIB": 7, "WITA": 8, "WIT": 9}


# -- times -------------------------------------------------------------------------------------------
def _store_text(moment: datetime) -> str:
    return iso_utc(moment.timestamp())  # the store's UTC text form


def parse_visit_time(text: str, zone: ZoneInfo, now: datetime | None = None) -> str:
    """A visit's start or end as the store's UTC text ("2026-11-21T02:00:00.000Z").

    Accepts "+30m" / "+2h" / "+1d" from now, "HH:MM" today, "YYYY-MM-DD HH:MM" or any ISO 8601 time,
    and the printed form "21-11-2026 09.15 WIB". A time without a zone is in `zone`, the site's
    (`access.timezone`), never this machine's: the officer types the time on the wall of the room.
    """
    raw = text
    text = text.strip()
    now = (now or datetime.now(UTC)).astimezone(zone)
    relative = _RELATIVE.match(text)
    if relative:
        return _store_text(now + timedelta(**{_UNITS[relative.group(2).lower()]: float(relative.group(1))}))
    clock = _CLOCK.match(text)
    if clock:
        hour, minute = int(clock.group(1)), int(clock.group(2))
        if hour > 23 or minute > 59:
            raise _bad_time(raw, "is not a time of day (00:00 to 23:59)")
        return _store_text(now.replace(hour=hour, minute=minute, second=0, microsecond=0))
    if _DATE_ONLY.match(text):
        raise _bad_time(raw, "is a date without a time; add the hour, e.g. \"" + text + ' 09:00"')
    printed = _PRINTED.match(text)
    if printed:
        day, month, year, hour, minute, word = printed.groups()
        where: tzinfo = zone if word is None else timezone(timedelta(hours=_ZONE_WORDS[word.upper()]), word.upper())
        try:
            moment = datetime(int(year), int(month), int(day), int(hour), int(minute), tzinfo=where)
        except ValueError as exc:
            raise _bad_time(raw, f"is not a real date and time ({exc})") from None
        return _store_text(moment)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise _bad_time(raw, "is not understood") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return _store_text(moment)


def _bad_time(raw: str, why: str) -> InvalidValueError:
    return InvalidValueError(
        f"waktu / time {raw!r} {why}. Contoh / examples: {TIME_EXAMPLES} "
        "(tanpa zona = zona situs / no zone = the site's [access] timezone)"
    )


def _local(ts: str | None, zone: ZoneInfo) -> datetime | None:
    if not ts:
        return None
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(zone)


def show_time(ts: str | None, zone: ZoneInfo) -> str:
    """ "21-11-2026 09.15 WIB" in the site's zone; "-" for nothing."""
    moment = _local(ts, zone)
    return "-" if moment is None else moment.strftime("%d-%m-%Y %H.%M ") + (moment.tzname() or "")


def show_window(window: Mapping[str, Any] | None, zone: ZoneInfo) -> str:
    """ "21-11-2026 09.00–17.00 WIB" (one day) or both dates in full."""
    window = window or {}
    start, end = _local(window.get("start"), zone), _local(window.get("end"), zone)
    if start is None or end is None:
        return f"{show_time(window.get('start'), zone)} – {show_time(window.get('end'), zone)}"
    if start.date() == end.date():
        return start.strftime("%d-%m-%Y %H.%M") + end.strftime("–%H.%M ") + (end.tzname() or "")
    return f"{show_time(window['start'], zone)} – {show_time(window['end'], zone)}"


# -- other arguments ---------------------------------------------------------------------------------
def parse_check(text: str) -> dict[str, Any]:
    """ "ITEM=ok|fail[:note]" -> {"item", "ok", "note"}; Indonesian words too (baik, berfungsi / gagal, rusak)."""
    item, sep, result = text.partition("=")
    word, _colon, note = result.partition(":")
    item, word, note = item.strip(), word.strip(), note.strip()
    if not sep or not item:
        raise InvalidValueError(
            f"--check {text!r}: tulis / write ITEM=ok|fail[:catatan/note], e.g. --check \"UPS-2=baik\" "
            "or --check \"switch inti=rusak:port 3 mati\""
        )
    if word.lower() in CHECK_OK:
        return {"item": item, "ok": True, "note": note}
    if word.lower() in CHECK_FAIL:
        return {"item": item, "ok": False, "note": note}
    raise InvalidValueError(
        f"--check {text!r}: hasil / result {word!r} tidak dikenal / not known; use one of "
        f"{', '.join(CHECK_OK)} (berfungsi / working) or {', '.join(CHECK_FAIL)} (tidak berfungsi / not working)"
    )


def parse_companion(text: str) -> dict[str, str]:
    """ "NAME;ID_TYPE;ID_NUMBER" -> {"name", "id_type", "id_number"} (the desk checks the number)."""
    parts = [part.strip() for part in text.split(";")]
    if len(parts) != 3 or not all(parts):
        raise InvalidValueError(
            f"--companion {text!r}: tulis / write \"NAMA;JENIS_ID;NOMOR\" / \"NAME;ID_TYPE;ID_NUMBER\", "
            'e.g. --companion "Rina Wati;KTP;3271014105900004" (ID_TYPE: KTP, SIM or PASPOR)'
        )
    return {"name": parts[0], "id_type": parts[1].upper(), "id_number": parts[2]}


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().resolve())  # the service has another working directory


# -- the parser --------------------------------------------------------------------------------------
def register(commands: Any, common: argparse.ArgumentParser) -> None:
    visit = commands.add_parser(
        "visit", parents=[common],
        help="guests (tamu) and vendors: request, approve, arrive, admit with an escort, extend, check out",
    )
    sub = visit.add_subparsers(dest="visit_command", metavar="SUBCOMMAND", required=True)

    request = sub.add_parser("request", parents=[common],
                             help="request a visit for one visitor (and companions); prints only the visit id")
    request.add_argument("--name", required=True, help="the visitor's full name, as on the ID")
    request.add_argument("--org", required=True, help="organisation or company (instansi / perusahaan)")
    request.add_argument("--kind", required=True, choices=["guest", "vendor", "tamu"], metavar="guest|vendor",
                         help="guest (tamu: may only look, 10 min) or vendor (works escorted, up to 8 h)")
    request.add_argument("--id-type", required=True, type=str.upper, choices=["KTP", "SIM", "PASPOR", "PASSPORT"],
                         metavar="KTP|SIM|PASPOR", help="the ID document deposited at the desk")
    request.add_argument("--id-number", required=True, metavar="X",
                         help="its number (KTP: the 16-digit NIK); stored encrypted, shown masked")
    request.add_argument("--purpose", required=True, metavar="P", help="why they come (keperluan)")
    request.add_argument("--start", metavar="T",
                         help=f"window start: {TIME_EXAMPLES}; no zone = the site's [access] timezone")
    request.add_argument("--end", metavar="T", help="window end (same forms as --start)")
    request.add_argument("--duration", type=int, metavar="MIN", help="expected length of the work, minutes")
    request.add_argument("--device", action="append", metavar="D",
                         help="vendors: a device to be serviced; repeat for several (each needs a result at checkout)")
    request.add_argument("--companion", action="append", metavar="NAME;ID_TYPE;ID_NUMBER",
                         help='another visitor of the same visit, e.g. "Rina Wati;KTP;3271014105900004"; repeatable')
    request.add_argument("--by", metavar="NAME", help="who records the request (default: your login name)")
    request.set_defaults(handler=_request)

    approve = sub.add_parser("approve", parents=[common],
                             help="an officer approves a requested visit and assigns the escort(s)")
    approve.add_argument("visit", metavar="VISIT", help="visit id, e.g. KJ-20261121-001 (any case)")
    approve.add_argument("--by", required=True, metavar="OFFICER_ID",
                         help="the approving officer: person id (or its first 4+ characters) or NIP")
    approve.add_argument("--escort", required=True, action="append", metavar="STAFF_ID",
                         help="a staff member who escorts the visitors; repeat for several")
    approve.add_argument("--start", metavar="T", help="change the window start (same forms as request --start)")
    approve.add_argument("--end", metavar="T", help="change the window end")
    approve.add_argument("--note", metavar="TEXT", help="a note with the approval")
    approve.set_defaults(handler=_approve)

    reject = sub.add_parser("reject", parents=[common], help="an officer refuses a requested visit, with a reason")
    reject.add_argument("visit", metavar="VISIT", help="visit id")
    reject.add_argument("--by", required=True, metavar="OFFICER_ID", help="the officer: person id or NIP")
    reject.add_argument("--reason", required=True, metavar="R", help="why (recorded, shown to the requester)")
    reject.set_defaults(handler=_reject)

    arrive = sub.add_parser("arrive", parents=[common],
                            help="the visitors are at the desk and have deposited their IDs (and gadgets)")
    arrive.add_argument("visit", metavar="VISIT", help="visit id")
    arrive.add_argument("--received-by", required=True, metavar="STAFF_ID",
                        help="the staff member who receives the IDs: person id or NIP")
    arrive.add_argument("--visitor", action="append", type=int, metavar="N",
                        help="only visitor N (1 = the requester, 2... companions); repeatable; default all")
    arrive.add_argument("--gadgets", metavar="TEXT",
                        help='deposited phones, cameras... (guests must answer, "none" / "tidak ada" is an answer)')
    arrive.set_defaults(handler=_arrive)

    admit = sub.add_parser("admit", parents=[common],
                           help="arm a door for the visit: the next grant of an assigned escort there admits the "
                                "arrived visitors (needs the running gateway)")
    admit.add_argument("visit", metavar="VISIT", help="visit id")
    admit.add_argument("--door", required=True, metavar="DOOR", help="door name from the config")
    admit.add_argument("--by", metavar="NAME", help="who arms the door (default: your login name)")
    admit.add_argument("--wait", action="store_true",
                       help="wait for the escort and print the door's decision as JSON (exit 1 unless granted)")
    admit.add_argument("--timeout", type=float, metavar="S",
                       help="with --wait: seconds to wait for the escort's decision (default: "
                            "visits.admit_window_s + 5)")
    admit.set_defaults(handler=_admit)

    extend = sub.add_parser("extend", parents=[common], help="an officer gives the visit more time")
    extend.add_argument("visit", metavar="VISIT", help="visit id")
    extend.add_argument("--by", required=True, metavar="OFFICER_ID", help="the officer: person id or NIP")
    extend.add_argument("--minutes", required=True, type=int, metavar="M", help="minutes added to every deadline")
    extend.add_argument("--reason", required=True, metavar="R", help="why (recorded)")
    extend.set_defaults(handler=_extend)

    checkout = sub.add_parser("checkout", parents=[common],
                              help="the visitors are out: activities, exit checklist, IDs returned, the minutes PDF")
    checkout.add_argument("visit", metavar="VISIT", help="visit id")
    checkout.add_argument("--by", required=True, metavar="STAFF_ID", help="the escort checking out: person id or NIP")
    checkout.add_argument("--activities", required=True, metavar="TEXT", help="what was done (kegiatan)")
    checkout.add_argument("--check", action="append", metavar="ITEM=ok|fail[:note]",
                          help="exit checklist: a device and whether it works (ok, baik, berfungsi, yes / fail, "
                               "gagal, rusak, tidak, no), with an optional note; repeatable; vendors need one per "
                               "requested device")
    checkout.add_argument("--visitor", action="append", type=int, metavar="N",
                          help="only visitor N leaves now; repeatable; default all")
    checkout.add_argument("--returned-by", metavar="STAFF_ID",
                          help="who hands the IDs back (default: the --by staff member)")
    checkout.add_argument("--minutes-pdf", metavar="FILE",
                          help="also write the berita acara kegiatan PDF to this file (later: dcgate visit minutes)")
    checkout.set_defaults(handler=_checkout)

    minutes = sub.add_parser("minutes", parents=[common],
                             help="(re)write the berita acara kegiatan (activity minutes) PDF of a visit")
    minutes.add_argument("visit", metavar="VISIT", help="visit id")
    minutes.add_argument("--out", required=True, metavar="FILE", help="the PDF file to write")
    minutes.set_defaults(handler=_minutes)

    listing = sub.add_parser("list", parents=[common],
                             help="visits not finished yet (all of them with --all), as a table")
    listing.add_argument("--all", action="store_true", help="include rejected, expired and checked-out visits")
    listing.add_argument("--json", action="store_true", help="one JSON object per visit")
    listing.set_defaults(handler=_list)

    show = sub.add_parser("show", parents=[common], help="one visit in full: visitors, escorts, approval, checkout")
    show.add_argument("visit", metavar="VISIT", help="visit id")
    show.add_argument("--reveal", action="store_true",
                      help="show the full ID numbers (needs --by an officer; recorded as visit.id_viewed)")
    show.add_argument("--by", metavar="OFFICER_ID", help="the officer who reveals: person id or NIP")
    show.add_argument("--json", action="store_true", help="the visit as one JSON object")
    show.set_defaults(handler=_show)


# -- the commands ------------------------------------------------------------------------------------
def _times(params: dict[str, Any], args: argparse.Namespace, zone: ZoneInfo) -> None:
    # both parsed before anything is sent: a typo in --end must not leave half a change behind
    for key in ("start", "end"):
        value = getattr(args, key)
        if value is not None:
            params[key] = parse_visit_time(value, zone)


def _request(args: argparse.Namespace) -> int:
    config = load(args)
    companions = [parse_companion(text) for text in args.companion or []]
    params: dict[str, Any] = {
        "kind": "guest" if args.kind == "tamu" else args.kind, "name": args.name, "org": args.org,
        "id_type": "PASPOR" if args.id_type == "PASSPORT" else args.id_type, "id_number": args.id_number,
        "purpose": args.purpose, "by": args.by or _by_default(),
    }
    _times(params, args, config.access.zone)
    if args.duration is not None:
        params["duration_min"] = args.duration
    if args.device:
        params["devices"] = args.device
    if companions:
        params["companions"] = companions
    visit = _visit_call(config, "visit.request", params)
    print(visit["id"])
    return 0


def _approve(args: argparse.Namespace) -> int:
    config = load(args)
    params: dict[str, Any] = {"visit": args.visit, "by": args.by, "escorts": args.escort}
    _times(params, args, config.access.zone)
    if args.note is not None:
        params["note"] = args.note
    visit = _visit_call(config, "visit.approve", params)
    zone = config.access.zone
    print(f"{visit['id']} disetujui / approved: {show_window(visit.get('window'), zone)}, "
          f"batas / limit {_minutes_text(visit.get('limit_min'))}, pendamping / escorts: {_escorts(visit)}")
    return 0


def _reject(args: argparse.Namespace) -> int:
    config = load(args)
    visit = _visit_call(config, "visit.reject", {"visit": args.visit, "by": args.by, "reason": args.reason})
    print(f"{visit['id']} ditolak / rejected: {visit.get('reject_reason') or args.reason}")
    return 0


def _arrive(args: argparse.Namespace) -> int:
    config = load(args)
    params: dict[str, Any] = {"visit": args.visit, "received_by": args.received_by}
    if args.visitor:
        params["visitors"] = args.visitor
    if args.gadgets is not None:
        params["gadgets"] = args.gadgets
    visit = _visit_call(config, "visit.arrive", params)
    arrived = [v for v in visit.get("visitors", []) if v.get("arrived_at")]
    names = ", ".join(f"{v['name']} ({v.get('id_type', '')} {v.get('id_masked', '')})" for v in arrived) or "-"
    print(f"{visit['id']} tiba / arrived, ID dititipkan / IDs deposited: {names}")
    return 0


def _admit(args: argparse.Namespace) -> int:
    config = load(args)
    zone = config.access.zone
    params: dict[str, Any] = {"visit": args.visit, "door": args.door, "by": args.by or _by_default()}
    wait_s = args.timeout if args.timeout is not None else _admit_window_s(config) + 5.0
    if args.timeout is not None:
        params["timeout"] = args.timeout
    if args.wait:
        params["wait"] = True
        print(f"Pintu / door {args.door}: menunggu pendamping / waiting for an escort "
              f"(paling lama / at most {wait_s:.0f} s)...", file=sys.stderr, flush=True)
    # with --wait the answer comes only after the escort's decision (or the wait's own timeout)
    result = _visit_call(config, "visit.admit", params, timeout=max(SLOW_TIMEOUT_S, wait_s + 30.0))
    escorts = ", ".join(e.get("name") or e.get("person", "?") for e in result.get("escorts", [])) or "-"
    visitors = ", ".join(result.get("visitors", [])) or "-"
    line = (f"Pintu / door {result.get('door', args.door)} menunggu pendamping / waits for an escort ({escorts}) "
            f"sampai / until {show_time(result.get('armed_until'), zone)}; "
            f"pengunjung / visitors: {visitors} ({result.get('visit', args.visit)})")
    if not args.wait:
        print(line)
        return 0
    print(line, file=sys.stderr)
    # the door's decision; older desks call it "outcome" ({admitted, escort} or {reason, message})
    decision = result["decision"] if "decision" in result else result.get("outcome")
    print(json.dumps(decision, ensure_ascii=False))
    if decision is None:
        print(f"dcgate: tidak ada pendamping dalam {wait_s:.0f} s / no escort came within {wait_s:.0f} s",
              file=sys.stderr)
        return 1
    if "decision" in decision:
        admitted = decision.get("decision") == "granted"
    else:
        admitted = bool(decision.get("admitted")) and not decision.get("reason")
    if not admitted and decision.get("message"):
        print(f"dcgate: {decision['message']}", file=sys.stderr)
    return 0 if admitted else 1


def _admit_window_s(config: Config) -> float:
    return float(config.visits.admit_window_s)


def _extend(args: argparse.Namespace) -> int:
    config = load(args)
    if args.minutes <= 0:
        raise InvalidValueError(f"--minutes {args.minutes}: harus lebih dari 0 / must be more than 0")
    visit = _visit_call(config, "visit.extend", {"visit": args.visit, "by": args.by, "minutes": args.minutes,
                                                  "reason": args.reason})
    zone = config.access.zone
    deadlines = ", ".join(f"{v['name']} {show_time(v['deadline'], zone)}"
                          for v in visit.get("visitors", []) if v.get("deadline"))
    print(f"{visit['id']} diperpanjang / extended +{args.minutes} min: batas / limit "
          f"{_minutes_text(visit.get('limit_min'))}" + (f"; batas waktu / deadlines: {deadlines}" if deadlines else ""))
    return 0


def _checkout(args: argparse.Namespace) -> int:
    config = load(args)
    checklist = [parse_check(text) for text in args.check or []]
    params: dict[str, Any] = {"visit": args.visit, "by": args.by, "activities": args.activities}
    if checklist:
        params["checklist"] = checklist
    if args.visitor:
        params["visitors"] = args.visitor
    if args.returned_by is not None:
        params["returned_by"] = args.returned_by
    if args.minutes_pdf is not None:
        params["minutes_pdf"] = _absolute(args.minutes_pdf)
    visit = _visit_call(config, "visit.checkout", params)
    done = visit.get("status") == "checked_out"
    print(f"{visit['id']} " + ("selesai / checked out" if done else "sebagian keluar / partly checked out")
          + f", ID dikembalikan / IDs returned: {_names([v for v in visit.get('visitors', []) if v.get('exited_at')])}")
    if visit.get("minutes_pdf"):
        print(f"berita acara / minutes: {visit['minutes_pdf']}")
    return 0


def _minutes(args: argparse.Namespace) -> int:
    config = load(args)
    result = _visit_call(config, "visit.minutes", {"visit": args.visit, "out": _absolute(args.out)})
    print(result["minutes_pdf"])
    return 0


def _list(args: argparse.Namespace) -> int:
    config = load(args)
    visits = _visit_call(config, "visit.list", {"all": True} if args.all else {})
    if args.json:
        for visit in visits:
            print(json.dumps(visit, ensure_ascii=False))
        return 0
    if not visits:
        print(EMPTY)
        return 0
    zone = config.access.zone
    rows = [("ID", "jenis/kind", "status", "instansi/org", "pengunjung/visitors", "ID (masked)",
             "jadwal/window", "pendamping/escorts")]
    for visit in visits:
        people = visit.get("visitors") or []
        first = people[0] if people else {}
        who = (first.get("name") or "-") + (f" +{len(people) - 1}" if len(people) > 1 else "")
        rows.append((visit["id"], KIND_WORDS.get(visit.get("kind", ""), visit.get("kind", "")),
                     STATUS_WORDS.get(visit.get("status", ""), visit.get("status", "")), visit.get("org", ""),
                     who, first.get("id_masked") or "-", show_window(visit.get("window"), zone), _escorts(visit)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    return 0


def _show(args: argparse.Namespace) -> int:
    config = load(args)
    params: dict[str, Any] = {"visit": args.visit}
    if args.reveal:
        if not args.by:
            raise InvalidValueError("--reveal needs --by OFFICER_ID: membuka nomor ID lengkap dicatat atas nama "
                                    "petugas / revealing full ID numbers is recorded under an officer's name")
        params["reveal_by"] = args.by
    elif args.by:
        raise InvalidValueError("--by is only for --reveal (the officer who reveals the full ID numbers)")
    visit = _visit_call(config, "visit.show", params)
    if args.json:
        print(json.dumps(visit, ensure_ascii=False, indent=2))
    else:
        print(render_visit(visit, config.access.zone))
    return 0


# -- text --------------------------------------------------------------------------------------------
def _names(people: list[Mapping[str, Any]]) -> str:
    return ", ".join(p.get("name") or p.get("key", "?") for p in people) or "-"


def _escorts(visit: Mapping[str, Any]) -> str:
    return ", ".join(e.get("name") or e.get("person", "?") for e in visit.get("escorts") or []) or "-"


def _minutes_text(minutes: Any) -> str:
    if not isinstance(minutes, int | float):
        return "-"
    if minutes >= 120 and minutes % 60 == 0:
        return f"{minutes // 60:.0f} jam/h"
    return f"{minutes:.0f} menit/min"


def _by(name: Any, person: Any) -> str:
    """A person by name; their id only when there is no name (`--json` has both)."""
    return str(name or person or "-")


def render_visit(visit: Mapping[str, Any], zone: ZoneInfo) -> str:
    """The bilingual detail view of `dcgate visit show`."""
    kind = visit.get("kind", "")
    lines = [
        f"Kunjungan / Visit: {visit.get('id')}  {KIND_WORDS.get(kind, kind)}  "
        f"{STATUS_WORDS.get(visit.get('status', ''), visit.get('status', ''))}",
        f"Instansi / Organisation: {visit.get('org') or '-'}",
        f"Keperluan / Purpose: {visit.get('purpose') or '-'}",
    ]
    if visit.get("devices"):
        lines.append(f"Perangkat / Devices: {', '.join(visit['devices'])}")
    lines.append(f"Jadwal / Window: {show_window(visit.get('window'), zone)}")
    if visit.get("expected_min"):
        lines.append(f"Perkiraan lama / Expected: {_minutes_text(visit['expected_min'])}")
    if visit.get("limit_min"):
        lines.append(f"Batas waktu di dalam / Time limit inside: {_minutes_text(visit['limit_min'])}")
    lines.append(f"Diajukan / Requested: {show_time(visit.get('requested_at'), zone)} oleh/by "
                 f"{visit.get('requested_by') or '-'}")
    if visit.get("approved_at"):
        lines.append(f"Disetujui / Approved: {show_time(visit['approved_at'], zone)} oleh/by "
                     f"{_by(visit.get('approved_by_name'), visit.get('approved_by'))}")
    if visit.get("rejected_at"):
        lines.append(f"Ditolak / Rejected: {show_time(visit['rejected_at'], zone)} oleh/by "
                     f"{_by(visit.get('rejected_by_name'), visit.get('rejected_by'))}: {visit.get('reject_reason')}")
    escorts = visit.get("escorts") or []
    if escorts:
        lines.append("Pendamping / Escorts: " + ", ".join(
            e.get("name", "?") + (f" (NIP {e['nip']})" if e.get("nip") else "") for e in escorts))
    lines.append("Pengunjung / Visitors:")
    for v in visit.get("visitors") or []:
        number = v.get("id_number") or v.get("id_masked") or "-"
        lines.append(f"  {v.get('n')}. {v.get('name')}  {v.get('id_type', '')} {number}  [{v.get('key', '')}]")
        details = []
        if v.get("arrived_at"):
            details.append(f"tiba/arrived {show_time(v['arrived_at'], zone)}, ID diterima/received by "
                           f"{_by(v.get('received_by_name'), v.get('received_by'))}")
        if v.get("gadgets"):
            details.append(f"titipan/deposited: {v['gadgets']}")
        if v.get("entered_at"):
            details.append(f"masuk/entered {show_time(v['entered_at'], zone)} dengan/with "
                           f"{_by(v.get('escort_name'), v.get('escort'))}")
        if v.get("deadline") and not v.get("exited_at"):
            details.append(f"batas/deadline {show_time(v['deadline'], zone)}")
        if v.get("inside"):
            left = v.get("time_left_s")
            details.append("di dalam/inside" + (f", sisa/left {int(left) // 60} min" if isinstance(left, int | float)
                                                 and left >= 0 else ""))
        if v.get("overstay"):
            details.append("MELEBIHI BATAS / OVERSTAY")
        if not v.get("arrived_at"):
            details.append("belum tiba / not arrived yet")
        if v.get("exited_at"):
            details.append(f"keluar/out {show_time(v['exited_at'], zone)}, ID dikembalikan/returned by "
                           f"{_by(v.get('returned_by_name'), v.get('returned_by'))}")
        lines += [f"     {detail}" for detail in details]
    for ext in visit.get("extensions") or []:
        lines.append(f"Perpanjangan / Extension: +{ext.get('minutes')} min, {show_time(ext.get('at'), zone)} "
                     f"oleh/by {_by(ext.get('by_name'), ext.get('by'))}: {ext.get('reason')}")
    alarm = visit.get("escort_alarm")
    if alarm:
        condition = ALARM_WORDS.get(alarm.get("condition", ""), alarm.get("condition"))
        lines.append(f"ALARM PENDAMPING / ESCORT ALARM: {condition}, sejak/since "
                     f"{show_time(alarm.get('since'), zone)}")
    out = visit.get("checkout")
    if out:
        lines.append(f"Selesai / Checked out: {show_time(out.get('at'), zone)} oleh/by "
                     f"{_by(out.get('by_name'), out.get('by'))}")
        lines.append(f"  Kegiatan / Activities: {out.get('activities') or '-'}")
        for check in out.get("checklist") or []:
            state = "berfungsi/working" if check.get("ok") else "TIDAK BERFUNGSI/NOT WORKING"
            lines.append(f"  - {check.get('item')}: {state}" + (f" ({check['note']})" if check.get("note") else ""))
    room = visit.get("room")
    if room:
        standard = "sesuai standar / within standard" if room.get("within_standard") else \
            "DI LUAR STANDAR / OUT OF STANDARD"
        lines.append(f"Ruangan / Room: {standard}")
    return "\n".join(lines)


# -- plumbing ----------------------------------------------------------------------------------------
def _visit_call(config: Config, op: str, params: dict[str, Any], *, timeout: float = SLOW_TIMEOUT_S) -> Any:
    """Ask the running gateway; when it is stopped, do every step but arming a door here."""
    try:
        return call(config.control_socket_path, op, params, timeout=timeout)
    except ServiceNotRunningError:
        if op in SERVICE_ONLY_OPS:
            raise
    return _offline(config, op, params)


def _offline(config: Config, op: str, params: dict[str, Any]) -> Any:
    from gateway.visit_desk import VisitDesk

    return run_offline(config, lambda writer: VisitDesk.offline(config, writer), op, params)
