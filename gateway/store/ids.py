"""Time-ordered event ids: UUIDv7 (RFC 9562), monotonic within one process.

A Raspberry Pi has no real-time clock and may step its clock backwards after NTP syncs,
so the generator never goes below the last timestamp it used: ids stay in commit order.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_RAND_BITS = 74  # 12 bits rand_a + 62 bits rand_b


class Uuid7Generator:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0

    def __call__(self) -> uuid.UUID:
        return uuid.UUID(int=self._next_int())

    def text(self) -> str:
        """The next id in its canonical text form, without building a UUID object (hot path)."""
        h = f"{self._next_int():032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def _next_int(self) -> int:
        with self._lock:
            now_ms = time.time_ns() // 1_000_000
            if now_ms > self._last_ms:
                self._last_ms = now_ms
                # random start, top bit clear so thousands of ids fit in the same millisecond
                self._counter = int.from_bytes(os.urandom(10), "big") >> (80 - _RAND_BITS + 1)
            else:
                self._counter += 1
                if self._counter >> _RAND_BITS:  # exhausted: borrow the next millisecond
                    self._last_ms += 1
                    self._counter = 0
            ms, counter = self._last_ms, self._counter
        rand_a = counter >> 62
        rand_b = counter & ((1 << 62) - 1)
        return (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b


uuid7 = Uuid7Generator()


def uuid7_time_ms(value: uuid.UUID | str) -> int:
    """The Unix time in milliseconds encoded in a UUIDv7."""
    return uuid.UUID(str(value)).int >> 80
