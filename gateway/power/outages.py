"""The outage log (start, end, duration, lowest battery, highest load), built from stored events.

The SOP wants the time of every mains failure recorded. The events already are that record (hash
chained), so the log is derived from them rather than kept as a second, editable table.

Rules, per UPS, in commit order:
- `power.mains_lost` opens an outage; `power.mains_restored` closes it.
- A `power.mains_lost` whose `uncertain_s` is None while an outage is open is the same outage seen
  again after a gateway restart: it continues. One with a known `uncertain_s` means the UPS was
  seen on mains in between, so the open outage ended unseen: it is closed with `end_known=False`.
- The startup snapshot `power.ups_status` on mains closes an open outage the same way (it ended while
  the gateway was not running; the end is at most that snapshot).
- `power.battery_low` readings also count for the lowest battery of an open outage.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import sqlite_utils

from gateway.errors import InvalidValueError
from gateway.store.events import Event, iter_events

MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")


@dataclass
class OutageRecord:
    ups: str
    started: str  # UTC timestamp of the event that recorded the loss of mains
    ended: str | None  # None while still on battery
    duration_s: float | None  # None while still on battery
    lowest_battery_pct: float | None
    highest_load_pct: float | None
    start_uncertain_s: float | None  # the outage may have begun up to this much earlier; None: unknown
    end_known: bool = True  # False: the end happened while nothing was watching; `ended` is an upper bound

    @property
    def open(self) -> bool:
        return self.ended is None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "open": self.open}


def month_bounds(month: str) -> tuple[str, str]:
    """"2026-02" -> ("2026-02-01T00:00:00.000Z", "2026-03-01T00:00:00.000Z"), in the stored timestamp form."""
    match = MONTH.fullmatch(month.strip())
    if not match:
        raise InvalidValueError(f"month {month!r} is not YYYY-MM, e.g. 2026-02")
    year, mon = int(match[1]), int(match[2])
    nyear, nmon = (year + 1, 1) if mon == 12 else (year, mon + 1)
    return f"{year:04d}-{mon:02d}-01T00:00:00.000Z", f"{nyear:04d}-{nmon:02d}-01T00:00:00.000Z"


def _seconds_between(start: str, end: str) -> float:
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    a = datetime.strptime(start, fmt).replace(tzinfo=UTC)
    b = datetime.strptime(end, fmt).replace(tzinfo=UTC)
    return round((b - a).total_seconds(), 3)


def _lower(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _higher(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def build_outages(db: sqlite_utils.Database, *, month: str | None = None, ups: str | None = None) -> list[OutageRecord]:
    """Every outage (oldest first); with `month`, those that overlap it (an outage across midnight
    at the month's end belongs to both months, as a paper log would show it)."""
    records: list[OutageRecord] = []
    open_by_ups: dict[str, OutageRecord] = {}

    def close(record: OutageRecord, event: Event, *, known: bool, duration_s: float | None = None) -> None:
        record.ended = event.ts
        record.duration_s = duration_s if duration_s is not None else _seconds_between(record.started, event.ts)
        record.end_known = known
        del open_by_ups[record.ups]

    for event in iter_events(db, kind="power.*"):
        fields = event.fields
        name = fields.get("ups")
        if not isinstance(name, str) or (ups is not None and name != ups):
            continue
        current = open_by_ups.get(name)
        if event.kind == "power.mains_lost":
            if current is not None and fields.get("uncertain_s") is None:
                current.lowest_battery_pct = _lower(current.lowest_battery_pct, fields.get("battery_charge_pct"))
                current.highest_load_pct = _higher(current.highest_load_pct, fields.get("load_pct"))
                continue
            if current is not None:
                close(current, event, known=False)
            record = OutageRecord(
                ups=name, started=event.ts, ended=None, duration_s=None,
                lowest_battery_pct=fields.get("battery_charge_pct"), highest_load_pct=fields.get("load_pct"),
                start_uncertain_s=fields.get("uncertain_s"),
            )
            records.append(record)
            open_by_ups[name] = record
        elif event.kind == "power.mains_restored":
            if current is None:
                # its start is not in this store (e.g. an older database): the event carries it
                current = OutageRecord(
                    ups=name, started=fields.get("outage_started") or event.ts, ended=None, duration_s=None,
                    lowest_battery_pct=None, highest_load_pct=None, start_uncertain_s=None,
                )
                records.append(current)
                open_by_ups[name] = current
                duration = fields.get("duration_s")
            else:
                duration = None  # from the stored timestamps, so it spans a gateway restart too
            current.lowest_battery_pct = _lower(current.lowest_battery_pct, fields.get("lowest_battery_pct"))
            current.highest_load_pct = _higher(current.highest_load_pct, fields.get("highest_load_pct"))
            close(current, event, known=True, duration_s=duration)
        elif current is not None and event.kind == "power.battery_low":
            current.lowest_battery_pct = _lower(current.lowest_battery_pct, fields.get("battery_charge_pct"))
        elif current is not None and event.kind == "power.ups_status" and "OL" in str(fields.get("status")).split():
            close(current, event, known=False)

    if month is None:
        return records
    start, end = month_bounds(month)
    return [r for r in records if r.started < end and (r.ended is None or r.ended >= start)]
