"""Console accounts, sessions and sign-in throttling (docs/console.md), and `dcgate user` with the gateway stopped.

Everything is real: a StoreWriter on a SQLite file in tmp_path, the access registry for person links,
argon2id from argon2-cffi, the events read back from the chain. Clocks are injected, never slept on.
"""

from __future__ import annotations

import argparse
import getpass
import io
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher, Type

from access.people import PeopleRegistry
from gateway.cli import user_cmd
from gateway.errors import DcgateError, InvalidValueError
from gateway.store.database import open_for_reading
from gateway.store.events import Event, iter_events
from gateway.store.writer import StoreWriter
from gateway.web.sessions import SessionStore
from gateway.web.throttle import LoginThrottle
from gateway.web.users import (
    ROLES,
    AccountDisabledError,
    PasswordRuleError,
    UnknownUserError,
    UserBook,
    UserDesk,
    UserStateError,
    check_password,
    role_at_least,
)
from tests.support.configs import base_config, write_config
from tests.support.ports import free_port

PASSWORD = "kopi-tubruk-2026"
OTHER = "teh-manis-hangat-77"
OFFICER_NIP = "198503122010121001"
STAFF_NIP = "199001012015012002"
NOW = 1_790_000_000.0  # 2026-09-21T14:13:20Z


class Clock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[StoreWriter]:
    store = StoreWriter(tmp_path / "data" / "dcgate.db", synchronous="normal")
    store.start()
    yield store
    store.stop()


@pytest.fixture
def book(writer: StoreWriter) -> UserBook:
    return UserBook(writer.path, writer, clock=lambda: NOW)


@pytest.fixture
def people(writer: StoreWriter) -> PeopleRegistry:
    return PeopleRegistry(writer.path, writer, None)


def events(db_path: Path, kind: str = "user.*") -> list[Event]:
    db = open_for_reading(db_path)
    try:
        return list(iter_events(db, kind=kind))
    finally:
        db.close()


def stored_hash(db_path: Path, name: str) -> str:
    db = open_for_reading(db_path)
    try:
        return db.conn.execute("SELECT password_hash FROM console_users WHERE name = ?", (name,)).fetchone()[0]
    finally:
        db.close()


# -- accounts -----------------------------------------------------------------------------------------

def test_add_list_and_verify(book: UserBook, writer: StoreWriter) -> None:
    user = book.add("rina", "admin", PASSWORD, by="cli:root")
    assert (user.name, user.role, user.active, user.person_id, user.created_by) == ("rina", "admin", True, None,
                                                                                    "cli:root")
    assert user.created_at == user.changed_at == user.password_changed_at == "2026-09-21T14:13:20.000Z"
    assert {"password", "password_hash"}.isdisjoint(user.as_dict()) and "argon2" not in str(user.as_dict())
    assert [u.name for u in book.list()] == ["rina"]
    assert book.verify("rina", PASSWORD) == user
    assert book.verify(" Rina ", PASSWORD) == user  # what a phone's keyboard capitalises
    assert book.verify("rina", PASSWORD + "x") is None
    assert book.verify("nobody", PASSWORD) is None
    assert book.verify("rina", "") is None and book.verify("rina", None) is None
    assert book.verify("Not a name!", PASSWORD) is None
    [added] = events(writer.path)
    assert (added.kind, added.source, added.fields) == ("user.added", "console",
                                                        {"user": "rina", "role": "admin", "by": "cli:root"})
    with pytest.raises(UnknownUserError, match="no console account 'nobody'"):
        book.get("nobody")


def test_stored_hash_is_argon2id_with_the_contract_parameters(book: UserBook) -> None:
    book.add("rina", "admin", PASSWORD, by="t")
    assert stored_hash(book.db_path, "rina").startswith("$argon2id$v=19$m=19456,t=2,p=1$")


@pytest.mark.parametrize(("password", "rule", "words"), [
    ("pendek-123", None, None),  # exactly 10: accepted
    ("pendek-12", "length", "at least 10 characters"),
    ("x" * 1025, "length", "at most 1024"),
    ("aaaaaaaaaaaa", "one_character", "one character repeated"),
    ("RINA-kopi-2026", "name", "must not contain the account name"),
    (" kopi-tubruk-2026", "spaces", "begin or end with a space"),
    ("kopi-tubruk-2026 ", "spaces", "begin or end with a space"),
    ("kopi\ttubruk2026", "control", "control characters"),
])
def test_password_rules_each_refused_naming_the_rule(password: str, rule: str | None, words: str | None) -> None:
    if rule is None:
        assert check_password(password, "rina") == password
        return
    with pytest.raises(PasswordRuleError) as caught:
        check_password(password, "rina")
    assert caught.value.rule == rule and words in str(caught.value)
    assert isinstance(caught.value, InvalidValueError) and caught.value.exit_code == 2
    assert password.strip() not in str(caught.value)
    assert str(caught.value).index("/") > 0  # Indonesian first, then English


