"""Opening the one SQLite database (WAL) with the pragmas every connection needs."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import sqlite_utils

from gateway.errors import StoreError
from gateway.store.migrations import apply_migrations

BUSY_TIMEOUT_MS = 10_000


def open_for_writing(path: Path, *, synchronous: str = "full") -> sqlite_utils.Database:
    """The writer's connection: creates the file (owner-only), WAL, runs pending migrations."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # create owner-only before SQLite does
        os.close(fd)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"{path}: SQLite refused WAL mode (got {mode!r}); the data_dir must be a local disk")
        conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        conn.execute("PRAGMA foreign_keys = ON")
        # deleted rows (revoked biometric templates above all) are overwritten, not just unlinked
        conn.execute("PRAGMA secure_delete = ON")
        db = sqlite_utils.Database(conn)
        apply_migrations(db)
        return db
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot open the event store ({exc})") from exc
    except OSError as exc:
        raise StoreError(f"{path}: cannot create the event store ({exc.strerror}). Fix: check data_dir") from exc


def open_for_reading(path: Path) -> sqlite_utils.Database:
    """A reader's connection (CLI queries, the forwarder): never writes, sees committed data only."""
    if not path.exists():
        raise StoreError(f"{path}: no event store here yet. Fix: start the gateway once, or check data_dir")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA query_only = ON")
        return sqlite_utils.Database(conn)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot open the event store for reading ({exc})") from exc
