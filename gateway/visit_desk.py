"""What the desk asks of visits: request, approve, arrive, admit, extend, check out, minutes, reads.

Served over the control socket by the running gateway (which holds the doors, so it alone can arm
one for an escort) and, for everything but `visit.admit`, by the CLI when the gateway is stopped.
Replies are plain JSON with masked ID numbers; the full number only comes back from `visit.show`
with `reveal_by` an officer, and that look is logged (UU PDP).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from access.presence import parse_utc
from drivers.errors import InvalidValueError
from gateway.access_desk import NeedsServiceError, _text
from gateway.config.models import Config
from gateway.store.database import open_for_reading

if TYPE_CHECKING:
    from access.admission import Admissions
    from access.visits import Visit, VisitBook
    from gateway.doors import DoorSet
    from gateway.store.writer import StoreWriter

log = logging.getLogger(__name__)

OFFLINE_OPS = ("visit.request", "visit.approve", "visit.reject", "visit.arrive", "visit.extend", "visit.checkout",
               "visit.list", "visit.show", "visit.minutes")


def build_visit_book(config: Config, writer: StoreWriter | None, registry: Any = None) -> VisitBook:
    """The visit book on this config's database, with the access key (ID numbers are stored encrypted)."""
    from access.crypto import TemplateCipher
    from access.people import PeopleRegistry
    from access.visits import VisitBook

    key = config.access.key_file
    cipher = TemplateCipher.from_file(key) if key is not None else None
    registry = registry or PeopleRegistry(config.database_path, writer, cipher)
    return VisitBook(config.database_path, writer, cipher, registry, config.visits, config.access.timezone)


