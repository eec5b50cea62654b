"""Batched torch matching is exact: the same (id, distance) pairs as the brute-force HammingIndex."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from safeguard.gpu.match import IndexMatcher, TorchMatcher, index_pays, pick_matcher, popcount64  # noqa: E402
from safeguard.index.hamming import HammingIndex, hex_to_words  # noqa: E402


def _flip(rng: np.random.Generator, value: str, nbits: int) -> str:
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(value), dtype=np.uint8))
    bits[rng.choice(256, nbits, replace=False)] ^= 1
    return np.packbits(bits).tobytes().hex()


@pytest.fixture(scope="module")
def bank() -> tuple[list[int], list[str], list[str]]:
    rng = np.random.default_rng(7)
    values = [rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex() for _ in range(3000)]
    values += [_flip(rng, values[i], int(rng.integers(1, 20))) for i in range(200)]  # clusters
    ids = [10_000 + 3 * i for i in range(len(values))]
    queries = [_flip(rng, values[int(rng.integers(len(values)))], d) for d in range(0, 64, 2)]
    queries += [rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex() for _ in range(8)]
    queries += ["0" * 64, "f" * 64]
    return ids, values, queries


def test_popcount64_on_edge_words() -> None:
    words = torch.tensor([0, 1, -1, 2**63 - 1, -(2**63), 0x5555555555555555, -0x5555555555555556])
    assert popcount64(words).tolist() == [0, 1, 64, 63, 1, 32, 32]
    rng = np.random.default_rng(1)
    raw = rng.integers(0, 2**63, 1000, dtype=np.int64) * rng.choice([-1, 1], 1000)
    expect = [bin(int(v) & (2**64 - 1)).count("1") for v in raw]
    assert popcount64(torch.from_numpy(raw)).tolist() == expect


@pytest.mark.parametrize("method", ["popcount", "popcount-swar", "matmul"])
@pytest.mark.parametrize("threshold", [0, 31, 256])
def test_same_results_as_brute_force(bank: tuple[list[int], list[str], list[str]], method: str, threshold: int) -> None:
    ids, values, queries = bank
    ref = HammingIndex()
    ref.add(ids, values)
    # a small chunk forces several passes over the bank, the way a large bank is walked
    m = TorchMatcher.from_hex(ids, values, method=method.split("-")[0])  # type: ignore[arg-type]
    if method == "popcount-swar":
        m._cols = None  # the torch bit arithmetic a GPU runs, instead of numpy's POPCNT
    m.chunk_rows = 700
    got = m.match_hex(queries, threshold)
    expect = [sorted(ref.query(q, threshold), key=lambda t: (t[1], t[0])) for q in queries]
    assert got == expect
    assert sum(map(len, got)) > 0


def test_top_k_keeps_the_nearest(bank: tuple[list[int], list[str], list[str]]) -> None:
    ids, values, queries = bank
    full = TorchMatcher.from_hex(ids, values).match_hex(queries, 256)
    top = TorchMatcher.from_hex(ids, values).match_hex(queries, 256, top_k=3)
    assert top == [hits[:3] for hits in full]


def test_distance_matrix_and_empty_inputs(bank: tuple[list[int], list[str], list[str]]) -> None:
    ids, values, queries = bank
    a = TorchMatcher.from_hex(ids, values, method="popcount")
    b = TorchMatcher.from_hex(ids, values, method="matmul")
    q = torch.from_numpy(np.frombuffer(bytes.fromhex("".join(queries[:4])), ">u8").astype(np.uint64).view(np.int64))
    assert torch.equal(a.distances(q.reshape(4, 4)), b.distances(q.reshape(4, 4)))
    empty = TorchMatcher.from_hex([], [])
    assert len(empty) == 0 and empty.match_hex(queries[:2], 31) == [[], []]
    assert a.match_hex([], 31) == []


@pytest.mark.parametrize("threshold", [0, 31, 256])
def test_index_matcher_same_answers(bank: tuple[list[int], list[str], list[str]], threshold: int) -> None:
    ids, values, queries = bank
    got = IndexMatcher(ids, hex_to_words(values, 4)).match_hex(queries, threshold)
    assert got == TorchMatcher.from_hex(ids, values).match_hex(queries, threshold)
    assert sum(map(len, got)) > 0
    top = IndexMatcher(ids, hex_to_words(values, 4)).match_hex(queries, 256, top_k=2)
    assert top == TorchMatcher.from_hex(ids, values).match_hex(queries, 256, top_k=2)


def test_index_matcher_probes_a_large_bank() -> None:
    """Past the size where the index builds its substring tables, it probes them (the path that makes it
    pay) and still answers exactly what the full scan does, at the reference's and the review distance."""
    rng = np.random.default_rng(3)
    centres = [rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex() for _ in range(40_000)]
    values = centres + [_flip(rng, centres[i], int(rng.integers(1, 40))) for i in range(2_000)]
    ids = list(range(len(values)))
    queries = [_flip(rng, values[int(rng.integers(len(values)))], d) for d in range(0, 48, 3)]
    queries += [rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex() for _ in range(4)]
    m = IndexMatcher(ids, hex_to_words(values, 4))
    assert m.index.tables > 0 and len(m) == len(values)
    scan = TorchMatcher.from_hex(ids, values)
    for threshold in (31, 40):
        got = m.match_hex(queries, threshold)
        assert got == scan.match_hex(queries, threshold)
        assert sum(map(len, got)) >= sum(d <= threshold for d in range(0, 48, 3))  # each from its source


def test_index_pays_from_the_measured_costs() -> None:
    assert not index_pays(1_000_000, 100)  # a few files: scanning 1M entries 100 times is cheaper
    assert index_pays(1_000_000, 10_000)  # a media store: the build pays for itself many times
    assert not index_pays(1_000, 10_000)  # a small bank: a scan is a few microseconds
    assert pick_matcher(torch.device("cpu"), 1_000_000, 10_000) == "index"
    assert pick_matcher(torch.device("cpu"), 1_000_000, 100) == "scan"
    assert pick_matcher(torch.device("cuda"), 1_000_000, 10_000) == "scan"  # a GPU scans (no CUDA needed)
    with pytest.raises(ValueError):
        IndexMatcher([1, 2], hex_to_words(["0" * 64], 4))
