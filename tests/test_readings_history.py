"""Compact reading history: old readings give their payload to aggregates; the chain still verifies."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gateway.config.models import StoreConfig
from gateway.readings import readings
from gateway.store.database import open_for_reading, open_for_writing
from gateway.store.events import iter_events, verify
from gateway.store.readings_history import fold_minutes_into_hours
from gateway.store.writer import StoreWriter
from tests.support.waiting import wait_until

TEMPERATURES = [20.5, 21.0, 23.5, 22.25, 19.75, 21.5]


@pytest.fixture
def writers():
    made: list[StoreWriter] = []

    def make(path: Path, **readings_config: float) -> StoreWriter:
        writer = StoreWriter(path, housekeeping_s=0.02, readings=StoreConfig(**readings_config))
        writer.start()
        made.append(writer)
        return writer

    yield make
    for writer in made:
        writer.stop()


def append_readings(writer: StoreWriter) -> list[int]:
    seqs = []
    for n, temperature in enumerate(TEMPERATURES):
        fields = {"probe": "rack1", "temperature_c": temperature, "humidity_pct": 40 + n}
        seqs.append(writer.append_and_wait("env.reading", "probe:rack1", fields).seq)
    return seqs


def events(path: Path, kind: str | None = None):
    db = open_for_reading(path)
    try:
        return list(iter_events(db, kind=kind))
    finally:
        db.close()


def query(path: Path, every: str):
    db = open_for_reading(path)
    try:
        return list(readings(db, "rack1", every=every))
    finally:
        db.close()


def verify_file(path: Path):
    db = open_for_reading(path)
    try:
        return verify(db)
    finally:
        db.close()


def test_delivered_old_readings_become_aggregates_and_the_chain_still_verifies(tmp_path, writers):
    path = tmp_path / "dcgate.db"
    # 1e-6 days is 86 ms: the readings really are "old" a moment after they are written
    writer = writers(path, readings_raw_days=1e-6)
    started = writer.append_and_wait("gateway.started", "gateway", {"version": "test"})
    seqs = append_readings(writer)
    writer.mark_delivered([started.seq, *seqs])
    wait_until(lambda: all(e.payload == "" for e in events(path, "env.reading")), 10, message="readings pruned")

    pruned = [e.fields for e in events(path, "log.pruned")]
    assert sum(p["count"] for p in pruned) == len(TEMPERATURES)
    assert min(p["first_seq"] for p in pruned) == seqs[0] and max(p["last_seq"] for p in pruned) == seqs[-1]
    assert events(path, "gateway.started")[0].fields == {"version": "test"}  # never prune the logbook
    assert verify_file(path).ok, verify_file(path).problem

    assert query(path, "raw") == []  # raw readings are gone; their aggregates remain
    [day] = query(path, "day")
    assert day["count"] == len(TEMPERATURES)
    assert (day["temperature_min_c"], day["temperature_max_c"]) == (min(TEMPERATURES), max(TEMPERATURES))
    assert day["temperature_mean_c"] == round(sum(TEMPERATURES) / len(TEMPERATURES), 2)
    assert (day["humidity_min_pct"], day["humidity_max_pct"]) == (40, 40 + len(TEMPERATURES) - 1)


def test_undelivered_readings_keep_their_payload(tmp_path, writers):
    path = tmp_path / "dcgate.db"
    writer = writers(path, readings_raw_days=1e-6)
    seqs = append_readings(writer)
    writer.mark_delivered(seqs[:3])  # the rest still wait for the broker
    wait_until(lambda: events(path, "log.pruned"), 10, message="a prune")
    by_seq = {e.seq: e for e in events(path, "env.reading")}
    assert all(by_seq[s].payload == "" for s in seqs[:3])
    assert all(by_seq[s].payload != "" for s in seqs[3:]), "an undelivered reading lost its payload"
    assert verify_file(path).ok


def test_old_minutes_fold_into_hours_and_the_totals_stay(tmp_path, writers):
    path = tmp_path / "dcgate.db"
    writer = writers(path, readings_raw_days=1e-6)
    writer.mark_delivered(append_readings(writer))
    wait_until(lambda: all(e.payload == "" for e in events(path, "env.reading")), 10, message="readings pruned")
    writer.stop()
    # a minute is "old" only once it is over, so fold with an explicit cutoff rather than wait for one
    db = open_for_writing(path)
    with db.atomic():
        folded = fold_minutes_into_hours(db.conn, "9999-12-31T23:59")
    db.close()
    assert folded >= 1
    counts = subprocess.run(["sqlite3", str(path), "SELECT (SELECT count(*) FROM readings_minute), "
                             "(SELECT sum(n) FROM readings_hour)"], capture_output=True, text=True, check=True)
    assert counts.stdout.strip() == f"0|{len(TEMPERATURES)}"
    [hour] = query(path, "hour")
    assert hour["count"] == len(TEMPERATURES) and hour["temperature_max_c"] == max(TEMPERATURES)
    assert hour["temperature_mean_c"] == round(sum(TEMPERATURES) / len(TEMPERATURES), 2)
    assert verify_file(path).ok


def test_emptying_a_payload_by_hand_is_caught(tmp_path, writers):
    path = tmp_path / "dcgate.db"
    writer = writers(path)  # default: raw readings kept for 7 days, nothing is pruned here
    started = writer.append_and_wait("gateway.started", "gateway", {"version": "test"})
    seqs = append_readings(writer)
    writer.stop()
    # the trigger lets a reading's payload be emptied (that is what pruning does) ...
    subprocess.run(["sqlite3", str(path), f"UPDATE events SET payload = '' WHERE seq = {seqs[2]}"], check=True)
    result = verify_file(path)
    # ... but without a recorded log.pruned range, verify names it
    assert not result.ok and result.bad_seq == seqs[2] and "outside any recorded log.pruned range" in result.problem
    # and for anything but a reading the trigger refuses outright; dropped, verify still names it
    refused = subprocess.run(["sqlite3", str(path), f"UPDATE events SET payload = '' WHERE seq = {started.seq}"],
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "append-only" in refused.stderr
    subprocess.run(["sqlite3", str(path), "DROP TRIGGER events_no_update; "
                    f"UPDATE events SET payload = '' WHERE seq = {started.seq}"], check=True)
    result = verify_file(path)
    assert not result.ok and result.bad_seq == started.seq and "gateway.started event, which is never pruned" in \
        result.problem


def test_an_aggregate_starting_at_until_is_not_in_the_period(tmp_path):
    """Regression: `minute < until` compared as text put the minute starting exactly at `until` inside."""
    from gateway.readings import readings
    from gateway.store.database import open_for_writing

    db = open_for_writing(tmp_path / "dcgate.db")
    row = {"probe": "rack1", "n": 1, "t_n": 1, "t_min": 21.0, "t_max": 21.0, "t_sum": 21.0,
           "h_n": 1, "h_min": 50.0, "h_max": 50.0, "h_sum": 50.0}
    db["readings_minute"].insert_all([{**row, "minute": "2026-09-30T23:59"}, {**row, "minute": "2026-10-01T00:00"}])
    db["readings_hour"].insert_all([{**row, "hour": "2026-09-30T22"}, {**row, "hour": "2026-10-01T00"}])
    got = [r["period"] for r in readings(db, "rack1", since="2026-09-30T00:00:00.000Z",
                                          until="2026-10-01T00:00:00.000Z", every="minute")]
    assert got == ["2026-09-30T22", "2026-09-30T23:59"]
