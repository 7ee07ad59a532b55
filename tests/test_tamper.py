"""Acceptance: someone edits dcgate.db with the real `sqlite3` tool; `dcgate log verify` names what changed.

The append-only triggers only stop accidents; an attacker simply drops them. What catches the
attacker is the hash chain, checked by `dcgate log verify` (exit 0 "OK", exit 1 naming the first
altered or removed event). One limit is documented rather than wished away: someone who removes
the newest events *and* rewrites `chain_head` to match passes a local check; the copy upstream,
which received `seq`, `hash` and `prev_hash` with every event, shows the removal.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.config.loader import load_config
from gateway.store.chain import canonical_fields, event_hash, payload_digest
from gateway.store.events import RESERVED_FIELDS, Event, utc_timestamp
from gateway.store.ids import uuid7
from gateway.store.writer import StoreWriter
from tests.support.configs import base_config, write_config
from tests.support.gateway_proc import run_cli
from tests.support.waiting import wait_until

SQLITE3 = "/usr/bin/sqlite3"
FORGED_HASH = "f" * 64


@dataclass
class Store:
    config: Path
    db: Path
    events: list[Event]

    def event(self, seq: int) -> Event:
        return self.events[seq - 1]


COLUMNS = "seq, id, ts, kind, source, payload, prev_hash, hash, payload_sha256"

def sqlite(db: Path, sql: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SQLITE3, str(db), sql], capture_output=True, text=True, timeout=30)


def tamper(db: Path, sql: str) -> None:
    result = sqlite(db, sql)
    assert result.returncode == 0, f"sqlite3 refused the tampering: {result.stderr}"


def verify(config: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("log", "verify", "--config", str(config))


def assert_tampered(store: Store, problem: str, intact_up_to: int) -> None:
    result = verify(store.config)
    assert result.returncode == 1, result
    assert f"TAMPERED: {problem}\n" in result.stderr, result.stderr
    assert f"events before it are intact (up to seq {intact_up_to})" in result.stderr
    assert "OK" not in result.stdout


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """Ten events written by the real store writer, then closed (as after `dcgate run` stopped)."""
    config = write_config(tmp_path / "dcgate.toml", base_config(tmp_path / "data", 1883))
    db = load_config(config).database_path
    writer = StoreWriter(db)
    writer.start()
    try:
        events = [writer.append_and_wait("gateway.started", "gateway", {"version": "0.1.0", "pid": 1})]
        for n in range(6):
            events.append(writer.append_and_wait(
                "env.reading", "probe:rack1", {"probe": "rack1", "temperature_c": 21.0 + n, "humidity_pct": 50.0}
            ))
        events.append(writer.append_and_wait("env.probe_failed", "probe:rack1", {"probe": "rack1", "error": "timeout"}))
        events.append(writer.append_and_wait("env.probe_recovered", "probe:rack1", {"probe": "rack1"}))
        events.append(writer.append_and_wait("gateway.stopped", "gateway", {"reason": "SIGTERM"}))
    finally:
        writer.stop()
    assert [e.seq for e in events] == list(range(1, 11))
    return Store(config, db, events)


def test_untouched_store_verifies_ok(store: Store) -> None:
    result = verify(store.config)
    assert result.returncode == 0, result
    assert result.stdout.startswith(f"OK: 10 events, chain intact, head seq 10 hash {store.event(10).hash}")


def test_triggers_alone_refuse_a_naive_update_or_delete(store: Store) -> None:
    for sql in ("UPDATE events SET payload = '{\"temperature_c\":99}' WHERE seq = 5",
                "DELETE FROM events WHERE seq = 5",
                "DELETE FROM events"):
        result = sqlite(store.db, sql)
        assert result.returncode != 0, sql
        assert "events are append-only" in result.stderr
    assert sqlite(store.db, "SELECT payload FROM events WHERE seq = 5").stdout.strip() == store.event(5).payload
    assert verify(store.config).returncode == 0


def test_changed_payload_is_named_by_id_and_seq(store: Store) -> None:
    forged = canonical_fields({"probe": "rack1", "temperature_c": 19.0, "humidity_pct": 50.0})
    tamper(store.db, f"DROP TRIGGER events_no_update; UPDATE events SET payload = '{forged}' WHERE seq = 5")
    target = store.event(5)
    assert_tampered(
        store, f"content altered in event {target.id} (seq 5, kind env.reading): its hash does not match its content", 4
    )


def test_deleted_middle_event_is_named_as_a_gap(store: Store) -> None:
    tamper(store.db, "DROP TRIGGER events_no_delete; DELETE FROM events WHERE seq = 5")
    assert_tampered(store, f"event(s) removed: seq 5 missing before event {store.event(6).id} (seq 6)", 4)


def test_deleted_run_of_events_is_named_as_a_range(store: Store) -> None:
    tamper(store.db, "DROP TRIGGER events_no_delete; DELETE FROM events WHERE seq BETWEEN 4 AND 7")
    assert_tampered(store, f"event(s) removed: seq 4 to 7 missing before event {store.event(8).id} (seq 8)", 3)


def test_deleted_newest_event_is_caught_by_the_chain_head(store: Store) -> None:
    tamper(store.db, "DROP TRIGGER events_no_delete; DELETE FROM events WHERE seq = 10")
    assert_tampered(
        store, "newest event(s) removed: the chain head records seq 10 but the log ends at seq 9", 9
    )


def test_deleted_chain_head_is_reported(store: Store) -> None:
    """Regression: without its head row the check for removed newest events was silently skipped."""
    tamper(store.db, "DROP TRIGGER events_no_delete; DELETE FROM events WHERE seq = 10; DELETE FROM chain_head")
    assert_tampered(store, "chain head missing: the log has 9 event(s) up to seq 9 but no recorded head", 9)


def test_truncation_with_a_consistent_head_passes_locally(store: Store) -> None:
    """The documented limit: a tail removed together with a matching head is not visible on this machine."""
    nine = store.event(9)
    tamper(store.db, "DROP TRIGGER events_no_delete; DELETE FROM events WHERE seq = 10; "
                     f"UPDATE chain_head SET seq = 9, hash = '{nine.hash}'")
    result = verify(store.config)
    assert result.returncode == 0
    assert result.stdout.startswith(f"OK: 9 events, chain intact, head seq 9 hash {nine.hash}")
    # ...which is why every published event carries its seq and hashes (see the upstream test below)


def test_changed_prev_hash_is_named_as_a_broken_link(store: Store) -> None:
    tamper(store.db, f"DROP TRIGGER events_no_update; UPDATE events SET prev_hash = '{FORGED_HASH}' WHERE seq = 5")
    assert_tampered(
        store, f"link altered at event {store.event(5).id} (seq 5): prev_hash does not match the event before it", 4
    )


@pytest.mark.parametrize(("column", "value"), [("ts", "2020-01-01T00:00:00.000Z"), ("kind", "door.opened"),
                                                ("source", "probe:rack2"),
                                                ("id", "01934f6e-1d2a-7c3b-8d4e-5f60718293a4")])
def test_changed_envelope_field_is_named(store: Store, column: str, value: str) -> None:
    tamper(store.db, f"DROP TRIGGER events_no_update; UPDATE events SET {column} = '{value}' WHERE seq = 5")
    shown_id = value if column == "id" else store.event(5).id
    shown_kind = value if column == "kind" else "env.reading"
    assert_tampered(
        store, f"content altered in event {shown_id} (seq 5, kind {shown_kind}): its hash does not match its content", 4
    )


def test_changed_seq_is_named(store: Store) -> None:
    """Regression: a seq rewritten below 1 was reported as 'seq 1 to -1 missing'."""
    tamper(store.db, "DROP TRIGGER events_no_update; UPDATE events SET seq = 0 WHERE seq = 5")
    assert_tampered(
        store, f"sequence altered at event {store.event(5).id}: it has seq 0 where seq 1 was expected", 0
    )


def test_rehashed_event_still_breaks_the_next_link(store: Store) -> None:
    """Recomputing the altered event's own hash is not enough: the next event still points at the old one."""
    e = store.event(5)
    forged = canonical_fields({"probe": "rack1", "temperature_c": 19.0, "humidity_pct": 50.0})
    digest = event_hash(e.seq, e.id, e.ts, e.kind, e.source, forged, e.prev_hash)
    tamper(store.db, f"DROP TRIGGER events_no_update; UPDATE events SET payload = '{forged}', hash = '{digest}', "
                     f"payload_sha256 = '{payload_digest(forged)}' WHERE seq = 5")
    assert_tampered(
        store, f"link altered at event {store.event(6).id} (seq 6): prev_hash does not match the event before it", 5
    )


