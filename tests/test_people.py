"""People and their encrypted biometric templates: the key file, the cipher, the writer's one-transaction
changes, the registry, erasure at rest, and the offline CLI (`dcgate key|person|enroll` with the gateway
stopped).

Everything is real: SQLite files in tmp_path (WAL, secure_delete), AES-256-GCM from `cryptography`,
face_recognition on the shared test photos, and the CLI in a subprocess as a user would type it.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import sqlite3
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from access.crypto import (
    KEY_BYTES,
    NONCE_BYTES,
    TemplateCipher,
    TemplateDecryptError,
    TemplateKeyError,
    associated_data,
    generate_key_file,
    load_key,
)
from access.people import (
    FACE_DIM,
    PeopleRegistry,
    PersonStateError,
    UnknownPersonError,
    check_nip,
)
from drivers.errors import InvalidValueError
from gateway.errors import StoreError
from gateway.store.database import open_for_reading
from gateway.store.events import utc_timestamp
from gateway.store.writer import StoreWriter
from tests.support.configs import base_config, write_config
from tests.support.eventstore import committed_events
from tests.support.gateway_proc import run_cli
from tests.support.ports import free_port
from tests.support.waiting import wait_until

FACES = Path(__file__).resolve().parents[1].parent / "shared" / "faces"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
VALID_NIP = "198503122010121001"  # born 1985-03-12, appointed 2010-12, male, no. 001
OTHER_NIP = "199001012015012002"  # born 1990-01-01, appointed 2015-01, female, no. 002


# -- helpers and fixtures ------------------------------------------------------------------------------

@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return generate_key_file(tmp_path / "keys" / "biometric.key")


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[StoreWriter]:
    store = StoreWriter(tmp_path / "data" / "dcgate.db", synchronous="normal")
    store.start()
    yield store
    store.stop()


@pytest.fixture
def registry(writer: StoreWriter, key_file: Path) -> PeopleRegistry:
    return PeopleRegistry(writer.path, writer, TemplateCipher.from_file(key_file))


def query(db_path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read committed rows through a read-only connection, like the CLI does."""
    db = open_for_reading(db_path)
    try:
        return db.conn.execute(sql, params).fetchall()
    finally:
        db.close()


