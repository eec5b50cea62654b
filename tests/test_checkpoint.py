"""WAL checkpoints run in a background thread, not inside the commit that fills the log."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from safeguard import events
from safeguard.store import Database
from safeguard.store.checkpoint import SAFETY_NET_PAGES


def test_writes_start_a_checkpointer_that_empties_the_log(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'sg.db'}")
    db.migrate()
    cp = db.checkpointer
    assert cp is not None
    cp.interval = 0.05
    with db.engine.connect() as conn:  # the connections' own threshold is only a safety net
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == SAFETY_NET_PAGES
    for i in range(50):
        with db.write() as s:
            events.append(s, "test.checkpoint", actor="t", payload={"i": i})
    deadline = time.monotonic() + 10
    while cp.frames == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cp.frames > 0  # the thread copied the log into the database file
    # and nothing is left to copy: a checkpoint from outside finds every frame done
    raw = sqlite3.connect(tmp_path / "sg.db")
    time.sleep(0.2)
    busy, log_frames, done = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    raw.close()
    assert busy == 0 and done == log_frames
    db.dispose()
    assert cp._thread is not None and not cp._thread.is_alive()


def test_memory_and_postgres_databases_have_none() -> None:
    assert Database("sqlite://").checkpointer is None
    assert Database("postgresql+psycopg://u@127.0.0.1:1/x").checkpointer is None
