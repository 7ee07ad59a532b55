"""The people who may open the door, and their encrypted biometric templates.

Every change goes through the store's one writer with the event that records it, in one
transaction (`StoreWriter.change`): a person never exists without their `person.added`, and a
template never disappears without its `person.revoked` or `biometric.erased`. Reads use their own
read-only connection, so the CLI can list people whether or not the gateway runs.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from access.crypto import TemplateCipher, associated_data
from drivers.errors import DcgateError, InvalidValueError
from gateway.store.database import open_for_reading
from gateway.store.events import utc_timestamp
from gateway.store.ids import uuid7
from gateway.store.writer import StoreWriter

if TYPE_CHECKING:  # numpy comes with the face extra; a fingerprint-only gateway does without it
    import numpy as np

Role = Literal["staff", "officer", "admin"]
Method = Literal["face", "finger"]
ROLES: tuple[Role, ...] = ("staff", "officer", "admin")
FACE_DIM = 128
SOURCE = "access"
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,100}")
_OTHER_ID = re.compile(r"[0-9A-Za-z.\-]{3,32}")


class UnknownPersonError(DcgateError):
    exit_code = 2


class PersonStateError(DcgateError):
    """The change does not fit the person's state (revoked, already active...)."""

    exit_code = 2


class NoTemplateKeyError(DcgateError):
    exit_code = 2


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    name: str
    nip: str
    role: Role
    active: bool
    enrolled_by: str
    enrolled_at: str
    revoked_at: str | None = None
    revoked_by: str | None = None
    faces: int = 0
    finger_slots: tuple[int, ...] = field(default_factory=tuple)

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def status(self) -> str:
        return "revoked" if self.revoked else "active" if self.active else "inactive"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "nip": self.nip, "role": self.role, "status": self.status,
            "active": self.active, "enrolled_by": self.enrolled_by, "enrolled_at": self.enrolled_at,
            "revoked_at": self.revoked_at, "revoked_by": self.revoked_by,
            "faces": self.faces, "finger_slots": list(self.finger_slots),
        }


@dataclass(frozen=True, slots=True)
class Revocation:
    person: Person
    finger_slots: tuple[int, ...]  # to erase from every door's sensor
    faces: int


def check_name(name: str) -> str:
    name = " ".join(name.split())
    if not _NAME.fullmatch(name):
        raise InvalidValueError(f"name {name!r} must be 1 to 100 printable characters")
    return name


def check_nip(nip: str) -> str:
    """An 18-digit civil-servant NIP is checked (birth date, appointment month, sex digit); staff without
    one (contract staff) use another employee number of 3-32 letters, digits, dots or dashes."""
    nip = nip.replace(" ", "")
    if nip.isdigit() and len(nip) == 18:
        try:
            date(int(nip[0:4]), int(nip[4:6]), int(nip[6:8]))
        except ValueError:
            raise InvalidValueError(f"NIP {nip}: digits 1-8 ({nip[:8]}) are not a birth date YYYYMMDD") from None
        if not 1 <= int(nip[12:14]) <= 12:
            raise InvalidValueError(f"NIP {nip}: digits 13-14 ({nip[12:14]}) are not an appointment month")
        if nip[14] not in "12":
            raise InvalidValueError(f"NIP {nip}: digit 15 ({nip[14]}) must be 1 (male) or 2 (female)")
        return nip
    if not _OTHER_ID.fullmatch(nip):
        raise InvalidValueError(
            f"NIP {nip!r} is neither an 18-digit NIP nor an employee number of 3-32 letters, digits, '.' or '-'"
        )
    return nip


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise InvalidValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    return role  # type: ignore[return-value]


