"""Indexes: exact against brute force, patching, snapshots; a contract every index class runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from safeguard.index.base import SignalIndex, index_for
from safeguard.index.exact import ExactIndex
from safeguard.index.hamming import HammingIndex
from safeguard.index.mih import MIHIndex
from safeguard.signals import get_signal_type
from tests.helpers.hashes import flip_bits, random_hashes


def brute(values: dict[int, str], q: str, d: int) -> set[tuple[int, int]]:
    out = set()
    for i, v in values.items():
        dist = (int(v, 16) ^ int(q, 16)).bit_count()
        if dist <= d:
            out.add((i, dist))
    return out


@pytest.mark.parametrize("index_cls", [HammingIndex, MIHIndex])
def test_hamming_index_equals_brute_force(index_cls: type[SignalIndex]) -> None:
    base = random_hashes(3000)
    values = dict(enumerate(base, start=1))
    # plant near-duplicates of a few hashes at every distance 0..40
    planted = {}
    for k in range(41):
        planted[10_000 + k] = flip_bits(base[k], k, seed=k)
    values.update(planted)
    idx = index_cls() if index_cls is not HammingIndex else HammingIndex(256)
    idx.add(list(values), list(values.values()))
    for k in range(41):
        q = base[k]
        got = set(idx.query(q, 31))
        assert got == brute(values, q, 31)
        assert (10_000 + k, k) in got or k > 31


def test_hamming_patching_add_remove_replace() -> None:
    hs = random_hashes(50, seed=1)
    idx = HammingIndex()
    idx.add(list(range(50)), hs)
    idx.remove([3, 4, 999])
    assert idx.query(hs[3], 0) == []
    assert len(idx) == 48
    idx.add([5], [hs[3]])  # replace 5's value
    assert idx.query(hs[3], 0) == [(5, 0)]
    assert idx.query(hs[5], 0) == []
    idx.add([3], [hs[3]])
    assert sorted(idx.query(hs[3], 0)) == [(3, 0), (5, 0)]


def test_hamming_compaction_keeps_results() -> None:
    hs = random_hashes(5000, seed=2)
    idx = HammingIndex()
    idx.add(list(range(5000)), hs)
    idx.remove(list(range(0, 5000, 2)))
    assert len(idx) == 2500
    for i in (1, 2, 4999):
        assert idx.query(hs[i], 0) == ([] if i % 2 == 0 else [(i, 0)])


@pytest.mark.parametrize("signal", ["pdq", "md5", "sha256"])
def test_snapshot_round_trip(tmp_path: Path, signal: str) -> None:
    st = get_signal_type(signal)
    idx = index_for(st)
    values = [v[: len(st.examples[0])] for v in random_hashes(100, seed=3)]
    idx.add(list(range(100)), values)
    idx.remove([7])
    path = tmp_path / f"{signal}{idx.snapshot_suffix}"  # a directory of .npy files for MIH
    idx.save(path, change_id=42)
    loaded, meta = type(idx).load(path)
    assert meta == {"change_id": 42}
    assert len(loaded) == 99
    assert loaded.query(values[8], 0) == [(8, 0)]
    assert loaded.query(values[7], 0) == []
    for f in [path] if path.is_file() else sorted(path.iterdir()):
        raw = f.read_bytes()
        assert b"pickle" not in raw and b"\x80\x04" not in raw[:2]


def test_exact_index() -> None:
    idx = ExactIndex()
    idx.add([1, 2], ["a", "a"])
    assert idx.query("a", 0) == [(1, 0), (2, 0)]
    idx.remove([1])
    assert idx.query("a", 0) == [(2, 0)]
    assert idx.query("b", 0) == []
