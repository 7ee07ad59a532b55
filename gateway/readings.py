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
    """Readings of one probe, oldest first; with `every`, min / mean / max per bucket (failed reads have none).

    Raw readings exist for `[store] readings_raw_days`; older ones are served from the per-minute and
    hourly aggregates (at their own resolution, so an hourly row stays one row even with `minute`).
    """
    if every not in BUCKETS:
        raise InvalidValueError(f"--every {every!r} is not one of {', '.join(BUCKETS)}")
    since, until = since or "", until or "\uffff"
    prefix = BUCKETS[every]
    if prefix is None:
        sql = ("SELECT ts, json_extract(payload, '$.temperature_c'), json_extract(payload, '$.humidity_pct') "
               "FROM events WHERE kind = 'env.reading' AND payload != '' AND json_extract(payload, '$.probe') = ? "
               "AND ts >= ? AND ts < ? ORDER BY seq")
        for ts, temperature, humidity in db.conn.execute(sql, (probe, since, until)):
            yield {"ts": ts, "temperature_c": temperature, "humidity_pct": humidity}
        return
    # partial aggregates from each tier, merged per bucket: a pruned reading is in exactly one tier. A bucket
    # belongs to the period when it starts before `until` (compared as full timestamps: "…T00:00" < "…T00:00:00Z")
    sql = f"""
        WITH raw AS (
          SELECT ts, json_extract(payload, '$.temperature_c') AS t, json_extract(payload, '$.humidity_pct') AS h
          FROM events WHERE kind = 'env.reading' AND payload != '' AND json_extract(payload, '$.probe') = :probe
            AND ts >= :since AND ts < :until),
        parts AS (
          SELECT substr(ts, 1, {prefix}) AS bucket, count(*) AS n, count(t) AS t_n, min(t) AS t_min, max(t) AS t_max,
                 total(t) AS t_sum, count(h) AS h_n, min(h) AS h_min, max(h) AS h_max, total(h) AS h_sum
          FROM raw GROUP BY 1
          UNION ALL
          SELECT substr(minute, 1, {prefix}), n, t_n, t_min, t_max, t_sum, h_n, h_min, h_max, h_sum
          FROM readings_minute WHERE probe = :probe AND minute >= substr(:since, 1, 16)
            AND minute || ':00.000Z' < :until
          UNION ALL
          SELECT substr(hour, 1, {prefix}), n, t_n, t_min, t_max, t_sum, h_n, h_min, h_max, h_sum
          FROM readings_hour WHERE probe = :probe AND hour >= substr(:since, 1, 13)
            AND hour || ':00:00.000Z' < :until)
        SELECT bucket, sum(n), min(t_min), sum(t_sum) / nullif(sum(t_n), 0), max(t_max),
               min(h_min), sum(h_sum) / nullif(sum(h_n), 0), max(h_max)
        FROM parts GROUP BY bucket ORDER BY bucket
    """
    rows = db.conn.execute(sql, {"probe": probe, "since": since, "until": until})
    for bucket, count, t_min, t_avg, t_max, h_min, h_avg, h_max in rows:
        yield {
            "period": bucket, "count": count,
            "temperature_min_c": t_min, "temperature_mean_c": _round(t_avg), "temperature_max_c": t_max,
            "humidity_min_pct": h_min, "humidity_mean_pct": _round(h_avg), "humidity_max_pct": h_max,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