def test_refused_password_writes_nothing(book: UserBook, writer: StoreWriter) -> None:
    with pytest.raises(PasswordRuleError, match="at least 10"):
        book.add("rina", "admin", "short", by="t")
    assert book.list() == [] and events(writer.path) == []


@pytest.mark.parametrize("name", ["Rina", "1rina", "r", "r" * 33, "rina smith", "rina\n", "rína", "", None])
def test_account_names_are_checked(book: UserBook, name: Any) -> None:
    with pytest.raises(InvalidValueError, match=r"account name .* is not valid: 2 to 32 lower-case"):
        book.add(name, "staff", PASSWORD, by="t")


def test_roles_are_checked_and_ordered(book: UserBook) -> None:
    with pytest.raises(InvalidValueError, match="role 'root' is not one of viewer, staff, officer, admin"):
        book.add("rina", "root", PASSWORD, by="t")
    assert ROLES == ("viewer", "staff", "officer", "admin")
    assert role_at_least("admin", "officer") and role_at_least("staff", "staff")
    assert not role_at_least("staff", "officer") and not role_at_least(None, "viewer")
    assert not role_at_least("root", "viewer")


def test_duplicates_are_refused(book: UserBook, writer: StoreWriter) -> None:
    book.add("rina", "admin", PASSWORD, by="t")
    with pytest.raises(UserStateError, match="account 'rina' already exists"):
        book.add("rina", "staff", OTHER, by="t")
    assert len(events(writer.path, "user.added")) == 1 and book.get("rina").role == "admin"


def test_the_last_active_admin_is_neither_disabled_nor_demoted(book: UserBook) -> None:
    book.add("rina", "admin", PASSWORD, by="t")
    with pytest.raises(UserStateError, match="last active admin"):
        book.set_role("rina", "officer", by="t")
    with pytest.raises(UserStateError, match="last active admin"):
        book.set_active("rina", False, by="t")
    book.add("budi", "admin", OTHER, by="t")
    book.set_active("budi", False, by="t")  # a disabled admin manages nothing: rina is still the last
    with pytest.raises(UserStateError, match="cannot demote 'rina'"):
        book.set_role("rina", "staff", by="t")
    book.set_active("budi", True, by="t")
    assert book.set_role("rina", "staff", by="t").role == "staff"
    with pytest.raises(UserStateError, match="cannot disable 'budi'"):
        book.set_active("budi", False, by="t")


def test_role_and_active_changes_are_recorded(book: UserBook, writer: StoreWriter) -> None:
    book.add("rina", "admin", PASSWORD, by="t")
    book.add("andi", "viewer", OTHER, by="t")
    book.set_role("andi", "staff", by="cli:rina")
    with pytest.raises(UserStateError, match="already staff"):
        book.set_role("andi", "staff", by="t")
    book.set_active("andi", False, by="rina")
    with pytest.raises(UserStateError, match="already so"):
        book.set_active("andi", False, by="rina")
    book.set_active("andi", True, by="rina")
    got = [(e.kind, e.fields) for e in events(writer.path)][2:]
    assert got == [("user.role_changed", {"user": "andi", "from": "viewer", "to": "staff", "by": "cli:rina"}),
                   ("user.disabled", {"user": "andi", "by": "rina"}),
                   ("user.enabled", {"user": "andi", "by": "rina"})]


def test_disabled_account_is_told_apart_only_with_the_right_password(book: UserBook) -> None:
    book.add("rina", "admin", PASSWORD, by="t")
    book.add("andi", "staff", OTHER, by="t")
    book.set_active("andi", False, by="rina")
    with pytest.raises(AccountDisabledError) as caught:
        book.verify("andi", OTHER)
    assert caught.value.user.name == "andi" and OTHER not in str(caught.value)
    assert book.verify("andi", "wrong-password-1") is None  # a guesser learns nothing about the state
    book.set_active("andi", True, by="rina")
    assert book.verify("andi", OTHER) is not None


