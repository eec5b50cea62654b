"""HashScanRoute answers ``POST /v1/scan`` with a JSON body without FastAPI's routing; it must answer
exactly as the FastAPI route does (which serves everything else and the same request where the
middleware is absent)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from safeguard.api import create_app
from safeguard.api.app import SafeguardAPI
from safeguard.api.deps import Services, services
from safeguard.api.scan import HashScanRoute
from safeguard.config import Settings
from safeguard.engine import Engine
from safeguard.errors import SafeguardError
from tests.helpers.api import auth, make_bank_with
from tests.media_factory import image_bytes


async def _routed() -> Services:
    raise SafeguardError("a FastAPI route answered", code="routed", status=418)


def _without(app: FastAPI, kind: str) -> FastAPI:
    if kind == "lean":  # every FastAPI route that asks for the services answers 418 "routed"
        app.dependency_overrides[services] = _routed
    else:  # the fast path gone: only the FastAPI route can answer
        assert isinstance(app, SafeguardAPI) and getattr(app.fast_path, "func", None) is HashScanRoute
        app.fast_path = None
        app.middleware_stack = None
    return app


@pytest.fixture
def clients(settings: Settings, engine: Engine) -> Iterator[dict[str, TestClient]]:
    lean = _without(create_app(settings, engine=engine), "lean")
    routed = _without(create_app(settings, engine=engine), "routed")
    with TestClient(lean) as a, TestClient(routed) as b:
        yield {"lean": a, "routed": b}


def _comparable(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("id", "created_at", "timing_ms", "case_id")}


REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("platform", {"json": {"signals": [{"type": "md5", "value": "0" * 32}], "content_id": "c1", "user_id": "u1"}}),
    ("platform", {"json": {"signals": [{"type": "pdq", "value": "f" * 64, "quality": 90}]}}),
    ("admin", {"json": {"signals": [{"type": "sha256", "value": "a" * 64}], "context": {"app": "chat"}}}),
    ("platform", {"json": {"signals": []}}),
    ("platform", {"json": {"signals": [{"type": "pdq", "value": "abc"}]}}),
    ("platform", {"json": {"signals": [{"type": "phash", "value": "abc"}]}}),
    ("platform", {"json": {"signals": [{"type": "md5", "value": "0" * 32}], "surprise": 1}}),
    ("platform", {"content": b"{nope", "headers": {"content-type": "application/json"}}),
    ("platform", {"content": b"", "headers": {"content-type": "application/json"}}),
    ("platform", {"content": b"raw", "headers": {"content-type": "image/jpeg"}}),
    ("moderator", {"json": {"signals": [{"type": "md5", "value": "0" * 32}]}}),
    ("auditor", {"json": {"signals": [{"type": "md5", "value": "0" * 32}]}}),
    ("", {"json": {"signals": [{"type": "md5", "value": "0" * 32}]}}),
    ("bad", {"json": {"signals": [{"type": "md5", "value": "0" * 32}]}}),
]


@pytest.mark.parametrize(("role", "kwargs"), REQUESTS)
def test_lean_route_answers_as_the_fastapi_route(
    clients: dict[str, TestClient], keys: dict[str, str], role: str, kwargs: dict[str, Any]
) -> None:
    headers = dict(kwargs.get("headers", {}))
    if role == "bad":
        headers["Authorization"] = "Bearer sg_nope_nope"
    elif role:
        headers.update(auth(keys[role]))
    rest = {k: v for k, v in kwargs.items() if k != "headers"}
    got = {name: c.post("/v1/scan", headers=headers, **rest) for name, c in clients.items()}
    lean, routed = got["lean"], got["routed"]
    if "json" in kwargs or kwargs["headers"]["content-type"] == "application/json":
        assert lean.status_code == routed.status_code, (lean.text, routed.text)
        assert lean.headers["content-type"] == routed.headers["content-type"] == "application/json"
        assert _comparable(lean.json()) == _comparable(routed.json())
        if lean.status_code == 200:
            assert lean.json()["id"] != routed.json()["id"] and lean.json()["timing_ms"] > 0
    else:  # not JSON: the lean route passes it on to the FastAPI route
        assert lean.json()["error"]["code"] == "routed" and routed.status_code == 415


def test_lean_route_blocks_and_records_like_the_route(
    clients: dict[str, TestClient], keys: dict[str, str], engine: Engine
) -> None:
    added = make_bank_with(clients["routed"], keys, image_bytes(7, "PNG"))
    pdq = next(s for s in added["added"] if s["type"] == "pdq")["value"]
    bodies = {}
    for name, c in clients.items():
        r = c.post("/v1/scan", headers=auth(keys["platform"]), json={"signals": [{"type": "pdq", "value": pdq}]})
        assert r.status_code == 200, r.text
        bodies[name] = r.json()
    assert bodies["lean"]["verdict"] == "block" and bodies["lean"]["case_id"]
    assert _comparable(bodies["lean"]) == _comparable(bodies["routed"])
    for body in bodies.values():
        assert engine.get_decision(body["id"])["verdict"] == "block"


def test_lean_route_keeps_the_body_limit(settings: Settings, engine: Engine, keys: dict[str, str]) -> None:
    app = _without(create_app(settings.with_(max_upload_bytes=1000), engine=engine), "lean")
    with TestClient(app) as c:
        big = {"signals": [{"type": "md5", "value": "0" * 32}], "context": {"pad": "x" * 80_000}}
        r = c.post("/v1/scan", headers=auth(keys["platform"]), json=big)
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
        # no Content-Length (chunked): counted as it arrives
        raw = json.dumps(big).encode()
        chunks = (raw[i : i + 8192] for i in range(0, len(raw), 8192))
        headers = {**auth(keys["platform"]), "content-type": "application/json"}
        r = c.post("/v1/scan", headers=headers, content=chunks)
        assert r.status_code == 413 and r.json()["error"]["details"]["max_bytes"] == 1000 + 64 * 1024


def test_other_requests_pass_through(clients: dict[str, TestClient], keys: dict[str, str]) -> None:
    c = clients["lean"]
    assert c.get("/v1/scan", headers=auth(keys["platform"])).status_code == 405  # not a POST
    for path in ("/v1/scan/batch", "/v1/scans"):
        r = c.post(path, headers=auth(keys["platform"]), json={"signals": [{"type": "md5", "value": "0" * 32}]})
        assert r.status_code in (404, 418), (path, r.text)
        assert r.status_code == 404 or r.json()["error"]["code"] == "routed"
