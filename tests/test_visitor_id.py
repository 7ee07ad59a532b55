"""ID documents of guests and vendors: KTP (NIK), SIM and passport numbers, their masks, the AES-GCM AAD.

Pure functions, so the tests are tables: every rule of docs/visits.md "ID documents" has a case that
passes and a case that fails, and every failure names the value the user typed.
"""

from __future__ import annotations

import pytest

from access.visitor_id import ID_TYPES, MASK_CHAR, id_aad, mask_id, normalise_id
from drivers.errors import DcgateError, InvalidValueError

BULLET = "\u2022"


def test_id_types_and_mask_character() -> None:
    assert ID_TYPES == ("KTP", "SIM", "PASPOR")
    assert MASK_CHAR == BULLET


# -- KTP: the 16-digit NIK --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "3271010101010004",  # Jawa Barat (32), born 01-01, male
        "1171053112990001",  # Aceh (11), day 31, December
        "9471016512850003",  # Papua (94), day 65 = a woman born on the 25th
        "3273014101900002",  # day 41 = a woman born on the 1st
        "3273017101900002",  # day 71 = a woman born on the 31st
        "5171012806770001",  # Bali (51)
    ],
)
def test_valid_ktp(number: str) -> None:
    assert normalise_id("KTP", number) == ("KTP", number)


@pytest.mark.parametrize(
    ("number", "fragment"),
    [
        ("1071010101010004", "province code 10"),  # below 11
        ("9571010101010004", "province code 95"),  # above 94
        ("0071010101010004", "province code 00"),
        ("3271010001010004", "birth day 00"),
        ("3271013201010004", "birth day 32"),
        ("3271014001010004", "birth day 40"),  # between the men's and the women's ranges
        ("3271017201010004", "birth day 72"),
        ("3271010100010004", "birth month 00"),
        ("3271010113010004", "birth month 13"),
        ("327101010101000", "got 15 digits"),
        ("32710101010100041", "got 17 digits"),
        ("1234", "got 4 digits"),
        ("32710101010100AB", "digits only"),
        ("3271O10101010004", "digits only"),  # a letter O typed for a zero
    ],
)
def test_invalid_ktp_names_value_and_rule(number: str, fragment: str) -> None:
    with pytest.raises(InvalidValueError) as caught:
        normalise_id("KTP", number)
    message = str(caught.value)
    assert repr(number) in message
    assert fragment in message
    assert "NIK" in message


def test_ktp_message_example() -> None:
    with pytest.raises(InvalidValueError, match=r"KTP number '1234' must be the 16-digit NIK; got 4 digits"):
        normalise_id("KTP", "1234")


def test_invalid_value_error_is_a_value_error_and_a_dcgate_error() -> None:
    with pytest.raises(ValueError):
        normalise_id("KTP", "1")
    with pytest.raises(DcgateError):
        normalise_id("KTP", "1")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("3271 0101 0101 0004", "3271010101010004"),
        ("3271-0101-0101-0004", "3271010101010004"),
        ("3271.0101.0101.0004", "3271010101010004"),
        ("  32.71-01 01\t0101 0004 ", "3271010101010004"),
    ],
)
def test_ktp_spaces_dots_and_dashes_are_removed(raw: str, expected: str) -> None:
    assert normalise_id("ktp", raw) == ("KTP", expected)


# -- SIM ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["123456789012", "1234567890123", "12345678901234"])
def test_valid_sim(number: str) -> None:
    assert normalise_id("SIM", number) == ("SIM", number)


def test_sim_separators_are_removed() -> None:
    assert normalise_id("sim", "1234-5678-9012") == ("SIM", "123456789012")


@pytest.mark.parametrize(
    ("number", "fragment"),
    [
        ("12345678901", "got 11 digits"),
        ("123456789012345", "got 15 digits"),
        ("1234567890AB", "digits only"),
    ],
)
def test_invalid_sim(number: str, fragment: str) -> None:
    with pytest.raises(InvalidValueError) as caught:
        normalise_id("SIM", number)
    assert repr(number) in str(caught.value)
    assert fragment in str(caught.value)
    assert "12 to 14" in str(caught.value)