def test_password_change(book: UserBook, writer: StoreWriter) -> None:
    book.add("rina", "admin", PASSWORD, by="t")
    with pytest.raises(PasswordRuleError, match="the new password is the current one") as caught:
        book.set_password("rina", PASSWORD, by="t")
    assert caught.value.rule == "unchanged"
    book.set_password("rina", OTHER, by="cli:root")
    assert book.verify("rina", PASSWORD) is None and book.verify("rina", OTHER) is not None
    assert events(writer.path, "user.password_changed")[0].fields == {"user": "rina", "by": "cli:root"}
    with pytest.raises(UnknownUserError):
        book.set_password("nobody", OTHER, by="t")


def test_on_change_is_called_after_each_change(book: UserBook) -> None:
    calls: list[tuple[str, str]] = []
    book.on_change = lambda user, what: calls.append((user, what))
    book.add("rina", "admin", PASSWORD, by="t")
    book.add("andi", "staff", OTHER, by="t")
    book.set_password("andi", "sate-ayam-madura", by="t")
    book.set_role("andi", "viewer", by="t")
    book.set_active("andi", False, by="t")
    book.set_active("andi", True, by="t")
    assert calls == [("andi", "password_changed"), ("andi", "role_changed"), ("andi", "disabled"),
                     ("andi", "enabled")]

    def broken(user: str, what: str) -> None:
        raise RuntimeError("hook failed")

    book.on_change = broken
    assert book.set_role("andi", "staff", by="t").role == "staff"  # committed; the hook's failure is logged


def test_a_hash_with_old_parameters_is_replaced_at_sign_in(writer: StoreWriter) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1, type=Type.ID)
    UserBook(writer.path, writer, hasher=weak).add("rina", "admin", PASSWORD, by="t")
    old = stored_hash(writer.path, "rina")
    assert "m=8192,t=1" in old
    book = UserBook(writer.path, writer)
    assert book.verify("rina", "wrong-password-1") is None and stored_hash(writer.path, "rina") == old
    assert book.verify("rina", PASSWORD) is not None
    assert stored_hash(writer.path, "rina").startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert [e.fields for e in events(writer.path, "user.password_rehashed")] == [{"user": "rina"}]
    assert book.verify("rina", PASSWORD) is not None
    assert len(events(writer.path, "user.password_rehashed")) == 1  # once
    read_only = UserBook(writer.path, None, hasher=weak)  # a reader never writes: still signs in
    assert read_only.verify("rina", PASSWORD) is not None


def test_no_password_or_hash_outside_its_column(book: UserBook, writer: StoreWriter,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1, type=Type.ID)
    UserBook(writer.path, writer, hasher=weak).add("rina", "admin", PASSWORD, by="t")
    book.verify("rina", PASSWORD)  # rehashed
    book.set_password("rina", OTHER, by="t")
    book.verify("rina", OTHER)
    book.verify("ghost", "ghost-password-99")
    writer.checkpoint()
    hashes = [stored_hash(writer.path, "rina")]
    db = open_for_reading(writer.path)
    try:
        payloads = [row[0] for row in db.conn.execute("SELECT payload FROM events")]
    finally:
        db.close()
    assert payloads and not [p for p in payloads if "argon2" in p or any(h in p for h in hashes)]
    for secret in (PASSWORD, OTHER, "ghost-password-99"):
        assert all(secret not in p for p in payloads)
        for path in writer.path.parent.iterdir():
            assert secret.encode() not in path.read_bytes(), path
        assert secret not in caplog.text
    assert "argon2" not in caplog.text


# -- person links -------------------------------------------------------------------------------------

def test_accounts_link_to_people_of_the_registry(book: UserBook, people: PeopleRegistry,
                                                 writer: StoreWriter) -> None:
    officer = people.add("Siti Rahma", OFFICER_NIP, "officer", by="t")
    staff = people.add("Budi Santoso", STAFF_NIP, "staff", by="t")
    user = book.add("siti", "officer", PASSWORD, by="t", person=OFFICER_NIP)
    assert (user.person_id, user.person_name) == (officer.id, "Siti Rahma")
    assert events(writer.path, "user.added")[0].fields == {"user": "siti", "role": "officer", "person": officer.id,
                                                          "by": "t"}
    with pytest.raises(UserStateError, match="Budi Santoso is staff"):
        book.add("budi", "officer", OTHER, by="t", person=staff.id)
    budi = book.add("budi", "staff", OTHER, by="t", person=staff.id)
    assert budi.person_name == "Budi Santoso"
    with pytest.raises(UserStateError, match="Budi Santoso is staff"):
        book.set_role("budi", "officer", by="t")
    with pytest.raises(UserStateError, match="already linked to the active account 'siti'"):
        book.add("siti2", "staff", "nasi-goreng-99", by="t", person=officer.id)
    with pytest.raises(InvalidValueError, match="no person '000000000000000000'"):
        book.add("nobody", "staff", "nasi-goreng-99", by="t", person="000000000000000000")
    people.revoke(staff.id, by="t")
    with pytest.raises(UserStateError, match="revoked"):
        book.add("budi2", "staff", "nasi-goreng-99", by="t", person=staff.id)
    assert book.verify("budi", OTHER) is not None  # the account stays; the registry refuses the person's steps
    assert book.link_person("budi", None, by="t").person_id is None
    assert events(writer.path, "user.person_linked")[0].fields == {"user": "budi", "person": None,
                                                                  "from": staff.id, "by": "t"}


