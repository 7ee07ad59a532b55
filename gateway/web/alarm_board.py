"""One list of what needs attention, from the gateway's status: probe alarms (acknowledgeable), door,
visit, power and link conditions (they end when the condition ends).

Probe alarms live in the alarm book and are acknowledged there. The other conditions are the state
of their own part (a door held open, a visitor over time, the UPS on battery); the console shows
them beside the alarms so the officer sees one list.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def board(status: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for alarm in status.get("alarms", []):
        acks = alarm.get("acknowledgements") or []
        items.append({
            "id": alarm["alarm_id"], "source": f"probe {alarm['probe']}",
            "what": f"{alarm['quantity']}.{alarm['condition']}",
            "severity": alarm["severity"], "since": _iso(alarm.get("since")), "value": alarm.get("value"),
            "limit": alarm.get("limit"), "ackable": True, "acknowledged": bool(alarm.get("acknowledged")),
            "ack_by": acks[-1]["by"] if acks else None,
        })
    for name, door in (status.get("doors") or {}).items():
        for flag in ("forced", "held_open"):
            if door.get(flag):
                items.append(_condition(f"door {name}", f"door.{flag}", "critical" if flag == "forced" else "warning"))
        for fault in door.get("faults") or []:
            items.append(_condition(f"door {name}", "door.fault", "warning", detail=str(fault)))
    for visit in (status.get("visits") or {}).get("visits", []):
        if visit.get("escort_alarm"):
            items.append(_condition(f"visit {visit['visit']}", f"visit.escort_{visit['escort_alarm']}", "critical"))
        for visitor in visit.get("visitors", []):
            if visitor.get("overstay"):
                items.append(_condition(f"visit {visit['visit']}", "visit.overstay", "warning",
                                        detail=visitor.get("name")))
    devices = status.get("devices") or {}
    ups = devices.get("ups")
    if ups is not None:
        if ups.get("reachable") is False:
            items.append(_condition(f"ups {ups.get('ups')}", "ups.unreachable", "warning", detail=ups.get("error")))
        elif ups.get("on_battery"):
            items.append(_condition(f"ups {ups.get('ups')}", "power.on_battery", "critical",
                                    detail=f"{ups.get('battery_charge_pct')} %"))
        for flag in ups.get("flags") or []:
            if flag in ("LB", "RB", "OVER", "BYPASS"):
                items.append(_condition(f"ups {ups.get('ups')}", f"ups.{flag}", "critical"))
    generator = devices.get("generator")
    if generator and generator.get("refuel_needed"):
        items.append(_condition("generator", "power.refuel_needed", "warning", detail=generator.get("refuel_reason")))
    mqtt = status.get("mqtt") or {}
    if mqtt and not mqtt.get("connected"):
        items.append(_condition("mqtt", "mqtt.disconnected", "info", detail=mqtt.get("last_error")))
    items.sort(key=lambda a: (SEVERITY_ORDER.get(a["severity"], 3), a["since"] or ""))
    return items


def _condition(source: str, what: str, severity: str, detail: str | None = None) -> dict[str, Any]:
    return {"id": None, "source": source, "what": what, "severity": severity, "since": None, "value": detail,
            "limit": None, "ackable": False, "acknowledged": False, "ack_by": None}
