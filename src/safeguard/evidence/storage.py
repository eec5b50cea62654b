"""Where sealed items are kept: a content-addressed blob store behind a three-method protocol.

The address of a blob is the SHA-256 of its bytes (the ciphertext, never the plaintext: an address
must not tell a reader of the disk which known image is stored). ``get`` checks the address, so a file
changed or swapped on disk is noticed before anything is decrypted. The filesystem store is the one
implementation now; an object store (S3 and the like, with object lock) is one more class with the same
three methods.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from pathlib import Path
from typing import Protocol

__all__ = ["BlobMissing", "BlobStore", "FileBlobStore"]

_ADDRESS = re.compile(r"^[0-9a-f]{64}$")


class BlobMissing(Exception):
    """No blob at this address."""


class BlobStore(Protocol):
    def put(self, data: bytes) -> str:
        """Store ``data`` durably (on return it survives a crash) and return its address, the hex SHA-256 of
        ``data``. Storing the same bytes twice is harmless."""
        ...

    def get(self, address: str) -> bytes:
        """The bytes at ``address``, exactly as stored; raises :class:`BlobMissing` if there are none. The
        caller checks them against the address."""
        ...

    def delete(self, address: str) -> None:
        """Remove the blob; removing an absent one is not an error."""
        ...


class FileBlobStore:
    """Blobs as files ``ROOT/ab/cd/abcd…`` (two levels of fan-out), written atomically and fsynced."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, address: str) -> Path:
        if not _ADDRESS.match(address):
            raise ValueError(f"not a blob address: {address!r}")
        return self.root / address[:2] / address[2:4] / address

    def put(self, data: bytes) -> str:
        address = hashlib.sha256(data).hexdigest()
        final = self.path(address)
        if final.exists():
            return address
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{address}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        _fsync_dir(final.parent)
        return address

    def get(self, address: str) -> bytes:
        try:
            return self.path(address).read_bytes()
        except FileNotFoundError:
            raise BlobMissing(address) from None

    def delete(self, address: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(address).unlink()


def _fsync_dir(path: Path) -> None:
    """Make a new directory entry durable (POSIX needs the directory itself synced for that)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
