"""Home Assistant MQTT discovery: one retained config per entity, and the retained state topics they read.

Availability is tied to the gateway's own `{base_topic}/status` (online / offline with the Last
Will) *and*, for a probe's entities, to that probe's status, so a failed probe shows as
unavailable in Home Assistant rather than as a stale or made-up number.
"""

from __future__ import annotations

import json
from typing import Any

from gateway import __version__
from gateway.config.models import Config
from gateway.mqtt.topics import status_topic


def env_state_topic(base_topic: str, probe: str) -> str:
    """Retained JSON: temperature_c, humidity_pct, status, ts."""
    return f"{base_topic}/env/{probe}"


def env_state_payload(temperature_c: float | None, humidity_pct: float | None, status: str, ts: str,
                      error: str | None = None) -> str:
    state: dict[str, Any] = {"temperature_c": temperature_c, "humidity_pct": humidity_pct, "status": status, "ts": ts}
    if error:
        state["error"] = error
    return json.dumps(state, ensure_ascii=False, separators=(",", ":"))


def node_id(config: Config) -> str:
    return f"dcgate_{config.site}_{config.gateway}".replace("-", "_")


def _device(config: Config) -> dict[str, Any]:
    return {
        "identifiers": [node_id(config)],
        "name": f"dcgate {config.site} / {config.gateway}",
        "manufacturer": "dcgate",
        "model": "server-room gateway",
        "sw_version": __version__,
    }


def _entity(config: Config, component: str, object_id: str, name: str, state_topic: str,
            extra: dict[str, Any], availability: dict[str, Any]) -> tuple[str, str]:
    """(discovery topic, retained config) for one entity of this gateway's device."""
    payload = {
        "name": name,
        "unique_id": f"{node_id(config)}_{object_id}",
        "object_id": f"{node_id(config)}_{object_id}",
        "state_topic": state_topic,
        **extra,
        **availability,
        "device": _device(config),
    }
    topic = f"{config.mqtt.discovery_prefix}/{component}/{node_id(config)}/{object_id}/config"
    return topic, json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def _available_when(config: Config, state_topic: str, template: str) -> dict[str, Any]:
    """Available only while the gateway is online *and* the device's own state says it is readable."""
    return {
        "availability": [{"topic": status_topic(config.base_topic)},
                         {"topic": state_topic, "value_template": template}],
        "availability_mode": "all",
    }


# quantity -> (device_class, unit, field in the state JSON, English name)
ENV_QUANTITIES: dict[str, tuple[str, str, str, str]] = {
    "temperature": ("temperature", "°C", "temperature_c", "temperature"),
    "humidity": ("humidity", "%", "humidity_pct", "humidity"),
}


def probe_discovery(config: Config, probe: str) -> dict[str, str]:
    """Discovery topic -> retained config payload for one probe's sensors."""
    base = config.base_topic
    state = env_state_topic(base, probe)
    out = {}
    availability = _available_when(config, state, "{{ 'online' if value_json.status == 'ok' else 'offline' }}")
    for quantity, (device_class, unit, field, label) in ENV_QUANTITIES.items():
        extra = {"value_template": f"{{{{ value_json.{field} }}}}", "device_class": device_class,
                 "unit_of_measurement": unit, "state_class": "measurement"}
        topic, payload = _entity(config, "sensor", f"{probe}_{quantity}".replace("-", "_"), f"{probe} {label}",
                                 state, extra, availability)
        out[topic] = payload
    return out


def ups_state_topic(base_topic: str) -> str:
    """Retained JSON from `UpsMonitor.state()`: reachable, flags, on_battery, battery_charge_pct, …"""
    return f"{base_topic}/power/ups"


# object id -> (component, name, extra config): what a UPS offers Home Assistant
_UPS_ENTITIES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "ups_battery": ("sensor", "UPS battery", {
        "device_class": "battery", "unit_of_measurement": "%", "state_class": "measurement",
        "value_template": "{{ value_json.battery_charge_pct }}"}),
    "ups_runtime": ("sensor", "UPS runtime", {
        "device_class": "duration", "unit_of_measurement": "s", "state_class": "measurement",
        "value_template": "{{ value_json.runtime_s }}"}),
    "ups_load": ("sensor", "UPS load", {
        "unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:gauge",
        "value_template": "{{ value_json.load_pct }}"}),
    "ups_input_voltage": ("sensor", "UPS input voltage", {
        "device_class": "voltage", "unit_of_measurement": "V", "state_class": "measurement",
        "value_template": "{{ value_json.input_voltage }}"}),
    "ups_on_battery": ("binary_sensor", "UPS on battery", {
        "value_template": "{{ 'ON' if value_json.on_battery else 'OFF' }}"}),
    "ups_low_battery": ("binary_sensor", "UPS low battery", {
        "device_class": "battery", "value_template": "{{ 'ON' if 'LB' in value_json.flags else 'OFF' }}"}),
    "ups_replace_battery": ("binary_sensor", "UPS replace battery", {
        "device_class": "problem", "value_template": "{{ 'ON' if 'RB' in value_json.flags else 'OFF' }}"}),
}


def ups_discovery(config: Config) -> dict[str, str]:
    """Discovery topic -> retained config for the UPS quantities; unavailable while upsd is unreachable."""
    base = config.base_topic
    state = ups_state_topic(base)
    out = {}
    availability = _available_when(config, state, "{{ 'online' if value_json.reachable else 'offline' }}")
    for object_id, (component, name, extra) in _UPS_ENTITIES.items():
        topic, payload = _entity(config, component, object_id, name, state, extra, availability)
        out[topic] = payload
    return out


# object id -> (component, name, state topic suffix, extra config)
_POWER_ENTITIES: dict[str, tuple[str, str, str, dict[str, Any]]] = {
    "ats_source": ("sensor", "ATS source", "ats", {
        "device_class": "enum", "options": ["mains", "generator", "off"], "icon": "mdi:transmission-tower",
        "value_template": "{{ value_json.position }}"}),
    "generator_running": ("binary_sensor", "Generator running", "generator", {
        "device_class": "running", "value_template": "{{ 'ON' if value_json.running else 'OFF' }}"}),
    "generator_fuel": ("sensor", "Generator fuel", "generator", {
        "unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:fuel",
        "value_template": "{{ value_json.fuel_pct }}"}),
    "generator_hours_left": ("sensor", "Generator fuel hours left", "generator", {
        "device_class": "duration", "unit_of_measurement": "h", "value_template": "{{ value_json.hours_left }}"}),
    "generator_refuel_needed": ("binary_sensor", "Generator refuel needed", "generator", {
        "device_class": "problem", "value_template": "{{ 'ON' if value_json.refuel_needed else 'OFF' }}"}),
}


def power_discovery(config: Config, *, ats: bool, generator: bool) -> dict[str, str]:
    """Discovery configs for the ATS and the generator, whichever of them is configured."""
    base = config.base_topic
    out = {}
    for object_id, (component, name, part, extra) in _POWER_ENTITIES.items():
        if (part == "ats" and not ats) or (part == "generator" and not generator):
            continue
        topic, payload = _entity(config, component, object_id, name, f"{base}/power/{part}", extra,
                                 {"availability_topic": status_topic(base)})
        out[topic] = payload
    return out
