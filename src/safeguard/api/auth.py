"""Authentication first: every ``/v1`` request's API key is checked, and its rate limits applied, before
anything reads the request's body.

FastAPI reads and parses a request's body before it resolves the dependencies that check the key, so
a route with a JSON body would buffer up to ``SAFEGUARD_MAX_UPLOAD_BYTES`` for anyone, key or not
(issue 15, finding 5: sixteen keyless 50 MB requests at once took a worker to 967 MB). The
:class:`Gate` decides from the headers alone; :class:`AuthMiddleware` applies it in front of the whole
app, and the hash-only fast path (``scan.HashScanRoute``), which answers before the middleware,
calls it itself. A refused request is answered without one ``receive()``, and with ``Connection:
close`` when it has a body, so the server drops the rest of it instead of reading it.

Limits (per process, in memory, bounded):

- each API key has a token bucket: ``SAFEGUARD_RATE_LIMIT_PER_SECOND`` requests per second, up to
  ``SAFEGUARD_RATE_LIMIT_BURST`` at once; past it, ``429 rate_limited`` with ``Retry-After``.
- each client address may fail authentication ``SAFEGUARD_AUTH_FAILURES_PER_MINUTE`` times per minute;
  past it, ``429 too_many_auth_failures`` and its keys are not looked up at all (a key this process
  checked in the last few seconds still passes: a client behind the same address keeps working).

Both tables hold at most :data:`MAX_TRACKED` entries, evicting the oldest.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from safeguard.config import Settings
from safeguard.errors import SafeguardError, Unauthorized
from safeguard.keys import KeyService, Principal, key_prefix

#: where the principal a request was admitted as is kept in its ASGI scope (``deps.principal`` reads it)
SCOPE_KEY = "safeguard.principal"
#: paths under ``/v1/`` that do not take an API key: logging in (name, password and TOTP; api/session.py)
OPEN_PATHS: frozenset[str] = frozenset({"/v1/session"})
#: a person's session cookie (api/session.py): requests that carry it and no API key are checked by the
#: route's ``require_who`` dependency (session row, expiry, CSRF) instead of here
SESSION_COOKIE = b"sg_session="
#: most keys or client addresses a limiter remembers
MAX_TRACKED = 10_000


class TokenBuckets:
    """A token bucket per name: ``rate`` tokens a second, at most ``burst`` kept. Not thread-safe: used
    on the event loop only."""

    def __init__(self, rate: float, burst: float, max_entries: int = MAX_TRACKED) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.max_entries = max_entries
        self._buckets: dict[Any, tuple[float, float]] = {}  # name -> (tokens, at), oldest first

    def wait(self, name: Any, now: float | None = None) -> float:
        """Seconds until ``name`` has a token (0: it has one now)."""
        got = self._buckets.get(name)
        if got is None:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens = min(self.burst, got[0] + (now - got[1]) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def take(self, name: Any, now: float | None = None) -> float:
        """Take a token for ``name``: 0.0 if there was one, else the seconds until there is (none taken)."""
        now = time.monotonic() if now is None else now
        got = self._buckets.get(name)
        tokens = self.burst if got is None else min(self.burst, got[0] + (now - got[1]) * self.rate)
        if tokens < 1.0:
            return (1.0 - tokens) / self.rate
        if got is None:
            while len(self._buckets) >= self.max_entries:
                del self._buckets[next(iter(self._buckets))]
        self._buckets[name] = (tokens - 1.0, now)
        return 0.0

    def __len__(self) -> int:
        return len(self._buckets)


class TooManyRequests(SafeguardError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(message, code=code, details={"retry_after_seconds": self.retry_after})


class Gate:
    """The check every ``/v1`` request passes before its body is read: its key, then its rate limits."""

    def __init__(self, keys: KeyService, settings: Settings) -> None:
        self.keys = keys
        rate, burst = settings.rate_limit_per_second, settings.rate_limit_burst
        self.per_key = TokenBuckets(rate, burst) if rate > 0 else None
        per_minute = settings.auth_failures_per_minute
        self.failures = TokenBuckets(per_minute / 60.0, per_minute) if per_minute > 0 else None

    async def admit(self, authorization: str | None, x_api_key: str | None, client: str) -> Principal:
        """The request's principal; raises ``Unauthorized`` or :class:`TooManyRequests`."""
        auth = authorization or ""
        key = auth[7:].strip() if auth[:7].lower() == "bearer " else x_api_key
        p = self.keys.cached(key)  # checked in the last few seconds: no database read
        if p is None:
            if self.failures is not None and (wait := self.failures.wait(client)) > 0:
                raise TooManyRequests(
                    "too many requests without a valid API key from this address",
                    retry_after=wait,
                    code="too_many_auth_failures",
                )
            try:
                key_prefix(key)  # a missing or malformed key needs no thread, lookup or cache entry
                p = await run_in_threadpool(self.keys.authenticate, key)
            except Unauthorized:
                if self.failures is not None:
                    self.failures.take(client)
                raise
        if self.per_key is not None and (wait := self.per_key.take(p.key_id)) > 0:
            raise TooManyRequests("rate limit of this API key reached", retry_after=wait)
        return p

    async def admit_scope(self, scope: Scope) -> Principal:
        authorization = x_api_key = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"x-api-key":
                x_api_key = value.decode("latin-1")
        client = scope.get("client")
        return await self.admit(authorization, x_api_key, client[0] if client else "")


async def refuse(scope: Scope, send: Send, exc: SafeguardError) -> None:
    """Answer ``exc`` as the API's JSON error without reading the request's body."""
    raw = json.dumps(exc.to_dict()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    if isinstance(exc, TooManyRequests):
        headers.append((b"retry-after", str(exc.retry_after).encode()))
    if exc.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    if (exc.status == 401 or exc.code == "too_many_auth_failures") and _has_body(scope):
        headers.append((b"connection", b"close"))  # the server drops the unread rest with the connection
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": raw})


def _guarded(scope: Scope) -> bool:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):  # mounted under a prefix: route paths are below it
        path = path[len(root) :]
    return path.startswith("/v1/") and path not in OPEN_PATHS


def _person(scope: Scope) -> bool:
    """A request with a session cookie and no API key header."""
    cookie = False
    for name, value in scope["headers"]:
        if name in (b"authorization", b"x-api-key"):
            return False
        if name == b"cookie" and SESSION_COOKIE in value:
            cookie = True
    return cookie


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value != b"0"
        if name == b"transfer-encoding":
            return True
    return False


class AuthMiddleware:
    """Admit every ``/v1`` request through the :class:`Gate` before the app (and its body parsing) sees it."""

    def __init__(self, app: ASGIApp, gate: Gate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _guarded(scope):
            await self.app(scope, receive, send)
            return
        if SCOPE_KEY not in scope and _person(scope):
            await self.app(scope, receive, send)  # a person's session, checked by the route (bodies are small)
            return
        if SCOPE_KEY not in scope:  # the fast path may have admitted it already
            try:
                scope[SCOPE_KEY] = await self.gate.admit_scope(scope)
            except (Unauthorized, TooManyRequests) as exc:
                await refuse(scope, send, exc)
                return
        await self.app(scope, receive, send)
