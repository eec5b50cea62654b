"""Secrets at rest: sealed with AES-256-GCM under a key kept outside the database.

A database dump, a backup or anyone who can read the tables sees only sealed tokens::

    sgs1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>

The key is 32 random bytes in the file named by ``SAFEGUARD_SECRETS_KEY_FILE`` (default
``DATA_DIR/keys/secrets.key``), created with mode 0600 the first time something is sealed. The key
id (the first 8 hex digits of the key's SHA-256) tells which key sealed a token, so a token sealed
under another key fails with a clear message instead of a decryption error. ``purpose`` is bound as
associated data: a token sealed for one use (``webhook``) does not open as another.

Webhook signing secrets use it now; report credentials and exchange tokens are meant to.
:func:`key_file` is shared with the event log's signing key (``safeguard.ledger``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from safeguard.config import Settings
from safeguard.errors import ConfigError

__all__ = ["PREFIX", "SecretBox", "box", "is_sealed", "key_file", "open_", "seal"]

PREFIX = "sgs1."
_NONCE = 12


def key_file(path: Path, generate: Callable[[], bytes]) -> bytes:
    """The bytes in ``path``; on first need, ``generate()`` them and write the file with mode 0600.

    Created atomically (written to a private temporary file, then hard-linked into place, which fails
    if another process got there first), so processes starting together all end up with one key.
    """
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(generate())
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another process created it first: use theirs
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes()


def secrets_key_path(settings: Settings) -> Path:
    return Path(settings.secrets_key_file or Path(settings.data_dir) / "keys" / "secrets.key")


class SecretBox:
    """Seals and opens strings with one AES-256-GCM key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigError("the secrets key must be 32 bytes (base64 in its file)", code="invalid_secrets_key")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(key).hexdigest()[:8]

    @classmethod
    def from_file(cls, path: Path) -> SecretBox:
        raw = key_file(path, lambda: base64.b64encode(AESGCM.generate_key(bit_length=256)) + b"\n")
        try:
            key = base64.b64decode(raw.strip(), validate=True)
        except ValueError as exc:
            raise ConfigError(f"{path} does not hold a base64 key", code="invalid_secrets_key") from exc
        return cls(key)

    def seal(self, plaintext: str, *, purpose: str = "") -> str:
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), purpose.encode())
        return f"{PREFIX}{self.key_id}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open_(self, token: str, *, purpose: str = "") -> str:
        try:
            prefix_and_id, blob = token.rsplit(".", 1)
            key_id = prefix_and_id.removeprefix(PREFIX)
            raw = base64.b64decode(blob, altchars=b"-_", validate=True)  # strict: no stray characters
        except (ValueError, binascii.Error) as exc:
            raise ConfigError("not a sealed secret", code="secret_unreadable") from exc
        if not token.startswith(PREFIX):
            raise ConfigError("not a sealed secret", code="secret_unreadable")
        if key_id != self.key_id:
            raise ConfigError(
                f"secret sealed under key {key_id}, but the secrets key is {self.key_id}", code="secret_unreadable"
            )
        try:
            return self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], purpose.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise ConfigError("sealed secret failed authentication", code="secret_unreadable") from exc


_BOXES: dict[Path, SecretBox] = {}
_BOXES_LOCK = threading.Lock()


def box(settings: Settings) -> SecretBox:
    """The :class:`SecretBox` for ``settings``' key file (read, or created, once per process)."""
    path = secrets_key_path(settings).resolve()
    got = _BOXES.get(path)
    if got is None:
        with _BOXES_LOCK:
            got = _BOXES.get(path)
            if got is None:
                got = _BOXES[path] = SecretBox.from_file(path)
    return got


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


def seal(settings: Settings, plaintext: str, *, purpose: str = "") -> str:
    return box(settings).seal(plaintext, purpose=purpose)


def open_(settings: Settings, token: str, *, purpose: str = "") -> str:
    return box(settings).open_(token, purpose=purpose)
