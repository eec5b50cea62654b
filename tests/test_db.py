"""SQLite transactions: writes hold the write lock from BEGIN, reads take none."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from safeguard.store import Database


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
    with pytest.raises(RuntimeError), db.write_on(kept):  # a failed transaction rolls back and unlocks
        raise RuntimeError
    assert other_can_write()
    kept.close()
    other.close()
    db.dispose()
