"""The candidate read on the request path: the enabled entries of enabled banks, whatever their count."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from safeguard.banks import BankService
from safeguard.banks.sources.base import Row
from safeguard.detectors.hash_match import CANDIDATE_COLUMNS, read_candidates
from safeguard.store import Database
from safeguard.store.models import Bank, BankEntry


def _value(i: int) -> str:
    return f"{i:064x}"


def _core(db: Database, ids: list[int]) -> list[tuple[Any, ...]]:
    stmt = (
        select(*CANDIDATE_COLUMNS)
        .join(Bank, Bank.id == BankEntry.bank_id)
        .where(BankEntry.id.in_(ids), BankEntry.enabled.is_(True), Bank.enabled.is_(True))
    )
    with db.read() as s:
        return sorted(tuple(r) for r in s.execute(stmt))


def test_read_candidates_is_the_core_query_for_any_count_of_ids(db_url: str) -> None:
    db = Database(db_url)
    db.migrate()
    banks = BankService(db)
    banks.create("a", actor="t", thresholds={"pdq": 20}, review_thresholds={"pdq": 40}, dihedral=True)
    banks.create("b", actor="t")
    banks.import_rows(
        "a", [Row(line=i, signal_type="pdq", value=_value(i), category="x") for i in range(1, 301)], actor="t"
    )
    banks.import_rows("b", [Row(line=i, signal_type="pdq", value=_value(i)) for i in range(301, 341)], actor="t")
    ids = sorted(e.id for b in ("a", "b") for e in banks.list_entries(b, limit=1000))
    assert len(ids) == 340
    banks.set_enabled(ids[7], False, actor="t")  # a disabled entry is not a candidate
    banks.update("b", actor="t", enabled=False)  # nor is any entry of a disabled bank

    for wanted in (ids[:1], ids[:3], ids[5:10], ids, [*ids, 10**9]):  # 1, 3 (padded to 4), 340 (256 + 84)
        got = sorted(read_candidates(db.engine, wanted))
        assert got == _core(db, wanted)
    everything = read_candidates(db.engine, ids)
    assert len(everything) == 299  # 300 in bank a, one of them disabled
    first = everything[0]
    assert first[4] is False  # surge_quarantined, a bool on both backends
    assert first[7] is True and first[8] == {"pdq": 20} and first[9] == {"pdq": 40}  # parsed, as Core gives them
    assert read_candidates(db.engine, []) == []
    db.dispose()
