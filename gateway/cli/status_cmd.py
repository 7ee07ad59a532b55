"""`dcgate status`: the running gateway's state as JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gateway.cli.common import load
from gateway.control.client import call


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    status = commands.add_parser(
        "status", parents=[common],
        help="print the running gateway's state as JSON: devices, MQTT link, outbox depth",
    )
    status.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    config = load(args)
    print(json.dumps(call(config.control_socket_path, "status"), indent=2, ensure_ascii=False))
    return 0
