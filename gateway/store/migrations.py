"""Named, transactional schema migrations.

Each migration runs once, inside its own transaction, and is recorded by name in
`_migrations`; a failure rolls back everything it did. Append new ones; never edit old ones.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlite_utils

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


MIGRATIONS: list[tuple[str, Migration]] = [
    ("0001_events", _0001_events),
    ("0002_outbox", _0002_outbox),
    ("0003_events_insert_only_at_the_end", _0003_events_insert_only_at_the_end),
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
