"""IndexSet with the MIH index: directory snapshots load back, and new entries are findable after refresh."""

from __future__ import annotations

from safeguard.banks.service import BankService
from safeguard.banks.sources.base import Row
from safeguard.index.manager import IndexSet
from safeguard.index.mih import MIHIndex
from safeguard.store import Database


def test_snapshot_then_patch(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'b.db'}")
    db.migrate()
    svc = BankService(db)
    svc.create("b", actor="t", kind="other")
    values = [f"{k * 7919:064x}" for k in range(2000)]
    svc.import_rows("b", [Row(line=k, signal_type="pdq", value=v) for k, v in enumerate(values)], actor="t")
    first = IndexSet(db, tmp_path / "index")
    first.load()
    first.save_snapshots()
    assert (tmp_path / "index" / "pdq.mih" / "meta.json").exists()
    second = IndexSet(db, tmp_path / "index")
    second.load()
    pdq = second.get("pdq")
    assert isinstance(pdq, MIHIndex) and len(pdq) == 2000
    assert [d for _, d in pdq.query(values[5], 0)] == [0]
    new = "f" * 64
    svc.add_entry("b", signal_type="pdq", value=new, actor="t")
    assert second.refresh() >= 1
    assert [d for _, d in second.get("pdq").query(new, 0)] == [0]
