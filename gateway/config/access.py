"""`[access]`: the template key, the time zone, the two-factor window, and each role's hours and maximum stay.

    [access]
    key_file = "template.key"        # dcgate key generate template.key
    timezone = "Asia/Jakarta"
    second_factor_s = 15

    [access.roles.staff]
    days = ["mon", "tue", "wed", "thu", "fri"]
    hours = ["07:00-18:00"]
    max_stay_h = 3

A role left out keeps its default (every day, all day, 3 h, the SOP's limit for staff); so does a key
left out of a role's table. A window may cross midnight ("22:00-06:00"): it belongs to the day it
starts on. The lead wires this in as ``Config.access``.
"""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from drivers.errors import InvalidValueError
from gateway.config.base import FilePath, StrictModel, check_readable_file, resolve_path

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Role = Literal["staff", "officer", "admin"]

#: Monday first, as `datetime.weekday()` counts
DAYS: tuple[Day, ...] = get_args(Day)
ROLES: tuple[Role, ...] = get_args(Role)

_WINDOW = re.compile(r"^(\d{2}):(\d{2})\s*[-–]\s*(\d{2}):(\d{2})$")  # an en dash too: it is how we print one
DAY_MINUTES = 24 * 60


def parse_window(text: str) -> tuple[int, int]:
    """Minutes after midnight of a window, e.g. "07:00-18:00" -> (420, 1080); raises ValueError with a fix.

    The end may be 24:00, and is below the start when the window crosses midnight ("22:00-06:00").
    """
    match = _WINDOW.match(text)
    if not match:
        raise ValueError(
            f"hours window {text!r} is not HH:MM-HH:MM. Fix: write it like \"07:00-18:00\" (24-hour clock, "
            "two digits each, a hyphen between)"
        )
    sh, sm, eh, em = (int(part) for part in match.groups())
    if sh > 23 or sm > 59 or em > 59 or eh > 24 or (eh == 24 and em != 0):
        raise ValueError(
            f"hours window {text!r} has a time that does not exist. Fix: use 00:00 to 23:59, and 24:00 only as an end"
        )
    start, end = sh * 60 + sm, eh * 60 + em
    if start == end:
        raise ValueError(
            f"hours window {text!r} starts where it ends. Fix: for the whole day write \"00:00-24:00\""
        )
    return start, end


class RoleRule(StrictModel):
    """When one role may enter, and how long it may stay."""

    days: list[Day] = Field(
        default_factory=lambda: list(DAYS),
        description='days entry is allowed, from "mon", "tue", "wed", "thu", "fri", "sat", "sun"; default every '
                    "day; a window crossing midnight belongs to the day it starts on",
    )
    hours: list[str] = Field(
        default_factory=lambda: ["00:00-24:00"],
        description='time windows "HH:MM-HH:MM" in the [access] timezone, start included, end excluded; 24:00 '
                    'may end a window; "22:00-06:00" crosses midnight; default ["00:00-24:00"]',
    )
    max_stay_h: float | None = Field(
        3.0, gt=0, le=24,
        description="hours a person of this role may stay inside before access.overstay is raised, over 0 and at "
                    "most 24; default 3 (the SOP's limit for staff)",
    )

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[Day]) -> list[Day]:
        if not value:
            raise ValueError(
                'days is empty, so nobody of this role could ever enter. Fix: list the days, e.g. days = ["mon", '
                '"tue", "wed", "thu", "fri"], or remove the role\'s table to keep the default'
            )
        twice = sorted({day for day in value if value.count(day) > 1}, key=DAYS.index)
        if twice:
            raise ValueError(f"days lists {', '.join(map(repr, twice))} more than once. Fix: name each day once")
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(
                'hours is empty, so nobody of this role could ever enter. Fix: give a window, e.g. hours = '
                '["07:00-18:00"], or ["00:00-24:00"] for all day'
            )
        for window in value:
            parse_window(window)
        twice = sorted({window for window in value if value.count(window) > 1})
        if twice:
            raise ValueError(f"hours lists {', '.join(map(repr, twice))} more than once. Fix: give each window once")
        return value

    def windows(self) -> list[tuple[int, int]]:
        """The hours as (start, end) minutes after midnight; end < start for a window crossing midnight."""
        return [parse_window(window) for window in self.hours]

    def max_stay_s(self) -> float | None:
        return None if self.max_stay_h is None else self.max_stay_h * 3600.0


def _default_roles() -> dict[Role, RoleRule]:
    return {role: RoleRule() for role in ROLES}


_ZONE_HINT = "Asia/Jakarta (WIB), Asia/Makassar (WITA) or Asia/Jayapura (WIT)"


class AccessConfig(StrictModel):
    """Who may enter when, for every door of this gateway."""

    key_file: FilePath | None = Field(
        None,
        description="the AES key that encrypts biometric templates, readable only by its owner (chmod 600); made "
                    "with `dcgate key generate FILE`; relative paths are relative to the config file",
    )
    timezone: str = Field(
        "Asia/Jakarta",
        description="IANA time zone the role hours are in: Asia/Jakarta (WIB), Asia/Makassar (WITA), "
                    "Asia/Jayapura (WIT)",
    )
    second_factor_s: float = Field(
        15.0, ge=2, le=120,
        description='seconds allowed between the two factors of auth = "face_and_finger", 2 to 120',
    )
    roles: dict[Role, RoleRule] = Field(
        default_factory=_default_roles,
        description="per role (staff, officer, admin): days, hours, max_stay_h; a role left out keeps its default "
                    "(every day, all day, 3 h)",
    )

    _resolve_paths = field_validator("key_file", mode="before")(resolve_path)

    @field_validator("key_file")
    @classmethod
    def _key_private(cls, value: Path | None) -> Path | None:
        # only the mode is checked here: the file is binary, and access/crypto.py reads and checks its contents
        if value is not None and not value.exists():
            raise ValueError(
                f"key_file {str(value)!r} does not exist. Fix: make it with `dcgate key generate {value}`, or correct "
                "the path"
            )
        check_readable_file(value, "key_file")
        if value is not None:
            mode = value.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ValueError(
                    f"key_file {str(value)!r} is readable by other users (mode {stat.S_IMODE(mode):o}); it decrypts "
                    f"every biometric template. Fix: chmod 600 {value}"
                )
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"timezone {value!r} is not a time zone this machine knows. Fix: use an IANA name such as "
                f"{_ZONE_HINT} (and install the tzdata package if even those are missing)"
            ) from None
        return value

    @field_validator("roles")
    @classmethod
    def _all_roles(cls, value: dict[Role, RoleRule]) -> dict[Role, RoleRule]:
        # a site that only restricts staff must not lose the defaults of officer and admin
        return {role: value.get(role, RoleRule()) for role in ROLES}

    def rule_for(self, role: str) -> RoleRule:
        """The rule of `role`; raises InvalidValueError for a role this version does not have."""
        try:
            return self.roles[role]  # type: ignore[index]
        except KeyError:
            raise InvalidValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}") from None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)  # ZoneInfo caches instances, so this is cheap


__all__ = ["DAYS", "ROLES", "AccessConfig", "Day", "Role", "RoleRule", "parse_window"]
