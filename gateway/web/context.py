"""What the console's pages work with: the gateway's own operations, its status, accounts and sessions.

The console never writes the store itself: every change is one of the control operations the CLI
uses (`ops`), so a visit approved on the phone and one approved at the shell are the same event.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.config.models import Config
from gateway.errors import InvalidValueError

Op = Callable[[Mapping[str, Any]], Any]
Emit = Callable[[str, str, Mapping[str, Any]], Any]


@dataclass
class ConsoleContext:
    config: Config
    ops: Mapping[str, Op]
    status: Callable[[], dict[str, Any]]
    users: Any  # gateway.web.users.UserBook
    sessions: Any  # gateway.web.sessions.SessionStore
    throttle: Any  # gateway.web.throttle.LoginThrottle
    emit: Emit
    #: one-shot messages shown on the next page a session sees, keyed by the session's CSRF token
    flashes: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    _flash_lock: threading.Lock = field(default_factory=threading.Lock)

    def call(self, op: str, params: Mapping[str, Any]) -> Any:
        handler = self.ops.get(op)
        if handler is None:
            raise InvalidValueError(f"operasi {op!r} tidak tersedia di gateway ini / operation {op!r} is not "
                                    "available on this gateway (is the device configured?)")
        return handler(params)

    def has(self, op: str) -> bool:
        return op in self.ops

    def flash(self, key: str, level: str, message: str) -> None:
        with self._flash_lock:
            if len(self.flashes) > 5000:  # sessions that never came back
                self.flashes.clear()
            self.flashes.setdefault(key, []).append((level, message))

    def take_flashes(self, key: str) -> list[tuple[str, str]]:
        with self._flash_lock:
            return self.flashes.pop(key, [])
