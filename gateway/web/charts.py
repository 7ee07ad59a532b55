"""Small SVG line charts of a probe's history: mean line, min–max band, the room standard shaded.

Drawn on the gateway (no chart library shipped to the browser, nothing fetched from the internet);
the SVG is a few kilobytes and scales to a phone's width.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

from gateway.config.thresholds import ThresholdConfig
from gateway.readings import readings
from gateway.store.database import open_for_reading

SPANS = {"24h": (timedelta(hours=24), "minute"), "7d": (timedelta(days=7), "hour")}
QUANTITIES = {"temperature": ("temperature", "°C"), "humidity": ("humidity", "%")}
WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 640, 220, 44, 10, 12, 26


def probe_series(db_path: Any, probe: str, span: str, now: datetime | None = None) -> list[dict[str, Any]]:
    length, every = SPANS[span]
    now = now or datetime.now(UTC)
    since = (now - length).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    db = open_for_reading(db_path)
    try:
        rows = list(readings(db, probe, since=since, every=every))
    finally:
        db.close()
    if span == "24h" and len(rows) > 288:  # five-minute points are plenty for 640 px
        rows = _merge(rows, len(rows) // 288 + 1)
    return rows


def _merge(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    merged = []
    for i in range(0, len(rows), n):
        group = rows[i:i + n]
        out: dict[str, Any] = {"period": group[0]["period"]}
        for q in ("temperature", "humidity"):
            unit = "c" if q == "temperature" else "pct"
            lows = [r[f"{q}_min_{unit}"] for r in group if r[f"{q}_min_{unit}"] is not None]
            highs = [r[f"{q}_max_{unit}"] for r in group if r[f"{q}_max_{unit}"] is not None]
            means = [r[f"{q}_mean_{unit}"] for r in group if r[f"{q}_mean_{unit}"] is not None]
            out[f"{q}_min_{unit}"] = min(lows) if lows else None
            out[f"{q}_max_{unit}"] = max(highs) if highs else None
            out[f"{q}_mean_{unit}"] = round(sum(means) / len(means), 2) if means else None
        merged.append(out)
    return merged


def _period_time(period: str) -> datetime:
    """A bucket ("2026-11-21T08:30", an hour "2026-11-21T08", a day "2026-11-21") as its UTC start."""
    return datetime.fromisoformat(period + ":00" if len(period) == 13 else period).replace(tzinfo=UTC)


def svg_chart(rows: list[dict[str, Any]], quantity: str, limits: ThresholdConfig, span: str, title: str,
              zone: Any, no_data: str) -> str:
    unit_key = "c" if quantity == "temperature" else "pct"
    low_limit, high_limit = ((limits.temperature_low_c, limits.temperature_high_c) if quantity == "temperature"
                             else (limits.humidity_low_pct, limits.humidity_high_pct))
    unit = QUANTITIES[quantity][1]
    points = [(_period_time(r["period"]), r[f"{quantity}_min_{unit_key}"], r[f"{quantity}_mean_{unit_key}"],
               r[f"{quantity}_max_{unit_key}"]) for r in rows if r[f"{quantity}_mean_{unit_key}"] is not None]
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
            f'aria-label="{escape(title)}" font-family="sans-serif" font-size="11">'
            f'<title>{escape(title)}</title><rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>')
    if not points:
        return head + (f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" fill="#666">'
                       f'{escape(no_data)}</text></svg>')
    length = SPANS[span][0]
    end = datetime.now(UTC)
    start = end - length
    values = [v for p in points for v in p[1:] if v is not None] + [low_limit, high_limit]
    lo, hi = min(values), max(values)
    margin = max((hi - lo) * 0.08, 0.5)
    lo, hi = lo - margin, hi + margin
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B

    def x(moment: datetime) -> float:
        return PAD_L + plot_w * max(0.0, min(1.0, (moment - start) / length))

    def y(value: float) -> float:
        return PAD_T + plot_h * (1 - (value - lo) / (hi - lo))

    parts = [head]
    parts.append(f'<rect x="{PAD_L}" y="{y(high_limit):.1f}" width="{plot_w}" '
                 f'height="{y(low_limit) - y(high_limit):.1f}" fill="#e3f4e6"/>')
    for value in _ticks(lo, hi):
        parts.append(f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                     f'stroke="#ddd"/><text x="{PAD_L - 4}" y="{y(value) + 4:.1f}" text-anchor="end" '
                     f'fill="#444">{value:g}</text>')
    for moment, label in _time_ticks(start, end, span, zone):
        parts.append(f'<text x="{x(moment):.1f}" y="{HEIGHT - 8}" text-anchor="middle" fill="#444">{label}</text>')
    band = [(x(m), y(high)) for m, low, _mean, high in points if low is not None and high is not None]
    band_low = [(x(m), y(low)) for m, low, _mean, high in points if low is not None and high is not None]
    if band:
        poly = " ".join(f"{px:.1f},{py:.1f}" for px, py in band + band_low[::-1])
        parts.append(f'<polygon points="{poly}" fill="#9ec5fe" fill-opacity="0.45" stroke="none"/>')
    line = " ".join(f"{x(m):.1f},{y(mean):.1f}" for m, _low, mean, _high in points)
    parts.append(f'<polyline points="{line}" fill="none" stroke="#0b5ed7" stroke-width="1.6"/>')
    if len(points) == 1:  # a fresh gateway's first minute: a line of one point would not show
        moment, _low, mean, _high = points[0]
        parts.append(f'<circle cx="{x(moment):.1f}" cy="{y(mean):.1f}" r="3" fill="#0b5ed7"/>')
    parts.append(f'<text x="{PAD_L + 4}" y="{PAD_T + 10}" fill="#198754">{low_limit:g}–{high_limit:g} {unit}</text>')
    return "".join(parts) + "</svg>"


def _ticks(lo: float, hi: float) -> list[float]:
    span = hi - lo
    step = next(s for s in (0.5, 1, 2, 5, 10, 20, 25, 50) if span / s <= 6)
    first = int(lo / step) * step
    return [round(first + i * step, 2) for i in range(9) if lo <= first + i * step <= hi]


def _time_ticks(start: datetime, end: datetime, span: str, zone: Any) -> list[tuple[datetime, str]]:
    step = timedelta(hours=4) if span == "24h" else timedelta(days=1)
    local = start.astimezone(zone)
    if span == "24h":
        first = local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=4 - local.hour % 4)
        fmt = "%H:%M"
    else:
        first = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
        fmt = "%d/%m"
    ticks, moment = [], first
    while moment < end:
        ticks.append((moment.astimezone(UTC), moment.strftime(fmt)))
        moment += step
    return ticks
