"""The live dashboard: probes and their charts, alarms (acknowledge), power, doors, who is inside, MQTT."""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import JSONResponse, Response

from gateway.web.alarm_board import board
from gateway.web.charts import QUANTITIES, SPANS, probe_series, svg_chart
from gateway.web.render import render
from gateway.web.security import Req, route


def live_state(req: Req) -> dict[str, Any]:
    """What the dashboard shows, as data: also the JSON of /api/state for scripts on the LAN."""
    status = req.ctx.status()
    devices = status["devices"]
    now = time.time()
    probes = []
    for name, probe in devices["probes"].items():
        last = probe.get("last_reading_ts")
        probes.append({
            "name": name, "status": probe["status"], "driver": probe["driver"],
            "temperature_c": probe.get("temperature_c"), "humidity_pct": probe.get("humidity_pct"),
            "age_s": round(now - last, 1) if last else None, "error": probe.get("error"),
            "limits": _limits(req, name),
        })
    return {
        "site": status["site"], "gateway": status["gateway"], "version": status["version"],
        "uptime_s": status["uptime_s"], "probes": probes, "alarms": board(status),
        "ups": devices.get("ups"), "ats": devices.get("ats"), "generator": devices.get("generator"),
        "doors": {name: {k: door.get(k) for k in ("state", "locked", "door_open", "held_open", "forced", "faults",
                                                   "visit_armed")}
                  for name, door in (status.get("doors") or {}).items()},
        "inside": status.get("inside", []),
        "visits": {k: (status.get("visits") or {}).get(k, 0) for k in ("open", "inside")},
        "mqtt": {k: status["mqtt"].get(k) for k in ("connected", "broker", "connected_since", "last_error")}
        | {"outbox_depth": status["store"]["outbox_depth"]},
        "store": {"last_seq": status["store"]["last_seq"], "writer": status["store"]["writer"]},
        "now": now,
    }


def _limits(req: Req, probe: str) -> dict[str, float]:
    limits = req.ctx.config.thresholds_for(probe)
    return {"temperature_low_c": limits.temperature_low_c, "temperature_high_c": limits.temperature_high_c,
            "humidity_low_pct": limits.humidity_low_pct, "humidity_high_pct": limits.humidity_high_pct}


@route("/", role="viewer")
def dashboard(req: Req) -> Response:
    return render(req, "dashboard.html", state=live_state(req), spans=list(SPANS), span=_span(req))


@route("/dashboard/live", role="viewer", kind="api", touch=False)
def dashboard_live(req: Req) -> Response:
    """The changing part of the dashboard, re-fetched by the page every few seconds."""
    return render(req, "dashboard_live.html", state=live_state(req))


@route("/api/state", role="viewer", kind="api", touch=False)
def api_state(req: Req) -> Response:
    return JSONResponse(live_state(req))


@route("/api/chart/{probe}.svg", role="viewer", kind="api", touch=False)
def chart(req: Req) -> Response:
    probe = req.request.path_params["probe"]
    quantity = req.text("q", "temperature")
    span = _span(req)
    if probe not in {p.name for p in req.ctx.config.probes} or quantity not in QUANTITIES:
        return Response("404 probe atau besaran tidak dikenal / unknown probe or quantity", 404,
                        media_type="text/plain")
    rows = probe_series(req.ctx.config.database_path, probe, span)
    title = f"{probe} — {req.t('q.' + quantity)} ({span})"
    svg = svg_chart(rows, quantity, req.ctx.config.thresholds_for(probe), span, title,
                    req.ctx.config.access.zone, req.t("chart.no_data"))
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


@route("/alarms/{alarm_id}/ack", role="staff", methods=("POST",), kind="action")
def acknowledge(req: Req) -> Response:
    alarm_id = req.request.path_params["alarm_id"]
    note = req.text("note")
    req.act("alarm.ack", alarm_id,
            lambda: req.ctx.call("alarm.ack", {"alarm_id": alarm_id, "by": req.user, "note": note}),
            req.t("alarm.acked"))
    from starlette.responses import RedirectResponse

    return RedirectResponse("/", 303)


def _span(req: Req) -> str:
    span = req.text("span", "24h")
    return span if span in SPANS else "24h"
