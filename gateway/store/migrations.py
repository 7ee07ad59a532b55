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


def _0006_visits(db: sqlite_utils.Database) -> None:
    # Guest and vendor visits (access/visits.py). A visitor's ID number is held only as AES-GCM
    # ciphertext (id_nonce, id_cipher) with the access key; both are set to NULL after
    # visits.id_retention_days, and only the masked form stays. JSON columns: devices, escorts, checklist.
    # One statement at a time: executescript would commit the migration's transaction half-way.
    for statement in (
        """
        CREATE TABLE visits (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('guest', 'vendor')),
            org TEXT NOT NULL,
            purpose TEXT NOT NULL,
            devices TEXT NOT NULL DEFAULT '[]',
            expected_min INTEGER NOT NULL,
            window_start TEXT NOT NULL,
            window_end TEXT NOT NULL,
            requested_at TEXT NOT NULL,
            requested_by TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('requested', 'approved', 'rejected', 'checked_out')),
            approved_by TEXT,
            approved_at TEXT,
            escorts TEXT NOT NULL DEFAULT '[]',
            rejected_by TEXT,
            rejected_at TEXT,
            reject_reason TEXT,
            extra_min INTEGER NOT NULL DEFAULT 0,
            checked_out_at TEXT,
            checked_out_by TEXT,
            activities TEXT,
            checklist TEXT,
            escort_alarm TEXT,
            escort_alarm_at TEXT
        )
        """,
        """
        CREATE TABLE visitors (
            visit_id TEXT NOT NULL REFERENCES visits (id),
            n INTEGER NOT NULL,
            name TEXT NOT NULL,
            id_type TEXT NOT NULL,
            id_masked TEXT NOT NULL,
            id_nonce BLOB,
            id_cipher BLOB,
            arrived_at TEXT,
            received_by TEXT,
            gadgets TEXT,
            entered_at TEXT,
            escort TEXT,
            exited_at TEXT,
            returned_by TEXT,
            overstay_at TEXT,
            PRIMARY KEY (visit_id, n)
        )
        """,
        """
        CREATE TABLE visit_extensions (
            visit_id TEXT NOT NULL REFERENCES visits (id),
            at TEXT NOT NULL,
            by TEXT NOT NULL,
            minutes INTEGER NOT NULL,
            reason TEXT NOT NULL
        )
        """,
        "CREATE INDEX visits_status ON visits (status)",
        "CREATE INDEX visits_requested_at ON visits (requested_at)",
        "CREATE INDEX visitors_overstay ON visitors (overstay_at) WHERE overstay_at IS NOT NULL",
        "CREATE INDEX visit_extensions_visit ON visit_extensions (visit_id, at)",
    ):
        db.execute(statement)


def _0007_console_users(db: sqlite_utils.Database) -> None:
    # Accounts of the web console (gateway/web/users.py). Only an argon2id hash of the password is
    # kept. `person_id` links an account to a person of the access registry, whose identity signs
    # what the SOP reserves for people (an officer approving a visit). Disabled accounts stay, so the
    # audit trail's user names keep meaning something.
    for statement in (
        """
        CREATE TABLE console_users (
            name TEXT PRIMARY KEY,
            role TEXT NOT NULL CHECK (role IN ('admin', 'officer', 'staff', 'viewer')),
            password_hash TEXT NOT NULL,
            person_id TEXT REFERENCES people (id),
            active INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
            created_at TEXT NOT NULL,
            created_by TEXT NOT NULL,
            changed_at TEXT NOT NULL,
            password_changed_at TEXT NOT NULL
        )
        """,
    ):
        db.execute(statement)


MIGRATIONS: list[tuple[str, Migration]] = [
    ("0001_events", _0001_events),
    ("0002_outbox", _0002_outbox),
    ("0003_events_insert_only_at_the_end", _0003_events_insert_only_at_the_end),
    ("0004_prunable_readings", _0004_prunable_readings),
    ("0005_access", _0005_access),
    ("0006_visits", _0006_visits),
    ("0007_console_users", _0007_console_users),
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
