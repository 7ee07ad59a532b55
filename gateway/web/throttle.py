"""Sign-in throttling: failures counted per user name and per address; too many lock that name or address.

`attempts` failures within `window_s` lock for `window_s` (the contract: `login_attempts` within
`login_lockout_min` lock for `login_lockout_min`). Names count whether or not the account exists, so
a lock-out tells nothing about which names are real. A locked attempt must not be checked at all: ask
`locked` first, and call neither `failed` nor the password check while it answers more than 0.
Memory is bounded: stale counters are pruned, and past `max_keys` the least recently failing go.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

MAX_KEYS = 50_000
#: a stale-counter scan every this many failures (and whenever the cap is reached)
PRUNE_EVERY = 1_000
#: user names are cut to this before counting: a megabyte of name is one key, not a megabyte of memory
MAX_NAME = 64


@dataclass
class _Counter:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class LoginThrottle:
    def __init__(self, attempts: int, window_s: float, clock: Callable[[], float] = time.monotonic, *,
                 max_keys: int = MAX_KEYS) -> None:
        self.attempts, self.window_s, self.clock, self.max_keys = attempts, window_s, clock, max_keys
        self._lock = threading.Lock()
        self._counters: OrderedDict[tuple[str, str], _Counter] = OrderedDict()  # least recently failed first
        self._since_prune = 0

    def locked(self, user: str, address: str) -> float:
        """Seconds until this name and this address may try again; 0.0 if both may now."""
        now = self.clock()
        with self._lock:
            left = [c.locked_until - now for k in _keys(user, address) if (c := self._counters.get(k)) is not None]
        return max([0.0, *left])

    def failed(self, user: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            for key in _keys(user, address):
                counter = self._counters.get(key)
                if counter is None:
                    counter = self._counters[key] = _Counter()
                self._counters.move_to_end(key)
                while counter.failures and counter.failures[0] <= now - self.window_s:
                    counter.failures.popleft()
                counter.failures.append(now)
                if len(counter.failures) >= self.attempts:
                    counter.locked_until = now + self.window_s
                    counter.failures.clear()  # after the lock-out, a fresh count
            self._since_prune += 1
            if self._since_prune >= PRUNE_EVERY or len(self._counters) > self.max_keys:
                self._prune(now)

    def succeeded(self, user: str, address: str) -> None:
        """The user's count starts again; the address's does not (one address trying many names stays counted)."""
        with self._lock:
            self._counters.pop(_keys(user, address)[0], None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._counters)

    def _prune(self, now: float) -> None:
        self._since_prune = 0
        for key, counter in list(self._counters.items()):
            if counter.locked_until <= now and (not counter.failures or counter.failures[-1] <= now - self.window_s):
                del self._counters[key]
        while len(self._counters) > self.max_keys:
            self._counters.popitem(last=False)


def _keys(user: str, address: str) -> tuple[tuple[str, str], tuple[str, str]]:
    name = user.strip().lower()[:MAX_NAME] if isinstance(user, str) else ""
    return ("user", name), ("address", str(address))


__all__ = ["LoginThrottle"]
