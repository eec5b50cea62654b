"""A client for the DSA Transparency Database's statement API: ``POST /api/v1/statements`` with
``{"statements": [...]}`` (1 to 100 per call), ``Authorization: Bearer <token>``, JSON in and out, through
the egress policy's checked client.

What the database answers, and what it means here (read from the Commission's documentation and its source,
``StatementMultipleAPIController``):

- ``201 {"statements": [{..., "uuid", "puid"}]}``: all were stored.
- ``422`` with ``errors.existing_puids``: those puids are already stored (the batch is refused whole; the
  others were not stored). Here: those are done, the rest go again.
- ``422`` with ``errors.statement_<i>``: statement ``i`` fails validation (the batch is refused whole).
  Here: ``i`` is invalid (its errors kept for a person), the rest go again.
- ``401``/``403``: the token is wrong or lacks the right: a configuration problem, nothing is stored.
- ``5xx``, ``429``, timeouts, connection errors: transient; retried with backoff, then left for the next run.
- any other ``4xx``: the request as a whole was refused; every statement in it is marked invalid.

The token is never logged or put in an error.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from safeguard.config import Settings
from safeguard.egress import EgressPolicy, EgressRefused, checked_client, require_https
from safeguard.errors import ConfigError

__all__ = ["PATH", "BatchAnswer", "DsaClient", "DsaError"]

PATH = "/api/v1/statements"
MAX_BATCH = 100  # the database's limit per call
_STATEMENT_KEY = re.compile(r"^statement_(\d+)$")


@dataclass
class DsaError(Exception):
    kind: str  # "transient" (retry later), "auth" (fix the settings), "refused" (this batch, as a whole)
    message: str
    http_status: int | None = None

    def __str__(self) -> str:
        status = f" (HTTP {self.http_status})" if self.http_status else ""
        return f"Transparency Database{status}: {self.message}"


@dataclass
class BatchAnswer:
    """The outcome per statement of one call; indexes are positions in the batch sent."""

    http_status: int
    created: dict[int, str | None] = field(default_factory=dict)  # index -> the database's uuid
    existing: set[int] = field(default_factory=set)  # already stored (duplicate puid): done
    invalid: dict[int, dict[str, Any]] = field(default_factory=dict)  # index -> the database's errors
    message: str = ""

    def resend(self, n: int) -> list[int]:
        """The statements the database did not take nor refuse (a batch it refused because of others)."""
        return [i for i in range(n) if i not in self.created and i not in self.existing and i not in self.invalid]


class DsaClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        http: httpx.Client,
        attempts: int = 5,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base = require_https(base_url, "SAFEGUARD_DSA_URL")
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.http = http
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings, **kw: Any) -> DsaClient:
        from safeguard import secrets

        if not settings.dsa_url or not settings.dsa_token:
            raise ConfigError("set SAFEGUARD_DSA_URL and SAFEGUARD_DSA_TOKEN", code="dsa_credentials")
        if not secrets.is_sealed(settings.dsa_token):
            raise ConfigError(
                "SAFEGUARD_DSA_TOKEN must be sealed: safeguard secrets seal --purpose dsa", code="dsa_credentials"
            )
        token = secrets.open_(settings, settings.dsa_token, purpose="dsa")
        timeout = httpx.Timeout(settings.dsa_timeout_seconds, connect=min(10.0, settings.dsa_timeout_seconds))
        http = checked_client(EgressPolicy.from_settings(settings), timeout)
        return cls(settings.dsa_url, token, http=http, **kw)

    def __repr__(self) -> str:  # never the token
        return f"DsaClient({self.base!r})"

    def post_batch(self, statements: list[dict[str, Any]]) -> BatchAnswer:
        """Send 1 to 100 statements in one call; the outcome per statement, or :class:`DsaError`."""
        if not 1 <= len(statements) <= MAX_BATCH:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH} statements")
        last: DsaError | None = None
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                resp = self.http.post(self.base + PATH, json={"statements": statements}, headers=self._headers)
            except EgressRefused as exc:
                raise DsaError("auth", f"the egress policy refuses the address: {exc.message}") from None
            except httpx.TimeoutException:
                last = DsaError("transient", "no answer in time")
                continue
            except httpx.TransportError as exc:
                last = DsaError("transient", f"could not connect: {type(exc).__name__}")
                continue
            status = resp.status_code
            if status >= 500 or status == 429:
                last = DsaError("transient", f"the database answered HTTP {status}", status)
                continue
            return self._answer(resp, statements)
        assert last is not None
        raise last

    @staticmethod
    def _json(resp: httpx.Response) -> dict[str, Any]:
        try:
            body = resp.json()
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def _answer(self, resp: httpx.Response, statements: list[dict[str, Any]]) -> BatchAnswer:
        status, _n = resp.status_code, len(statements)
        body = self._json(resp)
        message = str(body.get("message") or "")[:500]
        if status in (200, 201):
            got = body.get("statements")
            out = BatchAnswer(status, message=message)
            uuid_of = {}
            if isinstance(got, list):
                uuid_of = {str(s.get("puid")): s.get("uuid") for s in got if isinstance(s, dict)}
            for i, st in enumerate(statements):
                uuid = uuid_of.get(str(st.get("puid")))
                out.created[i] = str(uuid)[:64] if uuid else None
            return out
        if status in (401, 403):
            raise DsaError("auth", message or "the token was refused: check SAFEGUARD_DSA_TOKEN", status)
        if status == 422:
            return self._refusal(body, statements, message)
        raise DsaError("refused", message or f"the database refused the request (HTTP {status})", status)

    @staticmethod
    def _refusal(body: dict[str, Any], statements: list[dict[str, Any]], message: str) -> BatchAnswer:
        out = BatchAnswer(422, message=message)
        errors = body.get("errors")
        errors = errors if isinstance(errors, dict) else {}
        existing = errors.get("existing_puids")
        puids = {str(p) for p in existing} if isinstance(existing, list) else set()
        out.existing = {i for i, st in enumerate(statements) if str(st.get("puid")) in puids}
        for key, errs in errors.items():
            m = _STATEMENT_KEY.match(str(key))
            if m and int(m.group(1)) < len(statements):
                out.invalid[int(m.group(1))] = errs if isinstance(errs, dict) else {"errors": errs}
        if not out.existing and not out.invalid:  # a refusal this client cannot attribute: each statement carries it
            for i in range(len(statements)):
                out.invalid[i] = {"message": message or "refused (HTTP 422)", "errors": errors}
        return out
