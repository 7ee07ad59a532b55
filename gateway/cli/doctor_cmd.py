"""`dcgate doctor`: every configured device, reachable or not, its last value and age, and a hint on failure.

For the technician wiring a site. With the gateway running it asks the gateway (which owns the
buses); without it, it opens each device itself. Exit 0 when everything answers, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import socket
import time
from typing import Any

from drivers.errors import SensorError
from gateway.cli.common import load
from gateway.cli.read_cmd import read_probe_directly
from gateway.config.models import Config
from gateway.control.client import call
from gateway.errors import ServiceNotRunningError


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    doctor = commands.add_parser(
        "doctor", parents=[common],
        help="check every configured device and the MQTT broker: reachable, last value, age, wiring hints",
    )
    doctor.add_argument("--json", action="store_true", help="one JSON object per check instead of text")
    doctor.set_defaults(handler=_doctor)


def _check(device: str, ok: bool, detail: str, value: Any = None, age_s: float | None = None) -> dict[str, Any]:
    return {"device": device, "ok": ok, "detail": detail, "value": value, "age_s": age_s}


def checks_from_status(status: dict[str, Any]) -> list[dict[str, Any]]:
    """Every device the running gateway holds, from its status (also the console's device-health page)."""
    now = time.time()
    checks = []
    store = status["store"]
    checks.append(_check("store", store["writer"] == "ok",
                         f"last seq {store['last_seq']}" if store["writer"] == "ok" else str(store["last_error"]),
                         {"outbox_depth": store["outbox_depth"]}))
    mqtt = status["mqtt"]
    checks.append(_check(f"mqtt {mqtt['broker']}", mqtt["connected"],
                         "connected" if mqtt["connected"] else f"not connected: {mqtt['last_error']}",
                         {"outbox_depth": status["store"]["outbox_depth"]}))
    for name, probe in status["devices"]["probes"].items():
        age = round(now - probe["last_reading_ts"], 1) if probe.get("last_reading_ts") else None
        ok = probe["status"] == "ok"
        value = {"temperature_c": probe["temperature_c"], "humidity_pct": probe["humidity_pct"]} if ok else None
        detail = f"{probe['driver']}, every {probe['interval_s']:g} s" if ok else (
            probe.get("error") or f"no reading yet ({probe['status']})")
        checks.append(_check(f"probe {name}", ok, detail, value, age))
    ups = status["devices"].get("ups")
    if ups is not None:
        age = round(now - ups["last_reading_ts"], 1) if ups.get("last_reading_ts") else None
        checks.append(_check(f"ups {ups['ups']}", bool(ups["reachable"]),
                             ups["status"] or "" if ups["reachable"] else ups["error"] or "not read yet",
                             {k: ups[k] for k in ("battery_charge_pct", "load_pct", "on_battery")}, age))
    checks += _power_checks(status["devices"], now)
    for name, door in (status.get("doors") or {}).items():
        faults = door.get("faults") or []
        checks.append(_check(f"door {name}", not faults, "; ".join(map(str, faults)) or
                             f"{door.get('state')}, {'locked' if door.get('locked') else 'unlocked'}"))
        camera = door.get("camera")
        if camera is not None:
            checks.append(_check(f"camera {name}", bool(camera.get("running")) and not camera.get("last_error"),
                                 camera.get("last_error") or f"{camera.get('camera')} {camera.get('source') or ''}"))
        for side, sensor in (door.get("fingerprint") or {}).items():
            detail = sensor.get("last_error") or f"{sensor.get('slots_used')}/{sensor.get('capacity')} slots used"
            checks.append(_check(f"fingerprint {name}/{side}", bool(sensor.get("connected")), detail))
    return checks


def _power_checks(devices: dict[str, Any], now: float) -> list[dict[str, Any]]:
    checks = []
    ats, generator = devices.get("ats"), devices.get("generator")
    if ats is not None:
        age = round(now - ats["last_reading_ts"], 1) if ats.get("last_reading_ts") else None
        checks.append(_check("ats", ats.get("readable") is not False, ats.get("error") or f"on {ats.get('position')}",
                             {"position": ats.get("position")}, age))
    if generator is not None:
        errors = generator.get("errors") or {}
        checks.append(_check("generator", not errors, "; ".join(f"{k}: {v}" for k, v in errors.items()) or
                             ("running" if generator.get("running") else "stopped"),
                             {"fuel_pct": generator.get("fuel_pct")}))
    return checks


def _directly(config: Config) -> list[dict[str, Any]]:
    checks = []
    host, port = config.mqtt.host, config.mqtt.port
    try:
        socket.create_connection((host, port), timeout=3).close()
        checks.append(_check(f"mqtt {host}:{port}", True, "broker port answers"))
    except OSError as exc:
        checks.append(_check(f"mqtt {host}:{port}", False,
                             f"cannot connect ({exc.strerror or exc}). Check: broker running, host, port, firewall"))
    for probe in config.probes:
        try:
            value = read_probe_directly(config, probe.name)
            checks.append(_check(f"probe {probe.name}", True, f"{probe.driver}: read now", value, 0.0))
        except SensorError as exc:
            checks.append(_check(f"probe {probe.name}", False, str(exc)))
    if config.ups is not None:
        from gateway.power.ups import UpsReading, client_from_config

        client = client_from_config(config.ups)
        try:
            reading = UpsReading.from_vars(client.list_vars(config.ups.name))
            checks.append(_check(f"ups {config.ups.name}", True, reading.status or "", reading.values(), 0.0))
        except SensorError as exc:
            checks.append(_check(f"ups {config.ups.name}", False, str(exc)))
        finally:
            client.close()
    return checks


def _doctor(args: argparse.Namespace) -> int:
    config = load(args)
    try:
        checks = checks_from_status(call(config.control_socket_path, "status"))
        source = "asked the running gateway"
    except ServiceNotRunningError:
        checks = _directly(config)
        source = "the gateway is not running: opened each device directly"
    if args.json:
        for check in checks:
            print(json.dumps(check, ensure_ascii=False))
    else:
        print(f"dcgate doctor ({source})")
        for c in checks:
            age = f", {c['age_s']:g} s ago" if c["age_s"] is not None else ""
            value = f" {json.dumps(c['value'], ensure_ascii=False)}" if c["value"] else ""
            print(f"  {'OK  ' if c['ok'] else 'FAIL'} {c['device']}: {c['detail']}{value}{age}")
    return 0 if all(c["ok"] for c in checks) else 1