# -- the desk -----------------------------------------------------------------------------------------

def test_desk_ops(book: UserBook) -> None:
    ops = UserDesk(book).handlers()
    assert set(ops) == {"user.add", "user.list", "user.passwd", "user.role", "user.disable", "user.enable"}
    added = ops["user.add"]({"name": "rina", "role": "admin", "password": PASSWORD, "by": "console:x"})
    assert added["name"] == "rina" and "password_hash" not in added and "argon2" not in str(added)
    ops["user.add"]({"name": "andi", "role": "staff", "password": OTHER, "by": "console:rina", "person": None})
    assert [u["name"] for u in ops["user.list"]({})] == ["andi", "rina"]
    assert ops["user.role"]({"name": "andi", "role": "officer", "by": "x"})["from"] == "staff"
    assert ops["user.disable"]({"name": "andi", "by": "x"})["status"] == "disabled"
    assert ops["user.enable"]({"name": "andi", "by": "x"})["active"] is True
    assert ops["user.passwd"]({"name": "andi", "password": "sate-ayam-madura", "by": "x"})["name"] == "andi"
    with pytest.raises(InvalidValueError, match="password must be given as text"):
        ops["user.add"]({"name": "x1", "role": "staff", "by": "x"})
    with pytest.raises(InvalidValueError, match="by must be given as text"):
        ops["user.disable"]({"name": "andi"})
    with pytest.raises(InvalidValueError, match="name must be given as text"):
        ops["user.enable"]({"name": 5, "by": "x"})


# -- sessions -----------------------------------------------------------------------------------------

def test_sessions_expire_when_idle_and_after_the_absolute_limit() -> None:
    clock = Clock()
    store = SessionStore(idle_s=60, max_s=300, clock=clock)
    token, anonymous = store.new("10.0.0.5")
    assert anonymous.user is None and store.get(token) is anonymous
    signed = store.sign_in(token, "rina", "admin")
    clock.now += 59
    session = store.get(signed)
    assert session is not None and (session.user, session.role, session.address) == ("rina", "admin", "10.0.0.5")
    clock.now += 59
    assert store.get(signed, touch=False) is not None  # polling does not keep a session alive
    clock.now += 2
    assert store.get(signed) is None
    assert store.expired_reason(signed) == ("rina", "idle") and store.expired_reason(signed) is None
    other = store.sign_in(store.new("10.0.0.6")[0], "andi", "staff")
    for _ in range(5):
        clock.now += 59
        assert store.get(other) is not None
    clock.now += 5  # 300 s since sign-in, though never idle
    assert store.get(other) is None and store.expired_reason(other) == ("andi", "expired")


def test_sign_in_rotates_the_token_and_the_csrf_token() -> None:
    store = SessionStore(idle_s=60, max_s=300, clock=Clock())
    token, anonymous = store.new("10.0.0.5")
    signed = store.sign_in(token, "rina", "admin")
    session = store.get(signed)
    assert signed != token and store.get(token) is None and session is not None
    assert session.csrf != anonymous.csrf
    assert store.check_csrf(session, session.csrf)
    assert not store.check_csrf(session, anonymous.csrf)
    assert not store.check_csrf(session, "") and not store.check_csrf(session, None)
    assert not store.check_csrf(session, "ü" * 43) and not store.check_csrf(None, session.csrf)
    assert token not in repr(store._sessions) and signed not in repr(store._sessions)  # only SHA-256 kept
    assert store.end(signed) is session and store.get(signed) is None
    behind_proxy = store.get(store.sign_in(store.new("10.0.0.5")[0], "rina", "admin", address="192.168.1.7"))
    assert behind_proxy is not None and behind_proxy.address == "192.168.1.7"
    assert store.expired_reason(signed) is None  # a requested sign-out is the caller's to record


