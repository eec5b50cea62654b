"""The real thing: `safeguard serve` in its own process, driven over loopback HTTP.

Proves the README's path (migrate, load indexes, listen) and that a bank entry added by another
process becomes findable by the server within its refresh interval, without a restart or a rebuild.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from safeguard.banks import BankService
from safeguard.keys import KeyService
from safeguard.media import Media
from safeguard.signals.pdq import PDQSignal
from safeguard.store import Database
from tests.helpers.net import free_port
from tests.media_factory import image_bytes


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[tuple[str, Database]]:
    port = free_port()
    env = {
        **os.environ,
        "SAFEGUARD_DATA_DIR": str(tmp_path / "data"),
        "SAFEGUARD_DATABASE_URL": db_url,
        "SAFEGUARD_INDEX_REFRESH_SECONDS": "0.2",
        "SAFEGUARD_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "safeguard.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"server did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.1)
    db = Database(db_url)
    try:
        yield url, db
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
        db.dispose()
    assert b"/docs" in out  # the banner tells where the API docs are


def test_served_scan_follows_bank_changes_from_another_process(server: tuple[str, Database]) -> None:
    url, db = server
    key = KeyService(db).create("platform", "t", actor="test")["key"]
    data = image_bytes(21)
    headers = {"Authorization": f"Bearer {key}"}
    r = httpx.post(url + "/v1/scan", headers=headers, files={"file": ("a.jpg", data, "image/jpeg")})
    assert r.status_code == 200 and r.json()["verdict"] == "allow"
    banks = BankService(db)
    banks.create("late", actor="test")
    banks.add_entry("late", signal_type="pdq", value=PDQSignal().compute(Media.from_bytes(data))[0].value, actor="t")
    added = time.monotonic()
    while True:
        r = httpx.post(url + "/v1/scan", headers=headers, files={"file": ("a.jpg", data, "image/jpeg")})
        if r.json()["verdict"] == "block":
            break
        assert time.monotonic() - added < 5, "a new entry must become findable without a restart"
        time.sleep(0.05)
    assert httpx.get(url + "/v1/openapi.json").status_code == 401  # every /v1 path wants a key first
    assert httpx.get(url + "/v1/openapi.json", headers=headers).status_code == 404
    assert "/v1/scan" in httpx.get(url + "/openapi.json").json()["paths"]
