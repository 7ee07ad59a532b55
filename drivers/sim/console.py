"""The command loop of the device emulators' `python -m` entry points (technicians rehearse with them)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Protocol, TextIO

from drivers.errors import InvalidValueError


class _Emulator(Protocol):
    def stop(self) -> None: ...


def serve_commands(emulator: _Emulator, command: Callable[[Any, str], str | None], ready: str,
                   stream: TextIO | None = None) -> int:
    """Print `ready`, then answer one command per input line until end of input or Ctrl-C; stop the emulator."""
    print(ready, flush=True)
    try:
        for line in stream or sys.stdin:
            try:
                reply = command(emulator, line)
            except (InvalidValueError, ValueError) as exc:  # a typo must not end the rehearsal
                reply = f"error: {exc}"
            if reply:
                print(reply, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0
