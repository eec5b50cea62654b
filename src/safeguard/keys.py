"""API keys: shown once, stored hashed, each with one role.

A key looks like ``sg_<prefix>_<secret>``. The prefix (public, unique) finds the row; the whole key is
compared by SHA-256 in constant time. Keys are 256-bit random values, so a fast hash is the right tool
here (there is nothing to brute-force); no plaintext key is ever stored or logged.

Roles separate duties: ``platform`` (services that scan content), ``moderator`` (review, bank opinions),
``admin`` (banks, keys, webhooks) and ``auditor`` (the event log, read-only).

Each key also belongs to a tenant (the platform it acts for; ``default`` unless made with ``--tenant``).
What a platform key scans is recorded as its tenant's, and it reads only its tenant's decisions and
streams (:attr:`Principal.tenant_scope`); moderators, admins and auditors work for the operator and
see every tenant's.

Checked keys are cached for a few seconds per process. The cache is bounded: at most
``MAX_CACHED_KEYS`` known keys and, separately, ``MAX_CACHED_UNKNOWN`` prefixes that matched no key
(or a revoked one), each evicted oldest first; a key whose prefix is not what :meth:`KeyService.create`
makes is refused without a database read or a cache entry. So requests with made-up keys cost one
small, fixed amount of memory however many there are (issue 15, finding 5: 32,000 made-up prefixes had
grown a worker by 195 MB, never released).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select

from safeguard import events
from safeguard.errors import InvalidInput, NotFound, Unauthorized
from safeguard.store import Database
from safeguard.store.models import DEFAULT_TENANT, ApiKey, utcnow

ROLES = ("platform", "moderator", "admin", "auditor", "lead", "partner")
#: roles that see every tenant's decisions and streams; any other role sees only its own tenant's
ALL_TENANT_ROLES = frozenset({"moderator", "lead", "admin", "auditor"})
_TENANT = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_PREFIX = re.compile(r"[0-9a-f]{12}")  # what create() makes: secrets.token_hex(6)


@dataclass(frozen=True)
class Principal:
    key_id: int
    name: str
    role: str
    prefix: str
    tenant: str = DEFAULT_TENANT

    @property
    def actor(self) -> str:
        return f"key:{self.prefix}:{self.name}"

    @property
    def tenant_scope(self) -> str | None:
        """The one tenant whose records this principal may read, or ``None`` for all of them."""
        return None if self.role in ALL_TENANT_ROLES else self.tenant


def check_tenant(tenant: str) -> str:
    if not _TENANT.fullmatch(tenant):
        raise InvalidInput(
            "tenant must be 1-64 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit",
            code="invalid_tenant",
        )
    return tenant


def key_prefix(key: str | None) -> str:
    """The prefix of a key in the form :meth:`KeyService.create` makes, or ``Unauthorized``: a key in any
    other form is refused without a database read or a cache entry (cheap enough for the event loop)."""
    if not key:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'", code="missing_api_key")
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "sg" or not _PREFIX.fullmatch(parts[1]):
        raise Unauthorized("malformed API key", code="invalid_api_key")
    return parts[1]


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyService:
    CACHE_SECONDS = 5.0  # a revoked key stops working within this many seconds in every process
    MAX_CACHED_KEYS = 10_000  # known keys checked recently (a few hundred bytes each)
    MAX_CACHED_UNKNOWN = 1_024  # prefixes of no key, or of a revoked one, remembered to spare the database

    def __init__(self, db: Database) -> None:
        self.db = db
        # prefix -> (checked at, principal, key hash); plain dicts in insertion order, so the oldest
        # entry is evicted first (an entry is re-inserted at each re-check). A dict read is atomic;
        # entries are replaced, never mutated, and writes hold the lock.
        self._cache: dict[str, tuple[float, Principal, str]] = {}
        self._unknown: dict[str, float] = {}
        self._lock = threading.Lock()

    def create(self, role: str, name: str = "", *, actor: str, tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {ROLES}", code="invalid_role")
        check_tenant(tenant)
        prefix = secrets.token_hex(6)
        key = f"sg_{prefix}_{secrets.token_urlsafe(32)}"
        with self.db.write() as s:
            row = ApiKey(
                name=name or role, role=role, prefix=prefix, key_hash=_hash(key), created_at=utcnow(), tenant=tenant
            )
            s.add(row)
            s.flush()
            events.append(
                s,
                "key.created",
                actor=actor,
                subject=("key", prefix),
                payload={"role": role, "name": row.name, "tenant": tenant},
            )
            return {"id": row.id, "name": row.name, "role": role, "tenant": tenant, "prefix": prefix, "key": key}

    def list(self) -> list[dict[str, Any]]:
        with self.db.read() as s:
            return [
                {
                    "id": k.id,
                    "name": k.name,
                    "role": k.role,
                    "tenant": k.tenant,
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

    def cache_sizes(self) -> tuple[int, int]:
        """How many known keys and unknown prefixes this process remembers now."""
        return len(self._cache), len(self._unknown)

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
        if not hmac.compare_digest(digest, _hash(key)):
            return None
        return principal

    def authenticate(self, key: str | None) -> Principal:
        prefix = key_prefix(key)
        now = time.monotonic()
        hit = self._cache.get(prefix)
        if hit is None or now - hit[0] > self.CACHE_SECONDS:
            missed_at = self._unknown.get(prefix)
            if missed_at is not None and now - missed_at <= self.CACHE_SECONDS:
                raise Unauthorized("invalid or revoked API key", code="invalid_api_key")
            hit = self._load(prefix, now)
            if hit is None:
                raise Unauthorized("invalid or revoked API key", code="invalid_api_key")
        _, principal, digest = hit
        if not hmac.compare_digest(digest, _hash(key or "")):  # key_prefix() refused a missing one
            raise Unauthorized("invalid or revoked API key", code="invalid_api_key")
        return principal

    def _load(self, prefix: str, now: float) -> tuple[float, Principal, str] | None:
        """Read the key with ``prefix`` and remember the answer, within the caches' bounds."""
        with self.db.engine.connect() as conn:  # Core, not the ORM: made-up keys also come here
            row = conn.execute(_BY_PREFIX, {"prefix": prefix}).first()
        with self._lock:
            self._cache.pop(prefix, None)
            self._unknown.pop(prefix, None)
            if row is None or row.revoked_at is not None:
                _put(self._unknown, prefix, now, self.MAX_CACHED_UNKNOWN)
                return None
            hit = (now, Principal(row.id, row.name, row.role, row.prefix, row.tenant), row.key_hash)
            _put(self._cache, prefix, hit, self.MAX_CACHED_KEYS)
            return hit


_BY_PREFIX = select(
    ApiKey.id, ApiKey.name, ApiKey.role, ApiKey.prefix, ApiKey.key_hash, ApiKey.revoked_at, ApiKey.tenant
).where(ApiKey.prefix == bindparam("prefix"))


def _put(cache: dict[str, Any], key: str, value: Any, cap: int) -> None:
    """Insert as newest (the caller holds the lock and has removed ``key``); evict the oldest past ``cap``."""
    cache[key] = value
    while len(cache) > cap:
        del cache[next(iter(cache))]
