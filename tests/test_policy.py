"""`[access]` config and `AccessPolicy`: errors that name the key and the fix, schedule edges, the check order.

Pure logic: no store, no broker. 2026-11-20 is a Friday, 2026-11-23 a Monday.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from access.policy import AccessPolicy, PersonView
from drivers.errors import InvalidValueError
from gateway.config.access import DAYS, ROLES, AccessConfig, RoleRule, parse_window

WIB = ZoneInfo("Asia/Jakarta")
OFFICE = {"days": ["mon", "tue", "wed", "thu", "fri"], "hours": ["07:00-18:00"], "max_stay_h": 3}


def config(**data: Any) -> AccessConfig:
    return AccessConfig.model_validate(data)


def policy(**roles: dict[str, Any]) -> AccessPolicy:
    return AccessPolicy(config(roles=roles))


def staff(active: bool = True, revoked: bool = False, role: str = "staff") -> PersonView:
    return PersonView(id="p-1", name="Budi Santoso", nip="198501012010011001", role=role, active=active,
                      revoked=revoked)


def wib(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=WIB)


# -- config ----------------------------------------------------------------------------------------


def test_defaults_follow_the_sop() -> None:
    cfg = AccessConfig()
    assert cfg.timezone == "Asia/Jakarta" and cfg.zone == WIB
    assert cfg.second_factor_s == 15 and cfg.key_file is None
    assert set(cfg.roles) == set(ROLES)
    for role in ROLES:
        rule = cfg.rule_for(role)
        assert rule.days == list(DAYS) and rule.hours == ["00:00-24:00"] and rule.max_stay_h == 3


def test_roles_left_out_keep_their_defaults() -> None:
    cfg = config(roles={"staff": OFFICE})
    assert cfg.rule_for("staff").hours == ["07:00-18:00"]
    assert cfg.rule_for("officer") == RoleRule() and cfg.rule_for("admin") == RoleRule()
    # a key left out of a role's table keeps its default too: restricting hours must not drop the 3 h limit
    assert config(roles={"admin": {"hours": ["06:00-22:00"]}}).rule_for("admin").max_stay_h == 3


def test_no_limit_and_ints_for_floats() -> None:
    cfg = config(second_factor_s=30, roles={"admin": {"max_stay_h": None}, "officer": {"max_stay_h": 24}})
    assert cfg.second_factor_s == 30.0
    assert cfg.rule_for("admin").max_stay_s() is None
    assert cfg.rule_for("officer").max_stay_s() == 24 * 3600


def test_config_is_frozen() -> None:
    cfg = AccessConfig()
    with pytest.raises(ValidationError):
        cfg.timezone = "UTC"  # type: ignore[misc]


def test_unknown_role_is_refused_by_rule_for() -> None:
    with pytest.raises(InvalidValueError, match="'guest'"):
        AccessConfig().rule_for("guest")


@pytest.mark.parametrize(
    ("data", "key", "needles"),
    [
        ({"timezone": "Asia/Jakrta"}, "timezone", ["'Asia/Jakrta'", "Fix:", "Asia/Jakarta", "Asia/Makassar",
                                                   "Asia/Jayapura"]),
        ({"timezone": ""}, "timezone", ["''", "Fix:"]),
        ({"roles": {"staff": {"hours": ["25:00-18:00"]}}}, "roles.staff.hours", ["'25:00-18:00'", "Fix:"]),
        ({"roles": {"staff": {"hours": ["24:00-06:00"]}}}, "roles.staff.hours", ["'24:00-06:00'", "24:00 only"]),
        ({"roles": {"staff": {"hours": ["07:00-24:30"]}}}, "roles.staff.hours", ["'07:00-24:30'", "Fix:"]),
        ({"roles": {"staff": {"hours": ["07:60-18:00"]}}}, "roles.staff.hours", ["'07:60-18:00'", "Fix:"]),
        ({"roles": {"staff": {"hours": ["7-18"]}}}, "roles.staff.hours", ["'7-18'", 'write it like "07:00-18:00"']),
        ({"roles": {"staff": {"hours": ["07:00-07:00"]}}}, "roles.staff.hours", ["'07:00-07:00'", "00:00-24:00"]),
        ({"roles": {"staff": {"hours": []}}}, "roles.staff.hours", ["empty", "Fix:"]),
        ({"roles": {"staff": {"hours": ["07:00-18:00", "07:00-18:00"]}}}, "roles.staff.hours",
         ["'07:00-18:00'", "Fix:"]),
        ({"roles": {"staff": {"days": []}}}, "roles.staff.days", ["empty", "Fix:"]),
        ({"roles": {"staff": {"days": ["mon", "tue", "mon"]}}}, "roles.staff.days", ["'mon'", "Fix:"]),
        ({"roles": {"staff": {"days": ["monday"]}}}, "roles.staff.days.0", ["'mon'", "monday"]),
        ({"roles": {"staff": {"max_stay_h": 0}}}, "roles.staff.max_stay_h", ["greater than 0"]),
        ({"roles": {"staff": {"max_stay_h": 25}}}, "roles.staff.max_stay_h", ["less than or equal to 24"]),
        ({"roles": {"guest": {}}}, "roles.guest", ["'staff', 'officer' or 'admin'"]),
        ({"roles": {"staff": {"hour": ["07:00-18:00"]}}}, "roles.staff.hour", ["Extra inputs"]),
        ({"second_factor_s": 1}, "second_factor_s", ["greater than or equal to 2"]),
        ({"second_factor_s": 121}, "second_factor_s", ["less than or equal to 120"]),
        ({"second_factor_s": "15"}, "second_factor_s", ["valid number"]),  # strict: a quoted number is a mistake
        ({"colour": "blue"}, "colour", ["Extra inputs"]),
    ],
)
def test_config_errors_name_the_key_value_and_fix(data: dict[str, Any], key: str, needles: list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        AccessConfig.model_validate(data)
    errors = caught.value.errors(include_url=False)
    assert len(errors) == 1, errors
    where = ".".join(str(part) for part in errors[0]["loc"])
    assert where.startswith(key), (where, key)
    text = str(caught.value)
    for needle in needles:
        assert needle in text, (needle, text)


def test_windows_parse_to_minutes() -> None:
    assert parse_window("07:00-18:00") == (420, 1080)
    assert parse_window("00:00-24:00") == (0, 1440)
    assert parse_window("22:00-06:00") == (1320, 360)  # crosses midnight
    assert parse_window("07:00 – 18:00") == (420, 1080)  # the en dash we print is read back
    assert config(roles={"staff": {"hours": [" 07:00-18:00 "]}}).rule_for("staff").windows() == [(420, 1080)]


def _key(tmp_path: Path, mode: int) -> Path:
    path = tmp_path / "template.key"
    path.write_bytes(os.urandom(32))
    path.chmod(mode)
    return path


def test_key_file_relative_to_the_config_and_owner_only(tmp_path: Path) -> None:
    key = _key(tmp_path, 0o600)
    cfg = AccessConfig.model_validate({"key_file": "template.key"}, context={"base_dir": tmp_path})
    assert cfg.key_file == key.resolve()


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    key = _key(tmp_path, 0o644)
    with pytest.raises(ValidationError) as caught:
        AccessConfig.model_validate({"key_file": str(key)})
    text = str(caught.value)
    assert "key_file" in text and repr(str(key)) in text and f"Fix: chmod 600 {key}" in text


def test_missing_key_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        AccessConfig.model_validate({"key_file": "nope.key"}, context={"base_dir": tmp_path})
    text = str(caught.value)
    missing = tmp_path / "nope.key"
    assert "key_file" in text and repr(str(missing)) in text and f"dcgate key generate {missing}" in text


# -- the schedule ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "allowed"),
    [
        (wib(23, 6, 59, 59), False),
        (wib(23, 7, 0, 0), True),  # the start is included
        (wib(23, 17, 59, 59), True),
        (wib(23, 18, 0, 0), False),  # the end is not
        (wib(20, 12), True),  # Friday
        (wib(21, 12), False),  # Saturday
        (wib(22, 12), False),  # Sunday
    ],
)
def test_office_hours_edges(when: datetime, allowed: bool) -> None:
    assert policy(staff=OFFICE).within_schedule("staff", when) is allowed
    expected = None if allowed else "outside_schedule"
    assert policy(staff=OFFICE).check_entry(staff(), when, already_inside=False, anti_passback=True) == expected


def test_the_same_instant_in_another_zone() -> None:
    # 00:30 UTC is 07:30 WIB: inside office hours although the UTC clock says half past midnight
    assert policy(staff=OFFICE).within_schedule("staff", datetime(2026, 11, 23, 0, 30, tzinfo=UTC))
    assert not policy(staff=OFFICE).within_schedule("staff", datetime(2026, 11, 23, 11, 0, tzinfo=UTC))  # 18:00


@pytest.mark.parametrize(
    ("when", "allowed"),
    [
        (wib(20, 21, 59), False),  # Friday, before the window
        (wib(20, 22, 0), True),  # Friday night: the window starts on a Friday
        (wib(20, 23, 59, 59), True),
        (wib(21, 0, 0), True),  # past midnight, still Friday's window
        (wib(21, 5, 59, 59), True),
        (wib(21, 6, 0), False),  # the end is excluded
        (wib(21, 22, 0), False),  # Saturday night: Saturday is not a day
        (wib(20, 5, 0), False),  # Friday morning belongs to Thursday's window
    ],
)
def test_night_shift_crossing_midnight_belongs_to_its_start_day(when: datetime, allowed: bool) -> None:
    night = policy(officer={"days": ["fri"], "hours": ["22:00-06:00"]})
    assert night.within_schedule("officer", when) is allowed


def test_weekday_is_taken_in_the_configured_zone() -> None:
    weekdays = {"days": ["mon", "tue", "wed", "thu", "fri"]}
    friday_late_utc = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)  # Saturday 06:30 in Jakarta
    sunday_late_utc = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)  # Monday 06:30 in Jakarta
    in_jakarta = AccessPolicy(config(roles={"staff": weekdays}))
    in_utc = AccessPolicy(config(timezone="UTC", roles={"staff": weekdays}))
    assert not in_jakarta.within_schedule("staff", friday_late_utc)
    assert in_jakarta.within_schedule("staff", sunday_late_utc)
    assert in_utc.within_schedule("staff", friday_late_utc)
    assert not in_utc.within_schedule("staff", sunday_late_utc)
    # Asia/Jayapura (UTC+9): Friday 23:30 UTC is Saturday there too
    assert not AccessPolicy(config(timezone="Asia/Jayapura", roles={"staff": weekdays})).within_schedule(
        "staff", friday_late_utc)


def test_naive_time_is_refused() -> None:
    with pytest.raises(InvalidValueError, match="no time zone"):
        AccessPolicy(AccessConfig()).within_schedule("staff", datetime(2026, 11, 23, 8, 0))


@given(
    days=st.sets(st.sampled_from(DAYS), min_size=1),
    start=st.integers(1, 23 * 60 + 59),
    end=st.integers(0, 23 * 60 + 59),
    offset_s=st.integers(0, 14 * 86400 - 1),
)
@settings(max_examples=300, deadline=None)
def test_crossing_window_is_evening_plus_next_morning(days: set[str], start: int, end: int, offset_s: int) -> None:
    """A window crossing midnight on day D is the same as D's evening and the morning of the day after D."""
    end %= start  # below the start: the window crosses midnight
    hhmm = [f"{m // 60:02d}:{m % 60:02d}" for m in (start, end)]
    next_days = [DAYS[(DAYS.index(day) + 1) % 7] for day in sorted(days, key=DAYS.index)]
    crossing = AccessPolicy(config(roles={"staff": {"days": sorted(days), "hours": [f"{hhmm[0]}-{hhmm[1]}"]}}))
    evening = AccessPolicy(config(roles={"staff": {"days": sorted(days), "hours": [f"{hhmm[0]}-24:00"]}}))
    mornings = [] if end == 0 else [f"00:00-{hhmm[1]}"]
    morning = AccessPolicy(config(roles={"staff": {"days": next_days, "hours": mornings or ["00:00-24:00"]}}))
    when = wib(16, 0) + timedelta(seconds=offset_s)
    expected = evening.within_schedule("staff", when) or (bool(mornings) and morning.within_schedule("staff", when))
    assert crossing.within_schedule("staff", when) is expected


