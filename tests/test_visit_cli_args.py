"""`dcgate visit` argument parsing: visit times in the site's zone, the exit checklist, companions.

Pure functions with a fixed `now`; the commands themselves run against the desk in the visit tests.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.cli.main import main
from gateway.cli.visit_cmd import parse_check, parse_companion, parse_visit_time, show_time, show_window
from gateway.errors import InvalidValueError

WIB = ZoneInfo("Asia/Jakarta")
WITA = ZoneInfo("Asia/Makassar")
NOW = datetime(2026, 11, 21, 1, 30, 15, 250000, tzinfo=UTC)  # 08.30 WIB


# -- times -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("+30m", "2026-11-21T02:00:15.250Z"),
    ("+2h", "2026-11-21T03:30:15.250Z"),
    ("+1d", "2026-11-22T01:30:15.250Z"),
    ("+1.5h", "2026-11-21T03:00:15.250Z"),
    (" +45M ", "2026-11-21T02:15:15.250Z"),
])
def test_relative_times_count_from_now(text, expected):
    assert parse_visit_time(text, WIB, now=NOW) == expected


def test_a_clock_time_is_today_in_the_site_zone():
    assert parse_visit_time("09:00", WIB, now=NOW) == "2026-11-21T02:00:00.000Z"
    assert parse_visit_time("9:05", WIB, now=NOW) == "2026-11-21T02:05:00.000Z"
    assert parse_visit_time("17.30", WIB, now=NOW) == "2026-11-21T10:30:00.000Z"  # as printed: 17.30 WIB
    # WITA is UTC+8: the same wall-clock time is an hour earlier in UTC
    assert parse_visit_time("09:00", WITA, now=NOW) == "2026-11-21T01:00:00.000Z"


def test_today_is_the_site_s_day_not_utc_s():
    late = datetime(2026, 11, 21, 18, 0, tzinfo=UTC)  # already 22-11 01.00 in Jakarta
    assert parse_visit_time("08:00", WIB, now=late) == "2026-11-22T01:00:00.000Z"


@pytest.mark.parametrize("text", ["2026-11-21 09:00", "2026-11-21T09:00", "2026-11-21T09:00:00"])
def test_an_iso_time_without_a_zone_is_in_the_site_zone(text):
    assert parse_visit_time(text, WIB, now=NOW) == "2026-11-21T02:00:00.000Z"


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-21T09:00+08:00", "2026-11-21T01:00:00.000Z"),
    ("2026-11-21T02:00Z", "2026-11-21T02:00:00.000Z"),
    ("2026-11-21 02:00:00.123+00:00", "2026-11-21T02:00:00.123Z"),
])
def test_an_iso_time_with_a_zone_keeps_it(text, expected):
    assert parse_visit_time(text, WIB, now=NOW) == expected


def test_the_printed_form_reads_back():
    assert parse_visit_time("21-11-2026 09.15", WIB, now=NOW) == "2026-11-21T02:15:00.000Z"
    assert parse_visit_time("21-11-2026 09.15 WITA", WIB, now=NOW) == "2026-11-21T01:15:00.000Z"
    stored = parse_visit_time("2026-11-21 16:45", WIB, now=NOW)
    assert show_time(stored, WIB) == "21-11-2026 16.45 WIB"
    assert parse_visit_time(show_time(stored, WIB), WIB, now=NOW) == stored


def test_the_machine_zone_does_not_matter(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert parse_visit_time("2026-11-21 09:00", WIB, now=NOW) == "2026-11-21T02:00:00.000Z"
        assert parse_visit_time("09:00", WIB, now=NOW) == "2026-11-21T02:00:00.000Z"
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("text", ["besok", "30m", "+30x", "25:00", "09:60", "2026-11-21", "2026-13-01 09:00",
                                  "32-11-2026 09.00", ""])
def test_bad_times_are_usage_errors_naming_the_value_and_examples(text):
    with pytest.raises(InvalidValueError) as raised:
        parse_visit_time(text, WIB, now=NOW)
    assert raised.value.exit_code == 2
    message = str(raised.value)
    assert repr(text) in message
    assert "+30m" in message and "09:30" in message


def test_windows_are_shown_in_the_site_zone():
    window = {"start": "2026-11-21T02:00:00.000Z", "end": "2026-11-21T10:00:00.000Z"}
    assert show_window(window, WIB) == "21-11-2026 09.00–17.00 WIB"
    overnight = {"start": "2026-11-21T14:00:00.000Z", "end": "2026-11-21T18:00:00.000Z"}
    assert show_window(overnight, WIB) == "21-11-2026 21.00 WIB – 22-11-2026 01.00 WIB"


# -- --check -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("UPS-2=ok", {"item": "UPS-2", "ok": True, "note": ""}),
    ("UPS-2=Baik", {"item": "UPS-2", "ok": True, "note": ""}),
    ("switch inti = berfungsi : semua port menyala", {"item": "switch inti", "ok": True,
                                                      "note": "semua port menyala"}),
    ("AC presisi=YES", {"item": "AC presisi", "ok": True, "note": ""}),
    ("router=rusak:port 3 mati", {"item": "router", "ok": False, "note": "port 3 mati"}),
    ("router=GAGAL", {"item": "router", "ok": False, "note": ""}),
    ("router=fail:menunggu suku cadang: minggu depan", {"item": "router", "ok": False,
                                                        "note": "menunggu suku cadang: minggu depan"}),
    ("router=tidak", {"item": "router", "ok": False, "note": ""}),
    ("router=no", {"item": "router", "ok": False, "note": ""}),
])
def test_check_items(text, expected):
    assert parse_check(text) == expected


@pytest.mark.parametrize(("text", "named"), [
    ("router=mungkin", "'mungkin'"),
    ("router=", "''"),
    ("router", "'router'"),
    ("=ok", "'=ok'"),
])
def test_a_bad_check_is_a_usage_error_naming_the_value(text, named):
    with pytest.raises(InvalidValueError) as raised:
        parse_check(text)
    assert raised.value.exit_code == 2
    assert named in str(raised.value)


def test_a_bad_check_stops_the_command_before_anything_is_sent(tmp_path, capsys):
    # a config that loads, no gateway running: the checklist is refused before the desk is asked, so the
    # offline writer never opens the data directory
    config = tmp_path / "dcgate.toml"
    config.write_text('site = "s"\ngateway = "g"\ndata_dir = "data"\n[mqtt]\n', encoding="utf-8")
    code = main(["visit", "checkout", "KJ-20261121-001", "--by", "x", "--activities", "a",
                 "--check", "UPS=maybe", "--config", str(config)])
    assert code == 2
    err = capsys.readouterr().err
    assert "'maybe'" in err and "baik" in err
    assert not (tmp_path / "data" / "dcgate.db").exists()


# -- --companion -------------------------------------------------------------------------------------
def test_companions():
    assert parse_companion("Rina Wati; ktp ;3271014105900004") == {
        "name": "Rina Wati", "id_type": "KTP", "id_number": "3271014105900004"}
    for bad in ("Rina Wati", "Rina;KTP", "Rina;;123", "a;b;c;d"):
        with pytest.raises(InvalidValueError) as raised:
            parse_companion(bad)
        assert repr(bad) in str(raised.value)
