"""bank_entries keeps one index on values (the unique one), and every lookup by value uses it.

Migration 0006 dropped a second (signal_type, value) index that no query needed and that cost a third
of a bulk import. These tests pin both halves: the index is gone (and comes back on downgrade), and
the lookups that name a value are answered from the unique index, not by a table scan.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, select, update

from safeguard.banks.service import BankService
from safeguard.banks.sources.base import Row
from safeguard.store import Database
from safeguard.store.db import MIGRATIONS_DIR
from safeguard.store.models import BankEntry


def _indexes(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        return {ix["name"] for ix in inspect(conn).get_indexes("bank_entries") if ix["name"]}


def test_value_lookups_use_the_unique_index(db_url: str) -> None:
    db = Database(db_url)
    db.migrate()
    assert "ix_entry_signal_value" not in _indexes(db)
    svc = BankService(db)
    svc.create("b", actor="t", kind="other")
    svc.add_entry("b", signal_type="pdq", value="ab" * 32, actor="t")
    # enough rows, with statistics, that the planners choose by selectivity rather than table size
    svc.import_rows("b", [Row(line=k + 1, signal_type="pdq", value=f"{k:064x}") for k in range(3000)], actor="t")
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    lookups = [
        select(BankEntry).where(BankEntry.bank_id == 1, BankEntry.signal_type == "pdq", BankEntry.value == "ab" * 32),
        update(BankEntry)
        .where(BankEntry.bank_id == 1, BankEntry.signal_type == "pdq", BankEntry.value == "ab" * 32)
        .values(enabled=False),
    ]
    with db.engine.connect() as conn:
        for stmt in lookups:
            sql = str(stmt.compile(conn, compile_kwargs={"literal_binds": True}))
            if db.is_sqlite:
                plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
                # SQLite names a table constraint's index sqlite_autoindex_<table>_<n>
                assert "INDEX sqlite_autoindex_bank_entries_1 (bank_id=? AND signal_type=? AND value=?)" in plan, plan
            else:
                plan = " ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {sql}"))
                assert "uq_entry_bank_signal_value" in plan, plan
            conn.rollback()
    db.dispose()


def test_downgrade_restores_the_index(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    db.migrate()
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005_groom2")
    assert "ix_entry_signal_value" in _indexes(db)
    db.migrate()
    assert "ix_entry_signal_value" not in _indexes(db)
    db.dispose()
