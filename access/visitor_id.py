"""ID documents that guests and vendors deposit at the desk (KTP, SIM, passport).

`normalise_id` checks and canonicalises a document number, `mask_id` gives the only form that may
appear in events, MQTT, logs, lists and the minutes, and `id_aad` is the associated data that binds an
encrypted full number to its visit and visitor. See docs/visits.md, "ID documents".
"""

from __future__ import annotations

import re

from drivers.errors import InvalidValueError

__all__ = ["ID_TYPES", "MASK_CHAR", "id_aad", "mask_id", "normalise_id"]

ID_TYPES: tuple[str, ...] = ("KTP", "SIM", "PASPOR")

#: the character that replaces hidden digits in a masked number
MASK_CHAR = "\u2022"

_ALIASES = {"PASSPORT": "PASPOR"}
_SEPARATORS = re.compile(r"[\s.\-]+")
_PASPOR = re.compile(r"[A-Z0-9]{6,9}")


def _fail(id_type: str, raw: str, why: str) -> InvalidValueError:
    return InvalidValueError(f"{id_type} number {raw!r} {why}")


def _check_ktp(raw: str, number: str) -> None:
    if not number.isdigit() or not number.isascii():
        raise _fail("KTP", raw, "must be the 16-digit NIK with digits only; remove letters and other characters")
    if len(number) != 16:
        raise _fail("KTP", raw, f"must be the 16-digit NIK; got {len(number)} digits")
    province, day, month = int(number[0:2]), int(number[6:8]), int(number[8:10])
    if not 11 <= province <= 94:
        raise _fail("KTP", raw, f"starts with province code {number[0:2]}, which must be 11..94; check the NIK")
    if not (1 <= day <= 31 or 41 <= day <= 71):
        raise _fail(
            "KTP",
            raw,
            f"has birth day {number[6:8]} in digits 7-8, which must be 01..31 (41..71 for women); check the NIK",
        )
    if not 1 <= month <= 12:
        raise _fail("KTP", raw, f"has birth month {number[8:10]} in digits 9-10, which must be 01..12; check the NIK")


def _check_sim(raw: str, number: str) -> None:
    if not number.isdigit() or not number.isascii():
        raise _fail("SIM", raw, "must be 12 to 14 digits only; remove letters and other characters")
    if not 12 <= len(number) <= 14:
        raise _fail("SIM", raw, f"must be 12 to 14 digits; got {len(number)} digits")


def _check_paspor(raw: str, number: str) -> None:
    if not _PASPOR.fullmatch(number):
        raise _fail("PASPOR", raw, f"must be 6 to 9 letters and digits; got {len(number)} characters")
    if not any(ch.isdigit() for ch in number):
        raise _fail("PASPOR", raw, "must contain at least one digit; check the passport number")


_CHECKS = {"KTP": _check_ktp, "SIM": _check_sim, "PASPOR": _check_paspor}


def normalise_id(id_type: str, number: str) -> tuple[str, str]:
    """Check an ID document number and return ``(type, number)`` in canonical form.

    The type is case-insensitive and ``PASSPORT`` is accepted for ``PASPOR``. Spaces, dots and
    dashes are removed from the number; a passport number is upper-cased.

    Raises `InvalidValueError` naming the bad value and how to fix it.
    """
    if not isinstance(id_type, str) or not isinstance(number, str):
        raise InvalidValueError(f"ID type and number must be text; got {id_type!r} and {number!r}")
    kind = id_type.strip().upper()
    kind = _ALIASES.get(kind, kind)
    if kind not in _CHECKS:
        raise InvalidValueError(f"ID type {id_type!r} is not known; use one of {', '.join(ID_TYPES)}")
    cleaned = _SEPARATORS.sub("", number)
    if kind == "PASPOR":
        cleaned = cleaned.upper()
    if not cleaned:
        raise InvalidValueError(f"{kind} number {number!r} is empty; give the number printed on the document")
    _CHECKS[kind](number, cleaned)
    return kind, cleaned


def mask_id(number: str) -> str:
    """Hide the middle of an ID number with ``•`` (U+2022).

    12 or more characters keep the first 4 and last 4 (``3271••••••••0004``); 8 to 11 keep the
    first 2 and last 2; shorter numbers keep only the last 2.
    """
    size = len(number)
    if size >= 12:
        head, tail = 4, 4
    elif size >= 8:
        head, tail = 2, 2
    else:
        head, tail = 0, min(2, size)
    return number[:head] + MASK_CHAR * (size - head - tail) + number[size - tail :]


def id_aad(visit_id: str, n: int) -> bytes:
    """Associated data for the AES-GCM ciphertext of visitor ``n``'s full ID number in ``visit_id``."""
    return f"visit:{visit_id}:{n}:id_number".encode()