# -- passport -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("C1234567", "C1234567"),
        ("c1234567", "C1234567"),  # upper-cased
        ("X123456", "X123456"),
        ("123456", "123456"),  # 6 characters, digits only is fine
        ("AB1234567", "AB1234567"),  # 9 characters
        ("B 123-4567", "B1234567"),
    ],
)
def test_valid_paspor(raw: str, expected: str) -> None:
    assert normalise_id("PASPOR", raw) == ("PASPOR", expected)


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("A1234", "got 5 characters"),
        ("AB12345678", "got 10 characters"),
        ("ABCDEFG", "at least one digit"),
        ("A12345!", "letters and digits"),
        ("A12345/6", "letters and digits"),
    ],
)
def test_invalid_paspor(raw: str, fragment: str) -> None:
    with pytest.raises(InvalidValueError) as caught:
        normalise_id("PASPOR", raw)
    assert repr(raw) in str(caught.value)
    assert fragment in str(caught.value)


# -- types ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("id_type", "number", "expected"),
    [
        ("KTP", "3271010101010004", "KTP"),
        ("ktp", "3271010101010004", "KTP"),
        (" Ktp ", "3271010101010004", "KTP"),
        ("sim", "123456789012", "SIM"),
        ("Sim", "123456789012", "SIM"),
        ("PASPOR", "C1234567", "PASPOR"),
        ("paspor", "C1234567", "PASPOR"),
        ("PASSPORT", "C1234567", "PASPOR"),
        ("Passport", "C1234567", "PASPOR"),
    ],
)
def test_type_is_case_insensitive_with_passport_alias(id_type: str, number: str, expected: str) -> None:
    assert normalise_id(id_type, number)[0] == expected


@pytest.mark.parametrize("id_type", ["NPWP", "KITAS", "", "K T P"])
def test_unknown_type_names_value_and_choices(id_type: str) -> None:
    with pytest.raises(InvalidValueError) as caught:
        normalise_id(id_type, "3271010101010004")
    message = str(caught.value)
    assert repr(id_type) in message
    assert "KTP, SIM, PASPOR" in message


@pytest.mark.parametrize("id_type", ["KTP", "SIM", "PASPOR"])
@pytest.mark.parametrize("number", ["", "   ", "-.-"])
def test_empty_number_is_refused(id_type: str, number: str) -> None:
    with pytest.raises(InvalidValueError, match="empty"):
        normalise_id(id_type, number)


# -- masks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("3271010101010004", "3271" + BULLET * 8 + "0004"),  # 16: first 4, last 4
        ("12345678901234", "1234" + BULLET * 6 + "1234"),  # 14
        ("123456789012", "1234" + BULLET * 4 + "9012"),  # 12: still 4 + 4
        ("12345678901", "12" + BULLET * 7 + "01"),  # 11: first 2, last 2
        ("AB1234567", "AB" + BULLET * 5 + "67"),  # 9
        ("C1234567", "C1" + BULLET * 4 + "67"),  # 8
        ("X123456", BULLET * 5 + "56"),  # 7: last 2 only
        ("123", BULLET + "23"),
        ("12", "12"),
        ("7", "7"),
        ("", ""),
    ],
)
def test_mask_id_bands(number: str, masked: str) -> None:
    assert mask_id(number) == masked
    assert len(mask_id(number)) == len(number)


def test_mask_id_documented_example() -> None:
    assert mask_id("3271010101010004") == "3271••••••••0004"


@pytest.mark.parametrize("number", ["3271010101010004", "123456789012", "C1234567", "X123456"])
def test_mask_hides_the_middle(number: str) -> None:
    assert mask_id(number).count(BULLET) >= len(number) // 3
    assert number not in mask_id(number)


def test_normalised_then_masked() -> None:
    kind, number = normalise_id("ktp", "3271 0101 0101 0004")
    assert (kind, mask_id(number)) == ("KTP", "3271••••••••0004")


# -- associated data ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("visit_id", "n", "aad"),
    [
        ("KJ-20261121-001", 1, b"visit:KJ-20261121-001:1:id_number"),
        ("KJ-20261121-012", 3, b"visit:KJ-20261121-012:3:id_number"),
    ],
)
def test_id_aad(visit_id: str, n: int, aad: bytes) -> None:
    assert id_aad(visit_id, n) == aad


def test_id_aad_differs_per_visitor() -> None:
    assert id_aad("KJ-20261121-001", 1) != id_aad("KJ-20261121-001", 2)
    assert id_aad("KJ-20261121-001", 1) != id_aad("KJ-20261121-002", 1)
