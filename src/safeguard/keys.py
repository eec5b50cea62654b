"""API keys: shown once, stored hashed, each with one role.

A key looks like ``sg_<prefix>_<secret>``. The prefix (public, unique) finds the row; the whole key is
compared by SHA-256 in constant time. Keys are 256-bit random values, so a fast hash is the right tool
here (there is nothing to brute-force); no plaintext key is ever stored or logged.

Roles separate duties: ``platform`` (services that scan content), ``moderator`` (review, bank opinions),
``admin`` (banks, keys, webhooks) and ``auditor`` (the event log, read-only).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from safeguard import events
from safeguard.errors import InvalidInput, NotFound, Unauthorized
from safeguard.store import Database
from safeguard.store.models import ApiKey, utcnow

ROLES = ("platform", "moderator", "admin", "auditor", "lead")


@dataclass(frozen=True)
class Principal:
    key_id: int
    name: str
    role: str
    prefix: str

    @property
    def actor(self) -> str:
        return f"key:{self.prefix}:{self.name}"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyService:
    CACHE_SECONDS = 5.0  # a revoked key stops working within this many seconds in every process

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, tuple[float, Principal | None, str]] = {}
        self._lock = threading.Lock()

    def create(self, role: str, name: str = "", *, actor: str) -> dict[str, Any]:
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {ROLES}", code="invalid_role")
        prefix = secrets.token_hex(6)
        key = f"sg_{prefix}_{secrets.token_urlsafe(32)}"
        with self.db.write() as s:
            row = ApiKey(name=name or role, role=role, prefix=prefix, key_hash=_hash(key), created_at=utcnow())
            s.add(row)
            s.flush()
            events.append(
                s, "key.created", actor=actor, subject=("key", prefix), payload={"role": role, "name": row.name}
            )
            return {"id": row.id, "name": row.name, "role": role, "prefix": prefix, "key": key}

    def list(self) -> list[dict[str, Any]]:
        with self.db.read() as s:
            return [
                {
                    "id": k.id,
                    "name": k.name,
                    "role": k.role,
                    "prefix": k.prefix,
                    "created_at": k.created_at.isoformat(),
                    "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
                }
                for k in s.execute(select(ApiKey).order_by(ApiKey.id)).scalars()
            ]

    def revoke(self, prefix: str, *, actor: str) -> None:
        with self.db.write() as s:
            row = s.execute(select(ApiKey).where(ApiKey.prefix == prefix)).scalar_one_or_none()
            if row is None:
                raise NotFound(f"key {prefix!r} not found", code="key_not_found")
            row.revoked_at = utcnow()
            events.append(s, "key.revoked", actor=actor, subject=("key", prefix), payload={})
        with self._lock:
            self._cache.pop(prefix, None)

    def cached(self, key: str | None) -> Principal | None:
        """The principal for ``key`` if this process checked it against the database within
        ``CACHE_SECONDS``, without touching the database; ``None`` when :meth:`authenticate` must decide.
        Request handlers on the event loop call this first and :meth:`authenticate` in a thread."""
        if not key or not key.startswith("sg_"):
            return None
        prefix = key[3:].split("_", 1)[0]
        hit = self._cache.get(prefix)  # a dict read is atomic; entries are replaced, never mutated
        if hit is None or time.monotonic() - hit[0] > self.CACHE_SECONDS:
            return None
        _, principal, digest = hit
        if principal is None or not hmac.compare_digest(digest, _hash(key)):
            return None
        return principal

    def authenticate(self, key: str | None) -> Principal:
        if not key:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key")
        parts = key.split("_", 2)
        if len(parts) != 3 or parts[0] != "sg":
            raise Unauthorized("malformed API key", code="invalid_api_key")
        prefix = parts[1]
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(prefix)
        if hit is None or now - hit[0] > self.CACHE_SECONDS:
            with self.db.read() as s:
                row = s.execute(select(ApiKey).where(ApiKey.prefix == prefix)).scalar_one_or_none()
            principal = None
            digest = ""
            if row is not None and row.revoked_at is None:
                principal = Principal(row.id, row.name, row.role, row.prefix)
                digest = row.key_hash
            hit = (now, principal, digest)
            with self._lock:
                self._cache[prefix] = hit
        _, principal, digest = hit
        if principal is None or not hmac.compare_digest(digest, _hash(key)):
            raise Unauthorized("invalid or revoked API key", code="invalid_api_key")
        return principal
