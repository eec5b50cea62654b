"""A real console server for the browser tests and the screenshot script: uvicorn in a thread on a free
loopback port, over a fresh data directory with a vault key, and Debian's Chromium through Playwright."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from safeguard.api.app import create_app
from safeguard.config import Settings
from safeguard.engine import Engine
from safeguard.evidence.keys import MasterKey

CHROMIUM = Path("/usr/bin/chromium")
#: the app of the latest live_console (the benchmark switches its queue order setting between views)
last_app: Any = None
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
#: the mark of every browser test: skipped where Debian's Chromium is not installed
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium through Playwright (headless, no sandbox, no background networking), closed on
    the way out, whatever the test did."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def live_console(data_dir: Path, database_url: str | None = None, **changes: Any) -> Iterator[tuple[str, Engine]]:
    """Yields the base URL (``http://127.0.0.1:PORT``) and the engine behind it."""
    key = data_dir / "keys" / "vault.key"
    MasterKey.generate().write_new(key)
    settings = Settings(
        data_dir=str(data_dir / "data"),
        database_url=database_url or f"sqlite:///{data_dir / 'console.db'}",
        run_worker=False,
        index_refresh_seconds=0.0,
        vault_key_file=str(key),
    ).with_(**changes)
    engine = Engine(settings)
    port = free_port()
    global last_app
    last_app = create_app(settings, engine=engine)
    server = uvicorn.Server(uvicorn.Config(last_app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the console server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", engine
    finally:
        server.should_exit = True
        thread.join(10)
        engine.close()
