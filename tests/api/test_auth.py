"""Authentication first (issue 15, finding 5): the key is checked before any body is read, made-up keys
cost bounded memory, and rate limits answer 429 with Retry-After."""

from __future__ import annotations

import asyncio
import json
import secrets
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from safeguard.api import create_app
from safeguard.api.auth import TokenBuckets
from safeguard.config import Settings
from safeguard.engine import Engine
from safeguard.errors import Unauthorized
from safeguard.keys import KeyService
from safeguard.store import Database
from tests.helpers.api import auth

BIG = 50 * 1024 * 1024  # the default upload limit: what an attacker may declare


class Probe:
    """An ASGI client for one request: counts the body bytes the app pulls with ``receive()``."""

    def __init__(self, body: bytes = b"", chunks: int = 1) -> None:
        size = max(len(body) // chunks, 1)
        self.parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
        self.receive_calls = 0
        self.bytes_received = 0
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.body = b""

    async def receive(self) -> dict[str, Any]:
        self.receive_calls += 1
        if self.parts:
            part = self.parts.pop(0)
            self.bytes_received += len(part)
            return {"type": "http.request", "body": part, "more_body": bool(self.parts)}
        await asyncio.sleep(3600)  # the client never disconnects
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = dict(message.get("headers", []))
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    def run(self, app: FastAPI, method: str, path: str, headers: dict[str, str], declared: int | None = None) -> None:
        raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        raw.append((b"content-length", str(declared if declared is not None else sum(map(len, self.parts))).encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": raw,
            "client": ("203.0.113.7", 40000),
            "server": ("127.0.0.1", 80),
        }
        asyncio.run(app(scope, self.receive, self.send))

    @property
    def error(self) -> str:
        return str(json.loads(self.body)["error"]["code"])


@pytest.fixture
def app(settings: Settings, engine: Engine) -> FastAPI:
    return create_app(settings, engine=engine)


# (method, path, content type): the hash-only fast path, a multipart upload, routes with JSON bodies
BODY_ROUTES = [
    ("POST", "/v1/scan", "application/json"),
    ("POST", "/v1/scan", "multipart/form-data; boundary=xyz"),
    ("POST", "/v1/scan/batch", "application/json"),
    ("POST", "/v1/banks", "application/json"),
    ("POST", "/v1/streams", "application/json"),
    ("POST", "/v1/conversations/c1/messages", "application/json"),
]


@pytest.mark.parametrize(("method", "path", "ctype"), BODY_ROUTES)
@pytest.mark.parametrize("key", [None, "sg_0123456789ab_notakey", "garbage"])
def test_a_bad_key_is_refused_before_a_byte_of_the_body_is_read(
    app: FastAPI, method: str, path: str, ctype: str, key: str | None
) -> None:
    headers = {"content-type": ctype} | ({"authorization": f"Bearer {key}"} if key else {})
    probe = Probe(b"x" * (1024 * 1024), chunks=16)  # 1 MiB sent, 50 MiB declared
    probe.run(app, method, path, headers, declared=BIG)
    assert probe.status == 401
    assert probe.error in ("missing_api_key", "invalid_api_key")
    assert probe.receive_calls == 0 and probe.bytes_received == 0
    assert probe.headers[b"connection"] == b"close"  # the server drops the rest instead of reading it
    assert probe.headers[b"www-authenticate"] == b"Bearer"


def test_a_key_of_the_wrong_role_on_the_fast_path_is_refused_before_the_body(
    app: FastAPI, keys: dict[str, str]
) -> None:
    probe = Probe(b"{" * 4096, chunks=4)
    probe.run(app, "POST", "/v1/scan", {"content-type": "application/json", **auth(keys["auditor"])}, declared=BIG)
    assert probe.status == 403 and probe.error == "wrong_role"
    assert probe.receive_calls == 0


def test_a_good_key_still_gets_its_body_read(app: FastAPI, keys: dict[str, str]) -> None:
    body = json.dumps({"signals": [{"type": "md5", "value": "0" * 32}]}).encode()
    probe = Probe(body, chunks=3)
    probe.run(app, "POST", "/v1/scan", {"content-type": "application/json", **auth(keys["platform"])})
    assert probe.status == 200, probe.body
    assert probe.bytes_received == len(body) and json.loads(probe.body)["verdict"] == "allow"


def test_routes_without_a_body_and_open_routes(app_client: TestClient, keys: dict[str, str]) -> None:
    assert app_client.get("/v1/decisions").json()["error"]["code"] == "missing_api_key"
    assert app_client.get("/v1/decisions", headers=auth(keys["platform"])).status_code == 200
    assert app_client.get("/v1/decisions", headers={"X-API-Key": keys["platform"]}).status_code == 200
    assert app_client.get("/healthz").status_code == 200  # outside /v1: no key
    assert app_client.get("/v1/no-such-thing").status_code == 401  # no route map for strangers


def _unknown_keys(n: int) -> Iterator[str]:
    for _ in range(n):
        yield f"sg_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


@pytest.mark.slow  # 32,000 key lookups: 7-40 s on a shared two-core machine
def test_32000_unknown_prefixes_stay_within_the_cache_caps(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'k.db'}")
    db.migrate()
    ks = KeyService(db)
    good = ks.create("platform", "p", actor="t")
    ks.authenticate(good["key"])
    for key in _unknown_keys(32_000):
        with pytest.raises(Unauthorized):
            ks.authenticate(key)
    assert ks.cache_sizes() == (1, KeyService.MAX_CACHED_UNKNOWN)
    # past the cap, more strangers keep nothing (an unbounded cache kept ~190 bytes each: +375 KB here).
    # tracemalloc counts only what it saw allocated, so both ends are measured after a first traced round.
    tracemalloc.start()
    rounds = []
    for _ in range(2):
        for key in _unknown_keys(2_000):
            with pytest.raises(Unauthorized):
                ks.authenticate(key)
        rounds.append(tracemalloc.get_traced_memory()[0])
    tracemalloc.stop()
    grown = rounds[1] - rounds[0]
    assert grown < 64 * 1024, f"2,000 more unknown prefixes grew the heap by {grown:,} bytes"
    assert ks.authenticate(good["key"]).name == "p"  # the known key was not evicted by strangers
    for i in range(32_000):  # keys not in our format are refused without a lookup or an entry
        with pytest.raises(Unauthorized):
            ks.authenticate(f"sg_zz{i}_secret")
    assert ks.cache_sizes() == (1, KeyService.MAX_CACHED_UNKNOWN)
    db.dispose()


def test_known_keys_are_capped_too(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(KeyService, "MAX_CACHED_KEYS", 3)
    ks = KeyService(engine.db)
    made = [ks.create("platform", f"p{i}", actor="t")["key"] for i in range(5)]
    for k in made:
        ks.authenticate(k)
    assert ks.cache_sizes()[0] == 3
    assert ks.cached(made[0]) is None and ks.cached(made[-1]) is not None  # oldest evicted first
    assert ks.authenticate(made[0]).name == "p0"  # and read again when it comes back


def _limited(settings: Settings, engine: Engine, **limits: Any) -> TestClient:
    return TestClient(create_app(settings.with_(**limits), engine=engine))


def test_per_key_rate_limit_answers_429_with_retry_after(
    settings: Settings, engine: Engine, keys: dict[str, str]
) -> None:
    c = _limited(settings, engine, rate_limit_per_second=0.5, rate_limit_burst=3)
    scan = {"signals": [{"type": "md5", "value": "0" * 32}]}
    got = [c.post("/v1/scan", json=scan, headers=auth(keys["platform"])).status_code for _ in range(3)]
    assert got == [200, 200, 200]
    for r in (
        c.post("/v1/scan", json=scan, headers=auth(keys["platform"])),  # the fast path
        c.get("/v1/decisions", headers=auth(keys["platform"])),  # a FastAPI route
    ):
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
        assert r.headers["retry-after"] == "2"  # 1 token at 0.5/s
        assert r.json()["error"]["details"] == {"retry_after_seconds": 2}
    # another key has its own bucket
    assert c.get("/v1/decisions", headers=auth(keys["auditor"])).status_code == 200


def test_rate_limit_zero_disables_it(settings: Settings, engine: Engine, keys: dict[str, str]) -> None:
    c = _limited(settings, engine, rate_limit_per_second=0.0, rate_limit_burst=1)
    assert all(c.get("/v1/decisions", headers=auth(keys["auditor"])).status_code == 200 for _ in range(20))


def test_failed_authentication_is_limited_per_client_address(
    settings: Settings, engine: Engine, keys: dict[str, str]
) -> None:
    c = _limited(settings, engine, auth_failures_per_minute=5)
    assert c.get("/v1/decisions", headers=auth(keys["platform"])).status_code == 200  # checked: now cached
    bad = list(_unknown_keys(8))
    codes = [c.get("/v1/decisions", headers=auth(k)).status_code for k in bad]
    assert codes == [401] * 5 + [429] * 3
    r = c.post("/v1/scan", json={"signals": []}, headers=auth(bad[0]))  # the fast path too
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_auth_failures"
    assert int(r.headers["retry-after"]) == 12  # one failure more per 12 s at 5 a minute
    # a key this process checked a moment ago still works from that address; an unchecked one waits
    assert c.get("/v1/decisions", headers=auth(keys["platform"])).status_code == 200
    assert c.get("/v1/decisions", headers=auth(keys["auditor"])).status_code == 429


def test_token_buckets_refill_and_stay_bounded() -> None:
    b = TokenBuckets(rate=2.0, burst=2, max_entries=100)
    assert b.take("k", now=0.0) == 0.0 and b.take("k", now=0.0) == 0.0
    assert b.take("k", now=0.0) == pytest.approx(0.5)
    assert b.wait("k", now=0.25) == pytest.approx(0.25)
    assert b.take("k", now=0.5) == 0.0
    for i in range(1000):
        b.take(i, now=1.0)
    assert len(b) == 100
