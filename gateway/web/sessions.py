"""Console sessions: server-side, in memory, with idle and absolute expiry and a CSRF token each.

The browser holds a random token (cookie `dcgate_session`); only its SHA-256 is kept here, so a
memory dump or a debug print of this store cannot be replayed as a cookie. Sessions do not survive a
gateway restart. The anonymous session the sign-in form gets is capped in number, oldest dropped
first, so a flood of GETs cannot fill the Pi's memory.

How a signed-in session's end is reported, exactly once each (for `console.logout`):
- found expired by `get`: remembered, and `expired_reason(token)` answers (user, "idle"|"expired")
  when that browser comes back (a bounded memory; unanswered ones are forgotten);
- removed by `sweep()`: returned by it, for the caller to record;
- `end` and `end_user`: the caller asked, the caller records.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

ANONYMOUS_CAP = 10_000
#: ended sessions remembered for `expired_reason`
ENDED_MEMORY = 1_000
#: a cookie longer than this is not one of ours; refused before hashing
MAX_TOKEN = 128


@dataclass
class Session:
    user: str | None  # None: the anonymous session of the sign-in form
    role: str | None
    address: str
    csrf: str
    created: float  # the clock's seconds; the absolute limit counts from here (sign-in makes a new one)
    last_seen: float
    lang: str = "id"

    @property
    def signed_in(self) -> bool:
        return self.user is not None


def _key(token: object) -> str | None:
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN:
        return None
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class SessionStore:
    def __init__(self, idle_s: float, max_s: float, clock: Callable[[], float] = time.monotonic, *,
                 anonymous_cap: int = ANONYMOUS_CAP) -> None:
        self.idle_s, self.max_s, self.clock, self.anonymous_cap = idle_s, max_s, clock, anonymous_cap
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}  # sha256(token) -> session
        self._anonymous: OrderedDict[str, None] = OrderedDict()  # oldest first, for the cap
        self._ended: OrderedDict[str, tuple[str, str]] = OrderedDict()  # sha256(token) -> (user, reason)

    def new(self, address: str, lang: str = "id") -> tuple[str, Session]:
        """A new anonymous session (the sign-in form's): its token, for the cookie, and the session."""
        token, now = secrets.token_urlsafe(32), self.clock()
        session = Session(None, None, address, secrets.token_urlsafe(32), now, now, lang)
        key = _key(token)
        assert key is not None
        with self._lock:
            self._sessions[key] = session
            self._anonymous[key] = None
            while len(self._anonymous) > self.anonymous_cap:
                oldest, _ = self._anonymous.popitem(last=False)
                self._sessions.pop(oldest, None)
        return token, session

    def get(self, token: str, *, touch: bool = True) -> Session | None:
        """The live session of this token, or None. `touch` counts this as activity (False for polling)."""
        key = _key(token)
        if key is None:
            return None
        now = self.clock()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            reason = self._reason(session, now)
            if reason is not None:
                self._drop(key)
                if session.user is not None:
                    self._ended[key] = (session.user, reason)
                    while len(self._ended) > ENDED_MEMORY:
                        self._ended.popitem(last=False)
                return None
            if touch:
                session.last_seen = now
            return session

    def expired_reason(self, token: str) -> tuple[str, str] | None:
        """(user, "idle" | "expired") if `get` just found this token's signed-in session ended; asked once."""
        key = _key(token)
        with self._lock:
            return self._ended.pop(key, None) if key is not None else None

    def sign_in(self, token: str, user: str, role: str, address: str | None = None) -> str:
        """A new token for the signed-in session (the sign-in form's id dies), with a new CSRF token.
        The address and language carry over from the form's session unless `address` is given."""
        new_token, now = secrets.token_urlsafe(32), self.clock()
        old_key, new_key = _key(token), _key(new_token)
        assert new_key is not None
        with self._lock:
            old = self._drop(old_key) if old_key is not None else None
            lang = old.lang if old is not None else "id"
            address = address or (old.address if old is not None else "?")
            self._sessions[new_key] = Session(user, role, address, secrets.token_urlsafe(32), now, now, lang)
        return new_token

    def end(self, token: str) -> Session | None:
        """Sign out (reason `requested`): the session removed, returned for the record."""
        key = _key(token)
        with self._lock:
            return self._drop(key) if key is not None else None

    def end_user(self, name: str) -> int:
        """End every session of this account (disabled, demoted, password changed); how many ended."""
        with self._lock:
            keys = [key for key, session in self._sessions.items() if session.user == name]
            for key in keys:
                self._drop(key)
        return len(keys)

    def sweep(self) -> list[tuple[Session, str]]:
        """Remove every ended session; returns the signed-in ones with their reason ("idle" | "expired")."""
        now = self.clock()
        ended: list[tuple[Session, str]] = []
        with self._lock:
            for key, session in list(self._sessions.items()):
                reason = self._reason(session, now)
                if reason is not None:
                    self._drop(key)
                    if session.user is not None:
                        ended.append((session, reason))
        return ended

    def check_csrf(self, session: Session | None, presented: object) -> bool:
        if session is None or not isinstance(presented, str) or not presented:
            return False
        return hmac.compare_digest(session.csrf.encode(), presented.encode("utf-8", "replace"))

    def counts(self) -> dict[str, int]:
        with self._lock:
            anonymous = len(self._anonymous)
            return {"anonymous": anonymous, "signed_in": len(self._sessions) - anonymous}

    # -- inside the lock ------------------------------------------------------------------------------
    def _reason(self, session: Session, now: float) -> str | None:
        if now - session.created >= self.max_s:
            return "expired"
        if now - session.last_seen >= self.idle_s:
            return "idle"
        return None

    def _drop(self, key: str) -> Session | None:
        self._anonymous.pop(key, None)
        return self._sessions.pop(key, None)


__all__ = ["ANONYMOUS_CAP", "Session", "SessionStore"]
