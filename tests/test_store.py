"""The event store in-process, on real SQLite files: migrations, durability settings, the single
writer, ids and timestamps, event validation, outbox bounds, and the hash chain's properties."""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config.models import OutboxConfig
from gateway.errors import InvalidEventError, StoreError
from gateway.store import migrations
from gateway.store.chain import GENESIS_HASH, canonical_fields, event_hash, verify_chain
from gateway.store.database import open_for_reading, open_for_writing
from gateway.store.events import MAX_PAYLOAD_BYTES, iter_events, utc_timestamp, verify
from gateway.store.ids import Uuid7Generator, uuid7_time_ms
from gateway.store.writer import StoreWriter
from tests.support.waiting import wait_until

TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
MIGRATION_NAMES = ["0001_events", "0002_outbox", "0003_events_insert_only_at_the_end", "0004_prunable_readings",
                   "0005_access", "0006_visits", "0007_console_users"]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "dcgate.db"


@pytest.fixture
def writers() -> Iterator[Callable[..., StoreWriter]]:
    """Started StoreWriters, all stopped at the end (the thread check fails a test that leaks one)."""
    made: list[StoreWriter] = []

    def make(path: Path, **kwargs: Any) -> StoreWriter:
        writer = StoreWriter(path, **kwargs)
        made.append(writer)
        writer.start()
        return writer

    yield make
    for writer in made:
        writer.stop()


