"""Compact reading history: raw for days, then per-minute, then hourly aggregates.

Old `env.reading` events keep their place in the hash chain (seq, id, ts, kind, source, hashes and
the payload's SHA-256) but lose their payload, which is folded into `readings_minute` first, in the
same transaction, with a `log.pruned` event that records the range. Minute rows that grow old are
folded into `readings_hour`. Only readings are ever pruned, and only once they have been delivered
upstream. These helpers run inside the store writer's transactions.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from gateway.store.chain import PRUNABLE_KIND, PRUNED

#: readings pruned per housekeeping pass, so one pass never holds the writer for long
BATCH = 5000

_UPSERT = """
INSERT INTO {table} (probe, {key}, n, t_n, t_min, t_max, t_sum, h_n, h_min, h_max, h_sum)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (probe, {key}) DO UPDATE SET
  n = n + excluded.n, t_n = t_n + excluded.t_n, h_n = h_n + excluded.h_n,
  t_sum = t_sum + excluded.t_sum, h_sum = h_sum + excluded.h_sum,
  t_min = min(coalesce(t_min, excluded.t_min), coalesce(excluded.t_min, t_min)),
  t_max = max(coalesce(t_max, excluded.t_max), coalesce(excluded.t_max, t_max)),
  h_min = min(coalesce(h_min, excluded.h_min), coalesce(excluded.h_min, h_min)),
  h_max = max(coalesce(h_max, excluded.h_max), coalesce(excluded.h_max, h_max))
"""


def prunable(conn: sqlite3.Connection, before_ts: str, floor_ts: str) -> list[tuple[int, str, str]]:
    """(seq, ts, payload) of old readings still holding their payload and already delivered upstream."""
    oldest_undelivered = conn.execute("SELECT min(seq) FROM outbox").fetchone()[0]
    limit = oldest_undelivered if oldest_undelivered is not None else 1 << 62
    return conn.execute(
        "SELECT seq, ts, payload FROM events WHERE kind = ? AND payload != ? AND ts < ? AND ts >= ? AND seq < ? "
        "ORDER BY seq LIMIT ?",
        (PRUNABLE_KIND, PRUNED, before_ts, floor_ts, limit, BATCH),
    ).fetchall()


def fold_into_minutes(conn: sqlite3.Connection, rows: list[tuple[int, str, str]]) -> None:
    """Add these readings to their minutes' aggregates, then empty their payloads (the trigger allows
    exactly that: every hashed column and the digest stay)."""
    buckets: dict[tuple[str, str], list[Any]] = {}
    for _seq, ts, payload in rows:
        fields = json.loads(payload)
        bucket = buckets.setdefault((fields["probe"], ts[:16]), [0, 0, None, None, 0.0, 0, None, None, 0.0])
        bucket[0] += 1
        for offset, value in ((1, fields.get("temperature_c")), (5, fields.get("humidity_pct"))):
            if value is None:
                continue
            bucket[offset] += 1
            bucket[offset + 1] = value if bucket[offset + 1] is None else min(bucket[offset + 1], value)
            bucket[offset + 2] = value if bucket[offset + 2] is None else max(bucket[offset + 2], value)
            bucket[offset + 3] += value
    conn.executemany(_UPSERT.format(table="readings_minute", key="minute"),
                     [(probe, minute, *values) for (probe, minute), values in buckets.items()])
    conn.executemany("UPDATE events SET payload = ? WHERE seq = ?", [(PRUNED, row[0]) for row in rows])


def fold_minutes_into_hours(conn: sqlite3.Connection, before_minute: str) -> int:
    """Minute aggregates older than `before_minute` become hourly ones. Returns how many were folded."""
    rows = conn.execute(
        "SELECT probe, substr(minute, 1, 13), sum(n), sum(t_n), min(t_min), max(t_max), total(t_sum), "
        "sum(h_n), min(h_min), max(h_max), total(h_sum) FROM readings_minute WHERE minute < ? GROUP BY 1, 2",
        (before_minute,),
    ).fetchall()
    if not rows:
        return 0
    conn.executemany(_UPSERT.format(table="readings_hour", key="hour"), rows)
    return conn.execute("DELETE FROM readings_minute WHERE minute < ?", (before_minute,)).rowcount
