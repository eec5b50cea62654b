"""Banks: create, fill, upsert, delete, disable, opinions, export; indexes follow every change."""

from __future__ import annotations

import io

import pytest

from safeguard.banks import BankService
from safeguard.banks.sources.csv_list import CSVHashList
from safeguard.banks.sources.jsonl_list import JSONLHashList
from safeguard.engine import Engine
from safeguard.errors import Conflict, InvalidInput, NotFound
from tests.helpers.hashes import random_hashes


def test_create_and_validate(banks: BankService) -> None:
    b = banks.create("ncmec", actor="t", kind="csam", default_category="A1")
    assert b.thresholds == {"pdq": 31} and b.review_thresholds == {"pdq": 40} and b.version == 1
    with pytest.raises(Conflict):
        banks.create("ncmec", actor="t")
    with pytest.raises(InvalidInput):
        banks.create("bad name!", actor="t")
    with pytest.raises(InvalidInput):
        banks.create("x", actor="t", thresholds={"pdq": 300})
    with pytest.raises(InvalidInput):
        banks.create("y", actor="t", thresholds={"pdq": 40}, review_thresholds={"pdq": 30})
    with pytest.raises(NotFound):
        banks.describe("nope")


def test_import_upsert_delete_and_export(banks: BankService) -> None:
    banks.create("list", actor="t", default_category="B1")
    hs = random_hashes(20)
    csv = "signal_type,value,category\n" + "".join(f"pdq,{h},{'A1' if i % 2 else ''}\n" for i, h in enumerate(hs))
    res = banks.import_rows("list", CSVHashList().parse(io.StringIO(csv + "pdq,zz,A1\n")), actor="t", batch_size=7)
    assert res.added_or_updated == 20 and res.rows_read == 21
    assert [(e.line, e.code) for e in res.errors] == [(22, "invalid_signal")]
    assert banks.describe("list").entry_count == 20
    exported = list(banks.export("list"))
    assert {e["value"] for e in exported} == set(hs)
    assert {e["category"] for e in exported} == {"A1", "B1"}  # default category fills the gaps
    # the same value again updates instead of duplicating; a delete row disables
    jl = f'{{"signal_type":"pdq","value":"{hs[0]}","category":"A2"}}\n{{"signal_type":"pdq","value":"{hs[1]}","delete":true}}\n'
    res = banks.import_rows("list", JSONLHashList().parse(io.StringIO(jl)), actor="t")
    assert (res.added_or_updated, res.deleted) == (1, 1)
    exported = {e["value"]: e for e in banks.export("list", include_disabled=True)}
    assert len(exported) == 20
    assert exported[hs[0]]["category"] == "A2"
    assert exported[hs[1]]["enabled"] is False
    assert len(list(banks.export("list"))) == 19


def test_entry_disable_and_opinions(banks: BankService) -> None:
    banks.create("b", actor="t")
    e = banks.add_entry("b", signal_type="md5", value="D41D8CD98F00B204E9800998ECF8427E", actor="t")
    assert e.value == "d41d8cd98f00b204e9800998ecf8427e"
    assert banks.set_enabled(e.id, False, actor="t", reason="false positive").enabled is False
    assert banks.add_opinion(e.id, "disputed", actor="mod", note="looks benign").opinion == "disputed"
    with pytest.raises(InvalidInput):
        banks.add_opinion(e.id, "maybe", actor="mod")
    with pytest.raises(NotFound):
        banks.set_enabled(999_999, False, actor="t")


def test_index_follows_changes_across_engines(engine: Engine, banks: BankService) -> None:
    """Two engines on one database stand for two processes: each follows the other's bank changes."""
    other = Engine(engine.settings)
    banks.create("shared", actor="t")
    hs = random_hashes(5, seed=9)
    for h in hs:
        banks.add_entry("shared", signal_type="pdq", value=h, actor="t")
    for e in (engine, other):
        e.indexes.refresh()
        assert len(e.indexes.get("pdq") or []) == 5
    entry = banks.list_entries("shared")[2]
    banks.set_enabled(entry.id, False, actor="t")
    banks.update("shared", actor="t", enabled=False)
    other.indexes.refresh()
    assert len(other.indexes.get("pdq") or []) == 0
    banks.update("shared", actor="t", enabled=True)
    other.indexes.refresh()
    assert len(other.indexes.get("pdq") or []) == 4
    assert other.indexes.banks[1].enabled
    other.close()


def test_index_snapshot_then_catch_up(engine: Engine, banks: BankService) -> None:
    banks.create("snap", actor="t")
    hs = random_hashes(4, seed=11)
    banks.add_entry("snap", signal_type="pdq", value=hs[0], actor="t")
    engine.indexes.refresh()
    engine.indexes.save_snapshots()
    banks.add_entry("snap", signal_type="pdq", value=hs[1], actor="t")
    fresh = Engine(engine.settings)  # loads the snapshot, then applies the change made after it
    assert len(fresh.indexes.get("pdq") or []) == 2
    assert fresh.indexes.get("pdq").query(hs[1], 0)  # type: ignore[union-attr]
    fresh.close()
