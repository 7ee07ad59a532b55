"""Named, transactional schema migrations.

Each migration runs once, inside its own transaction, and is recorded by name in
`_migrations`; a failure rolls back everything it did. Append new ones; never edit old ones.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlite_utils

from gateway.errors import StoreError

Migration = Callable[[sqlite_utils.Database], None]


def _0001_events(db: sqlite_utils.Database) -> None:
    db["events"].create(
        {
            "seq": int, "id": str, "ts": str, "kind": str, "source": str,
            "payload": str, "prev_hash": str, "hash": str,
        },
        pk="seq",
        not_null={"id", "ts", "kind", "source", "payload", "prev_hash", "hash"},
    )
    db["events"].create_index(["id"], unique=True)
    db["events"].create_index(["kind", "seq"])
    db["events"].create_index(["ts"])
    # Append-only: the gateway never updates or deletes an event. Someone who drops these
    # triggers to edit the file by hand is still caught by the hash chain.
    db.executescript(
        """
        CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
        CREATE TRIGGER events_no_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
        """
    )
    db["chain_head"].create({"one": int, "seq": int, "hash": str}, pk="one", not_null={"seq", "hash"})


def _0002_outbox(db: sqlite_utils.Database) -> None:
    # events waiting for the broker's PUBACK; a row is deleted once delivered
    db["outbox"].create({"seq": int}, pk="seq", foreign_keys=[("seq", "events", "seq")])


def _0003_events_insert_only_at_the_end(db: sqlite_utils.Database) -> None:
    # `INSERT OR REPLACE` deletes the row it replaces without firing DELETE triggers
    # (recursive_triggers is off by default), so refuse any insert that is not a new last event.
    db.execute(
        """
        CREATE TRIGGER events_insert_only_at_the_end BEFORE INSERT ON events
        WHEN NEW.seq <= (SELECT coalesce(max(seq), 0) FROM events)
          OR EXISTS (SELECT 1 FROM events WHERE id = NEW.id)
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END
        """
    )


def _0004_prunable_readings(db: sqlite_utils.Database) -> None:
    if db.execute("SELECT count(*) FROM events").fetchone()[0]:
        # the chain hash changed to cover sha256(payload) before any release: an older store cannot
        # be converted without rewriting history, which is the one thing this log must never do
        raise StoreError(
            "this event store was written by a pre-release dcgate (chain format 1). Fix: move dcgate.db "
            "(and its -wal/-shm files) aside to start a new log; keep the old one for reference"
        )
    db.execute("ALTER TABLE events ADD COLUMN payload_sha256 TEXT")
    db.execute("DROP TRIGGER events_no_update")
    # The one update allowed: emptying an old reading's payload (kept as aggregates) while every
    # hashed column and the digest stay as they were. Anything else is refused.
    db.execute(
        """
        CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        WHEN NOT (OLD.kind = 'env.reading' AND NEW.payload = '' AND OLD.payload != ''
                  AND OLD.payload_sha256 IS NOT NULL AND NEW.payload_sha256 IS OLD.payload_sha256
                  AND NEW.seq = OLD.seq AND NEW.id = OLD.id AND NEW.ts = OLD.ts AND NEW.kind = OLD.kind
                  AND NEW.source = OLD.source AND NEW.prev_hash = OLD.prev_hash AND NEW.hash = OLD.hash)
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END
        """
    )
    for table, key in (("readings_minute", "minute"), ("readings_hour", "hour")):
        db[table].create(
            {"probe": str, key: str, "n": int, "t_n": int, "t_min": float, "t_max": float, "t_sum": float,
             "h_n": int, "h_min": float, "h_max": float, "h_sum": float},
            pk=("probe", key),
        )


def _0005_access(db: sqlite_utils.Database) -> None:
    # People who may open the door, and their biometric templates. A template row holds only
    # AES-GCM ciphertext (access/crypto.py); revocation deletes the rows, and the writer runs with
    # secure_delete so the freed pages are zeroed rather than left for a file carver.
    db.executescript(
        """
        CREATE TABLE people (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            nip TEXT NOT NULL UNIQUE,
            role TEXT NOT NULL CHECK (role IN ('staff', 'officer', 'admin')),
            active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
            enrolled_by TEXT NOT NULL,
            enrolled_at TEXT NOT NULL,
            revoked_at TEXT,
            revoked_by TEXT
        );
        CREATE TABLE templates (
            id TEXT PRIMARY KEY,
            person_id TEXT NOT NULL REFERENCES people (id),
            method TEXT NOT NULL CHECK (method IN ('face', 'finger')),
            slot INTEGER,
            samples INTEGER NOT NULL,
            nonce BLOB NOT NULL,
            ciphertext BLOB NOT NULL,
            created_by TEXT NOT NULL,
            created_at TEXT NOT NULL,
            CHECK ((method = 'finger') = (slot IS NOT NULL))
        );
        CREATE UNIQUE INDEX templates_finger_slot ON templates (slot) WHERE method = 'finger';
        CREATE INDEX templates_person ON templates (person_id);
        """
    )


MIGRATIONS: list[tuple[str, Migration]] = [
    ("0001_events", _0001_events),
    ("0002_outbox", _0002_outbox),
    ("0003_events_insert_only_at_the_end", _0003_events_insert_only_at_the_end),
    ("0004_prunable_readings", _0004_prunable_readings),
    ("0005_access", _0005_access),
]


def apply_migrations(db: sqlite_utils.Database) -> list[str]:
    """Apply every migration not yet recorded; returns the names applied now."""
    conn = db.conn
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    applied = []
    for name, migrate in MIGRATIONS:
        if name in done:
            continue
        with db.atomic():
            migrate(db)
            conn.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                (name, datetime.now(UTC).isoformat(timespec="milliseconds")),
            )
        applied.append(name)
    return applied
