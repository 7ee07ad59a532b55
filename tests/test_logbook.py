"""The access logbook (`access/logbook.py`, `dcgate log`) over a real SQLite store written by the real StoreWriter.

Event times are chosen by the test (the writer's clock is replaced), so every time filter and every
printed line is exact, with no sleeps.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

import gateway.store.writer as writer_module
from access.logbook import CSV_COLUMNS, LOGBOOK_KINDS, LogEntry, entry_line, query, write_csv
from gateway.cli.common import parse_time
from gateway.store.events import utc_timestamp
from gateway.store.writer import StoreWriter
from tests.support.configs import base_config, write_config
from tests.support.gateway_proc import run_cli

BUDI, SITI, ANDI = "P0001", "P0002", "P0003"
BUDI_NIP, SITI_NIP = "199001012015011001", "198505052010012002"
SITI_NAME = "Siti Rahayu, S.Kom."  # an academic title after a comma: CSV must quote it
WIB = ZoneInfo("Asia/Jakarta")
BUDI_IN_LINE = "2026-11-21 08:01:02  main    MASUK/IN   Budi Santoso (199001012015011001)  wajah/face 0.41"


@dataclass
class Logbook:
    config: Path
    db: Path
    seq: dict[str, int]  # label -> seq of the event the fixture wrote

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, "--config", str(self.config))


# label, UTC time, kind, source, fields
EVENTS: list[tuple[str, str, str, str, dict[str, Any]]] = [
    ("budi_added", "2026-11-20T01:00:00.000Z", "person.added", "access",
     {"person": BUDI, "name": "Budi Santoso", "nip": BUDI_NIP, "role": "staff", "by": "admin"}),
    ("siti_added", "2026-11-20T01:00:01.000Z", "person.added", "access",
     {"person": SITI, "name": SITI_NAME, "nip": SITI_NIP, "role": "officer", "by": "admin"}),
    ("budi_enrolled", "2026-11-20T01:05:00.000Z", "biometric.enrolled", "access",
     {"person": BUDI, "name": "Budi Santoso", "method": "face", "samples": 5, "door": "main", "by": "admin"}),
    ("budi_in", "2026-11-21T01:01:02.000Z", "access.granted", "door:main",
     {"door": "main", "person": BUDI, "name": "Budi Santoso", "role": "staff", "direction": "in",
      "method": "face", "distance": 0.41}),
    ("opened", "2026-11-21T01:01:03.000Z", "door.opened", "door:main",
     {"door": "main", "reason": "grant", "person": BUDI, "method": "face"}),
    ("reading", "2026-11-21T01:01:05.000Z", "env.reading", "probe:rack1",
     {"probe": "rack1", "temperature_c": 21.0, "humidity_pct": 50.0}),
    ("closed", "2026-11-21T01:01:10.000Z", "door.closed", "door:main",
     {"door": "main", "open_s": 7.0, "held_open": False, "forced": False}),
    ("stranger", "2026-11-21T01:30:00.000Z", "access.denied", "door:main",
     {"door": "main", "reason": "unknown_face", "direction": "in", "method": "face", "distance": 0.72}),
    ("siti_in", "2026-11-21T02:00:00.000Z", "access.granted", "door:main",
     {"door": "main", "person": SITI, "name": SITI_NAME, "role": "officer", "direction": "in",
      "method": "finger", "confidence": 87, "slot": 3}),
    ("budi_passback", "2026-11-21T02:10:00.000Z", "access.denied", "door:rear",
     {"door": "rear", "reason": "anti_passback", "direction": "in", "method": "face", "person": BUDI,
      "name": "Budi Santoso", "distance": 0.39}),
    ("forced", "2026-11-21T03:00:00.000Z", "door.forced", "door:rear", {"door": "rear", "state_before": "locked"}),
    # no door field: the source alone says which door
    ("rear_button", "2026-11-21T03:30:00.000Z", "door.exit_button", "door:rear",
     {"state_before": "locked", "unlock_s": 5}),
    ("budi_out", "2026-11-21T04:00:00.000Z", "access.exit", "door:main",
     {"door": "main", "via": "exit_button", "persons": [BUDI], "stay_s": {BUDI: 10738}}),
    ("siti_out", "2026-11-21T05:00:00.000Z", "access.exit", "door:main",
     {"door": "main", "via": "exit_button", "persons": [{"person": SITI, "stay_s": 10800}]}),
    ("andi_deactivated", "2026-11-21T06:00:00.000Z", "person.deactivated", "access",
     {"person": ANDI, "name": "Andi", "by": "admin", "reason": "cuti / on leave"}),
]

PEOPLE = [
    {"id": BUDI, "name": "Budi Santoso", "nip": BUDI_NIP, "role": "staff", "active": 1},
    {"id": SITI, "name": SITI_NAME, "nip": SITI_NIP, "role": "officer", "active": 1},
]


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """The writer stamps each event with the time the test set (other clock uses stay real)."""
    now = {"ts": ""}

    def stamp(ns: int | None = None) -> str:
        return now["ts"] if ns is None else utc_timestamp(ns)

    monkeypatch.setattr(writer_module, "utc_timestamp", stamp)
    return lambda ts: now.update(ts=ts)


def write_store(db: Path, set_time: Callable[[str], None], events: list[tuple[str, str, str, str, dict[str, Any]]]
                ) -> dict[str, int]:
    writer = StoreWriter(db, synchronous="normal")
    writer.start()
    try:
        seqs = {}
        for label, ts, kind, source, fields in events:
            set_time(ts)
            seqs[label] = writer.append_and_wait(kind, source, fields).seq
        return seqs
    finally:
        writer.stop()


def add_people(db: Path, people: list[dict[str, Any]]) -> None:
    """Rows in `people` by hand, whichever columns the migration gave it (its NOT NULL ones filled in)."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS people (id TEXT PRIMARY KEY, name TEXT, nip TEXT UNIQUE, "
                     "role TEXT, active INTEGER)")
        columns = {row[1] for row in conn.execute("PRAGMA table_info(people)")}
        for person in people:
            row = {**person, "enrolled_by": "admin", "enrolled_at": "2026-11-20T01:00:00.000Z"}
            row = {key: value for key, value in row.items() if key in columns}
            conn.execute(f"INSERT INTO people ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                         list(row.values()))
        conn.commit()
    finally:
        conn.close()


@pytest.fixture
def logbook(tmp_path: Path, fixed_clock: Callable[[str], None]) -> Logbook:
    # the gateway never runs here, so the broker port is never dialled
    config = write_config(tmp_path / "dcgate.toml", base_config(tmp_path / "data", 1))
    db = tmp_path / "data" / "dcgate.db"
    seqs = write_store(db, fixed_clock, EVENTS)
    add_people(db, PEOPLE)
    return Logbook(config, db, seqs)


def seqs_of(entries: list[LogEntry]) -> list[int]:
    return [entry.seq for entry in entries]


def labels(book: Logbook, *names: str) -> list[int]:
    return [book.seq[name] for name in names]


# -- query ---------------------------------------------------------------------------------------

def test_everything_in_the_logbook_but_nothing_else(logbook: Logbook) -> None:
    entries = query(logbook.db)
    assert seqs_of(entries) == [seq for label, seq in logbook.seq.items() if label != "reading"]
    assert {entry.kind for entry in entries} <= set(LOGBOOK_KINDS)


BUDI_EVENTS = ("budi_added", "budi_enrolled", "budi_in", "opened", "budi_passback", "budi_out")


@pytest.mark.parametrize("person", [BUDI, BUDI_NIP, "19900101 201501 1 001", "Budi Santoso", "budi santoso"],
                         ids=["id", "nip", "nip-with-spaces", "name", "name-any-case"])
def test_person_by_id_nip_or_name_including_exits(logbook: Logbook, person: str) -> None:
    assert seqs_of(query(logbook.db, person=person)) == labels(logbook, *BUDI_EVENTS)


def test_person_in_an_exit_written_as_objects(logbook: Logbook) -> None:
    entries = query(logbook.db, person=SITI_NAME)
    assert seqs_of(entries) == labels(logbook, "siti_added", "siti_in", "siti_out")
    assert entries[-1].people[0].id == SITI and entries[-1].people[0].nip == SITI_NIP


def test_unknown_person_matches_nothing(logbook: Logbook) -> None:
    assert query(logbook.db, person="Budi") == []  # a full name, not part of one: "Budi" is many people


def test_without_a_people_table_only_ids_match(tmp_path: Path, fixed_clock: Callable[[str], None]) -> None:
    db = tmp_path / "old.db"
    seqs = write_store(db, fixed_clock, EVENTS)
    conn = sqlite3.connect(db)
    conn.executescript("DROP TABLE IF EXISTS templates; DROP TABLE IF EXISTS people;")
    conn.close()
    assert seqs_of(query(db, person=BUDI)) == [seqs[name] for name in BUDI_EVENTS]
    assert query(db, person=BUDI_NIP) == []
    # names still come from the events themselves; the NIP only from person.added
    budi_in = query(db, person=BUDI, kinds=["access.granted"])[0]
    assert (budi_in.people[0].name, budi_in.people[0].nip) == ("Budi Santoso", None)


def test_door_by_field_or_by_source(logbook: Logbook) -> None:
    assert seqs_of(query(logbook.db, door="rear")) == labels(logbook, "budi_passback", "forced", "rear_button")
    main = query(logbook.db, door="main")
    assert seqs_of(main) == labels(logbook, "budi_enrolled", "budi_in", "opened", "closed", "stranger", "siti_in",
                                   "budi_out", "siti_out")
    assert query(logbook.db, door="basement") == []


def test_since_is_inclusive_and_until_exclusive(logbook: Logbook) -> None:
    # 08:30 and 09:00 WIB are exactly the denied stranger's and Siti's entry times
    since, until = parse_time("2026-11-21T08:30+07:00"), parse_time("2026-11-21T09:00+07:00")
    assert seqs_of(query(logbook.db, since=since, until=until)) == labels(logbook, "stranger")
    assert seqs_of(query(logbook.db, person=BUDI, since=since)) == labels(logbook, "budi_passback", "budi_out")
    assert seqs_of(query(logbook.db, door="main", until=parse_time("2026-11-21"))) == labels(logbook, "budi_enrolled")


def test_kinds_narrow_the_logbook(logbook: Logbook) -> None:
    entries = query(logbook.db, kinds=["access.denied"])
    assert seqs_of(entries) == labels(logbook, "stranger", "budi_passback")
    assert [entry.reason for entry in entries] == ["unknown_face", "anti_passback"]


def test_a_pruned_reading_with_an_empty_payload_does_not_break_the_json_filters(logbook: Logbook) -> None:
    conn = sqlite3.connect(logbook.db)
    conn.execute("UPDATE events SET payload = '' WHERE kind = 'env.reading'")  # what readings compaction does
    conn.commit()
    conn.close()
    assert seqs_of(query(logbook.db, person=BUDI, door="main")) == labels(
        logbook, "budi_enrolled", "budi_in", "opened", "budi_out")


def test_reads_while_the_writer_is_still_running(tmp_path: Path, fixed_clock: Callable[[str], None]) -> None:
    db = tmp_path / "live.db"
    writer = StoreWriter(db, synchronous="normal")
    writer.start()
    try:
        fixed_clock("2026-11-21T01:01:02.000Z")
        writer.append_and_wait("door.forced", "door:main", {"door": "main", "state_before": "locked"})
        assert [entry.kind for entry in query(db, door="main")] == ["door.forced"]
    finally:
        writer.stop()


# -- lines and CSV -------------------------------------------------------------------------------

@pytest.fixture
def by_label(logbook: Logbook) -> dict[str, LogEntry]:
    entries = {entry.seq: entry for entry in query(logbook.db)}
    return {label: entries[seq] for label, seq in logbook.seq.items() if seq in entries}


def test_lines_are_indonesian_first_in_wib(by_label: dict[str, LogEntry]) -> None:
    lines = {label: entry_line(entry, WIB) for label, entry in by_label.items()}
    assert lines["budi_in"] == BUDI_IN_LINE
    assert lines["stranger"] == (
        "2026-11-21 08:30:00  main    DITOLAK/DENIED unknown_face (wajah tidak dikenal / unknown face)  "
        "wajah/face 0.72")
    assert lines["siti_in"] == (
        f"2026-11-21 09:00:00  main    MASUK/IN   {SITI_NAME} ({SITI_NIP})  sidik jari/finger 87 (slot 3)")
    assert lines["forced"] == "2026-11-21 10:00:00  rear    PINTU DIBOBOL / DOOR FORCED"
    assert lines["budi_passback"].startswith(
        "2026-11-21 09:10:00  rear    DITOLAK/DENIED anti_passback (sudah di dalam / already inside")
    assert lines["budi_out"] == ("2026-11-21 11:00:00  main    KELUAR/EXIT  tombol keluar / exit button  "
                                 "Budi Santoso (199001012015011001) lama/stay 2:58")
    assert lines["siti_out"].endswith(f"{SITI_NAME} ({SITI_NIP}) lama/stay 3:00")
    assert lines["closed"] == "2026-11-21 08:01:10  main    PINTU TERTUTUP / DOOR CLOSED  terbuka/open 7 s"
    assert lines["rear_button"] == "2026-11-21 10:30:00  rear    TOMBOL KELUAR / EXIT BUTTON  buka/unlock 5 s"
    assert lines["andi_deactivated"] == (
        "2026-11-21 13:00:00  -       DINONAKTIFKAN / DEACTIVATED  Andi [P0003]  oleh/by admin  "
        "alasan/reason: cuti / on leave")
    assert lines["budi_added"].startswith("2026-11-20 08:00:00  -       ORANG DITAMBAHKAN / PERSON ADDED  Budi")


def test_lines_in_another_zone(by_label: dict[str, LogEntry]) -> None:
    assert entry_line(by_label["budi_in"], ZoneInfo("Asia/Makassar")).startswith("2026-11-21 09:01:02  main")
    assert entry_line(by_label["budi_in"]).startswith("2026-11-21 08:01:02")  # WIB by default


def test_csv_parses_back_with_the_bilingual_header_and_a_name_with_a_comma(logbook: Logbook) -> None:
    out = io.StringIO()
    write_csv(query(logbook.db, door="main"), out, WIB)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[0][:3] == ["waktu/time", "pintu/door", "kejadian/event"]
    by_seq = {int(row[CSV_COLUMNS.index("seq")]): dict(zip(CSV_COLUMNS, row, strict=True)) for row in rows[1:]}
    siti = by_seq[logbook.seq["siti_in"]]
    assert siti["nama/name"] == SITI_NAME and siti["NIP"] == SITI_NIP and siti["peran/role"] == "officer"
    assert siti["waktu/time"] == "2026-11-21T09:00:00.000+07:00"
    assert (siti["metode/method"], siti["keyakinan/confidence"], siti["jarak/distance"]) == ("finger", "87", "")
    budi = by_seq[logbook.seq["budi_in"]]
    assert (budi["kejadian/event"], budi["arah/direction"], budi["jarak/distance"]) == ("access.granted", "in", "0.41")
    stranger = by_seq[logbook.seq["stranger"]]
    assert (stranger["orang/person"], stranger["alasan/reason"]) == ("", "unknown_face")
    assert len(by_seq) == 8


# -- the command ---------------------------------------------------------------------------------

def test_dcgate_log_lists_the_logbook_and_filters(logbook: Logbook) -> None:
    result = logbook.cli("log")
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert len(lines) == len(EVENTS) - 1  # not the reading
    assert BUDI_IN_LINE in lines

    result = logbook.cli("log", "--person", "Budi Santoso", "--door", "rear", "--since", "2026-11-21T00:00+07:00")
    assert result.returncode == 0, result
    assert result.stdout.splitlines() == [
        "2026-11-21 09:10:00  rear    DITOLAK/DENIED anti_passback (sudah di dalam / already inside (anti-passback))"
        "  Budi Santoso (199001012015011001)  wajah/face 0.39"
    ]


def test_dcgate_log_csv_and_json(logbook: Logbook) -> None:
    result = logbook.cli("log", "--csv", "--person", SITI_NIP)
    assert result.returncode == 0, result
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [row[CSV_COLUMNS.index("nama/name")] for row in rows[1:]] == [SITI_NAME] * 3
    assert [row[0] for row in rows[1:]][-1] == "2026-11-21T12:00:00.000+07:00"

    result = logbook.cli("log", "--json", "--door", "rear")
    assert result.returncode == 0, result
    entries = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["kind"] for e in entries] == ["access.denied", "door.forced", "door.exit_button"]
    assert entries[0]["people"][0] == {"id": BUDI, "name": "Budi Santoso", "nip": BUDI_NIP, "role": "staff"}
    assert entries[1]["time"] == "2026-11-21T10:00:00.000+07:00" and entries[1]["ts"] == "2026-11-21T03:00:00.000Z"


