"""Calling the API from tests: key headers and a bank with one entry."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient


def auth(key: str) -> dict[str, str]:
    """The headers that present an API key."""
    return {"Authorization": f"Bearer {key}"}


def make_bank_with(client: TestClient, keys: dict[str, str], data: bytes, name: str = "csam") -> dict[str, Any]:
    """Create bank ``name`` (category A1) as admin and add ``data``'s hashes to it as a moderator."""
    r = client.post("/v1/banks", headers=auth(keys["admin"]), json={"name": name, "default_category": "A1"})
    assert r.status_code == 201, r.text
    r = client.post(
        f"/v1/banks/{name}/entries", headers=auth(keys["moderator"]), files={"file": ("banked.png", data, "image/png")}
    )
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result
