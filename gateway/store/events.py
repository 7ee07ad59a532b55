"""The event record, its validation, and read-side queries over the `events` table."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from gateway.errors import InvalidEventError
from gateway.store.chain import GENESIS_HASH, VerifyResult, canonical_fields, verify_chain

# fullmatch, not match with $: `$` also matches before a trailing newline
KIND = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
SOURCE = re.compile(r"[\w.:/@-]{1,64}")
#: keys of the published envelope; an event's own fields may not reuse them
RESERVED_FIELDS = frozenset({"id", "ts", "kind", "site", "gateway", "schema", "source", "seq", "hash", "prev_hash"})
MAX_PAYLOAD_BYTES = 64 * 1024

_COLUMNS = "seq, id, ts, kind, source, payload, prev_hash, hash"


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    id: str
    ts: str
    kind: str
    source: str
    payload: str  # canonical JSON of the event's own fields
    prev_hash: str
    hash: str

    @property
    def fields(self) -> dict[str, Any]:
        return json.loads(self.payload)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "id": self.id, "ts": self.ts, "kind": self.kind, "source": self.source,
            "fields": self.fields, "prev_hash": self.prev_hash, "hash": self.hash,
        }


def validate_event(kind: str, source: str, fields: Mapping[str, Any]) -> str:
    """Check an event before it is queued; returns its canonical payload. Raises InvalidEventError."""
    if not isinstance(kind, str) or not KIND.fullmatch(kind):
        raise InvalidEventError(f"event kind {kind!r} is not dotted lower-case words, e.g. 'env.reading'")
    if not isinstance(source, str) or not SOURCE.fullmatch(source):
        raise InvalidEventError(f"event source {source!r} must be 1-64 characters of letters, digits, . : / @ _ -")
    if not isinstance(fields, Mapping):
        raise InvalidEventError(f"event fields must be a mapping, got {type(fields).__name__}")
    clash = RESERVED_FIELDS.intersection(fields)
    if clash:
        raise InvalidEventError(f"event field(s) {sorted(clash)} are reserved for the envelope; rename them")
    try:
        payload = canonical_fields(fields)
    except (TypeError, ValueError) as exc:
        raise InvalidEventError(f"event {kind!r} has fields that are not plain JSON: {exc}") from None
    if len(payload.encode("utf-8")) > MAX_PAYLOAD_BYTES:
        raise InvalidEventError(f"event {kind!r} payload is over {MAX_PAYLOAD_BYTES} bytes")
    return payload


_second_cache: tuple[int, str] = (-1, "")


def utc_timestamp(ns: int | None = None) -> str:
    """UTC with milliseconds, e.g. 2026-11-21T03:04:05.678Z (sorts as text in time order)."""
    global _second_cache
    ns = time.time_ns() if ns is None else ns
    seconds, rest = divmod(ns, 1_000_000_000)
    cached_second, text = _second_cache
    if seconds != cached_second:  # strftime once per second, not once per event
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _second_cache = (seconds, text)
    return f"{text}.{rest // 1_000_000:03d}Z"


def iter_events(
    db: sqlite_utils.Database,
    *,
    kind: str | None = None,
    since: str | None = None,
    until: str | None = None,
    after_seq: int = 0,
    limit: int | None = None,
) -> Iterator[Event]:
    """Events in commit order. `kind` matches exactly, or a prefix when it ends in '.*' or '*'."""
    where, params = ["seq > ?"], [after_seq]
    if kind:
        if kind.endswith("*"):
            prefix = kind.rstrip("*")
            where.append("kind >= ? AND kind < ?")
            params += [prefix, prefix + "\uffff"]
        else:
            where.append("kind = ?")
            params.append(kind)
    if since:
        where.append("ts >= ?")
        params.append(since)
    if until:
        where.append("ts < ?")
        params.append(until)
    sql = f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY seq"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    for row in db.conn.execute(sql, params):
        yield Event(*row)


def read_head(db: sqlite_utils.Database) -> tuple[int, str] | None:
    row = db.conn.execute("SELECT seq, hash FROM chain_head WHERE one = 1").fetchone()
    return (row[0], row[1]) if row else None


def last_event_head(db: sqlite_utils.Database) -> tuple[int, str]:
    row = db.conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    return (row[0], row[1]) if row else (0, GENESIS_HASH)


def outbox_depth(db: sqlite_utils.Database) -> int:
    return db.conn.execute("SELECT count(*) FROM outbox").fetchone()[0]


def pending_after(db: sqlite_utils.Database, after_seq: int, limit: int) -> list[Event]:
    """Undelivered events after `after_seq`, oldest first: what the forwarder sends next."""
    rows = db.conn.execute(
        f"SELECT {', '.join('e.' + c.strip() for c in _COLUMNS.split(','))} "
        "FROM outbox o JOIN events e ON e.seq = o.seq WHERE o.seq > ? ORDER BY o.seq LIMIT ?",
        (after_seq, limit),
    )
    return [Event(*row) for row in rows]


def verify(db: sqlite_utils.Database) -> VerifyResult:
    # the ranges the gateway recorded pruning; their own content is checked by the walk itself
    ranges = [(f["first_seq"], f["last_seq"]) for (payload,) in db.conn.execute(
        "SELECT payload FROM events WHERE kind = 'log.pruned' AND payload != ''")
        for f in [json.loads(payload)]]
    rows = db.conn.execute(f"SELECT {_COLUMNS}, payload_sha256 FROM events ORDER BY seq")
    return verify_chain(rows, read_head(db), ranges)
