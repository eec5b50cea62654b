"""``/docs`` and ``/redoc`` work on an offline install: every asset they load is served by Safeguard."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(app_client: TestClient, page: str) -> None:
    r = app_client.get(page)
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", r.text) + re.findall(r"url: ?'([^']+)'", r.text)
    assert urls, r.text
    assert not [u for u in urls if "://" in u or u.startswith("//")], urls  # nothing from a CDN
    assets = [u for u in urls if u.startswith("/docs-assets/")]
    assert any(u.endswith(".js") for u in assets)
    for u in assets:
        assert app_client.get(u).status_code == 200, u
    assert app_client.get("/openapi.json").status_code == 200
