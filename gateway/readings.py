"""Temperature and humidity history from the store's `env.reading` events, raw or per minute / hour."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import sqlite_utils

from gateway.errors import InvalidValueError

#: bucket name -> length of the timestamp prefix that identifies it ("2026-11-21T08:30" is a minute)
BUCKETS = {"raw": None, "minute": 16, "hour": 13, "day": 10}


def readings(db: sqlite_utils.Database, probe: str, *, since: str | None = None, until: str | None = None,
             every: str = "raw") -> Iterator[dict[str, Any]]:
    """Readings of one probe, oldest first; with `every`, min / mean / max per bucket (failed reads have none)."""
    if every not in BUCKETS:
        raise InvalidValueError(f"--every {every!r} is not one of {', '.join(BUCKETS)}")
    where = ["kind = 'env.reading'", "json_extract(payload, '$.probe') = ?"]
    params: list[Any] = [probe]
    if since:
        where.append("ts >= ?")
        params.append(since)
    if until:
        where.append("ts < ?")
        params.append(until)
    condition = " AND ".join(where)
    prefix = BUCKETS[every]
    if prefix is None:
        sql = (f"SELECT ts, json_extract(payload, '$.temperature_c'), json_extract(payload, '$.humidity_pct') "
               f"FROM events WHERE {condition} ORDER BY seq")
        for ts, temperature, humidity in db.conn.execute(sql, params):
            yield {"ts": ts, "temperature_c": temperature, "humidity_pct": humidity}
        return
    sql = (
        f"SELECT substr(ts, 1, {prefix}) AS bucket, count(*), "
        "min(json_extract(payload, '$.temperature_c')), avg(json_extract(payload, '$.temperature_c')), "
        "max(json_extract(payload, '$.temperature_c')), "
        "min(json_extract(payload, '$.humidity_pct')), avg(json_extract(payload, '$.humidity_pct')), "
        "max(json_extract(payload, '$.humidity_pct')) "
        f"FROM events WHERE {condition} GROUP BY bucket ORDER BY bucket"
    )
    for bucket, count, t_min, t_avg, t_max, h_min, h_avg, h_max in db.conn.execute(sql, params):
        yield {
            "period": bucket, "count": count,
            "temperature_min_c": t_min, "temperature_mean_c": _round(t_avg), "temperature_max_c": t_max,
            "humidity_min_pct": h_min, "humidity_mean_pct": _round(h_avg), "humidity_max_pct": h_max,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
