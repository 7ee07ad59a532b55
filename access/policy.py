"""Who may enter now: revocation, the active flag, the role's schedule, anti-passback; and the role's maximum stay.

Pure logic on `AccessConfig` (no clock, no store): the authenticator passes the moment of the attempt
and whether the person is already inside (from `access.presence.Presence`).

Check order is fixed, so the logbook gives the most telling reason: ``revoked``, ``inactive``,
``outside_schedule``, ``anti_passback``. Schedules are read in the configured time zone (WIB by
default), never in the machine's: a Pi with a UTC clock must not let staff in at 07:00 UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from drivers.errors import InvalidValueError
from gateway.config.access import DAY_MINUTES, DAYS, AccessConfig, RoleRule

#: day abbreviations, Monday first: Bahasa Indonesia, English
_DAY_ID = ("Sen", "Sel", "Rab", "Kam", "Jum", "Sab", "Min")
_DAY_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True, slots=True)
class PersonView:
    """What the policy needs to know of a person (the people store makes these)."""

    id: str
    name: str
    nip: str | None
    role: str
    active: bool
    revoked: bool = False


class AccessPolicy:
    def __init__(self, config: AccessConfig) -> None:
        self._config = config
        self._zone = config.zone

    def check_entry(
        self, person: PersonView, when: datetime, *, already_inside: bool, anti_passback: bool
    ) -> str | None:
        """None when `person` may enter at `when` (an aware datetime), else the denial reason."""
        if person.revoked:
            return "revoked"
        if not person.active:
            return "inactive"
        if not self.within_schedule(person.role, when):
            return "outside_schedule"
        if anti_passback and already_inside:
            return "anti_passback"
        return None

    def within_schedule(self, role: str, when: datetime) -> bool:
        """Whether `when` falls in one of the role's windows, on a day the window may start."""
        if when.tzinfo is None or when.utcoffset() is None:
            # a naive time could be UTC or local: guessing wrong opens the door hours early
            raise InvalidValueError(f"time {when.isoformat()} has no time zone; pass an aware datetime")
        rule = self._config.rule_for(role)
        local = when.astimezone(self._zone)
        minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
        today = DAYS[local.weekday()]
        yesterday = DAYS[(local - timedelta(days=1)).weekday()]
        for start, end in rule.windows():
            if start < end:
                if today in rule.days and start <= minute < end:
                    return True
            # crossing midnight: the evening part belongs to today, the morning part to yesterday's window
            elif (today in rule.days and minute >= start) or (yesterday in rule.days and minute < end):
                return True
        return False

    def max_stay_s(self, role: str) -> float | None:
        """Seconds the role may stay inside, None for no limit."""
        return self._config.rule_for(role).max_stay_s()

    def describe_schedule(self, role: str) -> str:
        """E.g. "Sen–Jum 07:00–18:00 / Mon–Fri 07:00–18:00" (Bahasa Indonesia first, as in the SOPs)."""
        rule = self._config.rule_for(role)
        hours_id, hours_en = _hours_text(rule)
        days_id, days_en = _days_text(rule, _DAY_ID, "Setiap hari"), _days_text(rule, _DAY_EN, "Every day")
        return f"{days_id} {hours_id} / {days_en} {hours_en}"


def _days_text(rule: RoleRule, names: tuple[str, ...], every_day: str) -> str:
    chosen = {DAYS.index(day) for day in rule.days}
    if len(chosen) == len(DAYS):
        return every_day
    # Monday first, unless a run goes over the week's end: "sat, sun, mon" reads as one run Sab–Sen
    wraps = {0, len(DAYS) - 1} <= chosen
    first = (max(set(range(len(DAYS))) - chosen) + 1) % len(DAYS) if wraps else 0
    runs: list[list[int]] = []
    for offset in range(len(DAYS)):
        day = (first + offset) % len(DAYS)
        if day not in chosen:
            continue
        if runs and (runs[-1][-1] + 1) % len(DAYS) == day:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{names[run[0]]}–{names[run[-1]]}")
        else:
            parts.extend(names[day] for day in run)
    return ", ".join(parts)


def _hours_text(rule: RoleRule) -> tuple[str, str]:
    windows = sorted(rule.windows())
    if windows == [(0, DAY_MINUTES)]:
        return "24 jam", "24 hours"
    text = ", ".join(f"{_clock(start)}–{_clock(end)}" for start, end in windows)
    return text, text


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


__all__ = ["AccessPolicy", "PersonView"]
