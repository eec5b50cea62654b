"""MIHIndex must return exactly what the brute-force HammingIndex returns, whatever the layout."""

from __future__ import annotations

import numpy as np
import pytest

from safeguard.index import index_for
from safeguard.index.hamming import HammingIndex
from safeguard.index.mih import MIHIndex
from safeguard.signals import get_signal_type
from tests.helpers.hashes import flip_random, mih_bank, mih_queries


def _pair(values: list[str], ids: list[int], **kw: int) -> tuple[MIHIndex, HammingIndex]:
    mih, ref = MIHIndex(**kw), HammingIndex()
    mih.add(ids, values)
    ref.add(ids, values)
    return mih, ref


def _same(mih: MIHIndex, ref: HammingIndex, qs: list[str], radii: tuple[int, ...] = (0, 8, 15, 16, 31, 32, 40)) -> None:
    for r in radii:
        for q in qs:
            assert mih.query(q, r) == sorted(ref.query(q, r)), (q, r)
        assert mih.query_many(qs, r) == [sorted(ref.query(q, r)) for q in qs]


@pytest.mark.parametrize("tables", [16, 11, 12])
@pytest.mark.parametrize("clustered", [False, True])
def test_equals_brute_force(tables: int, clustered: bool) -> None:
    rng = np.random.default_rng(tables + 100 * clustered)
    values = mih_bank(rng, 3000, clustered)
    mih, ref = _pair(values, list(range(1, 3001)), tables=tables)
    assert mih.tables == tables
    _same(mih, ref, mih_queries(rng, values, 40))


def test_planted_near_duplicates_all_found() -> None:
    rng = np.random.default_rng(7)
    values = mih_bank(rng, 2000, False)
    planted = {}
    for d in range(32):
        planted[10_000 + d] = flip_random(rng, values[5], d)
    mih = MIHIndex(tables=16)
    mih.add(list(range(2000)) + list(planted), values + list(planted.values()))
    got = dict(mih.query(values[5], 31))
    for i, v in planted.items():
        assert got[i] == i - 10_000, v


def test_adds_and_removes_patch_without_rebuild() -> None:
    rng = np.random.default_rng(3)
    values = mih_bank(rng, 4000, True)
    mih, ref = _pair(values, list(range(4000)), tables=12)
    tables_before = mih._hashes
    # remove a slice, replace some values, add new entries: all go to tombstones and the delta
    rm = list(range(0, 4000, 7))
    mih.remove(rm)
    ref.remove(rm)
    new_ids = list(range(3990, 4200))
    new_vals = [flip_random(rng, values[int(rng.integers(4000))], int(rng.integers(0, 10))) for _ in new_ids]
    mih.add(new_ids, new_vals)
    ref.add(new_ids, new_vals)
    assert mih._hashes is tables_before, "patching must not rebuild the tables"
    assert len(mih) == len(ref)
    qs = mih_queries(rng, values + new_vals, 30)
    _same(mih, ref, qs, radii=(0, 31, 40))
    mih.compact()
    assert mih._hashes is not tables_before
    _same(mih, ref, qs, radii=(31,))


def test_delta_merges_past_threshold() -> None:
    rng = np.random.default_rng(4)
    values = mih_bank(rng, 600, False)
    mih = MIHIndex(tables=16, merge_threshold=100)
    ref = HammingIndex()
    for k in range(0, 600, 50):
        mih.add(list(range(k, k + 50)), values[k : k + 50])
        ref.add(list(range(k, k + 50)), values[k : k + 50])
    assert len(mih._d_ids) <= 100
    _same(mih, ref, mih_queries(rng, values, 10), radii=(31,))


def test_small_bank_scans_without_tables() -> None:
    rng = np.random.default_rng(5)
    values = mih_bank(rng, 2000, False)
    mih, ref = _pair(values, list(range(2000)))
    assert mih.tables == 0
    _same(mih, ref, mih_queries(rng, values, 10), radii=(31,))


@pytest.mark.parametrize("mmap", [True, False])
def test_snapshot_round_trip(tmp_path, mmap: bool) -> None:
    rng = np.random.default_rng(6)
    values = mih_bank(rng, 3000, True)
    mih, ref = _pair(values, list(range(3000)), tables=12)
    mih.remove([1, 2, 3])
    ref.remove([1, 2, 3])
    mih.add([9000], [values[0]])
    ref.add([9000], [values[0]])
    path = tmp_path / "pdq.mih"
    mih.save(path, change_id=42)
    mih.save(path, change_id=43)  # overwrite in place
    loaded, meta = MIHIndex.load(path, mmap=mmap)
    assert meta == {"change_id": 43}
    assert isinstance(loaded._hashes.base, np.memmap) == mmap  # mapped pages, seen through a plain ndarray
    loaded.warm(31)  # builds the probe set; answers stay the same
    assert set(loaded._probe_cache) == {31}
    qs = mih_queries(rng, values, 20)
    _same(loaded, ref, qs, radii=(31,))
    # a loaded (read-only) snapshot still takes patches
    loaded.remove([9000, 10])
    ref.remove([9000, 10])
    loaded.add([9001], [values[10]])
    ref.add([9001], [values[10]])
    _same(loaded, ref, qs, radii=(31,))


def test_rejects_foreign_snapshot(tmp_path) -> None:
    (tmp_path / "x.mih").mkdir()
    (tmp_path / "x.mih" / "meta.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError):
        MIHIndex.load(tmp_path / "x.mih")


def test_index_for_picks_mih_for_pdq() -> None:
    assert isinstance(index_for(get_signal_type("pdq")), MIHIndex)


def test_duplicate_ids_in_one_add_keep_last() -> None:
    mih = MIHIndex()
    mih.add([1, 1], ["0" * 64, "f" * 64])
    assert mih.query("f" * 64, 0) == [(1, 0)]
    assert mih.query("0" * 64, 0) == []


@pytest.mark.parametrize("tables", [11, 12, 16])
def test_radii_keep_the_pigeonhole_bound(tables: int) -> None:
    mih = MIHIndex(tables=tables)
    for d in range(64):
        radii = mih.radii(d)
        assert len(radii) == tables
        assert sum(r + 1 for r in radii) == d + 1  # the fewest probes that still cannot miss
        assert max(radii) - min(radii) <= 1
        assert radii == sorted(radii)  # the larger radius on the last (narrowest) tables
    if tables == 11:  # d = 40: eight tables at radius 3 and three at 2, not eleven at 3
        assert mih.radii(40) == [2] * 3 + [3] * 8


def test_settle_folds_the_delta_into_the_tables() -> None:
    rng = np.random.default_rng(3)
    values = mih_bank(rng, 40_000, False)
    mih = MIHIndex(merge_threshold=50_000)
    mih.add(list(range(20_000)), values[:20_000])  # the first bulk add builds the tables
    mih.add(list(range(20_000, 40_000)), values[20_000:])  # the second waits in the brute-force delta
    assert len(mih._d_ids) == 20_000
    before = [mih.query(values[i], 31) for i in (1, 25_000)]
    mih.settle()
    assert len(mih._d_ids) == 0 and len(mih) == 40_000 and mih.tables == 16
    assert [mih.query(values[i], 31) for i in (1, 25_000)] == before