def raw_bytes(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


def db_and_wal(db_path: Path) -> tuple[bytes, bytes]:
    return raw_bytes(db_path), raw_bytes(db_path.with_name(db_path.name + "-wal"))


def insert_person(person_id: str, nip: str) -> Callable[[sqlite3.Connection], str]:
    def inside(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO people (id, name, nip, role, active, enrolled_by, enrolled_at) "
                     "VALUES (?, 'Test Person', ?, 'staff', 1, 'tester', ?)", (person_id, nip, utc_timestamp()))
        return f"inserted {person_id}"
    return inside


def face_vector(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.1, FACE_DIM).astype(np.float32)


def forms(data: bytes) -> list[bytes]:
    """How template bytes could leak into text: hex (both cases), base64 (standard, url-safe) and bytes repr.

    Of the first bytes only, so a dump of the whole template and a truncated one are both caught
    (15 bytes: a whole number of base64 groups, so it is a prefix of the longer encoding too).
    """
    head = data[:15]
    return [head.hex().encode(), head.hex().upper().encode(), base64.b64encode(head),
            base64.urlsafe_b64encode(head), repr(head)[2:-1].encode()]


# -- crypto: the key file ------------------------------------------------------------------------------

def test_generate_key_file_is_owner_only_holds_a_key_and_is_never_overwritten(tmp_path: Path) -> None:
    path = generate_key_file(tmp_path / "new-dir" / "biometric.key")  # the parent is created
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text(encoding="ascii")
    assert re.fullmatch(r"[0-9a-f]{64}\n", text), text
    assert load_key(path) == bytes.fromhex(text.strip()) and len(load_key(path)) == KEY_BYTES

    with pytest.raises(TemplateKeyError, match="already exists") as info:
        generate_key_file(path)
    assert "every enrolled template unreadable" in str(info.value)
    assert path.read_text(encoding="ascii") == text  # the old key survives
    assert generate_key_file(tmp_path / "other.key").read_text() != text  # keys are random


def test_load_key_refuses_a_group_readable_file(key_file: Path) -> None:
    key_file.chmod(0o640)
    with pytest.raises(TemplateKeyError, match="readable by other users") as info:
        load_key(key_file)
    assert "mode 640" in str(info.value) and f"chmod 600 {key_file}" in str(info.value)
    with pytest.raises(TemplateKeyError):
        TemplateCipher.from_file(key_file)
    key_file.chmod(0o600)
    assert len(load_key(key_file)) == KEY_BYTES


@pytest.mark.parametrize("content", ["ab" * 31, "ab" * 33, "zz" * 32, "", "0x" + "ab" * 31])
def test_load_key_refuses_what_is_not_64_hex_digits(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.key"
    path.write_text(content + "\n", encoding="ascii")
    path.chmod(0o600)
    with pytest.raises(TemplateKeyError, match="is not a key \\(want 64 hex digits\\)") as info:
        load_key(path)
    assert "dcgate key generate" in str(info.value)


def test_load_key_names_a_missing_file_and_the_command_that_makes_one(tmp_path: Path) -> None:
    missing = tmp_path / "nope.key"
    with pytest.raises(TemplateKeyError, match="does not exist") as info:
        load_key(missing)
    assert f"dcgate key generate {missing}" in str(info.value)


# -- crypto: the cipher --------------------------------------------------------------------------------

def test_encrypt_decrypt_roundtrip_with_a_fresh_nonce_each_time(key_file: Path) -> None:
    cipher = TemplateCipher.from_file(key_file)
    plain = face_vector(1).tobytes()
    aad = associated_data("person-a", "face", "template-1")
    nonce, ciphertext = cipher.encrypt(plain, aad)
    assert len(nonce) == NONCE_BYTES and len(ciphertext) == len(plain) + 16  # the GCM tag
    assert plain not in ciphertext and plain[:16] not in ciphertext
    assert cipher.decrypt(nonce, ciphertext, aad) == plain
    nonce2, ciphertext2 = cipher.encrypt(plain, aad)
    assert nonce2 != nonce and ciphertext2 != ciphertext
    assert cipher.decrypt(nonce2, ciphertext2, aad) == plain


def test_decrypt_refuses_another_key_another_row_and_altered_bytes(key_file: Path, tmp_path: Path) -> None:
    cipher = TemplateCipher.from_file(key_file)
    other = TemplateCipher.from_file(generate_key_file(tmp_path / "other.key"))
    plain = b"\x01\x02fingerprint-template\x03" * 20
    aad = associated_data("person-a", "finger", "template-1")
    nonce, ciphertext = cipher.encrypt(plain, aad)

    with pytest.raises(TemplateDecryptError, match="not the key it was enrolled with") as info:
        other.decrypt(nonce, ciphertext, aad)
    assert "Fix:" in str(info.value)
    for moved in (associated_data("person-b", "finger", "template-1"),  # onto another person's row
                  associated_data("person-a", "face", "template-1"),    # another method
                  associated_data("person-a", "finger", "template-2")):  # another template row
        with pytest.raises(TemplateDecryptError):
            cipher.decrypt(nonce, ciphertext, moved)
    flipped = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    with pytest.raises(TemplateDecryptError):
        cipher.decrypt(nonce, flipped, aad)
    with pytest.raises(TemplateDecryptError):
        cipher.decrypt(bytes(NONCE_BYTES), ciphertext, aad)
    assert cipher.decrypt(nonce, ciphertext, aad) == plain  # the right row still works


def test_the_cipher_never_shows_its_key(key_file: Path) -> None:
    key = load_key(key_file)
    cipher = TemplateCipher(key)
    for text in (repr(cipher), str(cipher), f"{cipher!r} {cipher}", repr([cipher]), repr({"c": cipher})):
        assert key.hex() not in text and key.hex().upper() not in text and repr(key) not in text
        assert "hidden" in text
    with pytest.raises(TemplateKeyError, match="32 bytes, got 16"):
        TemplateCipher(key[:16])


# -- the writer: a change and its event in one transaction --------------------------------------------

def test_change_commits_the_row_and_its_event_together(writer: StoreWriter) -> None:
    before = writer.last_seq
    value = writer.change("person.added", "access", {"person": "p-1", "nip": "EMP-001"},
                          insert_person("p-1", "EMP-001"))
    assert value == "inserted p-1"  # what `inside` returned reaches the caller
    assert query(writer.path, "SELECT id, nip FROM people") == [("p-1", "EMP-001")]
    added = committed_events(writer.path, kind="person.added")
    assert [(e.seq, e.fields) for e in added] == [(before + 1, {"person": "p-1", "nip": "EMP-001"})]
    assert writer.last_seq == before + 1


def test_a_refused_change_leaves_neither_row_nor_event_and_the_error_is_the_callers(writer: StoreWriter) -> None:
    writer.change("person.added", "access", {"person": "p-1"}, insert_person("p-1", "EMP-001"))
    before = writer.last_seq
    refusal = PersonStateError("NIP EMP-001 is already enrolled")

    def insert_then_refuse(conn: sqlite3.Connection) -> None:
        insert_person("p-2", "EMP-002")(conn)  # written inside the transaction, then rolled back
        raise refusal

    with pytest.raises(PersonStateError) as info:
        writer.change("person.added", "access", {"person": "p-2"}, insert_then_refuse)
    assert info.value is refusal  # unchanged: not wrapped in a StoreError
    assert query(writer.path, "SELECT id FROM people ORDER BY id") == [("p-1",)]
    assert [e.fields["person"] for e in committed_events(writer.path, kind="person.added")] == ["p-1"]
    assert writer.last_seq == before and writer.last_error is None  # a refusal is not a store failure

    # a database error inside (the UNIQUE nip) is refused the same way, as a StoreError
    with pytest.raises(StoreError, match=r"UNIQUE constraint failed: people\.nip"):
        writer.change("person.added", "access", {"person": "p-3"}, insert_person("p-3", "EMP-001"))
    assert query(writer.path, "SELECT count(*) FROM people") == [(1,)]
    assert writer.last_seq == before

    # and the writer keeps working: plain events and changes commit right after
    assert writer.append_and_wait("test.after", "test", {"n": 1}).seq == before + 1
    writer.change("person.added", "access", {"person": "p-4"}, insert_person("p-4", "EMP-004"))
    assert query(writer.path, "SELECT id FROM people ORDER BY id") == [("p-1",), ("p-4",)]
    assert writer.last_seq == before + 2 and writer.alive


def test_plain_events_queued_around_changes_keep_their_order(writer: StoreWriter) -> None:
    before = writer.last_seq

    def refuse(conn: sqlite3.Connection) -> None:
        insert_person("p-x", "EMP-999")(conn)
        raise PersonStateError("refused")

    pendings = [
        writer.append("test.first", "test", {"n": 1}),
        writer.append("person.added", "access", {"person": "p-1"}, inside=insert_person("p-1", "EMP-001")),
        writer.append("test.second", "test", {"n": 2}),
        writer.append("test.third", "test", {"n": 3}),
        writer.append("person.added", "access", {"person": "p-x"}, inside=refuse),
        writer.append("test.fourth", "test", {"n": 4}),
        writer.append("person.added", "access", {"person": "p-2"}, inside=insert_person("p-2", "EMP-002")),
    ]
    with pytest.raises(PersonStateError):
        pendings[4].result()
    seqs = [p.result().seq for i, p in enumerate(pendings) if i != 4]
    assert seqs == list(range(before + 1, before + 7))
    assert pendings[1].value == "inserted p-1" and pendings[6].value == "inserted p-2"
    kinds = [(e.kind, e.fields) for e in committed_events(writer.path) if e.seq > before]
    assert kinds == [("test.first", {"n": 1}), ("person.added", {"person": "p-1"}), ("test.second", {"n": 2}),
                     ("test.third", {"n": 3}), ("test.fourth", {"n": 4}), ("person.added", {"person": "p-2"})]
    assert query(writer.path, "SELECT id FROM people ORDER BY id") == [("p-1",), ("p-2",)]


# -- the registry --------------------------------------------------------------------------------------

def test_add_returns_the_person_and_records_person_added(registry: PeopleRegistry) -> None:
    person = registry.add("  Budi   Santoso ", "19850312 201012 1 001", "staff", "Pak Admin")
    assert UUID.fullmatch(person.id)
    assert (person.name, person.nip, person.role, person.status) == ("Budi Santoso", VALID_NIP, "staff", "active")
    assert person.active and not person.revoked and person.enrolled_by == "Pak Admin"
    assert person.faces == 0 and person.finger_slots == ()
    [event] = committed_events(registry.db_path, kind="person.added")
    assert event.source == "access"
    assert event.fields == {"person": person.id, "name": "Budi Santoso", "nip": VALID_NIP, "role": "staff",
                            "by": "Pak Admin"}
    assert [p.id for p in registry.list()] == [person.id]


@pytest.mark.parametrize(("nip", "message"), [
    ("198513122010121001", "digits 1-8 (19851312) are not a birth date"),      # month 13
    ("198502302010121001", "digits 1-8 (19850230) are not a birth date"),      # 30 February
    ("198503122010001001", "digits 13-14 (00) are not an appointment month"),
    ("198503122010131001", "digits 13-14 (13) are not an appointment month"),
    ("198503122010123001", "digit 15 (3) must be 1 (male) or 2 (female)"),
    ("198503122010120001", "digit 15 (0) must be 1 (male) or 2 (female)"),
    ("ab", "neither an 18-digit NIP nor an employee number"),
    ("EMP/001", "neither an 18-digit NIP nor an employee number"),
    ("x" * 33, "neither an 18-digit NIP nor an employee number"),
])
def test_bad_nips_are_refused_naming_the_digits(registry: PeopleRegistry, nip: str, message: str) -> None:
    with pytest.raises(InvalidValueError, match=re.escape(message)):
        check_nip(nip)
    with pytest.raises(InvalidValueError, match=re.escape(message)):
        registry.add("Budi", nip, "staff", "admin")
    assert registry.list(include_revoked=True) == []
    assert committed_events(registry.db_path, kind="person.added") == []


@pytest.mark.parametrize("nip", [VALID_NIP, OTHER_NIP, "PPPK-2023.0042", "K-17", "1234567", "12345678901234567890"])
def test_valid_nips_and_other_employee_numbers_are_accepted(nip: str) -> None:
    assert check_nip(nip) == nip


def test_a_nip_used_twice_is_refused_naming_the_holder(registry: PeopleRegistry) -> None:
    first = registry.add("Budi", VALID_NIP, "staff", "admin")
    with pytest.raises(PersonStateError, match=f"NIP {VALID_NIP} is already enrolled as person {first.id}") as info:
        registry.add("Budi Lagi", VALID_NIP, "officer", "admin")
    assert "activate that person instead" in str(info.value)
    registry.revoke(first.id, "admin", "left")
    with pytest.raises(PersonStateError, match=f"NIP {VALID_NIP} is already revoked as person {first.id}"):
        registry.add("Budi Lagi", VALID_NIP, "officer", "admin")
    assert [p.id for p in registry.list(include_revoked=True)] == [first.id]
    assert len(committed_events(registry.db_path, kind="person.added")) == 1
    with pytest.raises(InvalidValueError, match="role 'boss' is not one of staff, officer, admin"):
        registry.add("Siti", OTHER_NIP, "boss", "admin")


def test_get_by_id_prefix_and_nip(registry: PeopleRegistry) -> None:
    budi = registry.add("Budi", VALID_NIP, "staff", "admin")
    siti = registry.add("Siti", OTHER_NIP, "officer", "admin")
    assert registry.get(budi.id) == budi and registry.get(siti.id) == siti
    assert registry.get(f"  {siti.id} ") == siti
    assert registry.get(VALID_NIP) == budi and registry.get("19900101 201501 2 002") == siti
    common = budi.id[:next(i for i, (a, b) in enumerate(zip(budi.id, siti.id, strict=True)) if a != b)]
    assert len(common) >= 4  # uuid7: the same millisecond-ish timestamp leads both
    assert registry.get(budi.id[: len(common) + 1]) == budi  # one character more tells them apart
    assert registry.get(siti.id[: len(common) + 1]) == siti
    with pytest.raises(UnknownPersonError, match=f"{re.escape(repr(common[:4]))} matches 2 people; give more"):
        registry.get(common[:4])
    with pytest.raises(UnknownPersonError, match="no person"):
        registry.get(budi.id[:3])  # fewer than 4 characters is not a prefix
    with pytest.raises(UnknownPersonError, match="no person 'ffffffff'"):
        registry.get("ffffffff")
    with pytest.raises(UnknownPersonError, match="no person"):
        registry.get(budi.id[-12:])
    with pytest.raises(UnknownPersonError, match="no person"):
        registry.get("%%%%")  # LIKE wildcards are taken literally
    with pytest.raises(UnknownPersonError, match="no person"):
        registry.get("____")


def test_deactivate_and_activate_record_who_and_why(registry: PeopleRegistry) -> None:
    budi = registry.add("Budi", VALID_NIP, "staff", "admin")
    off = registry.set_active(budi.id, False, "Kepala Dinas", "cuti")
    assert (off.active, off.status) == (False, "inactive")
    with pytest.raises(PersonStateError, match="is already inactive"):
        registry.set_active(budi.id, False, "Kepala Dinas")
    on = registry.set_active(VALID_NIP, True, "Kepala Dinas", "back from leave")
    assert (on.active, on.status) == (True, "active")
    with pytest.raises(PersonStateError, match="is already active"):
        registry.set_active(budi.id, True, "Kepala Dinas")
    events = [(e.kind, e.fields) for e in committed_events(registry.db_path) if e.kind.startswith("person.")]
    assert events[1:] == [
        ("person.deactivated", {"person": budi.id, "name": "Budi", "by": "Kepala Dinas", "reason": "cuti"}),
        ("person.activated", {"person": budi.id, "name": "Budi", "by": "Kepala Dinas", "reason": "back from leave"}),
    ]
    assert registry.get(budi.id).as_dict()["status"] == "active"


def test_face_and_finger_templates_roundtrip(registry: PeopleRegistry) -> None:
    budi = registry.add("Budi", VALID_NIP, "staff", "admin")
    face = face_vector(7)
    finger3, finger7 = os.urandom(512), os.urandom(498)
    face_id = registry.add_face(budi.id, face, 3, "admin", None)
    registry.add_finger(budi.id, 7, finger7, "admin", "main")
    registry.add_finger(budi.id, 3, finger3, "admin", "main")

    ids, vectors = registry.face_templates()
    assert ids == [budi.id] and vectors.dtype == np.float32 and vectors.shape == (1, FACE_DIM)
    assert np.array_equal(vectors[0], face)
    assert registry.finger_templates() == {3: finger3, 7: finger7}
    shown = registry.get(budi.id)
    assert shown.faces == 1 and shown.finger_slots == (3, 7)
    assert registry.person_for_slot(7) == shown and registry.person_for_slot(4) is None
    assert registry.used_slots() == {3, 7}
    enrolled = [e.fields for e in committed_events(registry.db_path, kind="biometric.enrolled")]
    assert enrolled[0] == {"person": budi.id, "name": "Budi", "method": "face", "samples": 3, "door": None,
                           "by": "admin", "template": face_id}
    assert [(f["method"], f.get("slot"), f["door"]) for f in enrolled] == [("face", None, None),
                                                                           ("finger", 7, "main"),
                                                                           ("finger", 3, "main")]
    # only ciphertext is stored, bound to its row
    for template_id, person_id, method, nonce, ciphertext in query(
            registry.db_path, "SELECT id, person_id, method, nonce, ciphertext FROM templates"):
        assert len(nonce) == NONCE_BYTES and face.tobytes() not in ciphertext
        assert finger3 not in ciphertext and finger7 not in ciphertext
        assert registry.cipher.decrypt(nonce, ciphertext, associated_data(person_id, method, template_id))

    with pytest.raises(InvalidValueError, match="128 finite numbers"):
        registry.add_face(budi.id, np.zeros(127, np.float32), 1, "admin", None)
    with pytest.raises(InvalidValueError, match="128 finite numbers"):
        registry.add_face(budi.id, np.full(128, np.nan, np.float32), 1, "admin", None)
    with pytest.raises(InvalidValueError, match="empty fingerprint template"):
        registry.add_finger(budi.id, 9, b"", "admin", "main")
    assert registry.get(budi.id).faces == 1 and registry.used_slots() == {3, 7}


def test_a_fingerprint_slot_holds_one_template(registry: PeopleRegistry) -> None:
    budi = registry.add("Budi", VALID_NIP, "staff", "admin")
    siti = registry.add("Siti", OTHER_NIP, "officer", "admin")
    registry.add_finger(budi.id, 3, b"budi-finger", "admin", "main")
    with pytest.raises(PersonStateError, match=f"fingerprint slot 3 already holds a template of person {budi.id}"):
        registry.add_finger(siti.id, 3, b"siti-finger", "admin", "main")
    with pytest.raises(PersonStateError, match="slot 3 already holds"):
        registry.add_finger(budi.id, 3, b"budi-again", "admin", "main")
    assert registry.finger_templates() == {3: b"budi-finger"}
    assert query(registry.db_path, "SELECT count(*) FROM templates") == [(1,)]
    assert len(committed_events(registry.db_path, kind="biometric.enrolled")) == 1
    registry.add_finger(siti.id, 4, b"siti-finger", "admin", "main")  # the next slot is free
    assert registry.finger_templates() == {3: b"budi-finger", 4: b"siti-finger"}


def test_revoke_erases_the_templates_and_is_final(registry: PeopleRegistry) -> None:
    budi = registry.add("Budi", VALID_NIP, "staff", "admin")
    siti = registry.add("Siti", OTHER_NIP, "officer", "admin")
    registry.add_face(budi.id, face_vector(1), 2, "admin", None)
    registry.add_finger(budi.id, 5, b"budi-5", "admin", "main")
    registry.add_finger(budi.id, 2, b"budi-2", "admin", "main")
    registry.add_face(siti.id, face_vector(2), 2, "admin", None)
    registry.add_finger(siti.id, 0, b"siti-0", "admin", "main")
    registry.set_active(budi.id, False, "admin", "suspended")  # an inactive person's face still counts ...
    assert sorted(registry.face_templates()[0]) == sorted([budi.id, siti.id])  # ... (refused by name at the door)

    revocation = registry.revoke(budi.id, "Kepala Dinas", "pindah tugas")
    assert revocation.finger_slots == (2, 5) and revocation.faces == 1
    gone = revocation.person
    assert gone.id == budi.id and gone.revoked and gone.status == "revoked" and not gone.active
    assert gone.revoked_by == "Kepala Dinas" and gone.revoked_at and gone.faces == 0 and gone.finger_slots == ()
    assert query(registry.db_path, "SELECT count(*) FROM templates WHERE person_id = ?", (budi.id,)) == [(0,)]
    [event] = committed_events(registry.db_path, kind="person.revoked")
    assert event.fields == {"person": budi.id, "name": "Budi", "by": "Kepala Dinas", "reason": "pindah tugas",
                            "erased": 3}

    # the others are untouched; the revoked person is gone from matching and listing
    ids, vectors = registry.face_templates()
    assert ids == [siti.id] and np.array_equal(vectors[0], face_vector(2))
    assert registry.finger_templates() == {0: b"siti-0"}
    assert registry.person_for_slot(5) is None
    assert [p.id for p in registry.list()] == [siti.id]
    assert [p.status for p in registry.list(include_revoked=True)] == ["revoked", "active"]

    with pytest.raises(PersonStateError, match="revoked; templates cannot be added"):
        registry.add_face(budi.id, face_vector(3), 1, "admin", None)
    with pytest.raises(PersonStateError, match="revoked; templates cannot be added"):
        registry.add_finger(budi.id, 9, b"budi-9", "admin", "main")
    with pytest.raises(PersonStateError, match="is revoked; enrol them again as a new person"):
        registry.set_active(budi.id, True, "admin")
    with pytest.raises(PersonStateError, match="was already revoked"):
        registry.revoke(budi.id, "admin")
    assert query(registry.db_path, "SELECT count(*) FROM templates WHERE person_id = ?", (budi.id,)) == [(0,)]
    assert len(committed_events(registry.db_path, kind="person.revoked")) == 1


def test_face_templates_leave_out_revoked_people_even_if_a_row_was_left_behind(registry: PeopleRegistry) -> None:
    budi = registry.add("Budi", VALID_NIP, "staff", "admin")
    siti = registry.add("Siti", OTHER_NIP, "officer", "admin")
    registry.add_face(budi.id, face_vector(1), 1, "admin", None)
    registry.add_face(siti.id, face_vector(2), 1, "admin", None)
    conn = sqlite3.connect(registry.db_path, isolation_level=None)
    try:  # a revocation that (somehow) left Siti's template row: matching must still never see her
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("UPDATE people SET active = 0, revoked_at = ?, revoked_by = 'x' WHERE id = ?",
                     (utc_timestamp(), siti.id))
    finally:
        conn.close()
    ids, vectors = registry.face_templates()
    assert ids == [budi.id] and vectors.shape == (1, FACE_DIM) and np.array_equal(vectors[0], face_vector(1))


def test_a_ciphertext_moved_onto_another_persons_row_does_not_decrypt(registry: PeopleRegistry) -> None:
    budi = registry.add("Budi", VALID_NIP, "staff", "admin")
    siti = registry.add("Siti", OTHER_NIP, "officer", "admin")
    registry.add_face(budi.id, face_vector(1), 1, "admin", None)
    siti_face = registry.add_face(siti.id, face_vector(2), 1, "admin", None)
    assert len(registry.face_templates()[0]) == 2
    conn = sqlite3.connect(registry.db_path, isolation_level=None)
    try:  # someone with write access to the database copies Budi's face onto Siti's row
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("UPDATE templates SET nonce = (SELECT nonce FROM templates WHERE person_id = ?), "
                     "ciphertext = (SELECT ciphertext FROM templates WHERE person_id = ?) WHERE id = ?",
                     (budi.id, budi.id, siti_face))
    finally:
        conn.close()
    with pytest.raises(TemplateDecryptError):
        registry.face_templates()
    other_key = TemplateCipher(os.urandom(KEY_BYTES))  # and a registry with another key reads nothing
    with pytest.raises(TemplateDecryptError):
        PeopleRegistry(registry.db_path, None, other_key).face_templates()


# -- erasure at rest -----------------------------------------------------------------------------------

def test_revoked_templates_leave_no_bytes_in_the_database_or_its_wal(registry: PeopleRegistry) -> None:
    db_path = registry.db_path
    budi = registry.add("Budi", VALID_NIP, "staff", "admin")
    siti = registry.add("Siti", OTHER_NIP, "officer", "admin")
    face = face_vector(11)
    finger = os.urandom(512)
    registry.add_face(budi.id, face, 2, "admin", None)
    registry.add_finger(budi.id, 1, finger, "admin", "main")
    registry.add_finger(siti.id, 2, b"siti-keeps-this" * 8, "admin", "main")

    stored = query(db_path, "SELECT nonce, ciphertext FROM templates WHERE person_id = ?", (budi.id,))
    assert len(stored) == 2
    secrets_at_rest = [value for row in stored for value in row]
    db, wal = db_and_wal(db_path)
    for plain in (face.tobytes(), finger):  # plaintext never reaches the disk
        for chunk in (plain, plain[:32], plain[-32:]):
            assert chunk not in db and chunk not in wal
    for value in secrets_at_rest:  # the ciphertext is on disk (so the check below means something)
        assert value in db or value in wal

    registry.revoke(budi.id, "admin", "left")

    def erased() -> bool:
        db, wal = db_and_wal(db_path)
        return not any(value in db or value in wal for value in secrets_at_rest)

    wait_until(erased, 10, message="the revoked ciphertext and nonces to leave dcgate.db and dcgate.db-wal")
    db, wal = db_and_wal(db_path)
    for plain in (face.tobytes(), finger):
        assert plain[:32] not in db and plain[:32] not in wal
    # what was kept is still there and readable
    assert registry.finger_templates() == {2: b"siti-keeps-this" * 8}


# -- templates never leave the templates table ---------------------------------------------------------

def test_no_template_in_any_event_or_log_record(registry: PeopleRegistry, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    budi = registry.add("Budi", VALID_NIP, "staff", "admin")
    siti = registry.add("Siti", OTHER_NIP, "officer", "admin")
    face = face_vector(21)
    finger = os.urandom(256)
    registry.add_face(budi.id, face, 1, "admin", None)
    registry.add_finger(budi.id, 4, finger, "admin", "main")
    with pytest.raises(PersonStateError):  # a refusal is logged: its message must not hold the template either
        registry.add_finger(siti.id, 4, finger, "admin", "main")
    stored = query(registry.db_path, "SELECT nonce, ciphertext FROM templates")
    registry.revoke(budi.id, "admin", "left")

    leaks = [form for data in (face.tobytes(), finger, *(v for row in stored for v in row)) for form in forms(data)]
    leaks += [repr(float(face[0])).encode(), repr(float(face[1])).encode()]  # a vector printed as numbers
    payloads = [e.payload.encode() for e in committed_events(registry.db_path)]
    assert {"person.added", "biometric.enrolled", "person.revoked"} <= {e.kind for e in
                                                                        committed_events(registry.db_path)}
    for payload in payloads:
        for leak in leaks:
            assert leak not in payload, payload
    records = caplog.records
    assert any("change refused" in r.getMessage() for r in records)  # logging was captured at all
    text = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in records).encode()
    for leak in leaks:
        assert leak not in text


# -- the CLI with the gateway stopped ------------------------------------------------------------------

DOOR = {"name": "main", "auth": "face_or_finger", "gpio": "sim", "lock_pin": 23, "contact_pin": 24,
        "exit_button_pin": 25, "camera": {"source": "sim"}, "fingerprint": {"port": "sim"}}


def offline_config(tmp_path: Path, name: str = "dcgate.toml", **overrides: Any) -> Path:
    """A config for a gateway that is not running (the MQTT port is never used)."""
    return write_config(tmp_path / name, base_config(tmp_path / "data", free_port(), **overrides))


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--config", str(config))


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result
    return result.stdout


def test_cli_key_generate_writes_an_owner_only_key_and_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "biometric.key"
    out = ok(run_cli("key", "generate", str(path)))
    assert str(path) in out and "mode 600" in out
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(load_key(path)) == KEY_BYTES
    key = path.read_bytes()
    again = run_cli("key", "generate", str(path))
    assert again.returncode == 2, again
    assert "already exists" in again.stderr and again.stdout == ""
    assert path.read_bytes() == key


def test_cli_person_add_list_show_offline(tmp_path: Path, key_file: Path) -> None:
    config = offline_config(tmp_path, access={"key_file": str(key_file)})
    budi = ok(cli(config, "person", "add", "--name", "Budi Santoso", "--nip", VALID_NIP, "--role", "staff",
                  "--by", "Pak Admin")).strip()
    assert UUID.fullmatch(budi), budi
    siti = ok(cli(config, "person", "add", "--name", "Siti", "--nip", "PPPK-2023.0042", "--role", "officer",
                  "--by", "Pak Admin")).strip()
    assert UUID.fullmatch(siti) and siti != budi
    bad = cli(config, "person", "add", "--name", "X", "--nip", "198503122010131001", "--role", "staff", "--by", "a")
    assert bad.returncode != 0 and "digits 13-14 (13) are not an appointment month" in bad.stderr, bad

    lines = ok(cli(config, "person", "list")).splitlines()
    assert len(lines) == 2 and lines[0].startswith(budi) and lines[1].startswith(siti)
    assert "Budi Santoso" in lines[0] and VALID_NIP in lines[0] and "staff" in lines[0] and "active" in lines[0]
    listed = [json.loads(line) for line in ok(cli(config, "person", "list", "--json")).splitlines()]
    assert [(p["id"], p["nip"], p["role"], p["status"]) for p in listed] == [
        (budi, VALID_NIP, "staff", "active"), (siti, "PPPK-2023.0042", "officer", "active")]
    assert listed[0]["enrolled_by"] == "Pak Admin" and listed[0]["faces"] == 0 and listed[0]["finger_slots"] == []
    assert json.loads(ok(cli(config, "person", "show", VALID_NIP))) == listed[0]

    events = [(e.kind, e.fields) for e in committed_events(tmp_path / "data" / "dcgate.db") if e.source == "access"]
    assert events == [
        ("person.added", {"person": budi, "name": "Budi Santoso", "nip": VALID_NIP, "role": "staff",
                          "by": "Pak Admin"}),
        ("person.added", {"person": siti, "name": "Siti", "nip": "PPPK-2023.0042", "role": "officer",
                          "by": "Pak Admin"}),
    ]


def test_cli_person_deactivate_activate_revoke_offline(tmp_path: Path, key_file: Path) -> None:
    config = offline_config(tmp_path, access={"key_file": str(key_file)})
    db_path = tmp_path / "data" / "dcgate.db"
    budi, siti = add_people(db_path, ("Budi Santoso", VALID_NIP), ("Siti", OTHER_NIP))
    store = StoreWriter(db_path, synchronous="normal")
    store.start()
    try:
        PeopleRegistry(db_path, store, TemplateCipher.from_file(key_file)).add_finger(siti, 3, b"siti-3", "a", "main")
    finally:
        store.stop()

    off = json.loads(ok(cli(config, "person", "deactivate", VALID_NIP, "--by", "Kepala", "--reason", "cuti")))
    assert (off["id"], off["status"], off["active"]) == (budi, "inactive", False)
    on = json.loads(ok(cli(config, "person", "activate", budi, "--by", "Kepala", "--reason", "kembali")))
    assert on["status"] == "active"
    revoked = json.loads(ok(cli(config, "person", "revoke", siti, "--by", "Kepala", "--reason", "pindah tugas")))
    assert revoked["person"]["status"] == "revoked" and revoked["person"]["revoked_by"] == "Kepala"
    assert revoked["erased"] == {"faces": 0, "finger_slots": [3], "sensors": {}}  # no [[doors]]: no sensors
    assert query(db_path, "SELECT count(*) FROM templates") == [(0,)]

    everyone = [json.loads(line) for line in ok(cli(config, "person", "list", "--all", "--json")).splitlines()]
    assert [(p["id"], p["status"]) for p in everyone] == [(budi, "active"), (siti, "revoked")]
    assert [p.id for p in PeopleRegistry(db_path, None, None).list()] == [budi]  # plain `list` leaves Siti out

    events = [(e.kind, e.fields) for e in committed_events(db_path) if e.source == "access"][3:]
    assert events == [
        ("person.deactivated", {"person": budi, "name": "Budi Santoso", "by": "Kepala", "reason": "cuti"}),
        ("person.activated", {"person": budi, "name": "Budi Santoso", "by": "Kepala", "reason": "kembali"}),
        ("person.revoked", {"person": siti, "name": "Siti", "by": "Kepala", "reason": "pindah tugas", "erased": 1}),
        ("biometric.erased", {"person": siti, "name": "Siti", "by": "Kepala", "faces": 0, "slots": [3],
                              "sensors": {}}),
    ]


def add_people(db_path: Path, *people: tuple[str, str]) -> list[str]:
    """Add people in-process, through a writer of our own that is stopped before the CLI runs."""
    store = StoreWriter(db_path, synchronous="normal")
    store.start()
    try:
        registry = PeopleRegistry(db_path, store, None)
        return [registry.add(name, nip, "staff", "admin").id for name, nip in people]
    finally:
        store.stop()


def test_cli_enroll_face_offline_and_the_same_face_is_refused_for_someone_else(tmp_path: Path,
                                                                               key_file: Path) -> None:
    from enrollment.face_quality import FaceSampleRefused, enroll_samples
    from gateway.access_desk import AccessDesk
    from gateway.config.loader import load_config

    config = offline_config(tmp_path, access={"key_file": str(key_file)})
    db_path = tmp_path / "data" / "dcgate.db"
    first, second = add_people(db_path, ("Barack", VALID_NIP), ("Someone Else", OTHER_NIP))
    people = PeopleRegistry(db_path, None, None)

    reply = json.loads(ok(cli(config, "enroll", "face", first, "--image", str(FACES / "obama.jpg"), "--by", "a")))
    assert reply["person"] == first and reply["accepted"] == 1 and reply["refused"] == []
    assert UUID.fullmatch(reply["template"])
    assert people.get(first).faces == 1

    refused = cli(config, "enroll", "face", second, "--image", str(FACES / "obama2.jpg"), "--by", "a")
    assert refused.returncode == 2, refused
    assert f"this face is already enrolled as {first!r}" in refused.stderr
    assert people.get(second).faces == 0
    # the CLI prints the message; the refusal's stable code, from the same offline desk, is already_enrolled
    store = StoreWriter(db_path, synchronous="normal")
    store.start()
    try:
        desk = AccessDesk(load_config(config), PeopleRegistry(db_path, store, TemplateCipher.from_file(key_file)), None)
        with pytest.raises(FaceSampleRefused) as info:
            desk.handlers()["enroll.face"]({"person": second, "by": "a", "images": [str(FACES / "obama2.jpg")]})
        assert info.value.reason == "already_enrolled"
    finally:
        store.stop()
    assert people.get(second).faces == 0

    # what was stored is the photo's template, encrypted: it decrypts with the key and is not on disk in clear
    registry = PeopleRegistry(db_path, None, TemplateCipher.from_file(key_file))
    ids, vectors = registry.face_templates()
    expected = enroll_samples([FACES / "obama.jpg"]).template
    assert ids == [first] and np.allclose(vectors[0], expected, atol=1e-5)
    db, wal = db_and_wal(db_path)
    assert vectors[0].tobytes()[:32] not in db + wal
    [enrolled] = committed_events(db_path, kind="biometric.enrolled")
    assert enrolled.fields == {"person": first, "name": "Barack", "method": "face", "samples": 1, "door": None,
                               "by": "a", "template": reply["template"]}


def test_cli_enroll_finger_needs_the_running_gateway(tmp_path: Path, key_file: Path) -> None:
    config = offline_config(tmp_path, access={"key_file": str(key_file)}, doors=[DOOR])
    [person] = add_people(tmp_path / "data" / "dcgate.db", ("Budi", VALID_NIP))
    result = cli(config, "enroll", "finger", person, "--door", "main", "--by", "a", "--timeout", "2")
    assert result.returncode == 3, result
    assert "the gateway is not running" in result.stderr and "Fix: start it with `dcgate run`" in result.stderr
    assert query(tmp_path / "data" / "dcgate.db", "SELECT count(*) FROM templates") == [(0,)]
    assert committed_events(tmp_path / "data" / "dcgate.db", kind="biometric.enrolled") == []


def test_cli_config_check_refuses_doors_without_a_key_file(tmp_path: Path, key_file: Path) -> None:
    keyless = offline_config(tmp_path, "keyless.toml", doors=[DOOR])
    result = run_cli("config", "check", str(keyless))
    assert result.returncode == 2, result
    assert "access.key_file is not set" in result.stderr
    assert "Fix: dcgate key generate" in result.stderr and "[access] key_file" in result.stderr

    keyed = offline_config(tmp_path, "keyed.toml", doors=[DOOR], access={"key_file": str(key_file)})
    assert "OK" in ok(run_cli("config", "check", str(keyed)))

    key_file.chmod(0o640)  # and a key others can read is refused too
    loose = run_cli("config", "check", str(keyed))
    assert loose.returncode == 2 and "readable by other users" in loose.stderr and "chmod 600" in loose.stderr


def test_person_commands_need_no_key_but_enrolment_does(tmp_path: Path) -> None:
    config = offline_config(tmp_path)
    [person] = add_people(tmp_path / "data" / "dcgate.db", ("Budi", VALID_NIP))
    result = cli(config, "enroll", "face", person, "--image", str(FACES / "obama.jpg"), "--by", "a")
    assert result.returncode == 2, result
    assert "no key for biometric templates" in result.stderr and "dcgate key generate" in result.stderr
    assert query(tmp_path / "data" / "dcgate.db", "SELECT count(*) FROM templates") == [(0,)]

