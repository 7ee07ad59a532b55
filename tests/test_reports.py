"""Monthly reports (gateway/reports/): October 2026 at a WIB site, played by the real producers into a real store.

The store is a SQLite file written by the real StoreWriter, its clock set by the test. The producers are
the gateway's own: AlarmManager for env.alarm.*, UpsMonitor (reading a scripted upsd answer) and
PowerMonitor (sim contacts, a tank level the test sets) for power.*, PeopleRegistry, VisitBook,
Admissions, Presence and DoorAccess (fingers as the station reports them) for the logbook. Readings go
in with the poller's exact fields. Then every figure of the PDF (text via pypdf) and the CSV is checked
against SQL straight over the store, pages are rendered with pdftoppm, and bad input is refused.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import re
import shutil
import sqlite3
import subprocess
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pypdf
import pytest
from PIL import Image

from access.admission import Admissions
from access.authenticator import DoorAccess
from access.crypto import TemplateCipher, generate_key_file
from access.door import DoorController
from access.finger_station import FingerMatch
from access.people import PeopleRegistry, Person
from access.policy import AccessPolicy
from access.presence import Presence
from access.visits import VisitBook, VisitRefusedError
from drivers.errors import DcgateError
from drivers.sim.contacts import SimContact, SimContactWorld
from drivers.sim.gpio import SimBoard
from gateway.alarms import AlarmManager
from gateway.cli import report_cmd
from gateway.config.loader import load_config
from gateway.config.models import Config, StoreConfig
from gateway.errors import InvalidValueError, StoreError
from gateway.power.generator import ContactAtsReader, ContactRunningReader, PowerMonitor
from gateway.power.ups import UpsMonitor
from gateway.reports import FORMATS, KINDS, Period, make_report, monthly_report, period_report
from gateway.store.writer import StoreWriter
from tests.support.artifacts import artifact_path
from tests.support.configs import base_config, write_config
from tests.support.waiting import wait_until

WIB = ZoneInfo("Asia/Jakarta")
MONTH = "2026-10"
OCT_START, OCT_END = "2026-09-30T17:00:00.000Z", "2026-10-31T17:00:00.000Z"  # October in WIB, as UTC
NOW = datetime(2026, 11, 21, 9, 0, tzinfo=WIB)  # when the officer prints the cards
NIP = {"officer": "198503152010012001", "budi": "199001012015011001", "citra": "199205102018032002"}
SIM, NIK = "123456789012", "3271014101900004"
DOOR = "main"


def wib(month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(2026, month, day, hour, minute, second, tzinfo=WIB).timestamp()


def utc(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Clock:
    """The site's clock, moved by the test: wall and monotonic time for the producers, stamps for the writer."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.stamps: deque[int] = deque()  # for events appended without waiting, in append order

    def __call__(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def stamp(self) -> int:
        """What the writer stamps its next commit with: the time the event was appended."""
        return self.stamps.popleft() if self.stamps else round(self.now * 1e9)


class ScriptedUps:
    """What upsd answers for the UPS (NUT variables); the test sets the next answer."""

    timeout_s = 1.0

    def __init__(self) -> None:
        self.vars: dict[str, str] = {}

    def set(self, status: str, charge: int, load: int) -> None:
        self.vars = {"ups.status": status, "battery.charge": str(charge), "ups.load": str(load),
                     "battery.runtime": str(charge * 30), "input.voltage": "0" if "OB" in status else "221"}

    def list_vars(self, ups: str) -> dict[str, str]:
        return dict(self.vars)

    def close(self) -> None:
        """Nothing to release."""


class Tank:
    """The generator's fuel level sensor, as the test fills and drains it."""

    def __init__(self, pct: float) -> None:
        self.pct = pct

    def read(self) -> float:
        return self.pct

    def close(self) -> None:
        """Nothing to release."""


@dataclass
class Site:
    config: Config
    path: Path  # the config file
    db: Path
    visit: str = ""
    people: dict[str, Person] = field(default_factory=dict)

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return conn.execute(query, params).fetchall()
        finally:
            conn.close()

    def report(self, kind: str, fmt: str, month: str = MONTH) -> bytes:
        return monthly_report(self.config, kind, month, fmt, now=NOW)


def site_config(tmp: Path) -> tuple[Config, Path]:
    key = generate_key_file(tmp / "keys" / "access.key")
    fuel = {"link": {"transport": "tcp", "host": "127.0.0.1", "unit": 5},
            "register": {"function": 3, "register": 0}, "interval_s": 60.0}
    data = base_config(
        tmp / "data", 1,
        probes=[{"name": "rack1", "driver": "sim", "interval_s": 60}, {"name": "rack2", "driver": "sim",
                                                                        "interval_s": 60}],
        ups={"driver": "nut", "name": "ups1"},
        power={"ats": {"source": "gpio", "mains_pin": 17, "generator_pin": 27},
               "generator": {"running_pin": 22, "tank_litres": 200, "refuel_below_pct": 50, "fuel": fuel}},
        access={"key_file": str(key)}, outbox={"max_age_days": 36500},
        doors=[{"name": DOOR, "gpio": "sim", "lock_pin": 23, "contact_pin": 24, "auth": "finger",
                "fingerprint": {"port": "sim"}, "exit_fingerprint": {"port": "sim"}}])
    path = write_config(tmp / "dcgate.toml", data)
    return load_config(path), path


def env_values(t: float) -> tuple[float, float]:
    """rack1's room: about 21 °C and 50 %, with the month's three excursions."""
    minute = round((t - wib(10, 4)) / 60)
    temperature, humidity = round(20.8 + 0.01 * (minute % 50), 2), float(48 + minute % 7)
    if wib(10, 4, 23, 45) <= t < wib(10, 5, 0, 15):  # the air-conditioning fails across midnight
        temperature = round(23.0 + 0.02 * ((t - wib(10, 4, 23, 45)) // 60), 2)
    if t == utc("2026-10-04T23:30:00.000Z"):  # 06:30 WIB on the 5th: one cold minute
        temperature = 19.2
    if wib(10, 6, 9) <= t < wib(10, 6, 9, 15):  # dry air for a quarter of an hour
        humidity = round(33.0 - 0.1 * ((t - wib(10, 6, 9)) // 60), 1)
    return temperature, humidity


def play_october(tmp: Path) -> Site:
    """Write the month: readings, alarms, power and access, in time order, through the real producers."""
    config, path = site_config(tmp)
    clock = Clock(wib(9, 20, 9))
    writer = StoreWriter(config.database_path, synchronous="normal", outbox=config.outbox, clock_ns=clock.stamp)
    writer.start()

    def emit(kind: str, source: str, fields: Any) -> object:
        clock.stamps.append(round(clock.now * 1e9))
        return writer.append(kind, source, fields)

    site = Site(config, path, config.database_path)
    cipher = TemplateCipher.from_file(config.access.key_file)
    registry = PeopleRegistry(writer.path, writer, cipher)
    people = site.people
    people["officer"] = registry.add("Ir. Siti Rahmawati", NIP["officer"], "officer", "admin")
    people["budi"] = registry.add("Budi Santoso", NIP["budi"], "staff", "admin")
    people["citra"] = registry.add("Citra Lestari", NIP["citra"], "staff", "admin")
    slots = {}
    for slot, person in enumerate(people.values(), start=1):
        registry.add_finger(person.id, slot, f"template-{slot}".encode() * 8, "admin", DOOR)
        slots[person.id] = slot
    book = VisitBook(writer.path, writer, cipher, registry, config.visits, config.access.timezone, clock=clock)
    presence = Presence()
    door_config = config.doors[0]
    sim_door = SimBoard().wire_door(lock_pin=door_config.lock_pin, contact_pin=door_config.contact_pin)
    controller = DoorController(DOOR, sim_door.lock_output(), sim_door.contact_input(), None, door_config.unlock_s,
                                door_config.held_open_s, emit, clock)
    controller.tick()  # its poll thread has been reading the contact since the gateway started
    door = DoorAccess(door_config, config.access, registry, AccessPolicy(config.access), presence,
                      grant=controller.grant, emit=emit, clock=clock, wall_clock=clock)
    admissions = Admissions(book, presence, window_s=60, emit=emit, clock=clock, wall_clock=clock)
    door.admissions = admissions

    def finger(who: str | None, direction: str = "in") -> None:
        slot = slots[people[who].id] if who else None
        door.on_finger(FingerMatch(DOOR, slot, 90 if slot else None), direction)

    def forced(open_: bool) -> Callable[[], None]:
        def act() -> None:
            sim_door.force_open() if open_ else sim_door.close()
            controller.tick()
        return act

    def exit_button() -> None:  # what gateway/doors.py does when the door opens on the exit button
        match = presence.exit_button(DOOR, clock())
        emit("access.exit", f"door:{DOOR}", match.event_fields(DOOR, clock()))

    def visit_steps() -> Iterator[tuple[float, Callable[[], Any]]]:
        def request() -> None:
            visit = book.request(kind="vendor", name="Agus Salim", org="PT Jaringan Nusantara", id_type="SIM",
                                 id_number=SIM, purpose="ganti modul catu daya core switch", by="desk-ani",
                                 start=wib(10, 12, 12), end=wib(10, 12, 18), devices=["core switch"],
                                 companions=[("Rina Wulandari", "KTP", NIK)])
            site.visit = visit.id

        def approve_by_staff() -> None:
            with pytest.raises(VisitRefusedError):
                book.approve(site.visit, by=people["budi"].id, escorts=[people["citra"].id])

        yield wib(10, 10, 10), request
        yield wib(10, 10, 10, 30), approve_by_staff
        yield wib(10, 10, 11), lambda: book.approve(site.visit, by=people["officer"].id,
                                                    escorts=[people["citra"].id])
        yield wib(10, 12, 12, 55), lambda: book.arrive(site.visit, received_by=people["citra"].id)
        yield wib(10, 12, 12, 59, 30), lambda: admissions.arm(site.visit, DOOR, "desk-ani")
        yield wib(10, 12, 13), lambda: finger("citra")
        yield wib(10, 12, 15, 10), exit_button
        yield wib(10, 12, 15, 20), lambda: book.checkout(
            site.visit, by=people["officer"].id, activities="modul catu daya core switch diganti",
            checklist=[{"item": "core switch", "ok": True, "note": "normal"}])

    timeline: list[tuple[float, Callable[[], Any]]] = [
        (wib(9, 30, 22), lambda: finger("budi")), (wib(10, 1, 1), lambda: finger("budi", "out")),
        (wib(10, 5, 9), lambda: finger("budi")), (wib(10, 5, 9, 5), lambda: finger(None)),
        (wib(10, 5, 11, 30), lambda: finger("budi", "out")), *visit_steps(),
        (wib(10, 15, 2, 9), controller.tick), (wib(10, 15, 2, 10), forced(True)),
        (wib(10, 15, 2, 10) + door_config.held_open_s + 1, controller.tick), (wib(10, 15, 2, 15), forced(False)),
        (wib(10, 20, 8), lambda: finger("officer")), (wib(10, 25, 8), lambda: finger("officer")),  # exit unseen
        (wib(10, 31, 23, 30), lambda: finger("citra")), (wib(11, 1, 0, 40), lambda: finger("citra", "out")),
    ]
    # power: the UPS through its monitor, the ATS and generator through theirs
    ups = ScriptedUps()
    ups_monitor = UpsMonitor(ups, "ups1", 5.0, emit, clock)  # type: ignore[arg-type]
    world = SimContactWorld({"ats-mains": True, "ats-generator": False, "generator-running": False})
    tank = Tank(80.0)
    assert config.power is not None
    power = PowerMonitor(ContactAtsReader(SimContact(world, "ats-mains"), SimContact(world, "ats-generator")),
                         ContactRunningReader(SimContact(world, "generator-running")), tank, config.power, emit, clock)

    def ups_says(status: str, charge: int, load: int) -> Callable[[], None]:
        return lambda: (ups.set(status, charge, load), ups_monitor.poll_once())

    def generator(on: bool, fuel: float) -> Callable[[], None]:
        def run() -> None:
            world.set("ats-mains", not on)
            world.set("ats-generator", on)
            world.set("generator-running", on)
            tank.pct = fuel
            power.poll_once()
        return run

    def fuel(pct: float) -> Callable[[], None]:
        return lambda: (setattr(tank, "pct", pct), power.poll_once())

    timeline += [
        (wib(10, 2, 8), ups_says("OL", 100, 35)), (wib(10, 2, 8), power.poll_once),
        # the monitors poll every few seconds; the polls just before a change are the ones that matter
        (wib(10, 7, 9, 59, 55), ups_says("OL", 100, 35)), (wib(10, 7, 10, 0, 59), power.poll_once),
        (wib(10, 7, 10), ups_says("OB DISCHRG", 96, 38)), (wib(10, 7, 10, 1), generator(True, 80.0)),
        (wib(10, 7, 10, 6), fuel(79.8)), (wib(10, 7, 10, 10), ups_says("OB DISCHRG LB", 25, 40)),
        (wib(10, 7, 10, 11), fuel(79.6)), (wib(10, 7, 10, 16), fuel(79.4)), (wib(10, 7, 10, 21), fuel(79.2)),
        (wib(10, 7, 10, 25), ups_says("OL CHRG", 27, 36)), (wib(10, 7, 10, 26), generator(False, 79.0)),
        (wib(10, 8, 9), fuel(90.0)), (wib(10, 20, 14), fuel(45.0)), (wib(10, 21, 10), fuel(85.0)),
        (wib(10, 31, 19, 59, 55), ups_says("OL", 100, 35)), (wib(10, 31, 20), ups_says("OB DISCHRG", 90, 37)),
    ]
    # readings: rack1 every minute from the 4th to the 6th (a fault at noon on the 6th), fed to the alarms;
    # old-probe (no longer configured) a few times, two of them just outside the month
    alarms = AlarmManager(config, emit, clock)

    def reading(t: float) -> Callable[[], None]:
        def read() -> None:
            if t == wib(10, 6, 12):
                emit("env.probe_failed", "probe:rack1", {"probe": "rack1", "error": "no answer from the probe"})
            if wib(10, 6, 12) <= t < wib(10, 6, 12, 30):
                alarms.observe("rack1", None, None, "fault")
                return
            if t == wib(10, 6, 12, 30):
                emit("env.probe_recovered", "probe:rack1", {"probe": "rack1"})
            temperature, humidity = env_values(t)
            emit("env.reading", "probe:rack1", {"probe": "rack1", "temperature_c": temperature,
                                                "humidity_pct": humidity})
            alarms.observe("rack1", temperature, humidity, "ok")
        return read

    timeline += [(wib(10, 4) + 60 * m, reading(wib(10, 4) + 60 * m)) for m in range(3 * 1440)]
    for when, temperature, humidity in (("2026-09-30T16:59:00.000Z", 25.0, 50.0),
                                        ("2026-09-30T17:30:00.000Z", 24.0, 50.0),
                                        ("2026-10-09T23:30:00.000Z", 21.5, 55.0),
                                        ("2026-10-31T17:30:00.000Z", 30.0, 80.0)):
        timeline.append((utc(when), lambda t=temperature, h=humidity: emit(
            "env.reading", "probe:old-probe", {"probe": "old-probe", "temperature_c": t, "humidity_pct": h})))
    try:
        for when, action in sorted(timeline, key=lambda item: item[0]):
            clock.now = when
            action()
        writer.append_and_wait("test.done", "test", {})
    finally:
        writer.stop()
    return site


@pytest.fixture(scope="module")
def october(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return play_october(tmp_path_factory.mktemp("october"))


# -- reading the outputs ---------------------------------------------------------------------------

def pdf_text(data: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


def csv_rows(data: bytes) -> list[dict[str, str]]:
    text = data.decode("utf-8")
    assert not text.startswith("\ufeff"), "plain UTF-8, no BOM"
    assert "\r\n" in text, "RFC 4180 line ends"
    return list(csv.DictReader(io.StringIO(text, newline="")))


def words(data: bytes) -> str:
    """The PDF's text with every run of white space made one space (table cells wrap)."""
    return " ".join(pdf_text(data).split())


def comma(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}".replace(".", ",")


def local_iso(ts: str) -> str:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(WIB).isoformat(timespec="seconds")


def minutes_between(start: str, end: str) -> float:
    return (utc(end) - utc(start)) / 60


def section(rows: list[dict[str, str]], name: str, **match: str) -> list[dict[str, str]]:
    """CSV rows of one section (the first column), filtered on other columns by their first word."""
    out = [r for r in rows if r["bagian (section)"].startswith(name)]
    for key, value in match.items():
        out = [r for r in out if next(v for k, v in r.items() if k.split(" ")[0] == key) == value]
    return out


def column(row: dict[str, str], first_word: str) -> str:
    return next(v for k, v in row.items() if k.startswith(first_word))


READINGS_SQL = (
    "SELECT {group}, count(*), min(t), avg(t), max(t), min(h), avg(h), max(h), "
    "sum(t < 20 OR t > 22 OR h < 35 OR h > 65) FROM (SELECT ts, json_extract(payload, '$.temperature_c') AS t, "
    "json_extract(payload, '$.humidity_pct') AS h FROM events WHERE kind = 'env.reading' "
    "AND json_extract(payload, '$.probe') = ? AND ts >= ? AND ts < ?) GROUP BY 1 ORDER BY 1")


def store_days(site: Site, probe: str, group: str = "date(ts, '+7 hours')") -> dict[str, tuple[Any, ...]]:
    """Per day straight from the store: count, t min/avg/max, h min/avg/max, readings outside 20-22 °C, 35-65 %."""
    return {row[0]: row[1:] for row in site.sql(READINGS_SQL.format(group=group), probe, OCT_START, OCT_END)}


# -- the temperature & humidity card ----------------------------------------------------------------

def test_env_card_days_are_local_days_and_match_the_store(october: Site) -> None:
    days = store_days(october, "rack1")
    assert set(days) == {"2026-10-04", "2026-10-05", "2026-10-06"}
    # 23:30 UTC on the 4th is 06:30 WIB on the 5th: by UTC days the cold reading would sit on the 4th
    assert store_days(october, "rack1", "date(ts)")["2026-10-04"][1] == 19.2
    assert days["2026-10-04"][1] == 20.8 and days["2026-10-05"][1] == 19.2

    rows = csv_rows(october.report("env", "csv"))
    daily = section(rows, "harian", probe="rack1")
    assert [r["tanggal (date)"] for r in daily] == [f"2026-10-{d:02d}" for d in range(1, 32)]
    for row in daily:
        day = row["tanggal (date)"]
        assert row["mulai (start)"] == f"{day}T00:00:00+07:00"
        if day not in days:  # no readings: nothing is filled in, the minutes say why
            assert column(row, "jumlah") == "0" and column(row, "suhu min") == "" and column(row, "kelembaban") == ""
            assert column(row, "menit tanpa") == "1440" and column(row, "keterangan") == "tidak ada data"
            continue
        count, t_min, t_avg, t_max, h_min, h_avg, h_max, outside = days[day]
        assert int(column(row, "jumlah")) == count
        assert float(column(row, "suhu min")) == t_min and float(column(row, "suhu maks")) == t_max
        assert float(column(row, "kelembaban min")) == h_min and float(column(row, "kelembaban maks")) == h_max
        assert float(column(row, "suhu rerata")) == pytest.approx(t_avg, abs=0.006)
        assert float(column(row, "kelembaban rerata")) == pytest.approx(h_avg, abs=0.006)
        assert int(column(row, "menit di luar")) == outside  # one reading a minute: a reading is a minute

    text = words(october.report("env", "pdf"))
    labels = {"2026-10-04": "Min, 4", "2026-10-05": "Sen, 5", "2026-10-06": "Sel, 6"}  # Sunday 4 October
    for day, label in labels.items():
        count, t_min, t_avg, t_max, h_min, h_avg, h_max, outside = days[day]
        match = re.search(rf"{label} (\d+) ([\d,]+) ([\d,]+) ([\d,]+) ([\d,]+) ([\d,]+) ([\d,]+) (\d+)", text)
        assert match, f"no daily row for {day} in the PDF"
        printed = [float(v.replace(",", ".")) for v in match.groups()]
        assert printed[0] == count and printed[7] == outside
        assert printed[1] == round(t_min, 1) and printed[3] == round(t_max, 1)
        assert printed[4] == round(h_min, 1) and printed[6] == round(h_max, 1)
        assert printed[2] == pytest.approx(t_avg, abs=0.051) and printed[5] == pytest.approx(h_avg, abs=0.051)
    assert "KARTU KONTROL SUHU & KELEMBABAN RUANG SERVER" in text and "Periode / period: Oktober 2026" in text
    assert "Petugas" in text and "Mengetahui, Penanggung Jawab" in text


def test_an_excursion_across_midnight_is_one_run_split_between_two_days(october: Site) -> None:
    hot = october.sql("SELECT ts, json_extract(payload, '$.temperature_c') AS t FROM events WHERE kind = "
                      "'env.reading' AND json_extract(payload, '$.probe') = 'rack1' AND t > 22 ORDER BY ts")
    stamps = [utc(ts) for ts, _ in hot]
    assert all(b - a == 60 for a, b in itertools.pairwise(stamps)), "one unbroken run"
    start, end = local_iso(hot[0][0]), datetime.fromtimestamp(stamps[-1] + 60, WIB).isoformat()
    assert (start, end) == ("2026-10-04T23:45:00+07:00", "2026-10-05T00:15:00+07:00")
    worst = max(t for _, t in hot)

    rows = csv_rows(october.report("env", "csv"))
    runs = section(rows, "ekskursi", probe="rack1", besaran="temperature", kondisi="high")
    assert len(runs) == 1
    run = runs[0]
    assert (run["mulai (start)"], run["selesai (end)"]) == (start, end)
    assert int(column(run, "durasi")) == len(hot) == 30
    assert float(column(run, "nilai")) == worst
    before_midnight = sum(1 for s in stamps if s < wib(10, 5))
    assert [int(column(r, "menit di luar")) for r in section(rows, "harian", probe="rack1")][3:5] == [
        before_midnight, len(hot) - before_midnight + 1]  # the 5th also has its cold minute at 06:30
    assert f"4 Oktober 2026 23.45 5 Oktober 2026 00.15 30 menit suhu {comma(worst)} °C (maks)" in words(
        october.report("env", "pdf"))


def test_a_failed_probe_counts_failed_minutes_never_values(october: Site) -> None:
    (failed,), (recovered,) = (october.sql(f"SELECT ts FROM events WHERE kind = 'env.probe_{k}'")[0]
                               for k in ("failed", "recovered"))
    gap = minutes_between(failed, recovered)
    assert gap == 30
    # no reading was written while it failed, and none is made up for it
    assert october.sql("SELECT count(*) FROM events WHERE kind = 'env.reading' AND ts >= ? AND ts < ?",
                       failed, recovered) == [(0,)]
    rows = csv_rows(october.report("env", "csv"))
    day = section(rows, "harian", probe="rack1", tanggal="2026-10-06")[0]
    assert int(column(day, "menit gagal")) == gap and int(column(day, "menit tanpa")) == 0
    assert int(column(day, "jumlah")) == 1440 - gap
    assert "gangguan sensor" in column(day, "keterangan")
    alarms = october.sql("SELECT ts, json_extract(payload, '$.quantity'), json_extract(payload, '$.condition') FROM "
                         "events WHERE kind = 'env.alarm.raised' AND ts >= ? AND ts < ? ORDER BY seq",
                         OCT_START, OCT_END)
    listed = section(rows, "alarm", probe="rack1")
    assert [(r["mulai (start)"], column(r, "besaran"), column(r, "kondisi").split()[0]) for r in listed] == [
        (local_iso(ts), quantity, condition) for ts, quantity, condition in alarms]
    assert ("probe", "fault") in {(q, c) for _, q, c in alarms}
    total = section(rows, "total", probe="rack1")[0]
    assert int(column(total, "menit gagal")) == gap and int(column(total, "jumlah")) == sum(
        d[0] for d in store_days(october, "rack1").values())


def test_the_month_is_the_sites_calendar_month_and_every_probe_seen_is_listed(october: Site) -> None:
    rows = csv_rows(october.report("env", "csv"))
    assert [r["probe (probe)"] for r in section(rows, "total")] == ["rack1", "rack2", "old-probe"]
    # old-probe is not configured any more; of its four readings two fall in October WIB
    old = store_days(october, "old-probe")
    assert old == {"2026-10-01": (1, 24.0, 24.0, 24.0, 50.0, 50.0, 50.0, 1),
                   "2026-10-10": (1, 21.5, 21.5, 21.5, 55.0, 55.0, 55.0, 0)}
    assert int(column(section(rows, "total", probe="old-probe")[0], "jumlah")) == 2
    assert column(section(rows, "harian", probe="old-probe", tanggal="2026-10-10")[0], "suhu min") == "21.5"
    rack2 = section(rows, "total", probe="rack2")[0]
    assert column(rack2, "jumlah") == "0" and column(rack2, "menit tanpa") == str(31 * 1440)
    text = words(october.report("env", "pdf"))
    assert "Probe old-probe / probe (tidak ada di konfigurasi" in text
    assert "Probe rack2 / probe Standar / standard: suhu 20–22 °C, kelembaban 35–65 %" in text


# -- the power card -----------------------------------------------------------------------------------

def test_power_card_matches_the_store(october: Site) -> None:
    lost = october.sql("SELECT ts FROM events WHERE kind = 'power.mains_lost' ORDER BY seq")
    restored = october.sql("SELECT ts, json_extract(payload, '$.lowest_battery_pct'), json_extract(payload, "
                           "'$.highest_load_pct') FROM events WHERE kind = 'power.mains_restored'")
    assert len(lost) == 2 and len(restored) == 1  # the second outage is still going on
    battery = october.sql("SELECT min(json_extract(payload, '$.battery_charge_pct')), max(json_extract(payload, "
                          "'$.load_pct')) FROM events WHERE kind LIKE 'power.%' AND ts >= ? AND ts <= ?",
                          lost[0][0], restored[0][0])[0]
    assert battery == (restored[0][1], restored[0][2]) == (25, 40)
    started = october.sql("SELECT ts FROM events WHERE kind = 'power.generator_started'")[0][0]
    stopped, run_s, used = october.sql("SELECT ts, json_extract(payload, '$.duration_s'), json_extract(payload, "
                                       "'$.fuel_used_pct') FROM events WHERE kind = 'power.generator_stopped'")[0]
    assert run_s == minutes_between(started, stopped) * 60 == 1500

    rows = csv_rows(october.report("power", "csv"))
    closed, still = section(rows, "pemadaman")
    assert (closed["mulai (start)"], closed["selesai (end)"]) == (local_iso(lost[0][0]), local_iso(restored[0][0]))
    assert float(column(closed, "durasi")) == minutes_between(lost[0][0], restored[0][0]) == 25
    assert (float(column(closed, "baterai")), float(column(closed, "beban"))) == battery
    assert still["mulai (start)"] == local_iso(lost[1][0]) and still["selesai (end)"] == ""
    assert column(still, "keterangan") == "berlangsung (ongoing)"
    (run,) = section(rows, "genset")
    assert (run["mulai (start)"], run["selesai (end)"]) == (local_iso(started), local_iso(stopped))
    assert float(column(run, "durasi")) == run_s / 60 and float(column(run, "BBM terpakai %")) == used
    for kind, name in (("power.refuelled", "pengisian"), ("power.ats_switched", "ats"),
                       ("power.refuel_needed", "perlu isi")):
        stamps = [local_iso(ts) for (ts,) in october.sql("SELECT ts FROM events WHERE kind = ? ORDER BY seq", kind)]
        listed = [r["mulai (start)"] for r in section(rows, name)
                  if name != "ats" or column(r, "dari")]  # the ATS section also shows the startup position
        assert listed == stamps, kind
    ups_day = section(rows, "ups harian", tanggal="2026-10-07")[0]
    assert (float(column(ups_day, "baterai")), float(column(ups_day, "beban"))) == battery

    text = words(october.report("power", "pdf"))
    assert "KARTU KONTROL PERANGKAT KELISTRIKAN" in text
    assert "1 ups1 7 Oktober 2026 10.00 7 Oktober 2026 10.25 25 menit 25 % 40 %" in text
    assert "2 ups1 31 Oktober 2026 20.00 berlangsung / ongoing" in text
    assert f"1 7 Oktober 2026 10.01 7 Oktober 2026 10.26 25 menit 80→79 % {comma(used)} % (2,0 L)" in text
    assert "Pemadaman PLN / mains outages 2 kali, 4 jam 25 menit dalam periode ini (1 berlangsung)" in text


def test_power_card_says_what_is_not_installed(october: Site, tmp_path: Path) -> None:
    data = base_config(tmp_path / "data", 1)  # no [ups], no [power]
    config = load_config(write_config(tmp_path / "bare.toml", data)).model_copy(
        update={"data_dir": october.config.data_dir})
    text = words(monthly_report(config, "power", "2026-08", "pdf", now=NOW))
    assert text.count("tidak terpasang / not installed") >= 5
    assert "tidak ada data kelistrikan" in text.lower()


# -- the access logbook -----------------------------------------------------------------------------------

def store_stays(site: Site) -> list[tuple[str, str, str | None]]:
    """(person, entry ts, exit ts) from the raw events: grants in and out, and exit-button presses; exit
    "unseen" when the person entered again without one, None while still inside."""
    events = site.sql("SELECT ts, kind, payload FROM events WHERE kind IN ('access.granted', 'access.exit') "
                      "ORDER BY seq")
    inside: dict[str, str] = {}
    stays = []
    for ts, kind, payload in events:
        f = json.loads(payload)
        leaving = [p["person"] for p in f.get("persons", [])] if kind == "access.exit" else (
            [f["person"]] if f["direction"] == "out" else [])
        for person in leaving:
            stays.append((person, inside.pop(person), ts))
        if kind == "access.granted" and f["direction"] == "in":
            if f["person"] in inside:
                stays.append((f["person"], inside.pop(f["person"]), "unseen"))
            inside[f["person"]] = ts
    return stays + [(person, since, None) for person, since in inside.items()]


def test_access_logbook_pairs_each_entry_with_its_exit(october: Site) -> None:
    stays = store_stays(october)
    assert len(stays) == 8
    rows = csv_rows(october.report("access", "csv"))
    listed = section(rows, "kunjungan (stay)")
    keys = {p.id: p for p in october.people.values()}
    by_entry = {(r["waktu masuk (entry time)"], r["NIP atau kunci kunjungan (NIP or visit key)"]): r for r in listed}
    assert len(listed) == len(stays)
    for person, entered, exited in stays:
        who = keys[person].nip if person in keys else person
        row = by_entry[(local_iso(entered), who)]
        if exited in (None, "unseen"):
            assert row["waktu keluar (exit time)"] == "" and column(row, "lama") == ""
            assert column(row, "cara keluar").startswith("masih di dalam" if exited is None else "tidak tercatat")
            continue
        assert row["waktu keluar (exit time)"] == local_iso(exited)
        assert int(column(row, "lama")) == minutes_between(entered, exited)
    # the stay that began on 30 September and the one that ended on 1 November are October's too
    assert ("2026-09-30T22:00:00+07:00", NIP["budi"]) in by_entry
    late = by_entry[("2026-10-31T23:30:00+07:00", NIP["citra"])]
    assert late["waktu keluar (exit time)"] == "2026-11-01T00:40:00+07:00"
    vendors = [r for r in listed if column(r, "jenis") == "vendor"]
    assert {r["nama (name)"] for r in vendors} == {"Agus Salim", "Rina Wulandari"}
    for row in vendors:
        assert column(row, "kunjungan") == october.visit and column(row, "pendamping") == "Citra Lestari"
        assert column(row, "keperluan") == "ganti modul catu daya core switch"
        assert column(row, "cara keluar") == "tombol keluar / exit button"
    assert {column(r, "identitas") for r in vendors} == {"SIM 1234••••9012", "KTP 3271••••••••0004"}
    refusals = section(rows, "penolakan")
    store_refusals = october.sql("SELECT ts FROM events WHERE kind IN ('access.denied', 'visit.refused') ORDER BY seq")
    assert [r["waktu masuk (entry time)"] for r in refusals] == [local_iso(ts) for (ts,) in store_refusals]
    assert "Budi Santoso" in refusals[1]["nama (name)"] and "not an officer" in column(refusals[1], "alasan")

    pdf = october.report("access", "pdf")
    text = words(pdf)
    for secret in (SIM, NIK):  # visitors' ID numbers only ever masked
        assert secret not in text and secret not in str(rows)
    assert ("1 Budi Santoso 199001012015011001 staf main 30 September 2026 22.00 1 Oktober 2026 01.00 sidik "
            "jari/finger (pembaca keluar / exit reader) 3 jam") in text
    assert "Ditolak di pintu / refused at the door 1" in text and "Masih di dalam / still inside 1" in text
    assert "BUKU LOG AKSES PUSAT DATA" in text
    alerts = october.sql("SELECT ts, kind FROM events WHERE kind IN ('door.forced', 'door.held_open') ORDER BY seq")
    listed_alerts = [(r["waktu masuk (entry time)"], column(r, "keterangan")) for r in section(rows, "pintu")]
    assert listed_alerts == [(local_iso(ts), {"door.forced": "pintu dibobol / door forced",
                                              "door.held_open": "pintu tertahan terbuka / door held open"}[kind])
                             for ts, kind in alerts]
    assert "15 Oktober 2026 02.10 main pintu dibobol / door forced" in text
    assert "Pintu dibobol atau tertahan / door forced or held open 2" in text
    # without DejaVu Sans the card falls back to Helvetica (Latin-1): the masks stay masks
    fallback = words(make_report(october.config, "access", Period.for_month(MONTH, "Asia/Jakarta"), "pdf", now=NOW,
                                 font_dirs=()).data)
    assert "SIM 1234****9012" in fallback and SIM not in fallback and "Halaman 1 dari " in fallback


def test_an_access_report_for_any_period(october: Site) -> None:
    since, until = "2026-10-04T17:00:00.000Z", "2026-10-05T17:00:00.000Z"  # 5 October, WIB
    rows = csv_rows(period_report(october.config, "access", since=since, until=until, fmt="csv", now=NOW))
    assert [(r["nama (name)"], r["waktu masuk (entry time)"]) for r in section(rows, "kunjungan")] == [
        ("Budi Santoso", "2026-10-05T09:00:00+07:00")]
    assert [r["waktu masuk (entry time)"] for r in section(rows, "penolakan")] == ["2026-10-05T09:05:00+07:00"]
    text = words(period_report(october.config, since=since, until=until, fmt="pdf", now=NOW))
    assert "Periode / period: 5 Oktober 2026 00.00 – 6 Oktober 2026 00.00 WIB" in text


# -- every card ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_a_month_without_data_says_so_and_invents_nothing(october: Site, kind: str) -> None:
    text = words(october.report(kind, "pdf", month="2026-08"))
    assert "Periode / period: Agustus 2026" in text
    assert "tidak ada data" in text.lower()
    rows = csv_rows(october.report(kind, "csv", month="2026-08"))
    if kind == "env":  # a row per probe and day, all of them empty
        assert len(section(rows, "harian")) == 2 * 31
        assert all(column(r, "suhu") == "" and column(r, "jumlah") == "0" for r in rows)
        assert all(column(r, "menit tanpa") == "1440" for r in section(rows, "harian"))
    else:
        assert [(r["bagian (section)"], r["keterangan (note)"]) for r in rows] == [
            ("keterangan (note)", "tidak ada data (no data)")]


@pytest.mark.parametrize("kind", KINDS)
def test_the_footer_names_the_stores_last_event_and_the_pages(october: Site, kind: str) -> None:
    seq, digest = october.sql("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")[0]
    pdf = october.report(kind, "pdf")
    pages = len(pypdf.PdfReader(io.BytesIO(pdf)).pages)
    for number, page in enumerate(pypdf.PdfReader(io.BytesIO(pdf)).pages, start=1):
        text = " ".join(page.extract_text().split())
        assert f"Halaman {number} dari {pages}" in text
        assert f"seq {seq}, hash {digest}" in text


@pytest.mark.parametrize("kind", KINDS)
def test_pages_render_and_are_not_blank(october: Site, kind: str, tmp_path: Path) -> None:
    pdf = tmp_path / f"{kind}.pdf"
    pdf.write_bytes(october.report(kind, "pdf"))
    subprocess.run(["/usr/bin/pdftoppm", "-r", "60", "-png", str(pdf), str(tmp_path / kind)], check=True,
                   capture_output=True, timeout=60)
    pages = sorted(tmp_path.glob(f"{kind}-*.png"))
    assert len(pages) == len(pypdf.PdfReader(pdf).pages) >= 2
    for page in pages:
        with Image.open(page) as image:
            grey = image.convert("L")
            inked = sum(grey.histogram()[:200]) / (grey.width * grey.height)
        assert grey.width > 400 and 0.01 < inked < 0.5, f"{page.name}: {inked:.3f} of the page is ink"
    shutil.copy(pages[0], artifact_path(f"report-{kind}-p1.png"))


def test_bad_month_kind_format_and_a_missing_store_are_refused(october: Site, tmp_path: Path) -> None:
    config = october.config
    for month in ("2026-13", "10-2026", "2026-1", ""):
        with pytest.raises(InvalidValueError, match=r"YYYY-MM.*2026-10") as caught:
            monthly_report(config, "env", month, "pdf")
        assert repr(month) in str(caught.value)
    with pytest.raises(InvalidValueError, match=r"'water'.*env, power, access"):
        monthly_report(config, "water", MONTH, "pdf")
    with pytest.raises(InvalidValueError, match=r"'docx'.*pdf atau csv"):
        monthly_report(config, "env", MONTH, "docx")
    assert FORMATS == ("pdf", "csv")
    with pytest.raises(InvalidValueError, match="tidak sebelum"):
        period_report(config, since="2026-10-02T00:00:00.000Z", until="2026-10-01T00:00:00.000Z", fmt="csv")
    with pytest.raises(InvalidValueError, match="tidak dikenali"):
        period_report(config, since="kemarin", until="2026-10-01T00:00:00.000Z", fmt="csv")
    elsewhere = config.model_copy(update={"data_dir": tmp_path / "empty"})
    with pytest.raises(StoreError, match="data_dir") as caught:
        monthly_report(elsewhere, "env", MONTH, "pdf")
    assert str(tmp_path / "empty" / "dcgate.db") in str(caught.value)


# -- the command ----------------------------------------------------------------------------------------------

def cli() -> Callable[..., tuple[int, str]]:
    """`dcgate report ...` through the module's own parser registration (main.py wires it the same way)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS)
    parser = argparse.ArgumentParser(prog="dcgate")
    report_cmd.register(parser.add_subparsers(dest="command", required=True), common)

    def run(*argv: str) -> tuple[int, str]:
        args = parser.parse_args(list(argv))
        try:
            return args.handler(args), ""
        except DcgateError as exc:
            return exc.exit_code, str(exc)

    return run


def test_report_command_writes_the_file_atomically(october: Site, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run, config = cli(), str(october.path)
    out = tmp_path / "kartu-suhu-2026-10.pdf"
    assert run("report", "monthly", "--month", MONTH, "--kind", "env", "--out", str(out), "--config", config) == (0, "")
    line = capsys.readouterr().out.strip()
    assert out.read_bytes().startswith(b"%PDF") and oct(out.stat().st_mode & 0o777) == "0o640"
    pages = len(pypdf.PdfReader(out).pages)
    assert line.startswith("kartu suhu & kelembaban (env) Oktober 2026 -> ") and str(out) in line
    assert f"PDF, {out.stat().st_size / 1024:.1f} KiB, {pages} halaman/pages" in line and "baris/rows" in line

    power = tmp_path / "listrik.CSV"
    code, _ = run("report", "monthly", "--month", MONTH, "--kind", "power", "--out", str(power), "--config", config)
    assert code == 0
    assert power.read_bytes() == monthly_report(october.config, "power", MONTH, "csv")
    rows = len(csv_rows(power.read_bytes()))
    assert f"{rows} baris/rows" in capsys.readouterr().out

    wrong = tmp_path / "kartu.xlsx"
    code, message = run("report", "monthly", "--month", MONTH, "--kind", "env", "--out", str(wrong), "--config", config)
    assert code == 2 and ".pdf atau .csv" in message and "kartu.xlsx" in message and not wrong.exists()
    code, message = run("report", "monthly", "--month", "2026-13", "--kind", "env", "--out", str(out), "--config",
                        config)
    assert code == 2 and "YYYY-MM" in message

    access = tmp_path / "log.csv"
    # a time without a zone is on the site's clock (WIB), whatever zone this machine is in
    assert run("report", "access", "--since", "2026-10-05", "--until", "2026-10-05T17:00:00Z",
               "--out", str(access), "--config", config)[0] == 0
    assert [r["nama (name)"] for r in section(csv_rows(access.read_bytes()), "kunjungan")] == ["Budi Santoso"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kartu-suhu-2026-10.pdf", "listrik.CSV", "log.csv"]


def test_pruned_and_folded_readings_give_the_same_card(october: Site, tmp_path: Path) -> None:
    """Readings older than readings_raw_days live on as per-minute aggregates: the card is unchanged. Minutes
    older than readings_minute_days become hours: the days' values stay, minutes outside become unknown (t/a)."""
    copy = tmp_path / "data"
    copy.mkdir()
    shutil.copy(october.db, copy / "dcgate.db")
    pruned = Site(october.config.model_copy(update={"data_dir": copy}), october.path, copy / "dcgate.db")

    def housekeeping(until: Callable[[], bool], **store: float) -> None:
        writer = StoreWriter(pruned.db, synchronous="normal", outbox=october.config.outbox, housekeeping_s=0.05,
                             readings=StoreConfig(**store))
        writer.start()
        try:
            writer.mark_delivered(range(1, writer.last_seq + 1))  # only readings delivered upstream are pruned
            wait_until(until, 20, message=f"housekeeping with {store}")
        finally:
            writer.stop()

    housekeeping(lambda: pruned.sql("SELECT count(*) FROM events WHERE kind = 'env.reading' AND payload != ''")
                 == [(0,)], readings_raw_days=7)
    assert pruned.sql("SELECT sum(n) FROM readings_minute") == [(4294,)]
    assert pruned.report("env", "csv") == october.report("env", "csv")

    # 30 days before today (21 November) the minutes become hours; the 31 October reading stays a minute
    housekeeping(lambda: pruned.sql("SELECT count(*) FROM readings_minute") == [(1,)], readings_raw_days=7,
                 readings_minute_days=30)
    before, after = csv_rows(october.report("env", "csv")), csv_rows(pruned.report("env", "csv"))
    for old, new in zip(section(before, "harian", probe="rack1"), section(after, "harian", probe="rack1"), strict=True):
        for name in ("jumlah", "suhu min", "suhu maks", "kelembaban min", "kelembaban maks", "menit gagal"):
            assert column(new, name) == column(old, name), (old["tanggal (date)"], name)
        for name in ("suhu rerata", "kelembaban rerata"):
            assert float(column(new, name) or 0) == pytest.approx(float(column(old, name) or 0), abs=0.01)
        has_data = column(old, "jumlah") != "0"
        assert column(new, "menit di luar") == ("" if has_data else "0")
        assert ("data per jam" in column(new, "keterangan")) == has_data
    assert not section(after, "ekskursi", probe="rack1")  # runs of minutes cannot be told from hours
    assert "Sen, 5 1440 19,2 21,1 23,6 48,0 51,0 54,0 t/a" in words(pruned.report("env", "pdf"))
