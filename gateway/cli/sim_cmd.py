"""`dcgate sim set|show`: drive the simulated hardware of a running gateway."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gateway.cli.common import load
from gateway.control.client import call
from gateway.errors import InvalidValueError


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    sim = commands.add_parser("sim", parents=[common], help="control the simulated hardware of a running gateway")
    sub = sim.add_subparsers(dest="sim_command", metavar="SUBCOMMAND", required=True)
    setter = sub.add_parser(
        "set", parents=[common],
        help="set what a simulated device senses, e.g. `sim set probe rack1 temperature=27.5 humidity=50`",
        description="Probe keys: temperature (°C), humidity (%), noise (±), "
                    "fault (none|timeout|checksum|disconnected). Door keys: open=1|0 (push it / let it shut), "
                    "force=1 (open whatever the lock says), exit=1 (press the exit button), lock_power=0|1.",
    )
    setter.add_argument("device", choices=["probe", "door"], help="kind of simulated device")
    setter.add_argument("name", help="the device's name from the config")
    setter.add_argument("values", nargs="+", metavar="KEY=VALUE", help="settings to change")
    setter.set_defaults(handler=_set)
    show = sub.add_parser("show", parents=[common], help="print the simulated world as JSON")
    show.set_defaults(handler=_show)


def _set(args: argparse.Namespace) -> int:
    values = {}
    for pair in args.values:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise InvalidValueError(f"{pair!r} is not KEY=VALUE, e.g. temperature=27.5")
        values[key] = value
    config = load(args)
    result = call(config.control_socket_path, "sim.set", {"device": args.device, "name": args.name, "values": values})
    print(json.dumps(result, ensure_ascii=False))
    return 0


def _show(args: argparse.Namespace) -> int:
    config = load(args)
    print(json.dumps(call(config.control_socket_path, "sim.show"), indent=2, ensure_ascii=False))
    return 0
