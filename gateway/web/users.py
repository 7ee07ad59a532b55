"""Console accounts: names, roles, argon2id password hashes, and the `user.*` events (docs/console.md).

Every change goes through the store's one writer with its event, in one transaction (as in
access/people.py); reads use their own read-only connection, so `dcgate user list` works whether or
not the gateway runs. A password or a hash never leaves this module, except the hash into its own
column: not into an event, an exception message or a log line.

Decisions the contract leaves open:
- `verify` answers None for an unknown name or a wrong password, and raises `AccountDisabledError`
  for the *right* password of a disabled account, so the caller can log reason `disabled` and show
  the browser the same answer as for a wrong password. A caller that forgets to catch it fails closed.
- A hash made with other parameters is replaced at the next sign-in through the writer, recorded as
  `user.password_rehashed {user}` (the writer commits no change without an event).
- Linking is optional for every role. An `officer` account may only be linked to a person whose
  registry role is in `OFFICER_PERSON_ROLES` (VisitBook lets only officers approve), and a person
  is linked to at most one active account, so "approved by" always names one person at one keyboard.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from gateway.errors import DcgateError, InvalidValueError
from gateway.store.database import open_for_reading
from gateway.store.events import utc_timestamp

if TYPE_CHECKING:
    from gateway.config.models import Config
    from gateway.store.writer import StoreWriter

log = logging.getLogger(__name__)

ROLES = ("viewer", "staff", "officer", "admin")  # ordered: each may what the one before may, and more
SOURCE = "console"
NAME = re.compile(r"[a-z][a-z0-9._-]{1,31}")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 takes any length; megabytes posted to the sign-in form are not a password
_BY = re.compile(r"[^\x00-\x1f\x7f]{1,100}")
#: registry roles an `officer` account may be linked to: VisitBook lets only role officer approve
OFFICER_PERSON_ROLES = ("officer",)
#: OWASP's minimum for argon2id: about 50 ms on a Pi 4
TIME_COST, MEMORY_KIB, PARALLELISM = 2, 19 * 1024, 1


def default_hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_KIB, parallelism=PARALLELISM, type=Type.ID)


class UnknownUserError(InvalidValueError):
    """No console account by that name."""


class UserStateError(InvalidValueError):
    """The change does not fit the accounts as they are (a duplicate, the last admin, already disabled...)."""


class PasswordRuleError(InvalidValueError):
    """A password the rules refuse; `rule` names which (length, name, one_character, spaces, control, unchanged)."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def role_at_least(role: str | None, minimum: str) -> bool:
    """True when `role` may do what `minimum` may (an unknown role may nothing)."""
    return role in ROLES and minimum in ROLES and ROLES.index(role) >= ROLES.index(minimum)


def _shown(value: Any) -> str:
    return repr(value[:40] + "…" if isinstance(value, str) and len(value) > 40 else value)


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InvalidValueError(
            f"nama akun {_shown(name)} tidak sah / account name {_shown(name)} is not valid: 2 to 32 lower-case "
            "letters, digits, '.', '_' or '-', starting with a letter (e.g. rina or budi.s)")
    return name


def check_role(role: Any) -> str:
    if role not in ROLES:
        raise InvalidValueError(f"peran {_shown(role)} tidak dikenal / role {_shown(role)} is not one of "
                                f"{', '.join(ROLES)}")
    return str(role)


def check_by(by: Any) -> str:
    by = " ".join(by.split()) if isinstance(by, str) else ""
    if not _BY.fullmatch(by):
        raise InvalidValueError("'by' (siapa / who) harus 1-100 karakter / must be 1 to 100 printable characters")
    return by