class PeopleRegistry:
    def __init__(self, db_path: Path, writer: StoreWriter | None, cipher: TemplateCipher | None) -> None:
        self.db_path, self.writer, self.cipher = db_path, writer, cipher

    # -- reading --------------------------------------------------------------------------------
    def _read(self) -> sqlite3.Connection:
        return open_for_reading(self.db_path).conn

    def list(self, *, include_revoked: bool = False) -> list[Person]:
        conn = self._read()
        try:
            where = "" if include_revoked else "WHERE p.revoked_at IS NULL"
            return [_person(row) for row in conn.execute(_PERSON_SQL + f" {where} ORDER BY p.enrolled_at, p.id")]
        finally:
            conn.close()

    def get(self, ref: str) -> Person:
        """By id, by an id prefix of 4+ characters, or by NIP."""
        ref = ref.strip()
        conn = self._read()
        try:
            rows = conn.execute(_PERSON_SQL + " WHERE p.id = ? OR p.nip = ?", (ref, ref.replace(" ", ""))).fetchall()
            if not rows and len(ref) >= 4:
                rows = conn.execute(_PERSON_SQL + " WHERE p.id LIKE ? ESCAPE '\\'",
                                    (ref.replace("%", "\\%").replace("_", "\\_") + "%",)).fetchall()
        finally:
            conn.close()
        if not rows:
            raise UnknownPersonError(
                f"no person {ref!r} (give an id from `dcgate person list`, 4+ characters, or a NIP)"
            )
        if len(rows) > 1:
            raise UnknownPersonError(f"{ref!r} matches {len(rows)} people; give more of the id")
        return _person(rows[0])

    def person_for_slot(self, slot: int) -> Person | None:
        conn = self._read()
        try:
            row = conn.execute(_PERSON_SQL + " WHERE p.id = (SELECT person_id FROM templates "
                               "WHERE method = 'finger' AND slot = ?)", (slot,)).fetchone()
        finally:
            conn.close()
        return None if row is None else _person(row)

    def face_templates(self) -> tuple[list[str], np.ndarray]:
        """Every stored face template of people not revoked (inactive ones too: they are refused by name)."""
        import numpy as np

        ids: list[str] = []
        vectors: list[np.ndarray] = []
        for person_id, template_id, nonce, ciphertext in self._templates("face"):
            plain = self._cipher().decrypt(nonce, ciphertext, associated_data(person_id, "face", template_id))
            ids.append(person_id)
            vectors.append(np.frombuffer(plain, dtype=np.float32))
        return ids, np.asarray(vectors, dtype=np.float32).reshape(len(vectors), FACE_DIM)

    def finger_templates(self) -> dict[int, bytes]:
        """slot -> template bytes, for provisioning a sensor."""
        out: dict[int, bytes] = {}
        conn = self._read()
        try:
            rows = conn.execute("SELECT id, person_id, slot, nonce, ciphertext FROM templates "
                                "WHERE method = 'finger' ORDER BY slot").fetchall()
        finally:
            conn.close()
        for template_id, person_id, slot, nonce, ciphertext in rows:
            out[slot] = self._cipher().decrypt(nonce, ciphertext, associated_data(person_id, "finger", template_id))
        return out

    def _templates(self, method: Method) -> list[tuple[str, str, bytes, bytes]]:
        conn = self._read()
        try:
            return conn.execute(
                "SELECT t.person_id, t.id, t.nonce, t.ciphertext FROM templates t JOIN people p ON p.id = t.person_id "
                "WHERE t.method = ? AND p.revoked_at IS NULL ORDER BY t.created_at", (method,)).fetchall()
        finally:
            conn.close()

    # -- changing -------------------------------------------------------------------------------
    def add(self, name: str, nip: str, role: str, by: str) -> Person:
        name, nip, role, by = check_name(name), check_nip(nip), check_role(role), check_name(by)
        person_id = uuid7.text()

        def insert(conn: sqlite3.Connection) -> None:
            taken = conn.execute("SELECT id, revoked_at FROM people WHERE nip = ?", (nip,)).fetchone()
            if taken:
                state = "revoked" if taken[1] else "enrolled"
                raise PersonStateError(f"NIP {nip} is already {state} as person {taken[0]}"
                                       + (". Fix: activate that person instead" if not taken[1] else ""))
            conn.execute("INSERT INTO people (id, name, nip, role, active, enrolled_by, enrolled_at) "
                         "VALUES (?, ?, ?, ?, 1, ?, ?)", (person_id, name, nip, role, by, utc_timestamp()))

        self._writer().change("person.added", SOURCE,
                              {"person": person_id, "name": name, "nip": nip, "role": role, "by": by}, insert)
        return self.get(person_id)

    def set_active(self, ref: str, active: bool, by: str, reason: str = "") -> Person:
        person = self.get(ref)
        if person.revoked:
            raise PersonStateError(f"person {person.id} ({person.name}) is revoked; enrol them again as a new person")
        if person.active == active:
            raise PersonStateError(f"person {person.id} ({person.name}) is already {person.status}")

        def update(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE people SET active = ? WHERE id = ? AND revoked_at IS NULL", (int(active), person.id))

        kind = "person.activated" if active else "person.deactivated"
        self._writer().change(kind, SOURCE, {"person": person.id, "name": person.name, "by": check_name(by),
                                             "reason": reason}, update)
        return self.get(person.id)

    def revoke(self, ref: str, by: str, reason: str = "") -> Revocation:
        """Deactivate for good and erase every template from the database, in one transaction."""
        person = self.get(ref)
        if person.revoked:
            raise PersonStateError(f"person {person.id} ({person.name}) was already revoked at {person.revoked_at}")
        by = check_name(by)
        expected = len(person.finger_slots) + person.faces

        def erase(conn: sqlite3.Connection) -> tuple[tuple[int, ...], int]:
            slots = tuple(r[0] for r in conn.execute(
                "SELECT slot FROM templates WHERE person_id = ? AND method = 'finger' ORDER BY slot", (person.id,)))
            faces = conn.execute("SELECT count(*) FROM templates WHERE person_id = ? AND method = 'face'",
                                 (person.id,)).fetchone()[0]
            if len(slots) + faces != expected:  # an enrolment landed meanwhile: the record must say what went
                raise PersonStateError(f"person {person.id}'s templates changed while revoking; run it again")
            conn.execute("DELETE FROM templates WHERE person_id = ?", (person.id,))
            conn.execute("UPDATE people SET active = 0, revoked_at = ?, revoked_by = ? WHERE id = ?",
                         (utc_timestamp(), by, person.id))
            return slots, faces

        fields = {"person": person.id, "name": person.name, "by": by, "reason": reason,
                  "erased": expected}
        slots, faces = self._writer().change("person.revoked", SOURCE, fields, erase)
        self._writer().checkpoint()  # the WAL still holds the old pages until a checkpoint truncates it
        return Revocation(self.get(person.id), slots, faces)

    def add_face(self, person_id: str, template: np.ndarray, samples: int, by: str, door: str | None) -> str:
        import numpy as np

        vector = np.asarray(template, dtype=np.float32).reshape(-1)
        if vector.shape != (FACE_DIM,) or not np.all(np.isfinite(vector)):
            raise InvalidValueError(f"a face template is {FACE_DIM} finite numbers, got shape {vector.shape}")
        return self._add_template(person_id, "face", None, vector.tobytes(), samples, by, door)

    def add_finger(self, person_id: str, slot: int, template: bytes, by: str, door: str | None) -> str:
        if not template:
            raise InvalidValueError("an empty fingerprint template was read back from the sensor")
        return self._add_template(person_id, "finger", slot, bytes(template), 2, by, door)

    def _add_template(self, person_id: str, method: Method, slot: int | None, plain: bytes, samples: int,
                      by: str, door: str | None) -> str:
        person = self.get(person_id)
        cipher = self._cipher()
        template_id = uuid7.text()
        nonce, ciphertext = cipher.encrypt(plain, associated_data(person.id, method, template_id))

        def insert(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT revoked_at FROM people WHERE id = ?", (person.id,)).fetchone()
            if row is None or row[0] is not None:
                raise PersonStateError(f"person {person.id} is revoked; templates cannot be added")
            if slot is not None:
                used = conn.execute("SELECT person_id FROM templates WHERE method = 'finger' AND slot = ?",
                                    (slot,)).fetchone()
                if used:
                    raise PersonStateError(f"fingerprint slot {slot} already holds a template of person {used[0]}")
            conn.execute(
                "INSERT INTO templates (id, person_id, method, slot, samples, nonce, ciphertext, created_by, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (template_id, person.id, method, slot, samples, nonce, ciphertext, by, utc_timestamp()))

        fields: dict[str, Any] = {"person": person.id, "name": person.name, "method": method, "samples": samples,
                                  "door": door, "by": check_name(by), "template": template_id}
        if slot is not None:
            fields["slot"] = slot
        self._writer().change("biometric.enrolled", SOURCE, fields, insert)
        return template_id

    def used_slots(self) -> set[int]:
        conn = self._read()
        try:
            return {r[0] for r in conn.execute("SELECT slot FROM templates WHERE method = 'finger'")}
        finally:
            conn.close()

    # -- plumbing -------------------------------------------------------------------------------
    def _writer(self) -> StoreWriter:
        if self.writer is None:
            raise DcgateError("this registry is read-only")
        return self.writer

    def _cipher(self) -> TemplateCipher:
        if self.cipher is None:
            raise NoTemplateKeyError(
                "no key for biometric templates. Fix: dcgate key generate /etc/dcgate/biometric.key, then set "
                "[access] key_file to it"
            )
        return self.cipher


_PERSON_SQL = (
    "SELECT p.id, p.name, p.nip, p.role, p.active, p.enrolled_by, p.enrolled_at, p.revoked_at, p.revoked_by, "
    "(SELECT count(*) FROM templates t WHERE t.person_id = p.id AND t.method = 'face'), "
    "(SELECT group_concat(slot) FROM (SELECT slot FROM templates t WHERE t.person_id = p.id "
    "AND t.method = 'finger' ORDER BY slot)) FROM people p"
)


def _person(row: tuple[Any, ...]) -> Person:
    slots = tuple(int(s) for s in row[10].split(",")) if row[10] else ()
    return Person(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6], row[7], row[8], row[9], slots)
