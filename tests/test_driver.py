"""store.driver: statements on the DBAPI cursor write exactly what ``Connection.execute`` writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from safeguard import events
from safeguard.engine import DECISIONS
from safeguard.store import Database
from safeguard.store.driver import Prepared
from safeguard.store.models import DecisionRow


def _row(i: int, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": f"dec_test{i:04d}",
        "status": "done",
        "created_at": datetime(2026, 11, 23, 17, 0, tzinfo=UTC) + timedelta(microseconds=i),
        "verdict": "allow",
        "content_kind": "hashes",
        "content_id": None,
        "user_id": f"u{i}" if i % 2 else None,
        "policy_version": "p1",
        "case_id": i if i % 3 == 0 else None,
        "body": {"id": f"dec_test{i:04d}", "signals": [{"type": "pdq", "value": "ab" * 32}], "n": i, "ü": "ß"},
    }
    row.update(over)
    return row


def _read(db: Database, prefix: str) -> list[tuple[Any, ...]]:
    cols = (DecisionRow.id, DecisionRow.created_at, DecisionRow.user_id, DecisionRow.case_id, DecisionRow.body)
    with db.read() as s:
        got = s.execute(select(*cols).where(DecisionRow.id.like(prefix + "%")).order_by(DecisionRow.id)).all()
    return [tuple(r) for r in got]


def test_prepared_insert_writes_what_core_writes(db_url: str) -> None:
    db = Database(db_url)
    db.migrate()
    ins = Prepared(DECISIONS.insert())
    core = [_row(i) for i in range(5)]
    driver = [_row(i, id=f"dec_drv{i:04d}", body={**_row(i)["body"], "id": f"dec_drv{i:04d}"}) for i in range(5)]
    with db.write_connection() as conn:
        conn.execute(DECISIONS.insert(), core)
        ins.executemany(conn, driver[:1])  # one row: cursor.execute
        ins.executemany(conn, driver[1:])  # several: cursor.executemany
        ins.executemany(conn, [])  # nothing to do
    a, b = _read(db, "dec_test"), _read(db, "dec_drv")
    assert len(a) == len(b) == 5
    for ra, rb in zip(a, b, strict=True):
        assert ra[1:4] == rb[1:4]  # created_at (through the UTC TypeDecorator), user_id, case_id
        assert {**ra[4], "id": None} == {**rb[4], "id": None}  # the JSON body, read back
    db.dispose()


def test_prepared_falls_back_to_core_when_a_default_must_be_computed(db_url: str) -> None:
    db = Database(db_url)
    db.migrate()
    ins = Prepared(DECISIONS.insert())
    row = {k: v for k, v in _row(1).items() if k not in ("created_at", "status")}  # both have Python defaults
    with db.write_connection() as conn:
        ins.executemany(conn, [row])
    with db.read() as s:
        got = s.get(DecisionRow, row["id"])
        assert got is not None and got.status == "done" and got.created_at is not None
    db.dispose()


def test_prepared_head_statements_keep_the_chain(db_url: str) -> None:
    db = Database(db_url)
    db.migrate()
    with db.write_connection() as conn:
        assert events.append_many_core(conn, [events.EventDraft("test.a", "t", None, {"i": 1})]) == 1
    with db.write() as s:
        events.append(s, "test.b", actor="t", payload={"i": 2})  # the ORM path reads the head the driver wrote
    with db.write_connection() as conn:
        drafts = [events.EventDraft("test.c", "t", ("x", str(i)), {"i": i}) for i in range(3)]
        assert events.append_many_core(conn, drafts) == 5
        assert Prepared(events._SELECT_HEAD).first(conn)[0] == 5  # type: ignore[index]
    with db.read() as s:
        assert events.verify(s).ok
        assert events.verify(s).checked == 5
    db.dispose()


def test_values_fixed_in_the_statement_are_bind_processed(db_url: str) -> None:
    """A literal compared in the statement (here a UTC timestamp, through its TypeDecorator) must reach
    the database as ``Connection.execute`` would send it, or the row is not found."""
    from sqlalchemy import select as sa_select

    db = Database(db_url)
    db.migrate()
    row = _row(7)
    with db.write_connection() as conn:
        conn.execute(DECISIONS.insert(), [row])
    stmt = sa_select(DECISIONS.c.id).where(DECISIONS.c.created_at == row["created_at"])
    with db.write_connection() as conn:
        assert conn.execute(stmt).first() == (row["id"],)
        assert Prepared(stmt).first(conn) == (row["id"],)
    db.dispose()
