"""`dcgate read probe NAME`: one reading now, through the running gateway or straight from the device."""

from __future__ import annotations

import argparse
import json
from typing import Any

from drivers.sim import SimWorld
from gateway.cli.common import load
from gateway.control.client import call
from gateway.devices import build_probes
from gateway.errors import ServiceNotRunningError, UnknownDeviceError


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    read = commands.add_parser("read", parents=[common], help="read a device once, now")
    sub = read.add_subparsers(dest="read_command", metavar="SUBCOMMAND", required=True)
    probe = sub.add_parser("probe", parents=[common],
                           help="one reading of a probe now (through the running gateway, which owns the bus, "
                                "or directly when it is not running)")
    probe.add_argument("name", help="the probe's name from the config")
    probe.set_defaults(handler=_read_probe)


def read_probe_directly(config: Any, name: str) -> dict[str, Any]:
    """Build just this probe's driver from the config and read it (the gateway is not running)."""
    wanted = [p for p in config.probes if p.name == name]
    if not wanted:
        known = ", ".join(p.name for p in config.probes) or "none"
        raise UnknownDeviceError(f"no probe {name!r}; configured: {known}")
    probe = build_probes(config.model_copy(update={"probes": wanted}), SimWorld())[name]
    try:
        reading = probe.read()
    finally:
        probe.close()
    return {"probe": name, "temperature_c": reading.temperature_c, "humidity_pct": reading.humidity_pct}


def _read_probe(args: argparse.Namespace) -> int:
    config = load(args)
    try:
        result = call(config.control_socket_path, "probe.read", {"name": args.name}, timeout=30)
        result["via"] = "gateway"
    except ServiceNotRunningError:
        result = read_probe_directly(config, args.name) | {"via": "direct"}
    print(json.dumps(result, ensure_ascii=False))
    return 0