def test_end_user_and_sweep() -> None:
    clock = Clock()
    store = SessionStore(idle_s=60, max_s=300, clock=clock)
    mine = [store.sign_in(store.new(f"10.0.0.{i}")[0], "andi", "staff") for i in range(3)]
    theirs = store.sign_in(store.new("10.0.0.9")[0], "rina", "admin")
    assert store.end_user("andi") == 3 and all(store.get(t) is None for t in mine)
    assert store.get(theirs) is not None and store.end_user("nobody") == 0
    store.new("10.0.0.10")
    clock.now += 61
    ended = store.sweep()
    assert [(s.user, reason) for s, reason in ended] == [("rina", "idle")]
    assert store.counts() == {"anonymous": 0, "signed_in": 0}
    assert store.get("x" * 500) is None and store.get("") is None


def test_anonymous_sessions_are_capped_oldest_first() -> None:
    store = SessionStore(idle_s=60, max_s=300, clock=Clock(), anonymous_cap=100)
    signed = store.sign_in(store.new("10.0.0.1")[0], "rina", "admin")
    tokens = [store.new("203.0.113.7")[0] for _ in range(250)]
    assert store.counts() == {"anonymous": 100, "signed_in": 1}
    assert store.get(tokens[0]) is None and store.get(tokens[-1]) is not None
    assert store.get(signed) is not None  # a flood of anonymous GETs never signs anyone out


# -- throttle -----------------------------------------------------------------------------------------

def test_throttle_locks_a_user_name_from_any_address() -> None:
    clock = Clock()
    throttle = LoginThrottle(attempts=3, window_s=900, clock=clock)
    for i in range(2):
        throttle.failed("Rina", f"10.0.0.{i}")
    assert throttle.locked("rina", "10.0.0.99") == 0.0
    throttle.failed("rina ", "10.0.0.3")
    assert throttle.locked("RINA", "10.0.0.99") == 900.0 and throttle.locked("andi", "10.0.0.99") == 0.0
    clock.now += 899
    assert throttle.locked("rina", "10.0.0.99") == pytest.approx(1.0)
    clock.now += 1
    assert throttle.locked("rina", "10.0.0.99") == 0.0
    throttle.failed("rina", "10.0.0.4")  # a fresh count after the lock-out
    assert throttle.locked("rina", "10.0.0.99") == 0.0


def test_throttle_locks_an_address_trying_many_names() -> None:
    clock = Clock()
    throttle = LoginThrottle(attempts=3, window_s=900, clock=clock)
    for name in ("a1", "a2", "a3"):
        throttle.failed(name, "203.0.113.7")
    assert throttle.locked("rina", "203.0.113.7") == 900.0 and throttle.locked("rina", "10.0.0.1") == 0.0


def test_throttle_counts_only_failures_within_the_window() -> None:
    clock = Clock()
    throttle = LoginThrottle(attempts=3, window_s=900, clock=clock)
    throttle.failed("rina", "10.0.0.1")
    clock.now += 600
    throttle.failed("rina", "10.0.0.2")
    clock.now += 301  # the first failure is out of the window
    throttle.failed("rina", "10.0.0.3")
    assert throttle.locked("rina", "10.0.0.4") == 0.0


def test_success_clears_the_user_count_not_the_address_count() -> None:
    throttle = LoginThrottle(attempts=3, window_s=900, clock=Clock())
    throttle.failed("rina", "10.0.0.1")
    throttle.failed("rina", "10.0.0.1")
    throttle.succeeded("rina", "10.0.0.1")
    throttle.failed("rina", "10.0.0.2")
    throttle.failed("rina", "10.0.0.2")
    assert throttle.locked("rina", "10.0.0.2") == 0.0
    throttle.failed("andi", "10.0.0.1")  # the third from this address
    assert throttle.locked("budi", "10.0.0.1") == 900.0 and throttle.locked("rina", "10.0.0.2") == 0.0


def test_throttle_memory_is_bounded() -> None:
    clock = Clock()
    throttle = LoginThrottle(attempts=5, window_s=60, clock=clock, max_keys=500)
    for i in range(3000):
        throttle.failed(f"name{i}", f"2001:db8::{i:x}")
    assert len(throttle) <= 500
    clock.now += 61
    throttle.failed("x" * 10_000, "10.0.0.1")
    assert len(throttle) <= 502  # stale counters pruned (every 1000 failures, or at the cap)


