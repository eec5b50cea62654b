"""SQLite transactions: writes hold the write lock from BEGIN, reads take none; commits are synced (FULL)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select, text

from safeguard.config import Settings
from safeguard.engine import Engine
from safeguard.errors import ConfigError
from safeguard.events import EVENTS, HEAD
from safeguard.store import Database
from safeguard.store.db import connection_of
from safeguard.store.driver import Prepared


def test_write_transactions_take_the_write_lock_at_begin_and_reads_do_not(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    db = Database(f"sqlite:///{path}")
    db.migrate()
    other = sqlite3.connect(path, timeout=0, isolation_level=None)  # another process's writer, no waiting

    def other_can_write() -> bool:
        try:
            other.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc)
            return False
        other.execute("ROLLBACK")
        return True

    with db.write_connection():
        assert not other_can_write()  # BEGIN IMMEDIATE: locked before any statement ran
    kept = db.connect_writer()
    for _ in range(2):  # a kept connection, transaction after transaction
        with db.write_on(kept) as conn:
            conn.execute(text("INSERT INTO event_chain_head (id, seq, hash) VALUES (2, 0, 'x')"))
            assert not other_can_write()
            conn.execute(text("DELETE FROM event_chain_head WHERE id = 2"))
        assert other_can_write()
    with db.write() as s:
        s.execute(text("SELECT 1"))  # a session connects (and begins) at its first statement
        assert not other_can_write()
    with db.read() as s:
        s.execute(text("SELECT count(*) FROM events")).scalar_one()  # BEGIN DEFERRED: a read, no lock
        assert other_can_write()
    assert Prepared(select(EVENTS.c.seq)).read(db.engine) == []  # outside any transaction
    assert other_can_write()
    with pytest.raises(RuntimeError), db.write_on(kept):  # a failed transaction rolls back and unlocks
        raise RuntimeError
    assert other_can_write()
    kept.close()
    other.close()
    db.dispose()


def _heads(db: Database) -> list[int]:
    with db.read() as s:
        return [r[0] for r in s.execute(select(HEAD.c.id).order_by(HEAD.c.id))]


def test_connection_of_is_the_transactions_connection_savepoints_included(db_url: str) -> None:
    db = Database(db_url)
    db.migrate()
    with db.write() as s:
        outer = connection_of(s)
        assert connection_of(s) is outer is s.connection()
        outer.execute(HEAD.insert().values(id=11, seq=0, hash="a"))
        with pytest.raises(RuntimeError), s.begin_nested():
            # the first call in a savepoint goes through the session, which emits the SAVEPOINT ...
            connection_of(s).execute(HEAD.insert().values(id=12, seq=0, hash="b"))
            raise RuntimeError
        with s.begin_nested():
            connection_of(s).execute(HEAD.insert().values(id=13, seq=0, hash="c"))
        connection_of(s).execute(HEAD.insert().values(id=14, seq=0, hash="d"))
    assert _heads(db) == [11, 13, 14]  # ... so the rolled-back one's write went with it
    with db.write() as s:  # a new transaction looks its connection up again
        connection_of(s).execute(HEAD.delete().where(HEAD.c.id > 10))
        assert s.info["transaction_connection"][0] is s.get_transaction()
    assert _heads(db) == []
    db.dispose()


def _synchronous(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())


def test_sqlite_is_synchronous_full_by_default(tmp_path: Path) -> None:
    """FULL (2): each commit is synced before it is acknowledged, so a power cut loses no acknowledged
    decision; NORMAL (1) is the operator's choice (SAFEGUARD_SQLITE_SYNCHRONOUS)."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert _synchronous(Database(url)) == 2
    assert Settings().sqlite_synchronous == "FULL"
    engine = Engine(Settings(data_dir=str(tmp_path / "d"), run_worker=False))
    assert _synchronous(engine.db) == 2
    engine.close()
    engine = Engine(Settings(data_dir=str(tmp_path / "d"), run_worker=False, sqlite_synchronous="normal"))
    assert _synchronous(engine.db) == 1
    engine.close()
    with pytest.raises(ConfigError) as e:
        Database(url, synchronous="OFF")
    assert e.value.code == "invalid_setting"
