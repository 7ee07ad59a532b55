"""Service logging to stderr (journald), with secrets masked in everything written."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

MASK = "********"


class RedactingFormatter(logging.Formatter):
    """Masks every known secret in the final text, tracebacks included, whatever logged it."""

    def __init__(self, fmt: str, secrets: Iterable[str]) -> None:
        super().__init__(fmt)
        self._secrets = [s for s in secrets if s]

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text


def setup_logging(level: str, secrets: Iterable[str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pymodbus logs an ERROR for every unanswered request; the probe driver reports the failure
    # itself (once, with the Modbus detail and a wiring hint), so its own chatter is noise
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
