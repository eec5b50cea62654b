"""Two Safeguard instances on loopback: each its own database and data directory, its app served by
uvicorn on a real socket (the subscriber's follower talks HTTP to the publisher through the egress
policy, exactly as between two machines)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import create_engine, text

from safeguard.api import create_app
from safeguard.config import Settings
from safeguard.engine import Engine
from safeguard.exchange.follower import ExchangeService
from safeguard.keys import KeyService
from tests.conftest import PG_URL, _ensure_pg_template, _pg_admin_url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Instance:
    name: str
    settings: Settings
    engine: Engine
    url: str
    keys: dict[str, str]
    server: uvicorn.Server
    thread: threading.Thread
    app: Any

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def exchange(self) -> ExchangeService:
        return ExchangeService(self.engine.db, self.settings)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.engine.close()


def start_instance(name: str, data_dir: Path, database_url: str, **changes: Any) -> Instance:
    settings = Settings(
        data_dir=str(data_dir),
        database_url=database_url,
        run_worker=False,
        index_refresh_seconds=0.0,
        egress_allow="127.0.0.1",
        exchange_poll_seconds=0.0,
    ).with_(**changes)
    engine = Engine(settings)
    ks = KeyService(engine.db)
    keys = {r: ks.create(r, f"{name}-{r}", actor="test")["key"] for r in ("platform", "moderator", "admin")}
    app = create_app(settings, engine=engine)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"instance {name} did not start")
        time.sleep(0.02)
    return Instance(name, settings, engine, f"http://127.0.0.1:{port}", keys, server, thread, app)


def _second_db(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> Iterator[str]:
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'b.db'}"
        return
    _ensure_pg_template()
    name = "sg_" + uuid.uuid4().hex[:12]
    template = (PG_URL.rsplit("/", 1)[-1] or "safeguard_test") + "_template"
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield PG_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def db_url_b(request: pytest.FixtureRequest, db_url: str, tmp_path: Path) -> Iterator[str]:
    yield from _second_db(request, db_url, tmp_path)


@pytest.fixture
def publisher(tmp_path: Path, db_url: str) -> Iterator[Instance]:
    inst = start_instance("a", tmp_path / "a", db_url)
    yield inst
    inst.stop()


@pytest.fixture
def subscriber(tmp_path: Path, db_url_b: str) -> Iterator[Instance]:
    inst = start_instance("b", tmp_path / "b", db_url_b)
    yield inst
    inst.stop()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


__all__ = ["Instance", "auth", "free_port", "start_instance"]
