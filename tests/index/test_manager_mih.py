"""IndexSet with the MIH index: directory snapshots load back, and new entries are findable after refresh."""

from __future__ import annotations

import numpy as np

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


def test_load_warms_each_index_at_the_query_radius(tmp_path) -> None:
    """A worker's first query should not pay for page faults or probe sets: load() warms every index
    at the radius the hash-match detector will ask for (the widest enabled review threshold)."""
    db = Database(f"sqlite:///{tmp_path / 'b.db'}")
    db.migrate()
    svc = BankService(db)
    svc.create("narrow", actor="t", kind="other", thresholds={"pdq": 20}, review_thresholds={"pdq": 24})
    svc.create("wide", actor="t", kind="other", review_thresholds={"pdq": 36})
    svc.create("off", actor="t", kind="other", review_thresholds={"pdq": 60})
    svc.update("off", actor="t", enabled=False)
    rng = np.random.default_rng(3)
    values = [bytes(r).hex() for r in rng.integers(0, 256, (40_000, 32), dtype=np.uint8)]  # over SCAN_BELOW
    svc.import_rows("narrow", [Row(line=k, signal_type="pdq", value=v) for k, v in enumerate(values)], actor="t")
    first = IndexSet(db, tmp_path / "index")
    first.load()
    first.save_snapshots()
    second = IndexSet(db, tmp_path / "index")
    second.load()
    assert second.query_radius("pdq") == 36  # the disabled bank's 60 does not count
    assert second.query_radius("md5") == 0
    pdq = second.get("pdq")
    assert isinstance(pdq, MIHIndex) and isinstance(pdq._hashes.base, np.memmap)
    assert pdq._probed(36) and set(pdq._probe_cache) == {36}
    assert [d for _, d in pdq.query(values[7], 36)] == [0]
