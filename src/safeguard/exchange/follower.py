"""Subscribing: partners' feeds followed into local banks, and opinions sent back.

Each page is applied in one write transaction that also moves the subscription's cursor, and only if
the cursor is still the one the page was asked from (compare-and-set). So:

- a crash before the commit leaves nothing applied and the old cursor: the page is fetched again;
- a crash after it leaves the page applied and the new cursor: the next page is fetched;
- two processes following the same subscription cannot both apply a page (the second finds the cursor
  moved and drops its copy, ``exchange_checkpoint_moved``);
- a page that fails to verify, parse or arrive whole raises before the transaction opens: nothing
  applied, cursor untouched, the error kept on the subscription (``safeguard exchange list``).

A removal from the partner disables the local entry only while the entry is still the partner's (its
``source`` is this subscription): an entry a local moderator or another source wrote since is kept.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from sqlalchemy import select, tuple_

from safeguard import events, secrets
from safeguard.banks.service import BankService, ImportResult
from safeguard.banks.sources.base import Checkpoint, Row
from safeguard.banks.sources.partner import SOURCE_PREFIX, PartnerFeedSource, PartnerOpinion, load_raw_public_key
from safeguard.config import Settings
from safeguard.egress import EgressPolicy
from safeguard.errors import Conflict, InvalidInput, NotFound, SafeguardError
from safeguard.exchange.outbox import Outcome, Queued, drain
from safeguard.ledger import load_public_key
from safeguard.store import Database
from safeguard.store.models import BankEntry, ExchangeOpinionOut, ExchangeSubscription, utcnow

__all__ = ["ExchangeService", "Follower", "SyncResult"]

log = logging.getLogger(__name__)
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_FEED_URL = re.compile(r"^(?P<base>.+?)/v1/exchange/banks/(?P<bank>[A-Za-z0-9][A-Za-z0-9_.-]{0,99})/?$")
PURPOSE = "exchange-key"
#: opinions sent per request
OPINION_BATCH = 500

#: makes the client for a subscription's source (tests pass one bound to an in-process app)
ClientFactory = Callable[[], httpx.Client]


@dataclass
class SyncResult:
    name: str
    pages: int = 0
    upserts: int = 0
    removals: int = 0
    cursor: str = ""
    error: dict[str, str] | None = None
    opinions_sent: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pages": self.pages,
            "upserts": self.upserts,
            "removals": self.removals,
            "cursor": self.cursor,
            "opinions_sent": self.opinions_sent,
            "error": self.error,
        }


def _sub_dict(sub: ExchangeSubscription, bank: str, pending: int) -> dict[str, Any]:
    return {
        "name": sub.name,
        "url": sub.url,
        "remote_bank": sub.remote_bank,
        "bank": bank,
        "cursor": sub.cursor,
        "entries_applied": sub.entries_applied,
        "pages_applied": sub.pages_applied,
        "last_sync_at": sub.last_sync_at.isoformat() if sub.last_sync_at else None,
        "last_error": sub.last_error,
        "last_error_code": sub.last_error_code,
        "last_error_at": sub.last_error_at.isoformat() if sub.last_error_at else None,
        "opinions_pending": pending,
        "public_key": sub.public_key,
    }


def split_feed_url(url: str, remote_bank: str | None) -> tuple[str, str]:
    """(base URL, partner's bank) from a feed URL ``.../v1/exchange/banks/NAME`` or a base URL and a bank."""
    m = _FEED_URL.match(url)
    if m:
        if remote_bank and remote_bank != m["bank"]:
            raise InvalidInput("the URL names another bank than --remote-bank", code="invalid_exchange_url")
        return m["base"], m["bank"]
    if not remote_bank:
        raise InvalidInput(
            "give the feed URL (https://partner.example/v1/exchange/banks/NAME) or --remote-bank",
            code="invalid_exchange_url",
        )
    return url.rstrip("/"), remote_bank


class ExchangeService:
    def __init__(self, db: Database, settings: Settings, *, client_factory: ClientFactory | None = None) -> None:
        self.db = db
        self.settings = settings
        self.banks = BankService(db)
        self.client_factory = client_factory
        self.policy = EgressPolicy.from_settings(settings)

    # -- sources ----------------------------------------------------------------------------------
    def _source(self, sub: ExchangeSubscription, key: str | None = None) -> PartnerFeedSource:
        api_key = key if key is not None else secrets.open_(self.settings, sub.key_sealed, purpose=PURPOSE)
        return PartnerFeedSource(
            subscription=sub.name,
            base_url=sub.url,
            remote_bank=sub.remote_bank,
            api_key=api_key,
            public_key=load_raw_public_key(sub.public_key) if sub.public_key else None,
            policy=self.policy,
            page_size=self.settings.exchange_page_size,
            client=self.client_factory() if self.client_factory else None,
        )

    # -- subscriptions ----------------------------------------------------------------------------
    def add(
        self,
        name: str,
        *,
        url: str,
        key: str,
        bank: str,
        actor: str,
        public_key: bytes | None = None,
        remote_bank: str | None = None,
    ) -> dict[str, Any]:
        """Subscribe: without ``public_key`` the partner's key is fetched now and pinned (say its id out of band)."""
        if not NAME_RE.match(name):
            raise InvalidInput("subscription name must be 1-64 of a-z, 0-9, '_', '.', '-'", code="invalid_name")
        base, rbank = split_feed_url(url, remote_bank)
        with self.db.read() as s:
            local = BankService.get(s, bank)
            if s.execute(select(ExchangeSubscription.id).where(ExchangeSubscription.name == name)).first():
                raise Conflict(f"subscription {name!r} already exists", code="subscription_exists")
        probe = ExchangeSubscription(name=name, url=base, remote_bank=rbank, key_sealed="", public_key="")
        if public_key is not None:
            pub = base64_raw(public_key)
        else:
            src = self._source(probe, key=key)
            try:
                pub = src.fetch_public_key()
            finally:
                src.close()
        sealed = secrets.seal(self.settings, key, purpose=PURPOSE)
        with self.db.write() as s:
            sub = ExchangeSubscription(
                name=name,
                url=base,
                remote_bank=rbank,
                key_sealed=sealed,
                public_key=pub,
                bank_id=local.id,
                cursor="",
                entries_applied=0,
                pages_applied=0,
                created_at=utcnow(),
            )
            s.add(sub)
            s.flush()
            events.append(
                s,
                "exchange.subscribed",
                actor=actor,
                subject=("subscription", name),
                payload={"url": base, "remote_bank": rbank, "bank": local.name, "public_key": pub},
            )
            return _sub_dict(sub, local.name, 0)

    def _get(self, s: Any, name: str) -> ExchangeSubscription:
        sub = s.execute(select(ExchangeSubscription).where(ExchangeSubscription.name == name)).scalar_one_or_none()
        if sub is None:
            raise NotFound(f"subscription {name!r} not found", code="subscription_not_found")
        return sub

    def subscriptions(self) -> list[dict[str, Any]]:
        from sqlalchemy import func

        from safeguard.store.models import Bank

        with self.db.read() as s:
            pending = dict(
                s.execute(
                    select(ExchangeOpinionOut.subscription, func.count())
                    .where(ExchangeOpinionOut.status == "pending")
                    .group_by(ExchangeOpinionOut.subscription)
                ).all()
            )
            rows = s.execute(
                select(ExchangeSubscription, Bank.name)
                .join(Bank, Bank.id == ExchangeSubscription.bank_id)
                .order_by(ExchangeSubscription.name)
            ).all()
            return [_sub_dict(sub, bname, int(pending.get(sub.name, 0))) for sub, bname in rows]

    def get(self, name: str) -> dict[str, Any]:
        for d in self.subscriptions():
            if d["name"] == name:
                return d
        raise NotFound(f"subscription {name!r} not found", code="subscription_not_found")

    def remove(self, name: str, *, actor: str) -> None:
        """Stop following; the entries already applied stay in the local bank (disable them there if wanted)."""
        with self.db.write() as s:
            sub = self._get(s, name)
            s.delete(sub)
            events.append(s, "exchange.unsubscribed", actor=actor, subject=("subscription", name), payload={})

    # -- following --------------------------------------------------------------------------------
    def sync(self, name: str, *, max_pages: int | None = None) -> SyncResult:
        """Pull pages until the partner has no more (or ``max_pages``), applying each atomically."""
        with self.db.read() as s:
            sub = self._get(s, name)
            s.expunge(sub)
        result = SyncResult(name=name, cursor=sub.cursor)
        try:
            src = self._source(sub)
        except SafeguardError as exc:
            self._record_error(sub.id, exc)
            result.error = {"code": exc.code, "message": exc.message}
            return result
        try:
            cursor = sub.cursor
            for rows, cp in prefetched(src.fetch_iter(Checkpoint(cursor) if cursor else None)):
                self._apply(sub.id, sub.name, sub.bank_id, cursor, rows, cp.value, result)
                cursor = cp.value
                result.pages += 1
                result.cursor = cursor
                if max_pages is not None and result.pages >= max_pages:
                    break
        except SafeguardError as exc:
            self._record_error(sub.id, exc)
            result.error = {"code": exc.code, "message": exc.message}
        finally:
            src.close()
        return result

    def _apply(
        self, sub_id: int, name: str, bank_id: int, cursor: str, rows: list[Row], nxt: str, result: SyncResult
    ) -> None:
        source = SOURCE_PREFIX + name
        with self.db.write() as s:
            q = select(ExchangeSubscription).where(ExchangeSubscription.id == sub_id)
            sub = s.execute(q if self.db.is_sqlite else q.with_for_update()).scalar_one_or_none()
            if sub is None:
                raise NotFound(f"subscription {name!r} was removed", code="subscription_not_found")
            if sub.cursor != cursor:
                raise Conflict(
                    f"subscription {name!r} moved on while this page was fetched (another process applied it)",
                    code="exchange_checkpoint_moved",
                )
            removes = [r for r in rows if r.delete]
            if removes:
                rows = [r for r in rows if not r.delete] + self._own(s, bank_id, source, removes)
            imported = ImportResult(rows_read=len(rows))
            if rows:
                self.banks._write_rows(s, bank_id, rows, source, source, imported)
            sub.cursor = nxt
            sub.pages_applied += 1
            sub.entries_applied += imported.added_or_updated + imported.deleted
            sub.last_sync_at = utcnow()
            sub.last_error = sub.last_error_code = None
            if rows:
                events.append(
                    s,
                    "exchange.page_applied",
                    actor=source,
                    subject=("subscription", name),
                    payload={"upserts": imported.added_or_updated, "removals": imported.deleted, "cursor": nxt},
                )
        result.upserts += imported.added_or_updated
        result.removals += imported.deleted

    @staticmethod
    def _own(s: Any, bank_id: int, source: str, removes: list[Row]) -> list[Row]:
        """The removals of entries that are still this subscription's."""
        keep: list[Row] = []
        for a in range(0, len(removes), 500):
            part = removes[a : a + 500]
            mine = set(
                s.execute(
                    select(BankEntry.signal_type, BankEntry.value).where(
                        BankEntry.bank_id == bank_id,
                        BankEntry.source == source,
                        tuple_(BankEntry.signal_type, BankEntry.value).in_([(r.signal_type, r.value) for r in part]),
                    )
                ).all()
            )
            keep.extend(r for r in part if (r.signal_type, r.value) in mine)
        return keep

    def _record_error(self, sub_id: int, exc: SafeguardError) -> None:
        log.warning("exchange subscription %s: %s (%s)", sub_id, exc.message, exc.code)
        if exc.code == "exchange_checkpoint_moved":
            return  # another process is following it: not a fault of the feed
        with self.db.write() as s:
            sub = s.get(ExchangeSubscription, sub_id)
            if sub is not None:
                sub.last_error = exc.message[:2000]
                sub.last_error_code = exc.code[:64]
                sub.last_error_at = utcnow()

    # -- opinions back ----------------------------------------------------------------------------
    def send_opinions(self, name: str) -> int:
        """Send this subscription's queued opinions; each is marked sent after the partner's answer."""
        with self.db.read() as s:
            sub = self._get(s, name)
            s.expunge(sub)
        src = self._source(sub)

        def send(items: list[Queued]) -> Outcome:
            try:
                src.send_opinions([PartnerOpinion(i.id, i.signal_type, i.value, i.opinion) for i in items])
            except SafeguardError as exc:
                return Outcome(error=exc)
            return Outcome(sent=[i.id for i in items])

        try:
            sent, error = drain(self.db, name, send, batch=OPINION_BATCH, actor=SOURCE_PREFIX + name)
        finally:
            src.close()
        if error is not None:
            raise error
        return sent

    def tick(self) -> list[SyncResult]:
        """One round: every subscription synced, then its opinions sent."""
        with self.db.read() as s:
            names = list(s.execute(select(ExchangeSubscription.name).order_by(ExchangeSubscription.id)).scalars())
        out = []
        for name in names:
            r = self.sync(name)
            try:
                r.opinions_sent = self.send_opinions(name)
            except SafeguardError as exc:
                r.error = r.error or {"code": exc.code, "message": exc.message}
            out.append(r)
        return out


_T = TypeVar("_T")
_DONE = object()


def prefetched(it: Iterator[_T]) -> Iterator[_T]:
    """``it``'s items, the next one fetched in a thread while the caller works on the current one.

    A page is fetched, read and verified while the one before it is written to the database (socket
    reads, hashing and SQLite release the GIL). At most two pages are held. An exception in ``it``
    is raised here, after the items before it; when the caller stops early (an error while applying),
    the thread stops at its next item.
    """
    q: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in it:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    t = threading.Thread(target=run, name="safeguard-exchange-prefetch", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join(timeout=60)


def base64_raw(public_key: bytes) -> str:
    """The base64 of a public key's raw bytes, from PEM or base64 (``--public-key FILE``)."""
    import base64

    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = load_public_key(public_key).public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


class Follower:
    """The service's scheduled follower: :meth:`ExchangeService.tick` every ``exchange_poll_seconds``."""

    def __init__(self, service: ExchangeService, interval: float) -> None:
        self.service = service
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                self.service.tick()
            except Exception:  # a bad tick must not end the follower; the error is on the subscription
                log.exception("exchange follower tick failed")
            self._stop.wait(self.interval)

    def start(self) -> None:
        if self.interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(target=self.run_forever, name="safeguard-exchange", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