def check_password(password: Any, name: str) -> str:
    """The contract's rules, each refused naming itself; the message never holds the password."""
    if not isinstance(password, str):
        raise PasswordRuleError("length", "kata sandi harus berupa teks / the password must be text")
    if len(password) < MIN_PASSWORD:
        raise PasswordRuleError("length", f"kata sandi minimal {MIN_PASSWORD} karakter / the password must be at "
                                          f"least {MIN_PASSWORD} characters. Fix: use a longer passphrase")
    if len(password) > MAX_PASSWORD:
        raise PasswordRuleError("length", f"kata sandi maksimal {MAX_PASSWORD} karakter / the password must be at "
                                          f"most {MAX_PASSWORD} characters")
    if len(set(password)) == 1:
        raise PasswordRuleError("one_character", "kata sandi tidak boleh satu karakter yang diulang / the password "
                                                 "must not be one character repeated")
    if name and name.lower() in password.lower():
        raise PasswordRuleError("name", "kata sandi tidak boleh memuat nama akun / the password must not contain "
                                        "the account name")
    if password != password.strip():
        raise PasswordRuleError("spaces", "kata sandi tidak boleh diawali atau diakhiri spasi / the password must "
                                          "not begin or end with a space (check the file's first line)")
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        raise PasswordRuleError("control", "kata sandi tidak boleh memuat karakter kendali / the password must not "
                                           "contain control characters")
    return password


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    name: str
    role: str
    person_id: str | None
    person_name: str | None  # from the access registry, when linked
    active: bool
    created_at: str
    created_by: str
    changed_at: str
    password_changed_at: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "person_id": self.person_id, "person_name": self.person_name,
                "active": self.active, "status": "active" if self.active else "disabled",
                "created_at": self.created_at, "created_by": self.created_by, "changed_at": self.changed_at,
                "password_changed_at": self.password_changed_at}


class AccountDisabledError(DcgateError):
    """The right password of a disabled account. Log reason `disabled`; never show the browser the difference."""

    exit_code = 2

    def __init__(self, user: ConsoleUser) -> None:
        super().__init__(f"akun {user.name!r} dinonaktifkan / account {user.name!r} is disabled")
        self.user = user


