"""Write dcgate config files for tests (a tiny TOML writer: tables, arrays of tables, scalars)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table; keys quoted, so "0" = "off" works too
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_scalar(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(data: dict[str, Any]) -> str:
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    arrays: list[tuple[str, list[dict[str, Any]]]] = []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            arrays.append((key, value))
        else:
            lines.append(f"{key} = {_scalar(value)}")
    for name, table in tables:
        lines += ["", f"[{name}]"] + [f"{k} = {_scalar(v)}" for k, v in table.items()]
    for name, items in arrays:
        for item in items:
            lines += ["", f"[[{name}]]"] + [f"{k} = {_scalar(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"


def base_config(data_dir: Path, mqtt_port: int, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "site": "test-site",
        "gateway": "test-gw",
        "data_dir": str(data_dir),
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
        "store": {"synchronous": "normal"},
        "shutdown_flush_s": 5.0,
        "probes": [{"name": "rack1", "driver": "sim", "interval_s": 60}],
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        elif value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return config


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(to_toml(data), encoding="utf-8")
    return path
