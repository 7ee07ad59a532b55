"""`dcgate modbus scan`: which unit ids answer on an RS-485 bus, with a guess of the probe model."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.errors import InvalidValueError

BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    modbus = commands.add_parser("modbus", parents=[common], help="Modbus tools for the technician")
    sub = modbus.add_subparsers(dest="modbus_command", metavar="SUBCOMMAND", required=True)
    scan = sub.add_parser("scan", parents=[common],
                          help="ask every unit id on a serial bus; print those that answer, with a profile guess")
    scan.add_argument("--port", required=True, metavar="DEV", help="the RS-485 adapter, e.g. /dev/ttyUSB0")
    scan.add_argument("--baud", type=int, default=9600, metavar="B", help="baud rate (default 9600)")
    scan.add_argument("--parity", choices=["N", "E", "O"], default="N", help="parity (default N)")
    scan.add_argument("--units", default="1-247", metavar="RANGE", help="unit ids to try, e.g. 1-247 or 1,2,5-9")
    scan.add_argument("--timeout", type=float, default=0.1, metavar="S", help="seconds to wait per unit (default 0.1)")
    scan.set_defaults(handler=_scan)


def _scan(args: argparse.Namespace) -> int:
    if args.baud not in BAUDRATES:
        raise InvalidValueError(f"--baud {args.baud} is not a standard rate; use one of {BAUDRATES}")
    from drivers.modbus.bus import ModbusBus, SerialSettings  # pymodbus only when scanning
    from drivers.modbus.scan import parse_units, scan

    units = parse_units(args.units)
    bus = ModbusBus(SerialSettings(args.port, args.baud, parity=args.parity))
    try:
        print(f"scanning {len(units)} unit id(s) on {args.port} at {args.baud} baud, parity {args.parity} ...")
        results = scan(bus, units, timeout=args.timeout)
    finally:
        bus.close()
    for result in results:
        print(result.line())
    if not results:
        print("no unit answered. Check: A and B swapped, the baud rate and parity, the adapter's ground, power")
        return 1
    return 0
