"""Publishing and subscribing between two instances on loopback (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import func, select

from safeguard import events
from safeguard.banks.sources.partner import load_raw_public_key
from safeguard.errors import Conflict
from safeguard.exchange.shares import share
from safeguard.exchange.wire import PageReader
from safeguard.keys import KeyService
from safeguard.store.models import BankEntry, EntryOpinion, ExchangeOpinionOut, ExchangeSubscription
from tests.exchange.conftest import Instance, auth
from tests.media_factory import encode, image_bytes, make_image


def md5(i: int) -> str:
    return hashlib.md5(f"entry-{i}".encode()).hexdigest()


def shared_bank(pub: Instance, name: str = "shared") -> str:
    """A shareable bank on the publisher and a partner key scoped to it; returns the key."""
    with pub.client() as c:
        r = c.post("/v1/banks", headers=auth(pub.keys["admin"]), json={"name": name, "shareable": True})
        assert r.status_code == 201, r.text
    k = KeyService(pub.engine.db).create("partner", "partner-b", actor="test")
    share(pub.engine.db, k["id"], [name], actor="test")
    return str(k["key"])


def add_md5(pub: Instance, bank: str, i: int) -> dict[str, Any]:
    with pub.client() as c:
        r = c.post(
            f"/v1/banks/{bank}/entries",
            headers=auth(pub.keys["moderator"]),
            json={"signal_type": "md5", "value": md5(i), "category": "A1", "source": "own-review"},
        )
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]


def read_page(pub: Instance, key: str, bank: str, cursor: str = "", limit: int = 100) -> Any:
    with pub.client() as c:
        pk = c.get("/v1/exchange/key", headers=auth(key)).json()["public_key"]
        with c.stream(
            "GET", f"/v1/exchange/banks/{bank}/changes", params={"cursor": cursor, "limit": limit}, headers=auth(key)
        ) as r:
            assert r.status_code == 200, r.read()
            return PageReader(load_raw_public_key(pk), bank=bank, cursor=cursor, max_entries=limit).read(r.iter_bytes())


def subscribe(sub: Instance, pub: Instance, key: str, *, bank: str = "from-a", url: str | None = None) -> None:
    with sub.client() as c:
        r = c.post("/v1/banks", headers=auth(sub.keys["admin"]), json={"name": bank, "default_category": "A1"})
        assert r.status_code == 201, r.text
    sub.exchange().add("a", url=url or f"{pub.url}/v1/exchange/banks/shared", key=key, bank=bank, actor="test")


def entries(inst: Instance, bank_id: int | None = None) -> list[BankEntry]:
    with inst.engine.db.read() as s:
        q = select(BankEntry).order_by(BankEntry.id)
        if bank_id is not None:
            q = q.where(BankEntry.bank_id == bank_id)
        out = list(s.execute(q).scalars())
        for e in out:
            s.expunge(e)
        return out


def subscription(inst: Instance) -> ExchangeSubscription:
    with inst.engine.db.read() as s:
        sub = s.execute(select(ExchangeSubscription)).scalar_one()
        s.expunge(sub)
        return sub


# -- publishing -----------------------------------------------------------------------------------
def test_feed_serves_upserts_removals_and_opinions_incrementally(publisher: Instance) -> None:
    key = shared_bank(publisher)
    added = [add_md5(publisher, "shared", i) for i in range(5)]
    page = read_page(publisher, key, "shared", limit=3)
    assert [r.value for r in page.rows] == [md5(i) for i in range(3)] and page.more
    page2 = read_page(publisher, key, "shared", cursor=page.next_cursor, limit=3)
    assert [r.value for r in page2.rows] == [md5(i) for i in (3, 4)] and not page2.more
    assert all(not r.delete and r.category == "A1" for r in page.rows + page2.rows)
    assert page2.remote[0]["source"] == "own-review" and page2.remote[0]["opinion"] == "none"
    empty = read_page(publisher, key, "shared", cursor=page2.next_cursor)
    assert empty.rows == [] and empty.next_cursor == page2.next_cursor
    # a removal and an opinion are changes: the next page carries them, nothing else
    with publisher.client() as c:
        mod = auth(publisher.keys["moderator"])
        assert c.patch(f"/v1/entries/{added[1]['id']}", headers=mod, json={"enabled": False}).status_code == 200
        r = c.post(f"/v1/entries/{added[2]['id']}/opinions", headers=mod, json={"opinion": "confirmed"})
        assert r.status_code == 201, r.text
    page3 = read_page(publisher, key, "shared", cursor=page2.next_cursor)
    assert [(r.value, r.delete) for r in page3.rows] == [(md5(1), True), (md5(2), False)]
    assert page3.remote[1]["opinion"] == "confirmed"


def test_feed_refuses_other_keys_banks_and_cursors(publisher: Instance) -> None:
    key = shared_bank(publisher)
    add_md5(publisher, "shared", 1)
    with publisher.client() as c:
        c.post("/v1/banks", headers=auth(publisher.keys["admin"]), json={"name": "private", "shareable": False})
        c.post("/v1/banks", headers=auth(publisher.keys["admin"]), json={"name": "other", "shareable": True})
        unshared = KeyService(publisher.engine.db).create("partner", "stranger", actor="test")["key"]
        cases = [
            (key, "private", "", 403, "bank_not_shared"),
            (key, "other", "", 403, "bank_not_shared"),  # shareable, but not with this key
            (key, "missing", "", 403, "bank_not_shared"),  # no oracle for bank names
            (unshared, "shared", "", 403, "bank_not_shared"),
            (publisher.keys["platform"], "shared", "", 403, "wrong_role"),
            ("sg_000000000000_nope", "shared", "", 401, "invalid_api_key"),
            (key, "shared", "1.1.deadbeefdeadbeefdeadbeef", 422, "invalid_cursor"),
            (key, "shared", "garbage", 422, "invalid_cursor"),
        ]
        for k, bank, cursor, status, code in cases:
            r = c.get(f"/v1/exchange/banks/{bank}/changes", params={"cursor": cursor}, headers=auth(k))
            assert (r.status_code, r.json()["error"]["code"]) == (status, code), (bank, cursor, r.text)
        # a cursor this instance issued for another bank is foreign here
        share(publisher.engine.db, KeyService(publisher.engine.db).authenticate(key).key_id, ["other"], actor="t")
        add_md5(publisher, "other", 2)
        other_cursor = read_page(publisher, key, "other").next_cursor
        r = c.get("/v1/exchange/banks/shared/changes", params={"cursor": other_cursor}, headers=auth(key))
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_cursor"
        r = c.get("/v1/exchange/banks/shared/changes", params={"limit": 0}, headers=auth(key))
        assert r.status_code == 422


# -- two instances ----------------------------------------------------------------------------------
def test_banked_on_a_blocks_on_b_and_a_dispute_on_b_reaches_a(publisher: Instance, subscriber: Instance) -> None:
    key = shared_bank(publisher)
    banked = image_bytes(7, "PNG")
    with publisher.client() as c:
        r = c.post(
            "/v1/banks/shared/entries",
            headers=auth(publisher.keys["moderator"]),
            files={"file": ("banked.png", banked, "image/png")},
        )
        assert r.status_code == 201, r.text
    subscribe(subscriber, publisher, key)
    upload = encode(make_image(7), "JPEG", quality=70)
    with subscriber.client() as c:
        plat = auth(subscriber.keys["platform"])
        before = c.post("/v1/scan", headers=plat, files={"file": ("x.jpg", upload, "application/octet-stream")})
        assert before.json()["verdict"] == "allow"
        res = subscriber.exchange().sync("a")
        assert res.error is None and res.upserts == 3 and res.pages == 1  # sha256, md5, pdq
        got = c.post("/v1/scan", headers=plat, files={"file": ("x.jpg", upload, "application/octet-stream")})
        body = got.json()
        assert body["verdict"] == "block", body
        finding = body["findings"][0]
        assert finding["bank"] == "from-a"
        local = next(e for e in entries(subscriber) if e.signal_type == "pdq")
        assert local.source == "exchange:a" and local.added_by == "exchange:a"
        assert local.provenance["exchange"]["partner"] == "a" and local.provenance["exchange"]["source"] == "upload"
        assert local.provenance["filename"] == "banked.png"
        # the moderator on B disputes the match: queued in the same transaction, sent back once
        r = c.post(
            f"/v1/entries/{local.id}/opinions",
            headers=auth(subscriber.keys["moderator"]),
            json={"opinion": "disputed", "note": "a benign picture"},
        )
        assert r.status_code == 201, r.text
    assert subscriber.exchange().subscriptions()[0]["opinions_pending"] == 1
    assert subscriber.exchange().send_opinions("a") == 1
    remote = next(e for e in entries(publisher) if e.signal_type == "pdq")
    assert remote.opinion == "disputed"
    with publisher.engine.db.read() as s:
        ops = list(s.execute(select(EntryOpinion).where(EntryOpinion.entry_id == remote.id)).scalars())
    assert len(ops) == 1 and ops[0].actor.startswith("partner:") and ops[0].actor.endswith(":partner-b")
    assert "benign" not in ops[0].note  # moderators' notes stay local
    # a retry after a lost answer is recorded once
    with subscriber.engine.db.write() as s:
        for o in s.execute(select(ExchangeOpinionOut)).scalars():
            o.status = "pending"
    assert subscriber.exchange().send_opinions("a") == 1
    with publisher.engine.db.read() as s:
        n = s.execute(select(func.count()).select_from(EntryOpinion).where(EntryOpinion.entry_id == remote.id))
        assert n.scalar_one() == 1
    # A's record of the dispute comes back in its feed, on the entry's provenance
    assert subscriber.exchange().sync("a").upserts == 1
    local = next(e for e in entries(subscriber) if e.signal_type == "pdq")
    assert local.enabled and local.provenance["exchange"]["opinion"] == "disputed" and local.opinion == "disputed"
    # A removes the entries: B stops blocking after the next sync
    with publisher.client() as c:
        for e in entries(publisher):
            r = c.patch(f"/v1/entries/{e.id}", headers=auth(publisher.keys["moderator"]), json={"enabled": False})
            assert r.status_code == 200
    res = subscriber.exchange().sync("a")
    assert res.error is None and res.removals == 3, res
    assert not any(e.enabled for e in entries(subscriber))
    with subscriber.client() as c:
        after = c.post("/v1/scan", headers=plat, files={"file": ("x.jpg", upload, "application/octet-stream")})
        assert after.json()["verdict"] == "allow"


def test_removal_spares_entries_that_are_no_longer_the_partners(publisher: Instance, subscriber: Instance) -> None:
    key = shared_bank(publisher)
    a = add_md5(publisher, "shared", 1)
    subscribe(subscriber, publisher, key)
    assert subscriber.exchange().sync("a").upserts == 1
    local = entries(subscriber)[0]
    # a local moderator adds the same hash themself: it is now theirs
    with subscriber.client() as c:
        r = c.post(
            "/v1/banks/from-a/entries",
            headers=auth(subscriber.keys["moderator"]),
            json={"signal_type": "md5", "value": local.value, "source": "own"},
        )
        assert r.status_code == 201
    with publisher.client() as c:
        c.patch(f"/v1/entries/{a['id']}", headers=auth(publisher.keys["moderator"]), json={"enabled": False})
    res = subscriber.exchange().sync("a")
    assert res.error is None and res.removals == 0
    assert entries(subscriber)[0].enabled


def test_many_pages_resume_from_the_checkpoint(publisher: Instance, subscriber: Instance) -> None:
    from safeguard.banks.sources.base import Row

    key = shared_bank(publisher)
    rows = [Row(i, "md5", md5(i)) for i in range(2500)]
    publisher.app.state.services.banks.import_rows("shared", rows, actor="test", batch_size=700)
    subscriber.settings = subscriber.settings.with_(exchange_page_size=1000)
    subscribe(subscriber, publisher, key)
    first = subscriber.exchange().sync("a", max_pages=1)
    assert first.upserts == 1000 and subscription(subscriber).cursor == first.cursor
    rest = subscriber.exchange().sync("a")
    assert rest.error is None and rest.upserts == 1500 and rest.pages == 2  # the last page ends the feed
    assert len(entries(subscriber)) == 2500
    again = subscriber.exchange().sync("a")
    assert again.upserts == 0 and again.error is None


def test_a_page_streams_in_chunks(publisher: Instance) -> None:
    from safeguard.banks.sources.base import Row
    from safeguard.exchange.feed import CHUNK, Feed
    from safeguard.ledger import Signer

    key = shared_bank(publisher)
    publisher.app.state.services.banks.import_rows("shared", [Row(i, "md5", md5(i)) for i in range(5000)], actor="t")
    feed = Feed(publisher.engine.db, Signer.from_settings(publisher.settings))
    who = KeyService(publisher.engine.db).authenticate(key)
    chunks = list(feed.stream(feed.open(who, "shared", "", 5000)))
    assert len(chunks) >= 2 + 5000 // CHUNK  # header, entries a chunk at a time, end: never the page at once
    assert max(len(c) for c in chunks) < CHUNK * 400
    page = PageReader(Signer.from_settings(publisher.settings).public, bank="shared", cursor="", max_entries=5000)
    assert len(page.read(chunks).rows) == 5000


# -- bad input: nothing applied, the checkpoint untouched --------------------------------------------
class Tamper:
    """A fake partner on loopback that answers with a real page from the publisher, altered."""

    def __init__(self, pub: Instance, key: str, alter: Any) -> None:
        self.pub, self.key, self.alter = pub, key, alter
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with httpx.Client(base_url=owner.pub.url) as c:
                    r = c.get(self.path, headers={"Authorization": self.headers.get("Authorization", "")})
                changes = r.status_code == 200 and "/changes" in self.path
                body = owner.alter(self.path, r.content) if changes else r.content
                self.send_response(r.status_code)
                self.send_header("Content-Type", r.headers.get("content-type", "application/json"))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _flip_value(path: str, body: bytes) -> bytes:
    return body.replace(md5(1).encode(), md5(99).encode())


def _end_line_at(body: bytes) -> int:
    at = body.rstrip(b"\n").rfind(b"\n") + 1
    assert b'"type":"end"' in body[at:]
    return at


def _truncate(path: str, body: bytes) -> bytes:
    return body[: _end_line_at(body)]


def _cut_mid_line(path: str, body: bytes) -> bytes:
    return body[: _end_line_at(body) - 20]


def _not_json(path: str, body: bytes) -> bytes:
    return body.replace(b'"type":"entry"', b'"type":"entry', 1)


@pytest.fixture
def feed_pair(publisher: Instance, subscriber: Instance) -> Iterator[tuple[Instance, Instance, str]]:
    key = shared_bank(publisher)
    for i in range(3):
        add_md5(publisher, "shared", i)
    yield publisher, subscriber, key


@pytest.mark.parametrize(
    ("alter", "code"),
    [
        (_flip_value, "exchange_bad_signature"),
        (_truncate, "exchange_page_truncated"),
        (_cut_mid_line, "exchange_page_truncated"),
        (_not_json, "exchange_page_malformed"),
        (lambda p, b: b"", "exchange_page_truncated"),
        (lambda p, b: b + b'{"type":"entry"}\n', "exchange_page_malformed"),
    ],
)
def test_altered_pages_are_refused_whole(feed_pair: tuple[Instance, Instance, str], alter: Any, code: str) -> None:
    pub, sub, key = feed_pair
    fake = Tamper(pub, key, alter)
    try:
        subscribe(sub, pub, key, url=f"{fake.url}/v1/exchange/banks/shared")
        res = sub.exchange().sync("a")
    finally:
        fake.close()
    assert res.error is not None and res.error["code"] == code, res
    assert entries(sub) == [] and subscription(sub).cursor == ""
    assert subscription(sub).last_error_code == code


def test_a_replayed_page_is_refused(feed_pair: tuple[Instance, Instance, str]) -> None:
    pub, sub, key = feed_pair
    recorded: dict[str, bytes] = {}

    def replay(path: str, body: bytes) -> bytes:
        # the first page, recorded, is answered to every later request
        return recorded.setdefault("first", body)

    fake = Tamper(pub, key, replay)
    try:
        subscribe(sub, pub, key, url=f"{fake.url}/v1/exchange/banks/shared")
        assert sub.exchange().sync("a").upserts == 3
        cursor = subscription(sub).cursor
        add_md5(pub, "shared", 10)
        res = sub.exchange().sync("a")
    finally:
        fake.close()
    assert res.error is not None and res.error["code"] == "exchange_page_replayed"
    assert subscription(sub).cursor == cursor and len(entries(sub)) == 3


def test_wrong_pinned_key_and_revoked_partner_key(feed_pair: tuple[Instance, Instance, str]) -> None:
    pub, sub, key = feed_pair
    with sub.client() as c:
        c.post("/v1/banks", headers=auth(sub.keys["admin"]), json={"name": "from-a"})
    impostor = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    sub.exchange().add(
        "a",
        url=f"{pub.url}/v1/exchange/banks/shared",
        key=key,
        bank="from-a",
        actor="test",
        public_key=base64.b64encode(impostor),
    )
    res = sub.exchange().sync("a")
    assert res.error is not None and res.error["code"] == "exchange_bad_signature"
    assert entries(sub) == [] and subscription(sub).cursor == ""
    # the right key pinned: it syncs; then the publisher revokes the partner key
    sub.exchange().remove("a", actor="test")
    sub.exchange().add("a", url=f"{pub.url}/v1/exchange/banks/shared", key=key, bank="from-a", actor="test")
    assert sub.exchange().sync("a").upserts == 3
    cursor = subscription(sub).cursor
    pub.app.state.services.keys.revoke(key.split("_")[1], actor="test")
    add_md5(pub, "shared", 20)
    res = sub.exchange().sync("a")
    assert res.error is not None and res.error["code"] == "exchange_partner_unauthorized"
    assert subscription(sub).cursor == cursor and len(entries(sub)) == 3
    assert "revoked" in (subscription(sub).last_error or "") or "401" in (subscription(sub).last_error or "")


def test_egress_policy_applies_to_feeds(feed_pair: tuple[Instance, Instance, str]) -> None:
    pub, sub, key = feed_pair
    sub.settings = sub.settings.with_(egress_allow="")
    with sub.client() as c:
        c.post("/v1/banks", headers=auth(sub.keys["admin"]), json={"name": "from-a"})
    with pytest.raises(Exception) as exc:
        sub.exchange().add("a", url=f"{pub.url}/v1/exchange/banks/shared", key=key, bank="from-a", actor="test")
    assert getattr(exc.value, "code", "") == "egress_refused"


def test_a_crash_mid_page_applies_nothing_and_resumes(
    feed_pair: tuple[Instance, Instance, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pub, sub, key = feed_pair
    subscribe(sub, pub, key)
    real = events.append

    def crash(s: Any, kind: str, **kw: Any) -> Any:
        if kind == "exchange.page_applied":
            raise RuntimeError("power cut")
        return real(s, kind, **kw)

    monkeypatch.setattr(events, "append", crash)
    with pytest.raises(RuntimeError):
        sub.exchange().sync("a")
    assert entries(sub) == [] and subscription(sub).cursor == ""
    monkeypatch.setattr(events, "append", real)
    res = sub.exchange().sync("a")
    assert res.upserts == 3 and subscription(sub).entries_applied == 3
    # a page fetched by a second process after the first applied it is dropped, not applied twice
    svc = sub.exchange()
    with pytest.raises(Conflict):
        svc._apply(subscription(sub).id, "a", subscription(sub).bank_id, "", [], "x", type(res)(name="a"))
    assert subscription(sub).entries_applied == 3


# -- the scheduled follower, and a case decision's dispute ---------------------------------------------
def test_the_service_follows_on_its_own_and_a_case_dispute_reaches_the_source(
    publisher: Instance, tmp_path: Any, db_url_b: str
) -> None:
    from tests.exchange.conftest import start_instance

    key = shared_bank(publisher)
    sub = start_instance("b", tmp_path / "b-live", db_url_b, run_worker=True, exchange_poll_seconds=0.2)
    try:
        subscribe(sub, publisher, key)
        value = md5(42)
        body = {"signals": [{"type": "md5", "value": value}], "content_id": "c-1", "user_id": "u-1"}
        with sub.client() as c:
            plat = auth(sub.keys["platform"])
            assert c.post("/v1/scan", json=body, headers=plat).json()["verdict"] == "allow"
            add_md5(publisher, "shared", 42)
            deadline = time.monotonic() + 10
            while (got := c.post("/v1/scan", json=body, headers=plat).json())["verdict"] != "block":
                assert time.monotonic() < deadline, "not blocked within 10 s of the add"
                time.sleep(0.05)
            case_id = got["case_id"]
            assert case_id
            mod = auth(sub.keys["moderator"])
            assert c.post(f"/v1/cases/{case_id}/claim", headers=mod).status_code == 200
            r = c.post(f"/v1/cases/{case_id}/decision", headers=mod, json={"outcome": "not_violating"})
            assert r.status_code == 200, r.text
        deadline = time.monotonic() + 10
        while [e.opinion for e in entries(publisher)] != ["disputed"]:
            assert time.monotonic() < deadline, "the dispute did not reach the publisher within 10 s"
            time.sleep(0.05)
        while True:  # B marks it sent once A's answer is back (just after A recorded it)
            with sub.engine.db.read() as s:
                sent = [(o.opinion, o.status) for o in s.execute(select(ExchangeOpinionOut)).scalars()]
            if sent == [("disputed", "sent")] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert sent == [("disputed", "sent")]
    finally:
        sub.stop()
