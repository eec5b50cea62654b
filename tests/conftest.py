"""Fixtures: a fresh database per test (SQLite always; PostgreSQL too when SAFEGUARD_TEST_POSTGRES_URL
is set, as .ci/run does), engines, API clients with a key per role, and benign generated media."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from safeguard.api import create_app
from safeguard.banks import BankService
from safeguard.config import Settings
from safeguard.engine import Engine
from safeguard.keys import KeyService
from safeguard.store import Database


def _session_vault_key() -> None:
    """The service refuses to start without an evidence vault key and never makes one itself
    (``safeguard vault init`` does). Services that tests start as subprocesses (``safeguard serve``,
    ``scan``) inherit this environment: one key, made here for the session, serves them all."""
    if os.environ.get("SAFEGUARD_VAULT_KEY_FILE"):
        return
    from safeguard.evidence import MasterKey

    folder = Path(tempfile.mkdtemp(prefix="sg-test-vault-"))
    atexit.register(shutil.rmtree, folder, True)
    os.environ["SAFEGUARD_VAULT_KEY_FILE"] = MasterKey.generate().write_new(folder / "vault.key").path


_session_vault_key()
PG_URL = os.environ.get("SAFEGUARD_TEST_POSTGRES_URL", "")
BACKENDS = ["sqlite", "postgresql"] if PG_URL else ["sqlite"]
# named after the test database, so several checkouts can share one server without sharing a template
_TEMPLATE = (PG_URL.rsplit("/", 1)[-1] or "safeguard_test") + "_template"
_template_ready = False


def _pg_admin_url() -> str:
    return PG_URL.rsplit("/", 1)[0] + "/postgres"


def _ensure_pg_template() -> None:
    global _template_ready
    if _template_ready:
        return
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{_TEMPLATE}"'))
        c.execute(text(f'CREATE DATABASE "{_TEMPLATE}"'))
    admin.dispose()
    db = Database(PG_URL.rsplit("/", 1)[0] + "/" + _TEMPLATE)
    db.migrate()
    db.dispose()
    _template_ready = True


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'safeguard.db'}"
        return
    _ensure_pg_template()
    name = "sg_" + uuid.uuid4().hex[:12]
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{_TEMPLATE}"'))
    yield PG_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    # tests' webhook receivers and stream servers listen on loopback: allowed here, refused by default
    # (tests/test_egress.py checks the defaults with egress_allow="")
    return Settings(
        data_dir=str(tmp_path / "data"),
        database_url=db_url,
        run_worker=False,
        index_refresh_seconds=0.0,
        egress_allow="127.0.0.1",
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    e = Engine(settings)
    yield e
    e.close()


@pytest.fixture
def banks(engine: Engine) -> BankService:
    return BankService(engine.db)


@pytest.fixture
def app_client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    app = create_app(settings, engine=engine)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def keys(engine: Engine) -> dict[str, str]:
    ks = KeyService(engine.db)
    return {
        role: ks.create(role, f"test-{role}", actor="test")["key"]
        for role in ("platform", "moderator", "admin", "auditor")
    }