class UserBook:
    def __init__(self, db_path: Path, writer: StoreWriter | None, clock: Callable[[], float] = time.time,
                 *, hasher: PasswordHasher | None = None) -> None:
        self.db_path, self.writer, self.clock = db_path, writer, clock
        self.hasher = hasher or default_hasher()
        #: called after a committed change with (user, what): "password_changed", "role_changed", "disabled",
        #: "enabled" or "person_linked", so the console can end that user's sessions
        self.on_change: Callable[[str, str], None] | None = None
        self._dummy: str | None = None

    # -- reading ----------------------------------------------------------------------------------
    def _fetch(self, name: str) -> tuple[ConsoleUser, str] | None:
        conn = open_for_reading(self.db_path).conn
        try:
            row = conn.execute(_USER_SQL + " WHERE u.name = ?", (name,)).fetchone()
        finally:
            conn.close()
        return None if row is None else (_user(row), row[9])

    def get(self, name: str) -> ConsoleUser:
        found = self._fetch(check_name(name))
        if found is None:
            raise UnknownUserError(f"akun {name!r} tidak ada / no console account {name!r}. "
                                   "Fix: see `dcgate user list`")
        return found[0]

    def list(self) -> list[ConsoleUser]:
        conn = open_for_reading(self.db_path).conn
        try:
            return [_user(row) for row in conn.execute(_USER_SQL + " ORDER BY u.name")]
        finally:
            conn.close()

    def verify(self, name: Any, password: Any) -> ConsoleUser | None:
        """The account, if the password is right; None for a wrong password or an unknown name (which still
        costs one hash, so timing does not tell which names exist). Raises AccountDisabledError."""
        dummy = self._dummy_hash()  # made before anything is looked up: the first call costs the same for all
        key = name.strip().lower() if isinstance(name, str) else ""
        usable = isinstance(password, str) and 0 < len(password) <= MAX_PASSWORD
        found = self._fetch(key) if NAME.fullmatch(key) else None
        if found is None or not usable:
            self._matches(dummy, password if usable else "-")
            return None
        user, stored = found
        if not self._matches(stored, password):
            return None
        if not user.active:
            raise AccountDisabledError(user)
        if self._needs_rehash(stored):
            self._rehash(user.name, stored, password)
        return user

    # -- changing ---------------------------------------------------------------------------------
    def add(self, name: str, role: str, password: str, by: str, person: str | None = None) -> ConsoleUser:
        name, role, by = check_name(name), check_role(role), check_by(by)
        check_password(password, name)
        person_id = self._person_id(person) if person else None
        digest, now = self.hasher.hash(password), self._now()

        def insert(conn: sqlite3.Connection) -> None:
            if conn.execute("SELECT 1 FROM console_users WHERE name = ?", (name,)).fetchone():
                raise UserStateError(f"akun {name!r} sudah ada / account {name!r} already exists. Fix: choose "
                                     f"another name, or change it with `dcgate user passwd|role|enable {name}`")
            if person_id is not None:
                _check_link(conn, name, person_id, role)
            conn.execute("INSERT INTO console_users (name, role, password_hash, person_id, active, created_at, "
                         "created_by, changed_at, password_changed_at) VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?)",
                         (name, role, digest, person_id, now, by, now, now))

        fields: dict[str, Any] = {"user": name, "role": role, "by": by}
        if person_id is not None:
            fields["person"] = person_id
        self._writer().change("user.added", SOURCE, fields, insert)
        log.info("console account %s (%s) added by %s", name, role, by)
        return self.get(name)

    def set_password(self, name: str, password: str, by: str) -> ConsoleUser:
        name, by = check_name(name), check_by(by)
        check_password(password, name)
        found = self._fetch(name)
        if found is None:
            raise UnknownUserError(f"akun {name!r} tidak ada / no console account {name!r}")
        if self._matches(found[1], password):
            raise PasswordRuleError("unchanged", "kata sandi baru sama dengan yang sekarang / the new password is "
                                                 "the current one. Fix: choose another")
        digest, now = self.hasher.hash(password), self._now()

        def update(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE console_users SET password_hash = ?, changed_at = ?, password_changed_at = ? "
                         "WHERE name = ?", (digest, now, now, name))

        return self._commit("user.password_changed", {"user": name, "by": by}, update, name)

    def set_role(self, name: str, role: str, by: str) -> ConsoleUser:
        user, role, by = self.get(name), check_role(role), check_by(by)
        if user.role == role:
            raise UserStateError(f"akun {user.name!r} sudah berperan {role} / account {user.name!r} is already {role}")

        def update(conn: sqlite3.Connection) -> None:
            current, active, person_id = _state(conn, user.name)
            if current != user.role:  # the event's `from` must be the truth
                raise UserStateError(f"akun {user.name!r} baru saja diubah; ulangi / account {user.name!r} changed "
                                     "meanwhile; run the command again")
            if current == "admin" and active:
                _not_last_admin(conn, user.name, "menurunkan / demote")
            if role == "officer" and person_id is not None:
                _officer_rule(conn, person_id)
            conn.execute("UPDATE console_users SET role = ?, changed_at = ? WHERE name = ?",
                         (role, self._now(), user.name))

        fields = {"user": user.name, "from": user.role, "to": role, "by": by}
        return self._commit("user.role_changed", fields, update, user.name)

    def set_active(self, name: str, active: bool, by: str) -> ConsoleUser:
        user, by = self.get(name), check_by(by)
        word = "aktif / active" if active else "nonaktif / disabled"
        if user.active == active:
            raise UserStateError(f"akun {user.name!r} sudah {word} / account {user.name!r} is already so")

        def update(conn: sqlite3.Connection) -> None:
            role, now_active, person_id = _state(conn, user.name)
            if now_active == active:
                raise UserStateError(f"akun {user.name!r} sudah {word} / account {user.name!r} is already so")
            if not active and role == "admin":
                _not_last_admin(conn, user.name, "menonaktifkan / disable")
            if active and person_id is not None:
                _one_account(conn, user.name, person_id)
            conn.execute("UPDATE console_users SET active = ?, changed_at = ? WHERE name = ?",
                         (int(active), self._now(), user.name))

        kind = "user.enabled" if active else "user.disabled"
        return self._commit(kind, {"user": user.name, "by": by}, update, user.name)

    def link_person(self, name: str, person: str | None, by: str) -> ConsoleUser:
        """Link the account to a person of the access registry (id or NIP), or unlink it with None."""
        user, by = self.get(name), check_by(by)
        person_id = self._person_id(person) if person else None
        if person_id == user.person_id:
            raise UserStateError(f"akun {user.name!r} sudah begitu / account {user.name!r} is already linked so")

        def update(conn: sqlite3.Connection) -> None:
            role, _active, _old = _state(conn, user.name)
            if person_id is not None:
                _check_link(conn, user.name, person_id, role)
            conn.execute("UPDATE console_users SET person_id = ?, changed_at = ? WHERE name = ?",
                         (person_id, self._now(), user.name))

        fields = {"user": user.name, "person": person_id, "from": user.person_id, "by": by}
        return self._commit("user.person_linked", fields, update, user.name)

    # -- plumbing ---------------------------------------------------------------------------------
    def _commit(self, kind: str, fields: Mapping[str, Any], inside: Callable[[sqlite3.Connection], None],
                name: str) -> ConsoleUser:
        self._writer().change(kind, SOURCE, fields, inside)
        log.info("console account %s: %s by %s", name, kind, fields.get("by"))
        what = kind.split(".", 1)[1]
        if self.on_change is not None:
            try:
                self.on_change(name, what)
            except Exception:  # the change is committed; ending sessions is the hook's job, and it says so
                log.exception("console account %s: the on_change hook failed after %s", name, kind)
        return self.get(name)

    def _person_id(self, ref: str) -> str:
        from access.people import PeopleRegistry, UnknownPersonError

        try:
            person = PeopleRegistry(self.db_path, None, None).get(ref)
        except UnknownPersonError as exc:
            raise InvalidValueError(f"orang {ref!r} tidak ditemukan di daftar akses / {exc}") from None
        if person.revoked:
            raise UserStateError(f"akses {person.name} ({person.id}) sudah dicabut / {person.name} is revoked and "
                                 "cannot be linked to an account")
        return person.id

    def _matches(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def _needs_rehash(self, stored: str) -> bool:
        try:
            return self.hasher.check_needs_rehash(stored)
        except (InvalidHashError, ValueError):
            return True

    def _rehash(self, name: str, old: str, password: str) -> None:
        if self.writer is None:
            return
        new = self.hasher.hash(password)

        def update(conn: sqlite3.Connection) -> None:
            if conn.execute("UPDATE console_users SET password_hash = ? WHERE name = ? AND password_hash = ?",
                            (new, name, old)).rowcount != 1:
                raise UserStateError(f"kata sandi {name!r} baru saja diganti / the password of {name!r} changed "
                                     "meanwhile; its new hash stands")

        try:
            self.writer.change("user.password_rehashed", SOURCE, {"user": name}, update)
        except DcgateError as exc:  # sign-in still succeeds; the old hash is tried again next time
            log.warning("console account %s: password hash not upgraded: %s", name, exc)

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self.hasher.hash("dcgate-no-such-account")
        return self._dummy

    def _now(self) -> str:
        return utc_timestamp(int(self.clock() * 1_000_000_000))

    def _writer(self) -> StoreWriter:
        if self.writer is None:
            raise DcgateError("daftar akun ini hanya-baca / this account book is read-only")
        return self.writer


# -- checks inside the writer's transaction (so two changes cannot both pass them) --------------------
def _state(conn: sqlite3.Connection, name: str) -> tuple[str, bool, str | None]:
    row = conn.execute("SELECT role, active, person_id FROM console_users WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise UnknownUserError(f"akun {name!r} tidak ada / no console account {name!r}")
    return row[0], bool(row[1]), row[2]


def _not_last_admin(conn: sqlite3.Connection, name: str, doing: str) -> None:
    others = conn.execute("SELECT count(*) FROM console_users WHERE role = 'admin' AND active = 1 AND name != ?",
                          (name,)).fetchone()[0]
    if not others:
        raise UserStateError(
            f"tidak dapat {doing.split(' / ')[0]} {name!r}: admin aktif terakhir / cannot {doing.split(' / ')[1]} "
            f"{name!r}: it is the last active admin, nobody could manage accounts. Fix: add or enable another admin "
            "first (dcgate user add NAME --role admin ...)")


def _officer_rule(conn: sqlite3.Connection, person_id: str) -> None:
    row = conn.execute("SELECT name, role FROM people WHERE id = ?", (person_id,)).fetchone()
    if row is not None and row[1] not in OFFICER_PERSON_ROLES:
        raise UserStateError(
            f"akun officer hanya untuk penanggung jawab; {row[0]} berperan {row[1]} / an officer account is linked "
            f"to an officer of the access registry, and {row[0]} is {row[1]} (only officers approve visits). "
            "Fix: link an officer, or give this account role staff")


def _one_account(conn: sqlite3.Connection, name: str, person_id: str) -> None:
    row = conn.execute("SELECT name FROM console_users WHERE person_id = ? AND active = 1 AND name != ?",
                       (person_id, name)).fetchone()
    if row is not None:
        raise UserStateError(f"orang ini sudah tertaut ke akun aktif {row[0]!r} / this person is already linked to "
                             f"the active account {row[0]!r}. Fix: disable that account first")


def _check_link(conn: sqlite3.Connection, name: str, person_id: str, role: str) -> None:
    row = conn.execute("SELECT revoked_at FROM people WHERE id = ?", (person_id,)).fetchone()
    if row is None or row[0] is not None:
        raise UserStateError(f"akses orang {person_id} baru saja dicabut / person {person_id} was revoked "
                             "meanwhile; it cannot be linked")
    if role == "officer":
        _officer_rule(conn, person_id)
    _one_account(conn, name, person_id)


_USER_SQL = ("SELECT u.name, u.role, u.person_id, p.name, u.active, u.created_at, u.created_by, u.changed_at, "
             "u.password_changed_at, u.password_hash FROM console_users u LEFT JOIN people p ON p.id = u.person_id")


def _user(row: tuple[Any, ...]) -> ConsoleUser:
    return ConsoleUser(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6], row[7], row[8])


# -- the desk: control-socket operations ------------------------------------------------------------
class UserDesk:
    def __init__(self, book: UserBook) -> None:
        self.book = book

    @classmethod
    def offline(cls, config: Config, writer: StoreWriter | None) -> UserDesk:
        return cls(UserBook(config.database_path, writer))

    def handlers(self) -> dict[str, Callable[[Mapping[str, Any]], Any]]:
        book = self.book
        return {
            "user.add": lambda p: book.add(_text(p, "name"), _text(p, "role"), _secret(p), _text(p, "by"),
                                           _text(p, "person", required=False) or None).as_dict(),
            "user.list": lambda _p: [user.as_dict() for user in book.list()],
            "user.passwd": lambda p: book.set_password(_text(p, "name"), _secret(p), _text(p, "by")).as_dict(),
            "user.role": self._role,
            "user.disable": lambda p: book.set_active(_text(p, "name"), False, _text(p, "by")).as_dict(),
            "user.enable": lambda p: book.set_active(_text(p, "name"), True, _text(p, "by")).as_dict(),
        }

    def _role(self, p: Mapping[str, Any]) -> dict[str, Any]:
        before = self.book.get(_text(p, "name")).role
        reply = self.book.set_role(_text(p, "name"), _text(p, "role"), _text(p, "by")).as_dict()
        reply["from"] = before
        return reply


def _text(p: Mapping[str, Any], key: str, *, required: bool = True) -> str:
    value = p.get(key, "")
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidValueError(f"parameter {key} harus diisi teks / {key} must be given as text")
    return value.strip()


def _secret(p: Mapping[str, Any]) -> str:
    value = p.get("password")
    if not isinstance(value, str) or not value:
        raise InvalidValueError("parameter password harus diisi teks / password must be given as text")
    return value  # never stripped: the rules refuse leading or trailing spaces instead


__all__ = ["ROLES", "AccountDisabledError", "ConsoleUser", "PasswordRuleError", "UnknownUserError", "UserBook",
           "UserDesk", "UserStateError", "check_password", "default_hasher", "role_at_least"]
