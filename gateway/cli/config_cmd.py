"""`dcgate config check [FILE]`: validate a config without starting anything."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateway.cli.common import config_path
from gateway.config.loader import load_config


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    config = commands.add_parser("config", help="work with the configuration file", parents=[common])
    sub = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    check = sub.add_parser(
        "check", parents=[common], help="validate a config file; exit 0 if valid, 2 naming each problem"
    )
    check.add_argument("file", nargs="?", metavar="FILE", help="the file to check (default: --config)")
    check.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    path = Path(args.file) if args.file else config_path(args)
    config = load_config(path)
    probes = ", ".join(f"{p.name} ({p.driver}, every {p.interval_s:g} s)" for p in config.probes) or "none"
    print(f"{path}: OK")
    print(f"  site {config.site}, gateway {config.gateway}, data in {config.data_dir}")
    print(f"  MQTT {config.mqtt.host}:{config.mqtt.port}{' (TLS)' if config.mqtt.tls_ca else ''}, "
          f"topics under {config.base_topic}/")
    print(f"  probes: {probes}")
    return 0
