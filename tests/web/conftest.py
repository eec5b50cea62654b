"""Console fixtures: an engine with a vault key, people with TOTP, a case opened by a banked benign image."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from safeguard.accounts import Credentials, UserService
from safeguard.api.app import create_app
from safeguard.banks import BankService
from safeguard.config import Settings
from safeguard.content import Content, ContentKind
from safeguard.engine import Engine
from safeguard.evidence.keys import MasterKey
from safeguard.media import Media
from safeguard.signals.pdq import PDQSignal
from tests.helpers.console import NEW_PASSWORD, code
from tests.media_factory import image_bytes

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def csettings(settings: Settings, tmp_path: Path) -> Settings:
    MasterKey.generate().write_new(tmp_path / "keys" / "vault.key")
    return settings.with_(vault_key_file=str(tmp_path / "keys" / "vault.key"))


@pytest.fixture
def cengine(csettings: Settings) -> Iterator[Engine]:
    e = Engine(csettings)
    yield e
    e.close()


@pytest.fixture
def client(csettings: Settings, cengine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(csettings, engine=cengine)) as c:
        yield c


def banked_case(engine: Engine, seed: int = 7, user: str = "u-1") -> tuple[int, int]:
    """A benign generated image in a CSAM-kind bank, then scanned: a case with a preserved item."""
    banks = BankService(engine.db)
    if not any(b.name == "csam" for b in banks.list_banks()):
        banks.create("csam", actor="t", default_category="A1")
    data = image_bytes(seed, "PNG")
    pdq = PDQSignal().compute(Media.from_bytes(data))[0]
    entry = banks.add_entry("csam", signal_type="pdq", value=pdq.value, actor="t")
    d = engine.scan(Content(kind=ContentKind.IMAGE, data=data, content_id=f"c-{seed}", user_id=user))
    assert d.case_id is not None
    return d.case_id, entry.id


def person(engine: Engine, name: str, role: str) -> Credentials:
    return UserService(engine.db, engine.settings).create(name, role, actor="test")


def csrf_of(html: str) -> str:
    m = CSRF.search(html)
    assert m, html[:500]
    return m.group(1)


def console_login(client: TestClient, creds: Credentials, step: int = 0) -> str:
    """Log in through the console's form (changing the one-time password); returns the CSRF token."""
    r = client.post("/console/login", data={"name": creds.name, "password": creds.password, "totp": code(creds, step)})
    assert r.status_code == 200 and r.url.path == "/console/password", (r.status_code, r.url, r.text[:300])
    r = client.post(
        "/console/password",
        data={
            "csrf": csrf_of(r.text),
            "password": creds.password,
            "new_password": NEW_PASSWORD,
            "confirm": NEW_PASSWORD,
        },
    )
    assert r.status_code == 200 and r.url.path == "/console/queue", (r.status_code, r.url)
    return csrf_of(r.text)
