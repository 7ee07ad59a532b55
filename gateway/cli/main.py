"""`dcgate`: the command line. Each command lives in its own module; this one only dispatches.

Exit status: 0 success, 1 failure (e.g. `log verify` found tampering), 2 bad usage or config,
3 the gateway is not running.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gateway import __version__
from gateway.cli import (
    access_cmd,
    alarm_cmd,
    backup_cmd,
    config_cmd,
    doctor_cmd,
    events_cmd,
    log_cmd,
    modbus_cmd,
    power_cmd,
    read_cmd,
    readings_cmd,
    report_cmd,
    run_cmd,
    sim_cmd,
    status_cmd,
    user_cmd,
    visit_cmd,
)
from gateway.config.loader import CONFIG_ENV, DEFAULT_CONFIG_PATH
from gateway.errors import DcgateError

COMMAND_MODULES = (
    run_cmd, config_cmd, status_cmd, doctor_cmd, read_cmd, events_cmd, readings_cmd, log_cmd, alarm_cmd, power_cmd,
    modbus_cmd, sim_cmd, access_cmd, visit_cmd, user_cmd, report_cmd, backup_cmd,
)


def build_parser() -> argparse.ArgumentParser:
    config_help = f"config file (default: ${CONFIG_ENV}, then {DEFAULT_CONFIG_PATH})"
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=config_help)
    parser = argparse.ArgumentParser(
        prog="dcgate",
        description="Server-room gateway: monitoring, door control, tamper-evident logbook, MQTT forwarding.",
    )
    parser.add_argument("--config", metavar="FILE", default=None, help=config_help)
    parser.add_argument("--version", action="version", version=f"dcgate {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except DcgateError as exc:
        print(f"dcgate: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `dcgate events | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
