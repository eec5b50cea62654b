"""The vault's master key and the envelope encryption of each item.

Every item is sealed with AES-256-GCM under its own random 256-bit data key; the data key is stored in
the item's database row, itself sealed (wrapped) with AES-256-GCM under the master key. The master key
lives in a file outside the database (``SAFEGUARD_VAULT_KEY_FILE``), so neither a copy of the database
nor a copy of the vault's files alone opens anything, and erasing one row's wrapped key makes that
item's ciphertext unreadable wherever copies of it survive (crypto-shredding).

Both seals bind the item's id as associated data: a wrapped key or a file moved to another item's
row does not open.

File format of a sealed item: ``SGV1`` | 12-byte nonce | ciphertext with its 16-byte tag.
Wrapped data key: 12-byte nonce | 32-byte key sealed with its 16-byte tag (60 bytes).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import queue
import secrets
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from safeguard.errors import ConfigError, SafeguardError

__all__ = ["MAGIC", "EvidenceKeyError", "EvidenceTampered", "MasterKey", "open_item", "seal_item", "sealing"]

MAGIC = b"SGV1"
_NONCE = 12
_KEY_HEADER = "# safeguard evidence vault master key (AES-256); keep it off the database's disk and backups\n"


class EvidenceKeyError(SafeguardError):
    """The item's data key does not unwrap with the master key (wrong key, or key shredded)."""

    code = "evidence_key_error"
    status = 409


class EvidenceTampered(SafeguardError):
    """The item's file is missing, or it does not decrypt or hash to what was preserved."""

    code = "evidence_tampered"
    status = 409


@dataclass(frozen=True)
class MasterKey:
    key: bytes
    path: str = ""

    @property
    def id(self) -> str:
        """A public fingerprint of the key (stored with each item it wraps): never the key itself."""
        return hashlib.sha256(b"safeguard-vault-key-id\0" + self.key).hexdigest()[:16]

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(secrets.token_bytes(32))

    def write_new(self, path: Path) -> MasterKey:
        """Write the key to ``path`` with mode 0600; refuses to overwrite an existing file (atomic: a
        process that reads it concurrently sees the whole key or no file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(_KEY_HEADER + base64.b64encode(self.key).decode() + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, path)  # fails if the path exists: never replaces a key
        except FileExistsError:
            raise ConfigError(
                f"vault key file {path} exists already; not overwriting it", code="config_error"
            ) from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        return MasterKey(self.key, str(path))

    @classmethod
    def load(cls, path: Path) -> MasterKey:
        """Read a key file; a :class:`ConfigError` says what is wrong (missing, unreadable, malformed)."""
        try:
            st = path.stat()
            text = path.read_text(encoding="ascii")
        except FileNotFoundError:
            raise ConfigError(
                f"vault key file {path} does not exist (make one with `safeguard vault init`)",
                code="evidence_key_error",
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"vault key file {path} is not readable: {exc}", code="evidence_key_error") from None
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        try:
            if len(lines) != 1:
                raise ValueError("expected one line of base64")
            key = base64.b64decode(lines[0], validate=True)
        except (ValueError, binascii.Error) as exc:
            raise ConfigError(f"vault key file {path} is malformed: {exc}", code="evidence_key_error") from None
        if len(key) != 32:
            raise ConfigError(
                f"vault key file {path} holds {len(key)} bytes; an AES-256 key is 32", code="evidence_key_error"
            )
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"vault key file {path} is readable by group or others (mode {stat.S_IMODE(st.st_mode):o}); "
                "chmod 600 it",
                code="evidence_key_error",
            )
        return cls(key, str(path))

    # -- wrapping data keys ------------------------------------------------------------------------
    def wrap(self, data_key: bytes, item_id: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        return nonce + AESGCM(self.key).encrypt(nonce, data_key, b"sgv-wrap:" + item_id.encode())

    def unwrap(self, wrapped: bytes, item_id: str) -> bytes:
        try:
            return AESGCM(self.key).decrypt(wrapped[:_NONCE], wrapped[_NONCE:], b"sgv-wrap:" + item_id.encode())
        except (InvalidTag, ValueError):
            raise EvidenceKeyError(
                f"evidence item {item_id}: its data key does not unwrap with the vault key {self.id}",
                details={"item_id": item_id, "key_id": self.id},
            ) from None


def seal_item(data: bytes, item_id: str) -> tuple[bytes, bytes]:
    """Encrypt ``data`` under a fresh data key: returns (the file's bytes, the data key)."""
    with sealing(data, item_id) as (sealed, data_key):
        return bytes(sealed), data_key


# Sealing writes into a reused buffer: a fresh multi-megabyte ``bytes`` per upload (and another for
# prefixing the header) cost more than the AES itself, in page faults (bench/preserve_bench.py).
_BUFFERS: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
_POOLED_MAX = 8 * 1024 * 1024  # larger items get a buffer of their own
_POOL_SIZE = 4
_pooled = 0
_pool_lock = threading.Lock()


@contextmanager
def sealing(data: bytes, item_id: str, data_key: bytes | None = None) -> Iterator[tuple[memoryview, bytes]]:
    """:func:`seal_item` into a pooled buffer: yields (a view of the file's bytes, valid inside the ``with``
    only, and the data key: ``data_key``, or a fresh one)."""
    global _pooled
    data_key = data_key or AESGCM.generate_key(bit_length=256)
    nonce = secrets.token_bytes(_NONCE)
    head = len(MAGIC) + _NONCE
    need = head + len(data) + 16 + 15  # GCM's update_into wants a block's slack
    buf: bytearray | None = None
    if need <= _POOLED_MAX:
        try:
            buf = _BUFFERS.get_nowait()
        except queue.Empty:
            with _pool_lock:
                if _pooled < _POOL_SIZE:
                    _pooled += 1
                    buf = bytearray(_POOLED_MAX)
    pooled = buf is not None
    if buf is None:
        buf = bytearray(need)
    try:
        view = memoryview(buf)
        view[: len(MAGIC)] = MAGIC
        view[len(MAGIC) : head] = nonce
        enc = Cipher(algorithms.AES(data_key), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(b"sgv-item:" + item_id.encode())
        n = enc.update_into(data, view[head:])
        if enc.finalize():  # GCM is a stream mode: everything came out of update_into
            raise RuntimeError("AES-GCM finalize returned data")
        view[head + n : head + n + 16] = enc.tag
        yield view[: head + n + 16], data_key
    finally:
        if pooled:
            _BUFFERS.put(buf)


def open_item(sealed: bytes, data_key: bytes, item_id: str) -> bytes:
    if not sealed.startswith(MAGIC) or len(sealed) < len(MAGIC) + _NONCE + 16:
        raise EvidenceTampered(
            f"evidence item {item_id}: its file is not a sealed vault item", details={"item_id": item_id}
        )
    body = sealed[len(MAGIC) :]
    try:
        return AESGCM(data_key).decrypt(body[:_NONCE], body[_NONCE:], b"sgv-item:" + item_id.encode())
    except InvalidTag:
        raise EvidenceTampered(
            f"evidence item {item_id}: its file does not decrypt (changed since it was preserved)",
            details={"item_id": item_id},
        ) from None