def test_dcgate_log_shows_times_in_the_access_timezone(logbook: Logbook, tmp_path: Path) -> None:
    wita = base_config(tmp_path / "data", 1, access={"timezone": "Asia/Makassar"})
    config = write_config(tmp_path / "wita.toml", wita)
    result = run_cli("log", "--door", "rear", "--csv", "--config", str(config))
    assert result.returncode == 0, result
    assert [row[0] for row in csv.reader(io.StringIO(result.stdout))][1:] == [
        "2026-11-21T10:10:00.000+08:00", "2026-11-21T11:00:00.000+08:00", "2026-11-21T11:30:00.000+08:00"]


def test_a_time_without_a_zone_is_in_the_logbook_zone_not_the_machines(logbook: Logbook) -> None:
    # the Pi's clock in UTC, the staff typing WIB: 09:00 means 02:00 UTC, when Siti came in
    result = run_cli("log", "--door", "main", "--since", "2026-11-21 09:00", "--json", "--config", str(logbook.config),
                     env={"TZ": "UTC"})
    assert result.returncode == 0, result
    assert [json.loads(line)["seq"] for line in result.stdout.splitlines()] == labels(
        logbook, "siti_in", "budi_out", "siti_out")


def test_dcgate_log_empty_and_bad_time(logbook: Logbook) -> None:
    result = logbook.cli("log", "--person", "nobody")
    assert (result.returncode, result.stdout) == (0, "(kosong / empty)\n"), result
    result = logbook.cli("log", "--csv", "--door", "basement")
    assert result.returncode == 0 and result.stdout.splitlines() == [",".join(CSV_COLUMNS)], result
    assert "(kosong / empty)" in result.stderr
    result = logbook.cli("log", "--since", "yesterday")
    assert result.returncode == 2, result
    assert "'yesterday' not understood" in result.stderr and result.stdout == ""
    assert logbook.cli("log", "--csv", "--json").returncode == 2  # one output form at a time


def test_dcgate_log_verify_still_checks_the_chain(logbook: Logbook) -> None:
    result = logbook.cli("log", "verify")
    assert result.returncode == 0, result
    assert result.stdout.startswith(f"OK: {len(EVENTS)} events, chain intact")