# -- the decision ----------------------------------------------------------------------------------


def test_check_order_revoked_inactive_schedule_antipassback() -> None:
    office = policy(staff=OFFICE)
    saturday, monday = wib(21, 12), wib(23, 9)
    everything_wrong = staff(active=False, revoked=True)
    assert office.check_entry(everything_wrong, saturday, already_inside=True, anti_passback=True) == "revoked"
    assert office.check_entry(staff(active=False), saturday, already_inside=True, anti_passback=True) == "inactive"
    assert office.check_entry(staff(), saturday, already_inside=True, anti_passback=True) == "outside_schedule"
    assert office.check_entry(staff(), monday, already_inside=True, anti_passback=True) == "anti_passback"
    assert office.check_entry(staff(), monday, already_inside=True, anti_passback=False) is None
    assert office.check_entry(staff(), monday, already_inside=False, anti_passback=True) is None


def test_other_roles_keep_their_all_day_default() -> None:
    office = policy(staff=OFFICE)
    saturday_night = wib(21, 23, 30)
    assert office.check_entry(staff(role="admin"), saturday_night, already_inside=False, anti_passback=True) is None
    assert office.check_entry(staff(), saturday_night, already_inside=False, anti_passback=True) == "outside_schedule"


def test_max_stay() -> None:
    rules = policy(staff={"max_stay_h": 1.5}, admin={"max_stay_h": None})
    assert rules.max_stay_s("staff") == 5400
    assert rules.max_stay_s("officer") == 3 * 3600
    assert rules.max_stay_s("admin") is None
    with pytest.raises(InvalidValueError):
        rules.max_stay_s("guest")


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        ({}, "Setiap hari 24 jam / Every day 24 hours"),
        (OFFICE, "Sen–Jum 07:00–18:00 / Mon–Fri 07:00–18:00"),
        ({"days": ["fri", "mon", "wed"], "hours": ["13:00-17:00", "08:00-12:00"]},
         "Sen, Rab, Jum 08:00–12:00, 13:00–17:00 / Mon, Wed, Fri 08:00–12:00, 13:00–17:00"),
        ({"days": ["sat", "sun"], "hours": ["22:00-06:00"]}, "Sab, Min 22:00–06:00 / Sat, Sun 22:00–06:00"),
        ({"days": ["mon", "sat", "sun"]}, "Sab–Sen 24 jam / Sat–Mon 24 hours"),  # a run across the week's end
        ({"days": ["mon", "tue", "wed", "thu", "fri", "sat"], "hours": ["07:00-24:00"]},
         "Sen–Sab 07:00–24:00 / Mon–Sat 07:00–24:00"),
    ],
)
def test_describe_schedule(rule: dict[str, Any], text: str) -> None:
    assert policy(staff=rule).describe_schedule("staff") == text