# -- the CLI with the gateway stopped -----------------------------------------------------------------

def dcgate(config: Path, *argv: str) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS)
    parser = argparse.ArgumentParser(prog="dcgate")
    parser.add_argument("--config", default=None)
    user_cmd.register(parser.add_subparsers(dest="command", required=True), common)
    args = parser.parse_args([*argv, "--config", str(config)])
    return args.handler(args)


def secret_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text + "\n", encoding="utf-8")
    os.chmod(path, mode)
    return path


@pytest.fixture
def offline(tmp_path: Path) -> Path:
    return write_config(tmp_path / "dcgate.toml", base_config(tmp_path / "data", free_port()))


def test_cli_user_commands_offline(offline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert dcgate(offline, "user", "list") == 0 and "belum ada akun / no accounts yet" in capsys.readouterr().out
    assert dcgate(offline, "user", "add", "rina", "--role", "admin",
                  "--password-file", str(secret_file(tmp_path / "pw", PASSWORD))) == 0
    assert "Akun admin 'rina' dibuat / console account created" in capsys.readouterr().out
    monkeypatch.setattr(sys, "stdin", io.StringIO(OTHER + "\nignored second line\n"))
    assert dcgate(offline, "user", "add", "andi", "--role", "staff", "--password-file", "-") == 0
    assert dcgate(offline, "user", "role", "andi", "officer") == 0
    assert "staff -> officer" in capsys.readouterr().out
    assert dcgate(offline, "user", "disable", "andi") == 0 and "dinonaktifkan / disabled" in capsys.readouterr().out
    assert dcgate(offline, "user", "enable", "andi") == 0
    new_pw = secret_file(tmp_path / "pw2", "rendang-padang-1")
    assert dcgate(offline, "user", "passwd", "andi", "--password-file", str(new_pw)) == 0
    assert dcgate(offline, "user", "list") == 0
    listing = capsys.readouterr().out
    assert "rina" in listing and "andi" in listing and "officer" in listing
    assert dcgate(offline, "user", "list", "--json") == 0
    assert '"name": "andi"' in capsys.readouterr().out

    db_path = tmp_path / "data" / "dcgate.db"
    book = UserBook(db_path, None)
    assert book.verify("rina", PASSWORD) is not None and book.verify("andi", "rendang-padang-1") is not None
    by = "cli:" + (os.environ.get("SUDO_USER") or getpass.getuser())
    assert [(e.kind, e.fields.get("by")) for e in events(db_path)] == [
        ("user.added", by), ("user.added", by), ("user.role_changed", by), ("user.disabled", by),
        ("user.enabled", by), ("user.password_changed", by)]
    out, err = capsys.readouterr()
    for secret in (PASSWORD, OTHER, "rendang-padang-1"):
        assert secret not in out + err


def test_cli_refuses_a_password_file_others_can_read(offline: Path, tmp_path: Path) -> None:
    loose = secret_file(tmp_path / "pw", PASSWORD, mode=0o644)
    with pytest.raises(InvalidValueError, match=r"readable by other users \(mode 644\). Fix: chmod 600") as caught:
        dcgate(offline, "user", "add", "rina", "--role", "admin", "--password-file", str(loose))
    assert PASSWORD not in str(caught.value) and caught.value.exit_code == 2
    with pytest.raises(InvalidValueError, match="does not exist"):
        dcgate(offline, "user", "add", "rina", "--role", "admin", "--password-file", str(tmp_path / "none"))
    assert not (tmp_path / "data" / "dcgate.db").exists()  # refused before anything was opened


def test_cli_refusals_are_bilingual_and_keep_the_password_out(offline: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(InvalidValueError, match="masukan standar kosong / standard input is empty"):
        dcgate(offline, "user", "add", "rina", "--role", "admin", "--password-file", "-")
    with pytest.raises(InvalidValueError, match="peran 'root' tidak dikenal / role 'root'"):
        dcgate(offline, "user", "add", "rina", "--role", "root",
               "--password-file", str(secret_file(tmp_path / "pw", PASSWORD)))
    with pytest.raises(PasswordRuleError, match="kata sandi minimal 10 karakter / the password must be at least"):
        dcgate(offline, "user", "add", "rina", "--role", "admin",
               "--password-file", str(secret_file(tmp_path / "short", "kopi")))
    with pytest.raises(DcgateError, match="no console account 'ghost'"):
        dcgate(offline, "user", "disable", "ghost")