class VisitDesk:
    def __init__(self, config: Config, book: VisitBook, doors: DoorSet | None = None,
                 admissions: Admissions | None = None) -> None:
        self.config, self.book, self.doors, self.admissions = config, book, doors, admissions

    @classmethod
    def offline(cls, config: Config, writer: StoreWriter | None) -> VisitDesk:
        """The desk for the CLI with the gateway stopped: no doors, so nobody is inside but by the logbook."""
        return cls(config, build_visit_book(config, writer))

    def handlers(self) -> dict[str, Any]:
        return {
            "visit.request": self.request,
            "visit.approve": self.approve,
            "visit.reject": lambda p: self._out(self.book.reject(_text(p, "visit"), by=_text(p, "by"),
                                                                 reason=_text(p, "reason"))),
            "visit.arrive": self.arrive,
            "visit.admit": self.admit,
            "visit.extend": self.extend,
            "visit.checkout": self.checkout,
            "visit.list": self.list_visits,
            "visit.show": self.show,
            "visit.minutes": self.minutes,
        }

    # -- steps -------------------------------------------------------------------------------------
    def request(self, p: Mapping[str, Any]) -> dict[str, Any]:
        companions = []
        for i, extra in enumerate(p.get("companions") or [], start=2):
            if not isinstance(extra, Mapping):
                raise InvalidValueError(f"companion {i} must be an object with name, id_type, id_number")
            companions.append((_text(extra, "name"), _text(extra, "id_type"), _text(extra, "id_number")))
        visit = self.book.request(
            kind=_text(p, "kind"), name=_text(p, "name"), org=_text(p, "org"), id_type=_text(p, "id_type"),
            id_number=_text(p, "id_number"), purpose=_text(p, "purpose"), by=_text(p, "by"),
            start=_moment(p, "start"), end=_moment(p, "end"), expected_min=_int(p, "duration_min"),
            devices=_texts(p, "devices"), companions=companions,
        )
        return self._out(visit)

    def approve(self, p: Mapping[str, Any]) -> dict[str, Any]:
        escorts = _texts(p, "escorts")
        return self._out(self.book.approve(_text(p, "visit"), by=_text(p, "by"), escorts=escorts,
                                           start=_moment(p, "start"), end=_moment(p, "end"),
                                           note=_text(p, "note", required=False)))

    def arrive(self, p: Mapping[str, Any]) -> dict[str, Any]:
        gadgets = p.get("gadgets")
        return self._out(self.book.arrive(_text(p, "visit"), received_by=_text(p, "received_by"),
                                          visitors=_numbers(p, "visitors"),
                                          gadgets=str(gadgets) if gadgets is not None else None))

    def admit(self, p: Mapping[str, Any]) -> dict[str, Any]:
        if self.doors is None or self.admissions is None:
            raise NeedsServiceError("admitting needs the door, which the running gateway holds. "
                                    "Fix: start it (systemctl start dcgate, or dcgate run)")
        door = self.doors.door(_text(p, "door")).config.name
        armed = self.admissions.arm(_text(p, "visit"), door, _text(p, "by", required=False) or "desk")
        if p.get("wait"):
            timeout = float(p.get("timeout") or self.admissions.window_s + 5)
            armed["outcome"] = self.admissions.wait(armed["visit"], timeout)
        return armed

    def extend(self, p: Mapping[str, Any]) -> dict[str, Any]:
        minutes = _int(p, "minutes")
        if minutes is None:
            raise InvalidValueError("minutes must be given as a whole number")
        return self._out(self.book.extend(_text(p, "visit"), by=_text(p, "by"), minutes=minutes,
                                          reason=_text(p, "reason")))

    def checkout(self, p: Mapping[str, Any]) -> dict[str, Any]:
        checklist = p.get("checklist") or []
        if not isinstance(checklist, list) or not all(isinstance(c, Mapping) for c in checklist):
            raise InvalidValueError("checklist must be a list of {item, ok, note}")
        out_path = _pdf_path(p.get("minutes_pdf"))
        visit = self.book.checkout(_text(p, "visit"), by=_text(p, "by"), activities=_text(p, "activities"),
                                   checklist=checklist, visitors=_numbers(p, "visitors"),
                                   returned_by=_text(p, "returned_by", required=False) or None)
        if self.doors is not None:  # whoever of them the door still counts inside is out now
            for visitor in visit.visitors:
                if visitor["exited_at"] is not None:
                    self.doors.presence.exit(visitor["key"], parse_utc(visitor["exited_at"]))
        reply = self._out(visit)
        reply["minutes_pdf"] = None
        if out_path is not None:
            reply["minutes_pdf"] = str(self._render(visit, out_path))
        return reply

    def minutes(self, p: Mapping[str, Any]) -> dict[str, Any]:
        out_path = _pdf_path(p.get("out"))
        if out_path is None:
            raise InvalidValueError("out must name the PDF file to write")
        visit = self.book.get(_text(p, "visit"))
        return {"visit": visit.id, "minutes_pdf": str(self._render(visit, out_path))}

    # -- reads ---------------------------------------------------------------------------------------
    def list_visits(self, p: Mapping[str, Any]) -> list[dict[str, Any]]:
        inside = self._inside()  # once for the whole list: offline it is a replay of the logbook
        return [self._out(v, inside) for v in self.book.list(include_closed=bool(p.get("all")))]

    def show(self, p: Mapping[str, Any]) -> dict[str, Any]:
        ref, by = _text(p, "visit"), _text(p, "reveal_by", required=False)
        return self._out(self.book.reveal(ref, by=by) if by else self.book.get(ref))

    def state(self) -> dict[str, Any]:
        """The retained `{base}/visits` topic and the status reply: open visits, masked, with who is inside.

        Only what changes with the visits themselves (deadlines, not seconds left), so it is published on
        change, not every health check.
        """
        inside = self.doors.presence.keys() if self.doors is not None else set()
        visits = []
        for visit in self.book.list():
            data = visit.as_dict()
            visits.append({
                "visit": data["id"], "kind": data["kind"], "status": data["status"], "org": data["org"],
                "window": data["window"], "escorts": [e["person"] for e in data["escorts"]],
                "escort_alarm": data["escort_alarm"],
                "visitors": [{"key": v["key"], "name": v["name"], "id_type": v["id_type"], "id_masked": v["id_masked"],
                              "inside": v["key"] in inside, "deadline": v["deadline"], "overstay": v["overstay"]}
                             for v in data["visitors"]],
            })
        return {"open": len(visits), "inside": sum(v["inside"] for d in visits for v in d["visitors"]),
                "visits": visits}

    # -- helpers ---------------------------------------------------------------------------------------
    def _inside(self) -> set[str]:
        return self.doors.presence.keys() if self.doors is not None else _inside_by_logbook(self.config)

    def _out(self, visit: Visit, inside: set[str] | None = None) -> dict[str, Any]:
        """The visit as JSON, each visitor with whether the door counts them inside and their time left."""
        data = visit.as_dict()
        inside = self._inside() if inside is None else inside
        now = time.time()
        for visitor in data["visitors"]:
            visitor["inside"] = visitor["key"] in inside
            deadline = visitor.get("deadline")
            visitor["time_left_s"] = (round(parse_utc(deadline) - now, 1)
                                      if deadline and visitor["inside"] else None)
        return data

    def _render(self, visit: Visit, out: Path) -> Path:
        from access.visit_minutes import render_minutes

        data = visit.as_dict()
        data["room"] = room_conditions(self.config, data)
        return render_minutes(data, out, site=self.config.site, timezone=self.config.access.timezone,
                              evidence=_evidence(self.config, visit.id))


