"""The compiled MIH loops (``_mihkernel.c``) against the numpy path and brute force: same answers on
both layouts (sparse: bitmap, ranks and inline hashes; dense: offsets), with tombstones and a delta,
buckets of several rows, one query or a batch, and more matches than the first output buffer holds."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from safeguard.index import mih as mih_module
from safeguard.index.hamming import HammingIndex
from safeguard.index.mih import MIHIndex
from tests.helpers.hashes import flip_random, mih_bank, mih_queries

needs_kernel = pytest.mark.skipif(mih_module.KERNEL is None, reason="the C extension was not built here")


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler: the extension is optional")
def test_the_extension_is_built_where_a_compiler_is() -> None:
    assert mih_module.KERNEL is not None


def _three(values: list[str], ids: list[int], **kw: int) -> tuple[MIHIndex, MIHIndex, HammingIndex]:
    fast, slow, ref = MIHIndex(**kw), MIHIndex(**kw), HammingIndex()
    slow.kernel = False
    for idx in (fast, slow, ref):
        idx.add(ids, values)
    return fast, slow, ref


def _agree(fast: MIHIndex, slow: MIHIndex, ref: HammingIndex, qs: list[str], radii: tuple[int, ...]) -> None:
    for r in radii:
        want = [sorted(ref.query(q, r)) for q in qs]
        assert [fast.query(q, r) for q in qs] == want
        assert [slow.query(q, r) for q in qs] == want
        assert fast.query_many(qs, r) == want
        assert slow.query_many(qs, r) == want


@needs_kernel
@pytest.mark.parametrize("tables", [11, 12, 13, 16])
@pytest.mark.parametrize("clustered", [False, True])
def test_same_answers_as_numpy_and_brute_force(tables: int, clustered: bool) -> None:
    rng = np.random.default_rng(40 + tables + 100 * clustered)
    values = mih_bank(rng, 4000, clustered)
    fast, slow, ref = _three(values, list(range(1, 4001)), tables=tables)
    assert fast._occ is not None  # small bank, wide keys: the sparse layout
    _agree(fast, slow, ref, mih_queries(rng, values, 40), (0, 8, 31, 32, 40))


@needs_kernel
def test_dense_layout() -> None:
    rng = np.random.default_rng(41)
    values = mih_bank(rng, 40_000, False)
    fast, slow, ref = _three(values, list(range(40_000)), tables=16)
    assert fast._occ is None and len(fast._offsets)  # 40K rows over 16-bit keys: most buckets are full
    _agree(fast, slow, ref, mih_queries(rng, values, 10), (31, 40))


@needs_kernel
def test_tombstones_delta_and_many_matches() -> None:
    rng = np.random.default_rng(42)
    centre = mih_bank(rng, 1, False)[0]
    # 3,000 near copies of one centre: a query at the centre matches hundreds (past the first buffer)
    values = [flip_random(rng, centre, int(rng.integers(0, 12))) for _ in range(3000)]
    fast, slow, ref = _three(values, list(range(3000)), tables=12)
    gone = list(range(0, 3000, 3))
    extra_ids = list(range(5000, 5100))
    extra = [flip_random(rng, centre, 5) for _ in extra_ids]
    for idx in (fast, slow, ref):
        idx.remove(gone)
        idx.add(extra_ids, extra)
    qs = [centre, flip_random(rng, centre, 20), *mih_queries(rng, values, 5)]
    assert len(ref.query(centre, 31)) > 1000
    _agree(fast, slow, ref, qs, (0, 31, 40))


@needs_kernel
def test_cached_addresses_follow_replaced_arrays(tmp_path) -> None:
    """The loop's array addresses are cached per index: tombstones (written in place), a compaction
    (new tables and hashes) and the mapped arrays of a loaded snapshot must all show in the answers."""
    rng = np.random.default_rng(43)
    values = mih_bank(rng, 40_000, False)  # past MIHIndex.SCAN_BELOW, so that a loaded index keeps tables
    ids = list(range(40_000))
    built, slow, ref = _three(values, ids)
    built.save(tmp_path / "s.mih")
    fast, _ = MIHIndex.load(tmp_path / "s.mih", mmap=True)
    qs = mih_queries(rng, values, 20)
    _agree(fast, slow, ref, qs, (31, 40))  # addresses taken and cached
    gone = ids[::20]  # tombstones, too few for a compaction
    for idx in (fast, slow, ref):
        idx.remove(gone)
    assert fast._dead == len(gone)
    _agree(fast, slow, ref, qs, (31, 40))
    before = fast._kargs
    fast.compact()  # new tables, new hashes
    slow.compact()
    _agree(fast, slow, ref, qs, (31, 40))
    assert before is not None and fast._kargs is not None and fast._kargs[2] != before[2]


@needs_kernel
def test_sparse_layout_buckets_of_several_rows_and_snapshots(tmp_path) -> None:
    """Near copies of a few centres share buckets: the sparse layout's overflow lists must be read
    (by both paths), and a saved snapshot must load to the same layout and answers."""
    rng = np.random.default_rng(44)
    centres = mih_bank(rng, 20, False)
    values = [flip_random(rng, centres[k % 20], int(rng.integers(0, 6))) for k in range(3000)]
    fast, slow, ref = _three(values, list(range(3000)), tables=11)
    assert fast._occ is not None
    assert len(fast._ovf_rows) > 100  # many buckets of several rows
    assert (fast._ent_rows < 0).sum() == len(fast._ovf_off) - 1
    qs = [*centres[:5], *mih_queries(rng, values, 20)]
    _agree(fast, slow, ref, qs, (0, 12, 31, 40))
    fast.save(tmp_path / "s.mih")
    loaded, _ = MIHIndex.load(tmp_path / "s.mih", mmap=True)
    assert loaded._occ is not None and len(loaded._rank) == len(loaded._occ) // 8
    _agree(loaded, slow, ref, qs, (31, 40))


def test_older_snapshots_are_refused(tmp_path) -> None:
    """A snapshot of the previous format is refused (the index manager then rebuilds from the database)."""
    rng = np.random.default_rng(45)
    idx = MIHIndex(tables=11)
    idx.add(list(range(100)), mih_bank(rng, 100, False))
    idx.save(tmp_path / "s.mih")
    meta = tmp_path / "s.mih" / "meta.json"
    meta.write_text(meta.read_text().replace(mih_module.FORMAT, "safeguard-mih-1"))
    with pytest.raises(ValueError, match="not a safeguard-mih-2 snapshot"):
        MIHIndex.load(tmp_path / "s.mih")
