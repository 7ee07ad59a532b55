"""Biometric templates encrypted at rest: AES-256-GCM with a key kept in an owner-only file.

Templates are *specific personal data* under UU PDP (No. 27/2022). The database only ever holds
ciphertext; the key lives in a separate file (``[access] key_file``) so a copied database alone
reveals nothing. The associated data binds each ciphertext to its row (person, method, template id):
a ciphertext moved onto another person's row fails to decrypt instead of letting them in.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from drivers.errors import ConfigError, DcgateError

KEY_BYTES = 32
NONCE_BYTES = 12  # the size GCM is defined for; random per encryption (2^-32 collision risk after 2^32 uses)


class TemplateKeyError(ConfigError):
    """The key file is missing, readable by others, or not a key."""


class TemplateDecryptError(DcgateError):
    """A stored template does not decrypt: another key, or the row was tampered with."""


def generate_key_file(path: Path) -> Path:
    """Write a new random key, owner-only. Refuses to overwrite: a lost key makes every template unreadable."""
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise TemplateKeyError(
            f"{path} already exists; a new key would make every enrolled template unreadable. "
            "Fix: keep the existing key, or move it aside first if you really mean to re-enrol everyone"
        ) from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secrets.token_bytes(KEY_BYTES).hex() + "\n")
    return path


def load_key(path: Path) -> bytes:
    """Read and check the key file: owner-only, 64 hex digits."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise TemplateKeyError(
            f"access.key_file {str(path)!r} does not exist. Fix: dcgate key generate {path}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TemplateKeyError(f"access.key_file {str(path)!r} cannot be read ({exc})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TemplateKeyError(
            f"access.key_file {str(path)!r} is readable by other users (mode {stat.S_IMODE(mode):o}). "
            f"Fix: chmod 600 {path}"
        )
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise TemplateKeyError(
            f"access.key_file {str(path)!r} is not a key (want {KEY_BYTES * 2} hex digits). "
            "Fix: dcgate key generate NEW_FILE and point access.key_file at it"
        )
    return key


def associated_data(person_id: str, method: str, template_id: str) -> bytes:
    return f"dcgate-template:{person_id}:{method}:{template_id}".encode()


class TemplateCipher:
    """Encrypts and decrypts template bytes. Never logs or keeps plaintext."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise TemplateKeyError(f"a template key is {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)

    @classmethod
    def from_file(cls, path: Path) -> TemplateCipher:
        return cls(load_key(path))

    def __repr__(self) -> str:  # keep the key out of any traceback or log line
        return "TemplateCipher(<key hidden>)"

    def encrypt(self, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
        """Returns (nonce, ciphertext with its 16-byte tag)."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce, self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise TemplateDecryptError(
                "a biometric template does not decrypt: access.key_file is not the key it was enrolled with, "
                "or the row was altered. Fix: point access.key_file at the original key, or revoke and re-enrol"
            ) from None