def _replace_event_5(store: Store) -> tuple[Event, str]:
    e = store.event(5)
    forged = canonical_fields({"probe": "rack1", "temperature_c": 19.0, "humidity_pct": 50.0})
    return e, (f"INSERT OR REPLACE INTO events ({COLUMNS}) VALUES (5, '{e.id}', '{e.ts}', '{e.kind}', "
               f"'{e.source}', '{forged}', '{e.prev_hash}', '{e.hash}', '{payload_digest(forged)}')")


def test_insert_or_replace_is_refused_by_the_insert_trigger(store: Store) -> None:
    """Regression: SQLite fires no DELETE trigger for REPLACE; migration 0003's INSERT trigger refuses it."""
    _e, statement = _replace_event_5(store)
    result = sqlite(store.db, statement)
    assert result.returncode != 0 and "append-only" in result.stderr
    assert verify(store.config).returncode == 0


def test_insert_or_replace_with_the_triggers_dropped_is_caught_by_the_chain(store: Store) -> None:
    e, statement = _replace_event_5(store)
    tamper(store.db, f"DROP TRIGGER events_insert_only_at_the_end; {statement}")
    assert_tampered(
        store, f"content altered in event {e.id} (seq 5, kind env.reading): its hash does not match its content", 4
    )


def test_forged_event_with_a_valid_chain_is_caught_by_the_head(store: Store) -> None:
    last = store.event(10)
    event_id, ts = str(uuid7()), utc_timestamp()
    payload = canonical_fields({"door": "main", "user": "intruder"})
    digest = event_hash(11, event_id, ts, "door.opened", "door:main", payload, last.hash)
    tamper(store.db, f"INSERT INTO events ({COLUMNS}) VALUES (11, '{event_id}', '{ts}', 'door.opened', "
                     f"'door:main', '{payload}', '{last.hash}', '{digest}', '{payload_digest(payload)}')")
    # (no trigger needs dropping to append)
    assert_tampered(
        store, "event(s) added outside the gateway: the chain head records seq 10, the log goes on to 11", 11
    )


