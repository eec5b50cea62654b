"""Where sealed items are kept: a content-addressed blob store behind a three-method protocol.

The address of a blob is the SHA-256 of its bytes (the ciphertext, never the plaintext: an address
must not tell a reader of the disk which known image is stored). ``get`` checks the address, so a file
changed or swapped on disk is noticed before anything is decrypted. The filesystem store is the one
implementation now; an object store (S3 and the like, with object lock) is one more class with the same
three methods.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import re
import threading
from pathlib import Path
from typing import Protocol

from safeguard.errors import ConfigError

__all__ = ["BlobMissing", "BlobStore", "FileBlobStore"]

_ADDRESS = re.compile(r"^[0-9a-f]{64}$")
_SPOOL_NAME = re.compile(r"^ev_[0-9a-f]{32}$")


class BlobMissing(Exception):
    """No blob at this address."""


class BlobStore(Protocol):
    def put(self, data: bytes | memoryview) -> str:
        """Store ``data`` and return its address, the hex SHA-256 of ``data``. On return the blob survives
        the process being killed (and, where the store promises it, a power loss). Storing the same bytes
        twice is harmless."""
        ...

    def get(self, address: str) -> bytes:
        """The bytes at ``address``, exactly as stored; raises :class:`BlobMissing` if there are none. The
        caller checks them against the address."""
        ...

    def delete(self, address: str) -> None:
        """Remove the blob; removing an absent one is not an error."""
        ...


class FileBlobStore:
    """Blobs as files ``ROOT/ab/cd/abcd…`` (two levels of fan-out), mode 0600.

    Every mode writes the file before ``put`` returns, so a killed process loses nothing (the kernel
    holds the data). ``fsync`` says when it reaches the disk: ``request`` fsyncs the file and its
    directory before ``put`` returns (a power loss loses nothing acknowledged; one disk flush per blob);
    ``background`` (the default) has a thread fsync new files within about a second; ``off`` leaves it
    to the kernel's writeback.
    """

    MODES = ("background", "request", "off")

    def __init__(self, root: Path, *, fsync: str = "background") -> None:
        if fsync not in self.MODES:
            raise ConfigError(
                f"SAFEGUARD_VAULT_FSYNC must be one of {', '.join(self.MODES)}, not {fsync!r}", code="invalid_setting"
            )
        self.root = root
        self.fsync = fsync
        self._dirs: set[Path] = set()  # fan-out directories known to exist

    def path(self, address: str) -> Path:
        if not _ADDRESS.match(address):
            raise ValueError(f"not a blob address: {address!r}")
        return self.root / address[:2] / address[2:4] / address

    def put(self, data: bytes | memoryview) -> str:
        address = hashlib.sha256(data).hexdigest()
        final = self.path(address)
        if final.parent not in self._dirs:
            final.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(final.parent)
        # written in place, no temporary name: an address is the hash of a ciphertext under a fresh random
        # key, so no two writers ever share one, and a file cut short by a crash has no row (the row commits
        # after ``put`` returns), is never read, and is counted by ``safeguard vault verify`` as unnamed
        with contextlib.suppress(FileExistsError):
            self._write_new(final, data)
        return address

    def _write_new(self, path: Path, data: bytes | memoryview) -> None:
        """Write a file that must not exist yet (``FileExistsError`` before a byte is written), removed
        again if the write fails; durable as ``fsync`` says. Blobs and spooled items both come here."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self.fsync == "request":
                os.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        finally:
            os.close(fd)
        if self.fsync == "request":
            _fsync_dir(path.parent)
        elif self.fsync == "background":
            _SYNCER.add(path)

    # -- the spool: sealed items written under their item id, named by their hash later ------------
    # A matching upload's sealed bytes are written once, here, while the decision commits; the item's
    # row names no address yet. After the commit a background thread (``EvidenceVault``'s settler)
    # hashes the file, links it to its address, records the address in the row, and unlinks the spool
    # name. Each step is safe to repeat, so a process killed anywhere in between is finished by the
    # next start (``EvidenceVault.recover``).

    @property
    def spool_dir(self) -> Path:
        return self.root.parent / "spool"

    def spool_path(self, item_id: str) -> Path:
        if not _SPOOL_NAME.match(item_id):
            raise ValueError(f"not an evidence item id: {item_id!r}")
        return self.spool_dir / item_id

    def spool(self, item_id: str, data: bytes | memoryview) -> None:
        """Write a sealed item under its id (never over an existing file); durable as ``fsync`` says."""
        path = self.spool_path(item_id)
        if self.spool_dir not in self._dirs:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            self._dirs.add(self.spool_dir)
        self._write_new(path, data)

    def spooled(self) -> list[Path]:
        try:
            return [p for p in self.spool_dir.iterdir() if _SPOOL_NAME.match(p.name)]
        except FileNotFoundError:
            return []

    def get_spooled(self, item_id: str) -> bytes:
        try:
            return self.spool_path(item_id).read_bytes()
        except FileNotFoundError:
            raise BlobMissing(item_id) from None

    def link_spooled(self, item_id: str) -> str:
        """Give a spooled item its address (a hard link; the spool name stays until :meth:`unspool`)."""
        src = self.spool_path(item_id)
        data = src.read_bytes()  # raises FileNotFoundError when it is not (or no longer) spooled
        address = hashlib.sha256(data).hexdigest()
        final = self.path(address)
        if final.parent not in self._dirs:
            final.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(final.parent)
        with contextlib.suppress(FileExistsError):  # linked by an earlier, interrupted settle
            os.link(src, final)
        if self.fsync == "request":
            _fsync_dir(final.parent)
        elif self.fsync == "background":
            _SYNCER.add(final)
        return address

    def unspool(self, item_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.spool_path(item_id).unlink()

    def get(self, address: str) -> bytes:
        try:
            return self.path(address).read_bytes()
        except FileNotFoundError:
            raise BlobMissing(address) from None

    def delete(self, address: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(address).unlink()


class _BackgroundSync:
    """fsyncs files written without it, and their directories, in batches off the request path."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self._pending: list[Path] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, path: Path) -> None:
        with self._lock:
            self._pending.append(path)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="vault-fsync", daemon=True)
                self._thread.start()

    def flush(self) -> None:
        with self._lock:
            paths, self._pending = self._pending, []
        for d in {p.parent for p in paths if _fsync_file(p)}:
            _fsync_dir(d)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self.flush()


def _fsync_file(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # deleted meanwhile
        return False
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
    return True


_SYNCER = _BackgroundSync()
atexit.register(_SYNCER.flush)  # a clean exit syncs what is pending


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
