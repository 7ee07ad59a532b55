"""`dcgate run`: the service itself (what systemd starts)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from gateway import __version__
from gateway.cli.common import config_path
from gateway.config.loader import load_config
from gateway.config.models import Config
from gateway.logs import setup_logging

log = logging.getLogger("gateway")


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    run = commands.add_parser(
        "run", parents=[common], help="run the gateway service in the foreground until SIGTERM or Ctrl-C"
    )
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    path = config_path(args)
    config = load_config(path)  # a bad config ends here with exit 2: nothing has started
    setup_logging(config.logging.level, config.secrets)
    from gateway.service import Gateway  # after the config is known good: keeps `--help` fast

    print(_banner(config, str(path)), flush=True)
    gateway = Gateway(config)
    try:
        gateway.start()
        log.info("dcgate %s running (site %s, gateway %s)", __version__, config.site, config.gateway)
        healthy = gateway.run_until_stopped()
    finally:
        gateway.stop()
    if not healthy:
        log.error("dcgate stopped because a core thread died (see above); exit status 1")
        return 1
    log.info("dcgate stopped cleanly")
    return 0


def _banner(config: Config, path: str) -> str:
    mqtt = config.mqtt
    scheme = "mqtts" if mqtt.tls_ca else "mqtt"
    probes = ", ".join(f"{p.name} ({p.driver}, every {p.interval_s:g} s)" for p in config.probes) or "none"
    return "\n".join([
        f"dcgate {__version__}: site {config.site}, gateway {config.gateway}",
        f"  config:     {path}",
        f"  data:       {config.database_path}",
        f"  control:    {config.control_socket_path}",
        f"  forwarding: every event to {scheme}://{mqtt.host}:{mqtt.port} as {config.base_topic}/events/# "
        f"(QoS 1), status at {config.base_topic}/status",
        f"  probes:     {probes}",
        "  stop with Ctrl-C (or SIGTERM); inspect with `dcgate status` and `dcgate events --follow`",
    ])