def test_changed_chain_head_is_reported(store: Store) -> None:
    tamper(store.db, f"UPDATE chain_head SET hash = '{FORGED_HASH}'")
    assert_tampered(
        store, f"chain head altered: it records hash {FORGED_HASH[:12]}… for seq 10, "
               f"the log has {store.event(10).hash[:12]}…", 10
    )


def _recompute_hash(upstream: dict) -> str:
    """What a receiver does: rebuild the event from the wire envelope and hash it."""
    fields = {k: v for k, v in upstream.items() if k not in RESERVED_FIELDS | {"site", "gateway", "schema"}}
    return event_hash(upstream["seq"], upstream["id"], upstream["ts"], upstream["kind"], upstream["source"],
                      canonical_fields(fields), upstream["prev_hash"])


def test_store_of_a_real_gateway_run_and_the_upstream_copy_catches_a_consistent_truncation(
    make_config, gateway_factory, subscriber
) -> None:
    config = make_config()
    gw = gateway_factory(config)
    gw.control("sim.set", {"device": "probe", "name": "rack1", "values": {"temperature": "30.5"}})
    wait_until(lambda: any(e["kind"] == "env.reading" and e["temperature_c"] == 30.5 for e in subscriber.events()),
               10, message="the 30.5 °C reading upstream")
    assert gw.terminate() == 0
    db = gw.config.database_path
    local = [json.loads(line) for line in run_cli("events", "--json", "--config", str(config)).stdout.splitlines()]
    assert local[-1]["kind"] == "gateway.stopped"
    wait_until(lambda: local[-1]["id"] in subscriber.event_ids(), 10, message="gateway.stopped upstream")
    ok = verify(config)
    assert ok.returncode == 0 and ok.stdout.startswith(f"OK: {len(local)} events, chain intact")

    # the attacker removes the newest events (the reading and the stop) and rewrites the head to match
    reading = next(e for e in local if e["kind"] == "env.reading" and e["fields"]["temperature_c"] == 30.5)
    keep = local[reading["seq"] - 2]
    tamper(db, f"DROP TRIGGER events_no_delete; DELETE FROM events WHERE seq >= {reading['seq']}; "
               f"UPDATE chain_head SET seq = {keep['seq']}, hash = '{keep['hash']}'")
    assert verify(config).returncode == 0  # the local check cannot see it...

    # ...the upstream copy can: authentic events (their hashes check) chained onto the local head
    upstream = {e["seq"]: e for e in subscriber.events()}
    assert max(upstream) > keep["seq"]
    assert all(_recompute_hash(e) == e["hash"] for e in upstream.values())
    assert upstream[keep["seq"]]["hash"] == keep["hash"]
    assert upstream[keep["seq"] + 1]["prev_hash"] == keep["hash"]
    assert upstream[reading["seq"]]["id"] == reading["id"]
