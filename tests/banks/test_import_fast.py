"""The bulk-upsert paths (SQLite: multi-row SQL on the driver; PostgreSQL: COPY into a staging table)
keep import semantics: last row wins, updates re-enable, the change log covers every id."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from safeguard.banks.service import BankService
from safeguard.banks.sources.base import Row
from safeguard.store import Database
from safeguard.store.models import BankEntry, EntryChange


def _rows(values: list[str], **kw) -> list[Row]:
    return [Row(line=k + 1, signal_type="pdq", value=v, **kw) for k, v in enumerate(values)]


def test_bulk_upsert_semantics(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(db_url)
    db.migrate()
    svc = BankService(db)
    copied: list[int] = []
    real_copy = BankService._pg_copy_upsert

    def spy(self: BankService, *args: Any) -> list[int] | None:
        got = real_copy(self, *args)
        copied.append(-1 if got is None else len(got))
        return got

    monkeypatch.setattr(BankService, "_pg_copy_upsert", spy)
    svc.create("b", actor="t", kind="other", default_category="A1")
    values = [f"{k:064x}" for k in range(7000)]  # more than one SQL chunk and one batch
    res = svc.import_rows("b", _rows(values, provenance={"list": "x"}), actor="t", source="s", batch_size=5000)
    assert res.added_or_updated == 7000
    # PostgreSQL (psycopg 3) takes the COPY path for every batch; SQLite its own
    assert copied == ([] if db.is_sqlite else [5000, 2000])
    with db.read() as s:
        entries = s.execute(select(BankEntry).order_by(BankEntry.id)).scalars().all()
        assert len(entries) == 7000
        e = entries[0]
        assert (e.category, e.source, e.provenance, e.enabled, e.added_by) == ("A1", "s", {"list": "x"}, True, "t")
        assert e.added_at.tzinfo is not None
        covered = {i for c in s.execute(select(EntryChange)).scalars() for i in range(c.entry_id, c.last_entry_id + 1)}
        assert covered == {x.id for x in entries}
        first_ids = {x.value: x.id for x in entries}
    # delete some, then re-import with a new category: same ids, re-enabled, updated; last row wins
    svc.import_rows("b", [Row(line=1, signal_type="pdq", value=values[0], delete=True)], actor="t")
    again = [
        Row(line=1, signal_type="pdq", value=values[0], category="B"),
        Row(line=2, signal_type="pdq", value=values[0], category="C"),
    ]
    svc.import_rows("b", again, actor="t")
    with db.read() as s:
        e = s.execute(select(BankEntry).where(BankEntry.value == values[0])).scalar_one()
        assert (e.id, e.enabled, e.category) == (first_ids[values[0]], True, "C")
        last = s.execute(select(EntryChange).order_by(EntryChange.id.desc())).scalars().first()
        assert last.entry_id <= e.id <= last.last_entry_id


def test_import_and_its_audit_event_commit_together(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry added through the API is one write transaction: the rows, the change log and the
    ``bank.imported`` event (with the import's counts) commit together; a multi-batch import writes its
    event with the last batch."""
    from safeguard.store.models import Event

    db = Database(db_url)
    db.migrate()
    svc = BankService(db)
    svc.create("b", actor="t", kind="other")
    writes = 0
    real_write = db.write

    def counting_write(*a: Any, **kw: Any) -> Any:
        nonlocal writes
        writes += 1
        return real_write(*a, **kw)

    monkeypatch.setattr(db, "write", counting_write)
    svc.add_entry("b", signal_type="pdq", value="cd" * 32, actor="t")
    assert writes == 1
    writes = 0
    res = svc.import_rows("b", _rows([f"{k:064x}" for k in range(250)]), actor="t", batch_size=100)
    assert res.added_or_updated == 250 and writes == 3  # batches of 100, 100 and 50 (+ the event)
    writes = 0
    svc.import_rows("b", [], actor="t")  # nothing to write but the event
    assert writes == 1
    with db.read() as s:
        payloads = [
            e.payload
            for e in s.execute(select(Event).where(Event.type == "bank.imported").order_by(Event.seq)).scalars()
        ]
    assert [p["added_or_updated"] for p in payloads] == [1, 250, 0]
    db.dispose()


def test_bulk_and_single_row_paths_store_the_same(db_url: str) -> None:
    """A batch (SQLite's multi-row SQL, PostgreSQL's COPY) and the same rows one at a time (PostgreSQL's
    generic statement) store the same entries: category default, source, provenance (nested, non-ASCII,
    empty), actor, enabled, opinion; and the same change-log coverage."""
    db = Database(db_url)
    db.migrate()
    svc = BankService(db)
    provs: list[dict[str, Any]] = [
        {},
        {"exchange": {"partner": "p", "source": "s", "opinion": "none", "added_at": "2026-12-06T00:00:00+00:00"}},
        {"list": 'é \u2028 "x"', "n": [1, 2.5, None, True]},
    ]
    rows = [
        Row(line=k + 1, signal_type="md5", value=f"{k:032x}", category=None if k % 2 else "B", provenance=provs[k % 3])
        for k in range(300)
    ]
    svc.create("bulk", actor="t", kind="other", default_category="A1")
    svc.create("one", actor="t", kind="other", default_category="A1")
    svc.import_rows("bulk", rows, actor="t", source="s", batch_size=300)
    for r in rows[:80]:  # one transaction per row: PostgreSQL's generic statement
        svc.import_rows("one", [r], actor="t", source="s")
    with db.read() as s:
        got: dict[str, dict[str, tuple[Any, ...]]] = {}
        for bank in ("bulk", "one"):
            b = BankService.get(s, bank)
            es = s.execute(select(BankEntry).where(BankEntry.bank_id == b.id)).scalars().all()
            got[bank] = {
                e.value: (
                    e.category,
                    e.source,
                    e.provenance,
                    e.added_by,
                    e.enabled,
                    e.opinion,
                    e.added_at.tzinfo is not None,
                )
                for e in es
            }
            covered = {
                i
                for c in s.execute(select(EntryChange).where(EntryChange.bank_id == b.id)).scalars()
                for i in range(c.entry_id, c.last_entry_id + 1)
            }
            assert covered == {e.id for e in es}
    assert len(got["bulk"]) == 300
    assert got["one"] == {v: got["bulk"][v] for v in got["one"]}
    assert got["bulk"][f"{1:032x}"] == ("A1", "s", provs[1], "t", True, "none", True)
    assert got["bulk"][f"{2:032x}"] == ("B", "s", provs[2], "t", True, "none", True)