def raw(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection, independent of the code under test."""
    return sqlite3.connect(path, isolation_level=None)


def tables(path: Path) -> set[str]:
    with raw(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def migration_rows(path: Path) -> list[tuple[str, str]]:
    with raw(path) as conn:
        return conn.execute("SELECT name, applied_at FROM _migrations ORDER BY name").fetchall()


def outbox_seqs(path: Path) -> list[int]:
    with raw(path) as conn:
        return [row[0] for row in conn.execute("SELECT seq FROM outbox ORDER BY seq")]


def all_events(path: Path) -> list[Any]:
    db = open_for_reading(path)
    try:
        return list(iter_events(db))
    finally:
        db.close()


def verify_file(path: Path) -> Any:
    db = open_for_reading(path)
    try:
        return verify(db)
    finally:
        db.close()


# -- migrations ---------------------------------------------------------------------------------

def test_migrations_are_named_and_recorded(db_path: Path) -> None:
    db = open_for_writing(db_path)
    db.close()
    rows = migration_rows(db_path)
    assert [name for name, _ in rows] == MIGRATION_NAMES == [name for name, _ in migrations.MIGRATIONS]
    for _, applied_at in rows:
        assert datetime.fromisoformat(applied_at).tzinfo is not None
    assert {"events", "chain_head", "outbox", "_migrations"} <= tables(db_path)


def test_reopening_applies_no_migration_again(db_path: Path, writers: Callable[..., StoreWriter]) -> None:
    writer = writers(db_path)
    first = writer.append_and_wait("test.kept", "test", {"n": 1})
    writer.stop()
    before = migration_rows(db_path)

    db = open_for_writing(db_path)
    try:
        assert migrations.apply_migrations(db) == []
    finally:
        db.close()
    assert migration_rows(db_path) == before  # same names, same applied_at: nothing re-run
    assert [e.id for e in all_events(db_path)] == [first.id]


def _doors(db: sqlite_utils.Database) -> None:
    db["doors"].create({"id": int, "name": str}, pk="id")
    db["doors"].insert({"id": 1, "name": "main"})
    db["doors"].create_index(["name"])


def _doors_then_bad_sql(db: sqlite_utils.Database) -> None:
    _doors(db)
    db.execute("CREATE TABLE door_log (")  # a syntax error half-way through the migration


def _doors_then_python_error(db: sqlite_utils.Database) -> None:
    _doors(db)
    raise RuntimeError("migration bug")


def test_failing_migration_leaves_no_partial_table_and_no_record(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, ("9999_doors", _doors_then_bad_sql)])
    with pytest.raises(StoreError, match="cannot open the event store"):
        open_for_writing(db_path)
    assert "doors" not in tables(db_path)
    assert "door_log" not in tables(db_path)
    assert [name for name, _ in migration_rows(db_path)] == MIGRATION_NAMES  # the earlier ones stay applied

    # fixed, the same migration applies on the next start
    fixed = [*migrations.MIGRATIONS[: len(MIGRATION_NAMES)], ("9999_doors", _doors)]
    monkeypatch.setattr(migrations, "MIGRATIONS", fixed)
    open_for_writing(db_path).close()
    assert [name for name, _ in migration_rows(db_path)] == [*MIGRATION_NAMES, "9999_doors"]
    with raw(db_path) as conn:
        assert conn.execute("SELECT name FROM doors").fetchall() == [("main",)]


def test_failing_migration_on_an_existing_store_keeps_its_events(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, writers: Callable[..., StoreWriter]
) -> None:
    writer = writers(db_path)
    kept = [writer.append_and_wait("test.kept", "test", {"n": n}).id for n in range(3)]
    writer.stop()
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, ("9999_doors", _doors_then_python_error)])
    with pytest.raises(RuntimeError, match="migration bug"):
        open_for_writing(db_path)
    assert "doors" not in tables(db_path)
    assert [name for name, _ in migration_rows(db_path)] == MIGRATION_NAMES
    assert [e.id for e in all_events(db_path)] == kept
    assert verify_file(db_path).ok


# -- the file -----------------------------------------------------------------------------------

def test_store_is_wal_and_owner_only(db_path: Path, writers: Callable[..., StoreWriter]) -> None:
    assert not db_path.parent.exists()
    writer = writers(db_path)
    writer.append_and_wait("test.one", "test")
    with raw(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert os.stat(db_path).st_mode & 0o777 == 0o600
    assert os.stat(db_path.parent).st_mode & 0o777 == 0o700
    wal = db_path.with_name(db_path.name + "-wal")
    assert wal.exists() and os.stat(wal).st_mode & 0o777 == 0o600  # the WAL holds events too


def test_events_refuse_update_and_delete(db_path: Path, writers: Callable[..., StoreWriter]) -> None:
    writer = writers(db_path)
    event = writer.append_and_wait("test.one", "test", {"v": 1})
    with raw(db_path) as conn:
        for statement in ("UPDATE events SET payload = '{\"v\":2}' WHERE seq = 1",
                          "UPDATE events SET kind = 'test.two'",
                          "DELETE FROM events WHERE seq = 1",
                          "DELETE FROM events"):
            with pytest.raises(sqlite3.IntegrityError, match="events are append-only"):
                conn.execute(statement)
    assert all_events(db_path) == [event]


# -- ids and timestamps -------------------------------------------------------------------------

def test_uuid7_ids_are_version_7_and_strictly_increasing_within_one_millisecond() -> None:
    generate = Uuid7Generator()
    before_ms = datetime.now(UTC).timestamp() * 1000
    ids = [generate() for _ in range(20_000)]
    after_ms = datetime.now(UTC).timestamp() * 1000
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert all(a.int < b.int for a, b in pairwise(ids))
    assert [str(i) for i in ids] == sorted(str(i) for i in ids)  # the text form sorts the same way
    per_ms: dict[int, int] = {}
    for value in ids:
        per_ms[uuid7_time_ms(value)] = per_ms.get(uuid7_time_ms(value), 0) + 1
    assert max(per_ms.values()) >= 100, "the same-millisecond path was not exercised"
    assert int(before_ms) - 1 <= min(per_ms) and max(per_ms) <= after_ms + 1


def test_ids_and_timestamps_follow_commit_order(db_path: Path, writers: Callable[..., StoreWriter]) -> None:
    writer = writers(db_path)
    pending = [writer.append("test.burst", "test", {"n": n}) for n in range(3000)]
    events = [p.result() for p in pending]
    assert [e.seq for e in events] == list(range(1, 3001))
    assert [e.fields["n"] for e in events] == list(range(3000))
    ids = [uuid.UUID(e.id) for e in events]
    assert all(i.version == 7 for i in ids)
    assert all(a.int < b.int for a, b in pairwise(ids))
    assert len({uuid7_time_ms(i) for i in ids}) < len(ids)  # many shared a millisecond
    assert all(TS.match(e.ts) for e in events)
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    now = datetime.now(UTC)
    first = datetime.fromisoformat(events[0].ts.replace("Z", "+00:00"))
    assert abs((now - first).total_seconds()) < 60  # UTC, not local time
    assert abs(uuid7_time_ms(ids[0]) - first.timestamp() * 1000) < 2000


def test_utc_timestamp_is_utc_with_milliseconds_and_z() -> None:
    assert utc_timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert utc_timestamp(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123Z"
    assert utc_timestamp(1_700_000_000_999_999_999) == "2023-11-14T22:13:20.999Z"  # truncated, not rounded
    assert TS.match(utc_timestamp())


# -- the writer ---------------------------------------------------------------------------------

def test_writer_commits_each_callers_events_in_order_with_a_valid_chain(
    db_path: Path, writers: Callable[..., StoreWriter]
) -> None:
    writer = writers(db_path)
    results: dict[int, list[Any]] = {}

    def produce(worker: int) -> None:
        results[worker] = [writer.append("test.parallel", f"worker{worker}", {"n": n}) for n in range(250)]

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    committed = {w: [p.result() for p in pendings] for w, pendings in results.items()}
    for events in committed.values():
        seqs = [e.seq for e in events]
        assert seqs == sorted(seqs) and len(set(seqs)) == 250  # each producer's order is kept
    stored = all_events(db_path)
    assert [e.seq for e in stored] == list(range(1, 1001))
    assert stored[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in pairwise(stored))
    assert writer.last_seq == 1000 and writer.committed_total == 1000
    result = verify_file(db_path)
    assert result.ok and result.events == 1000 and result.head_hash == stored[-1].hash


def test_mark_delivered_empties_the_outbox_and_depth_survives_reopen(
    db_path: Path, writers: Callable[..., StoreWriter]
) -> None:
    writer = writers(db_path)
    events = [writer.append_and_wait("test.queued", "test", {"n": n}) for n in range(10)]
    assert writer.outbox_depth == 10 and outbox_seqs(db_path) == list(range(1, 11))
    writer.mark_delivered([1, 2, 3])
    wait_until(lambda: outbox_seqs(db_path) == list(range(4, 11)), 10, message="3 rows delivered")
    assert writer.outbox_depth == 7
    writer.mark_delivered([2, 3])  # a duplicate PUBACK after a reconnect
    writer.append_and_wait("test.queued", "test", {"n": 10})  # processed after the duplicate
    assert writer.outbox_depth == 8 and outbox_seqs(db_path) == [*range(4, 12)]
    writer.stop()

    reopened = writers(db_path)
    assert reopened.outbox_depth == 8
    assert reopened.last_seq == 11
    assert [e.id for e in all_events(db_path)][:10] == [e.id for e in events]  # delivered events stay logged


def test_append_refused_after_stop(db_path: Path, writers: Callable[..., StoreWriter]) -> None:
    writer = writers(db_path)
    writer.append_and_wait("test.one", "test")
    writer.stop()
    with pytest.raises(StoreError, match="not running"):
        writer.append("test.two", "test")
    assert [e.kind for e in all_events(db_path)] == ["test.one"]


INVALID_EVENTS: dict[str, tuple[Any, Any, Any]] = {
    "kind_not_dotted": ("reading", "test", {}),
    "kind_upper_case": ("Env.Reading", "test", {}),
    "kind_trailing_dot": ("env.", "test", {}),
    "kind_not_a_string": (42, "test", {}),
    "source_empty": ("env.reading", "", {}),
    "source_with_space": ("env.reading", "probe rack1", {}),
    "source_too_long": ("env.reading", "x" * 65, {}),
    "fields_not_a_mapping": ("env.reading", "test", [1, 2]),
    "reserved_id": ("env.reading", "test", {"id": "mine"}),
    "reserved_ts": ("env.reading", "test", {"ts": "2026-01-01"}),
    "reserved_kind": ("env.reading", "test", {"kind": "x"}),
    "reserved_hash": ("env.reading", "test", {"hash": "0" * 64}),
    "reserved_prev_hash": ("env.reading", "test", {"prev_hash": "0" * 64}),
    "reserved_seq": ("env.reading", "test", {"seq": 1}),
    "nan": ("env.reading", "test", {"temperature_c": math.nan}),
    "infinity": ("env.reading", "test", {"temperature_c": math.inf}),
    "nested_nan": ("env.reading", "test", {"values": [1.0, {"x": -math.inf}]}),
    "bytes_value": ("env.reading", "test", {"raw": b"\x00\x01"}),
    "set_value": ("env.reading", "test", {"tags": {"a", "b"}}),
    "object_value": ("env.reading", "test", {"when": datetime.now(UTC)}),
    "oversized": ("env.reading", "test", {"blob": "x" * (MAX_PAYLOAD_BYTES + 1)}),
    "oversized_in_utf8_bytes": ("env.reading", "test", {"blob": "é" * (MAX_PAYLOAD_BYTES // 2 + 10)}),
}


@pytest.mark.parametrize("name", sorted(INVALID_EVENTS))
def test_invalid_events_are_refused_at_append(db_path: Path, writers: Callable[..., StoreWriter], name: str) -> None:
    writer = writers(db_path)
    writer.append_and_wait("test.before", "test")
    kind, source, fields = INVALID_EVENTS[name]
    with pytest.raises(InvalidEventError):
        writer.append(kind, source, fields)
    after = writer.append_and_wait("test.after", "test")
    assert after.seq == 2  # the refused event took no seq and left no trace
    assert [e.kind for e in all_events(db_path)] == ["test.before", "test.after"]
    assert verify_file(db_path).ok


def test_payload_limit_is_counted_in_bytes_and_inclusive(db_path: Path, writers: Callable[..., StoreWriter]) -> None:
    writer = writers(db_path)
    overhead = len(canonical_fields({"blob": ""}))
    event = writer.append_and_wait("test.big", "test", {"blob": "x" * (MAX_PAYLOAD_BYTES - overhead)})
    assert len(event.payload.encode()) == MAX_PAYLOAD_BYTES
    with pytest.raises(InvalidEventError, match="payload is over"):
        writer.append("test.big", "test", {"blob": "x" * (MAX_PAYLOAD_BYTES - overhead + 1)})


# -- outbox bounds ------------------------------------------------------------------------------

def dropped_events(path: Path) -> list[dict[str, Any]]:
    return [e.fields | {"seq": e.seq} for e in all_events(path) if e.kind == "outbox.dropped"]


def test_outbox_max_rows_drops_the_oldest_and_records_it(db_path: Path, writers: Callable[..., StoreWriter]) -> None:
    writer = writers(db_path, outbox=OutboxConfig(max_rows=100), housekeeping_s=0.05)
    produced = [writer.append_and_wait("test.queued", "test", {"n": n}).seq for n in range(250)]
    writer.stop()  # commits everything and runs a last bound check
    outbox = outbox_seqs(db_path)
    drops = dropped_events(db_path)
    assert drops and all(d["reason"] == "max_rows" for d in drops)
    assert len(outbox) <= 100
    assert max(outbox) == max(e.seq for e in all_events(db_path))  # the newest is always kept
    dropped_seqs = {s for d in drops for s in range(d["first_seq"], d["last_seq"] + 1)}
    assert sum(d["count"] for d in drops) == len(dropped_seqs)  # each drop is a contiguous run, no overlap
    assert max(dropped_seqs) < min(outbox)  # the oldest go first
    assert dropped_seqs | set(outbox) == {e.seq for e in all_events(db_path)}  # nothing vanished unrecorded
    assert produced[0] in dropped_seqs and produced[-1] in outbox
    assert len([e for e in all_events(db_path) if e.kind == "test.queued"]) == 250  # the log keeps them all
    assert verify_file(db_path).ok


def test_outbox_max_age_drops_undelivered_events_older_than_it(
    db_path: Path, writers: Callable[..., StoreWriter]
) -> None:
    # 1e-6 days is 86.4 ms: the events become "too old" for real, while the test waits
    writer = writers(db_path, outbox=OutboxConfig(max_age_days=1e-6), housekeeping_s=0.02)
    old = [writer.append_and_wait("test.queued", "test", {"n": n}).seq for n in range(5)]
    wait_until(lambda: not set(old) & set(outbox_seqs(db_path)), 10, message="old events to leave the outbox")
    drops = dropped_events(db_path)
    assert drops and all(d["reason"] == "max_age" for d in drops)
    assert set(old) <= {s for d in drops for s in range(d["first_seq"], d["last_seq"] + 1)}
    assert "older than 1e-06 days" in drops[0]["detail"]
    writer.stop()
    assert [e.seq for e in all_events(db_path) if e.kind == "test.queued"] == old  # the log keeps them
    assert verify_file(db_path).ok


def test_outbox_keeps_events_younger_than_max_age(db_path: Path, writers: Callable[..., StoreWriter]) -> None:
    writer = writers(db_path, outbox=OutboxConfig(max_age_days=1), housekeeping_s=0.01)
    seqs = [writer.append_and_wait("test.queued", "test", {"n": n}).seq for n in range(5)]
    writer.stop()  # stopping runs the bound check once more
    assert outbox_seqs(db_path) == seqs
    assert dropped_events(db_path) == []


# -- properties of the canonical encoding and the chain -------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(), json_values, max_size=8)


def reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(v) for v in value]
    return value


@given(json_objects)
def test_canonical_fields_round_trips(fields: dict[str, Any]) -> None:
    assert json.loads(canonical_fields(fields)) == fields


@given(json_objects)
def test_canonical_fields_ignores_key_order(fields: dict[str, Any]) -> None:
    assert canonical_fields(reversed_keys(fields)) == canonical_fields(fields)
    assert " " not in canonical_fields({"a": [1, 2], "b": {"c": None}})


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_canonical_fields_refuses_non_finite_numbers_anywhere(bad: float) -> None:
    for fields in ({"x": bad}, {"x": [1, bad]}, {"x": {"y": (bad,)}}):
        with pytest.raises(ValueError, match="not a finite number"):
            canonical_fields(fields)


event_content = st.tuples(
    st.sampled_from(["env.reading", "door.opened", "gateway.started"]),
    st.from_regex(r"[a-z0-9:]{1,16}", fullmatch=True),
    json_objects,
)


def build_chain(contents: list[tuple[str, str, dict[str, Any]]]) -> list[tuple[Any, ...]]:
    rows, prev = [], GENESIS_HASH
    generate = Uuid7Generator()
    for seq, (kind, source, fields) in enumerate(contents, start=1):
        event_id, ts, payload = str(generate()), utc_timestamp(), canonical_fields(fields)
        digest = event_hash(seq, event_id, ts, kind, source, payload, prev)
        rows.append((seq, event_id, ts, kind, source, payload, prev, digest))
        prev = digest
    return rows


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(event_content, min_size=1, max_size=20))
def test_verify_chain_accepts_any_honest_chain(contents: list[tuple[str, str, dict[str, Any]]]) -> None:
    rows = build_chain(contents)
    result = verify_chain(rows, (rows[-1][0], rows[-1][7]))
    assert result.ok and result.events == len(rows) and result.head_hash == rows[-1][7]


def test_verify_chain_flags_a_missing_head_but_accepts_an_empty_log() -> None:
    """Regression: deleting the `chain_head` row used to switch off the check for removed newest events."""
    rows = build_chain([("env.reading", "probe:rack1", {"temperature_c": 21.5})] * 3)
    result = verify_chain(rows[:2], None)
    assert not result.ok and result.bad_seq == 2
    assert result.problem == "chain head missing: the log has 2 event(s) up to seq 2 but no recorded head"
    assert verify_chain([], None).ok


FIELDS = {1: "id", 2: "ts", 3: "kind", 4: "source", 5: "payload", 6: "prev_hash", 7: "hash"}


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(event_content, min_size=1, max_size=20), st.data())
def test_verify_chain_names_the_seq_of_any_single_field_mutation(
    contents: list[tuple[str, str, dict[str, Any]]], data: st.DataObject
) -> None:
    rows = build_chain(contents)
    head = (rows[-1][0], rows[-1][7])
    position = data.draw(st.integers(0, len(rows) - 1), label="position")
    column = data.draw(st.sampled_from(sorted(FIELDS)), label="field")
    old = rows[position][column]
    if column in (6, 7):
        new = data.draw(st.from_regex(r"[0-9a-f]{64}", fullmatch=True).filter(lambda v: v != old), label="new")
    else:
        new = data.draw(st.text(min_size=1).filter(lambda v: v != old), label="new")
    tampered = list(rows)
    tampered[position] = (*rows[position][:column], new, *rows[position][column + 1:])
    result = verify_chain(tampered, head)
    seq = position + 1
    assert not result.ok
    assert result.bad_seq == seq, (FIELDS[column], result)
    assert result.bad_id == tampered[position][1]
    assert f"(seq {seq}" in (result.problem or "")


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(event_content, min_size=1, max_size=20), st.data())
def test_verify_chain_catches_a_rewritten_seq(
    contents: list[tuple[str, str, dict[str, Any]]], data: st.DataObject
) -> None:
    rows = build_chain(contents)
    head = (rows[-1][0], rows[-1][7])
    position = data.draw(st.integers(0, len(rows) - 1), label="position")
    # seq is the primary key: a new value is unused, and rows are read back ORDER BY seq
    new = data.draw(st.integers(-5, len(rows) + 5).filter(lambda v: not 1 <= v <= len(rows)), label="new seq")
    tampered = sorted([*rows[:position], (new, *rows[position][1:]), *rows[position + 1:]], key=lambda r: r[0])
    result = verify_chain(tampered, head)
    assert not result.ok
    seq = position + 1
    if new < 1:  # sorts first: named as the altered event
        assert result.bad_id == rows[position][1] and result.bad_seq == new
        assert result.problem == (
            f"sequence altered at event {rows[position][1]}: it has seq {new} where seq 1 was expected"
        )
    else:  # moved past the end: a gap where it was
        assert re.search(rf"\bseq {seq}\b.* missing", result.problem or ""), result