def room_conditions(config: Config, visit: Mapping[str, Any]) -> dict[str, Any] | None:
    """Temperature and humidity from the first entry to the check-out, over every probe (the SOP asks that the
    room stays within standard during and after maintenance)."""
    from gateway.readings import readings

    entries = [v["entered_at"] for v in visit["visitors"] if v.get("entered_at")]
    if not entries or not config.probes or not config.database_path.exists():
        return None
    since = min(entries)
    until = (visit.get("checkout") or {}).get("at") or max((v["exited_at"] for v in visit["visitors"]
                                                            if v.get("exited_at")), default=None)
    t_lo = t_hi = h_lo = h_hi = None
    within = True
    db = open_for_reading(config.database_path)
    try:
        for probe in config.probes:
            limits = config.thresholds_for(probe.name)
            for row in readings(db, probe.name, since=since, until=until, every="minute"):
                for key, lo, hi in (("temperature", limits.temperature_low_c, limits.temperature_high_c),
                                    ("humidity", limits.humidity_low_pct, limits.humidity_high_pct)):
                    unit = "c" if key == "temperature" else "pct"
                    low, high = row[f"{key}_min_{unit}"], row[f"{key}_max_{unit}"]
                    if low is None or high is None:
                        continue
                    within = within and lo <= low and high <= hi
                    if key == "temperature":
                        t_lo = low if t_lo is None else min(t_lo, low)
                        t_hi = high if t_hi is None else max(t_hi, high)
                    else:
                        h_lo = low if h_lo is None else min(h_lo, low)
                        h_hi = high if h_hi is None else max(h_hi, high)
    finally:
        db.close()
    if t_lo is None and h_lo is None:
        return None
    return {"temperature_c": {"min": t_lo, "max": t_hi}, "humidity_pct": {"min": h_lo, "max": h_hi},
            "within_standard": within}


def _evidence(config: Config, visit_id: str) -> str | None:
    """Where the check-out stands in the tamper-evident logbook, printed on the minutes."""
    db = open_for_reading(config.database_path)
    try:
        row = db.conn.execute(
            "SELECT seq, hash FROM events WHERE kind = 'visit.checked_out' AND json_extract(payload, '$.visit') = ? "
            "AND json_extract(payload, '$.final') = 1 ORDER BY seq DESC LIMIT 1", (visit_id,)
        ).fetchone()
    finally:
        db.close()
    if row is None:
        return None
    return f"buku log / logbook #{row[0]}, hash {row[1][:16]}…"


def _inside_by_logbook(config: Config) -> set[str]:
    from gateway.doors import load_presence

    return load_presence(config.database_path).keys()


def _moment(p: Mapping[str, Any], key: str) -> float | None:
    value = p.get(key)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise InvalidValueError(f"{key} must be a time like 2026-11-21T02:00:00.000Z")
    try:
        return parse_utc(value)
    except ValueError as exc:
        raise InvalidValueError(f"{key} {value!r} is not a time with a zone: {exc}") from None


def _int(p: Mapping[str, Any], key: str) -> int | None:
    value = p.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidValueError(f"{key} must be a whole number, got {value!r}")
    return value


def _texts(p: Mapping[str, Any], key: str) -> list[str]:
    value = p.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidValueError(f"{key} must be a list of text")
    return value


def _numbers(p: Mapping[str, Any], key: str) -> list[int] | None:
    value = p.get(key)
    if not value:
        return None
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise InvalidValueError(f"{key} must be a list of visitor numbers (1, 2, ...)")
    return value


def _pdf_path(value: Any) -> Path | None:
    if value in (None, ""):
        return None
    path = Path(str(value))
    if not path.is_absolute():
        raise InvalidValueError(f"the PDF path {value!r} must be absolute (the gateway has its own working directory)")
    if path.suffix.lower() != ".pdf":
        raise InvalidValueError(f"the minutes file {value!r} must end in .pdf")
    if not path.parent.is_dir():
        raise InvalidValueError(f"directory {str(path.parent)!r} does not exist. Fix: create it or choose another")
    return path


__all__ = ["OFFLINE_OPS", "VisitDesk", "build_visit_book", "room_conditions"]
