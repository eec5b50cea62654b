"""A partner Safeguard instance's shared bank, followed as a :class:`HashListSource`.

Each page is fetched through the egress policy (``safeguard/egress.py``), read as it streams and
verified against the partner's pinned Ed25519 key before a single row is returned
(``safeguard.exchange.wire``). The rows carry the partner's provenance: ``source`` is
``exchange:<subscription>``, and ``provenance.exchange`` keeps the partner's own source, opinion and
date for the entry. The checkpoint after each batch is the page's ``next_cursor``.

The same client sends opinions back (:meth:`PartnerFeedSource.send_opinions`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from safeguard.banks.sources.base import Checkpoint, HashListSource, Row
from safeguard.egress import EgressPolicy, EgressRefused, checked_client, parse_url
from safeguard.errors import InvalidInput, SafeguardError
from safeguard.exchange.wire import ExchangeError, Page, PageReader

__all__ = ["SOURCE_PREFIX", "PartnerFeedSource", "PartnerOpinion", "load_raw_public_key"]

#: bank entries that came from a subscription have ``source`` = this prefix + the subscription's name
SOURCE_PREFIX = "exchange:"


@dataclass(frozen=True)
class PartnerOpinion:
    id: int
    signal_type: str
    value: str
    opinion: str


def load_raw_public_key(b64: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(b64, validate=True))
    except (ValueError, binascii.Error) as exc:
        raise InvalidInput(f"not an Ed25519 public key: {exc}", code="invalid_public_key") from None


_STATUS_CODES = {401: "exchange_partner_unauthorized", 403: "exchange_bank_not_shared"}


class PartnerFeedSource(HashListSource):
    name = "partner"

    def __init__(
        self,
        *,
        subscription: str,
        base_url: str,
        remote_bank: str,
        api_key: str,
        public_key: Ed25519PublicKey | None,
        policy: EgressPolicy,
        page_size: int = 10_000,
        timeout: float = 30.0,
        client: httpx.Client | None = None,
    ) -> None:
        parse_url(base_url, ("http", "https"), code="invalid_exchange_url")
        self.subscription = subscription
        self.base_url = base_url.rstrip("/")
        self.remote_bank = remote_bank
        self.public_key = public_key
        self.page_size = page_size
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.client = client or checked_client(policy, httpx.Timeout(timeout, connect=10.0))

    def close(self) -> None:
        self.client.close()

    # -- http -------------------------------------------------------------------------------------
    def _fail(self, r: httpx.Response, what: str) -> ExchangeError:
        try:
            body = r.json()
            msg = body["error"]["message"]
            remote = body["error"]["code"]
        except Exception:  # not our JSON error: say only the status
            msg, remote = f"HTTP {r.status_code}", "unknown"
        code = _STATUS_CODES.get(r.status_code, "exchange_http_error")
        if remote == "invalid_cursor":
            code = "exchange_cursor_rejected"
        return ExchangeError(f"{what}: the partner answered {r.status_code} {remote}: {msg}"[:500], code=code)

    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        try:
            r = self.client.request(method, self.base_url + path, headers=self.headers, **kw)
        except EgressRefused:
            raise
        except httpx.HTTPError as exc:
            raise ExchangeError(
                f"the partner at {self.base_url} could not be reached ({type(exc).__name__})",
                code="exchange_unreachable",
            ) from None
        if r.status_code >= 300:
            raise self._fail(r, f"{method} {path}")
        return r

    def fetch_public_key(self) -> str:
        """The partner's public key (base64 of the raw 32 bytes), for pinning when none was given."""
        try:
            body = self._call("GET", "/v1/exchange/key").json()
        except ValueError:
            body = None
        key = body.get("public_key") if isinstance(body, dict) else None
        if not isinstance(key, str):
            raise ExchangeError("the partner's /v1/exchange/key answer has no public_key", code="exchange_http_error")
        load_raw_public_key(key)
        return key

    def fetch_page(self, cursor: str) -> Page:
        if self.public_key is None:
            raise ExchangeError("no public key is pinned for this partner", code="exchange_bad_signature")
        reader = PageReader(
            self.public_key,
            bank=self.remote_bank,
            cursor=cursor,
            max_entries=self.page_size,
            source=SOURCE_PREFIX + self.subscription,
            partner=self.subscription,
        )
        path = f"/v1/exchange/banks/{self.remote_bank}/changes"
        try:
            with self.client.stream(
                "GET",
                self.base_url + path,
                params={"cursor": cursor, "limit": self.page_size},
                headers=self.headers,
            ) as r:
                if r.status_code >= 300:
                    r.read()
                    raise self._fail(r, f"GET {path}")
                page = reader.read(r.iter_bytes())
        except (EgressRefused, SafeguardError):
            raise
        except httpx.HTTPError as exc:
            raise ExchangeError(
                f"the page from {self.base_url} was cut off or could not be fetched ({type(exc).__name__})",
                code="exchange_page_truncated",
            ) from None
        return page

    def fetch_iter(self, checkpoint: Checkpoint | None) -> Iterator[tuple[list[Row], Checkpoint]]:
        cursor = checkpoint.value if checkpoint else ""
        while True:
            page = self.fetch_page(cursor)
            yield page.rows, Checkpoint(page.next_cursor)
            if not page.more:
                return
            if not page.rows or page.next_cursor == cursor:  # "more" that does not move: stop, not spin
                raise ExchangeError(
                    "the partner says there is more but its page moved nothing", code="exchange_page_malformed"
                )
            cursor = page.next_cursor

    def send_opinions(self, items: Sequence[PartnerOpinion]) -> dict[str, Any]:
        body = {
            "opinions": [
                {"id": o.id, "signal_type": o.signal_type, "value": o.value, "opinion": o.opinion} for o in items
            ]
        }
        got = self._call("POST", f"/v1/exchange/banks/{self.remote_bank}/opinions", json=body).json()
        return got if isinstance(got, dict) else {}
