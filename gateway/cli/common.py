"""Helpers shared by the CLI commands: which config, time arguments, and writing with the gateway stopped."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.config.loader import default_config_path, load_config
from gateway.config.models import Config
from gateway.errors import InvalidValueError

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def config_path(args: argparse.Namespace) -> Path:
    """--config after the command, else before it, else $DCGATE_CONFIG, else /etc/dcgate/dcgate.toml."""
    given = getattr(args, "config", None)
    return Path(given) if given else default_config_path()


def load(args: argparse.Namespace) -> Config:
    return load_config(config_path(args))


def parse_time(text: str, *, now: datetime | None = None) -> str:
    """'15m', '2h', '7d' ago, or an ISO 8601 time (no zone means this machine's local time).

    Returns the store's UTC text form, which compares correctly with event timestamps.
    """
    now = now or datetime.now(UTC)
    match = _RELATIVE.match(text.strip())
    if match:
        moment = now - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    else:
        try:
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidValueError(
                f"time {text!r} not understood; use e.g. 15m, 2h, 7d, 2026-11-21 or 2026-11-21T08:30+07:00"
            ) from None
        if moment.tzinfo is None:
            moment = moment.astimezone()  # local time of this machine
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@contextmanager
def offline_writer(config: Config) -> Iterator[Any]:
    """The store's one writer, for a CLI change while the gateway is stopped.

    Takes the data directory's lock first: if the gateway started meanwhile this refuses, so nothing is
    ever written by two writers.
    """
    from gateway.datadir import DataDirLock
    from gateway.store.writer import StoreWriter

    lock = DataDirLock(config.data_dir)
    lock.acquire()
    try:
        writer = StoreWriter(config.database_path, synchronous=config.store.synchronous, outbox=config.outbox)
        writer.start()
        try:
            yield writer
        finally:
            writer.stop()
    finally:
        lock.release()


def run_offline(config: Config, desk: Callable[[Any], Any], op: str, params: dict[str, Any]) -> Any:
    """Run control operation `op` on the desk `desk(writer)` builds, with the gateway stopped."""
    with offline_writer(config) as writer:
        return desk(writer).handlers()[op](params)
