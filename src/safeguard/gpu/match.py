"""Exact batched Hamming matching of 256-bit hashes in torch, chunked over the bank.

Two ways to the same distances, both exact:

- ``popcount``: hashes as 4 x int64 words; XOR, then a popcount. torch has no popcount operator, so on
  a GPU it is SWAR bit arithmetic (:func:`popcount64`: pairwise bit sums, nibble sums, byte sums, the
  bytes folded with shifts; no multiplication, so nothing overflows, and the sign bits an arithmetic
  right shift brings in are masked off); on the CPU, numpy's ``bitwise_count`` (the POPCNT
  instruction) on the same memory. Lean on memory (32 bytes per bank entry); the default on the CPU.
- ``matmul``: hashes as +-1 vectors; for two such vectors ``distance = (256 - a.b) / 2``, and the dot
  products of a whole query batch against a bank chunk are one matrix product, which a GPU runs on
  its tensor cores (float16 +-1 inputs; every partial sum is an integer of at most 256, exact in
  float16 and float32). 512 bytes per bank entry; the default on CUDA.

Either way the bank is walked in chunks of ``chunk_rows`` so the (queries x chunk) intermediate stays
bounded whatever the bank's size, and only pairs within ``max_distance`` leave the device.
``tests/gpu/test_match.py`` checks both against :class:`safeguard.index.hamming.HammingIndex`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

import numpy as np
import torch

from safeguard.index.hamming import hex_to_words

Method = Literal["auto", "popcount", "matmul"]

_M1 = 0x5555555555555555
_M2 = 0x3333333333333333
_M4 = 0x0F0F0F0F0F0F0F0F


def popcount64(x: torch.Tensor) -> torch.Tensor:
    """Set bits of each int64 element (0..64), with shifts, masks and adds only."""
    x = x - ((x >> 1) & _M1)  # the mask drops the sign bits an arithmetic shift brings in
    x = (x & _M2) + ((x >> 2) & _M2)
    x = (x + (x >> 4)) & _M4  # from here every byte holds a count <= 8, so x >= 0
    x = x + (x >> 8)
    x = x + (x >> 16)
    x = x + (x >> 32)
    return x & 0x7F


def words_to_int64(words: np.ndarray) -> torch.Tensor:
    """(n, 4) uint64 words (as :func:`safeguard.index.hamming.hex_to_words` makes) -> int64 tensor."""
    return torch.from_numpy(np.ascontiguousarray(words, dtype=np.uint64).view(np.int64).copy())


def words_to_signs(words: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(n, 4) int64 words -> (n, 256) +-1 vectors (bit set: -1). The bit order is the same for all."""
    shifts = torch.arange(64, device=words.device, dtype=torch.int64)
    bits = (words.unsqueeze(-1) >> shifts) & 1  # (n, 4, 64)
    return (1 - 2 * bits).reshape(words.shape[0], 256).to(dtype)


class TorchMatcher:
    """A fixed bank of 256-bit hashes on one device, matched in batches. Exact: recall 1.0."""

    def __init__(
        self,
        ids: Sequence[int] | np.ndarray,
        words: np.ndarray,
        *,
        device: torch.device | str = "cpu",
        method: Method = "auto",
        chunk_rows: int | None = None,
        max_pairs: int = 1 << 24,
    ) -> None:
        self.device = torch.device(device)
        if method == "auto":
            method = "matmul" if self.device.type == "cuda" else "popcount"
        if method not in ("popcount", "matmul"):
            raise ValueError(f"unknown method {method!r}")
        self.method = method
        self._dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.ids = np.asarray(ids, dtype=np.int64)
        if words.shape != (len(self.ids), 4):
            raise ValueError(f"expected ({len(self.ids)}, 4) words, got {words.shape}")
        #: rows of the bank compared at once; at most ``max_pairs`` (queries x rows) pairs per step
        self.chunk_rows = chunk_rows
        self.max_pairs = max_pairs
        bank = words_to_int64(words).to(self.device)
        self._cols: np.ndarray | None = None
        if method == "popcount":
            self._bank = bank
            if self.device.type == "cpu":
                self._cols = np.ascontiguousarray(np.asarray(words, dtype=np.uint64).T)  # (4, n)
        else:
            self._bank = torch.cat(
                [words_to_signs(c, self._dtype) for c in bank.split(1 << 18)]
                if len(bank)
                else [torch.zeros((0, 256), dtype=self._dtype, device=self.device)]
            )

    @classmethod
    def from_hex(
        cls, ids: Sequence[int], values: Sequence[str], *, device: torch.device | str = "cpu", method: Method = "auto"
    ) -> TorchMatcher:
        return cls(ids, hex_to_words(list(values), 4), device=device, method=method)

    def __len__(self) -> int:
        return len(self.ids)

    def _rows_per_step(self, queries: int) -> int:
        if self.chunk_rows:
            return self.chunk_rows
        per_pair = 1.0 if self.method == "matmul" else 4.0  # (q, rows, 4) words for popcount
        if self.device.type == "cuda":
            per_pair /= 16  # a GPU has the memory, and big steps keep it busy
        else:
            per_pair *= 8  # small steps stay in the CPU's caches
        return max(256, int(self.max_pairs // max(1.0, queries * per_pair)))

    def distances(self, queries: torch.Tensor) -> torch.Tensor:
        """(Q, 4) int64 query words -> (Q, bank) int32 distances. For tests and small banks."""
        return torch.cat([self._distances(q, c) for q, c in self._chunks(queries.to(self.device))], dim=1)

    def _chunks(self, q: torch.Tensor) -> Iterator[tuple[torch.Tensor, slice]]:
        """The queries in this method's form, with each slice of bank rows to compare them with."""
        step = self._rows_per_step(len(q))
        qf = words_to_signs(q, self._dtype) if self.method == "matmul" else q
        for start in range(0, len(self._bank), step):
            yield qf, slice(start, start + step)

    def _distances(self, q: torch.Tensor, rows: slice) -> torch.Tensor:
        if self.method == "matmul":
            return ((256 - (q @ self._bank[rows].T).float()) * 0.5).round().to(torch.int32)
        if self._cols is not None:
            return torch.from_numpy(self._cpu_distances(q, rows))
        return popcount64(q[:, None, :] ^ self._bank[None, rows, :]).sum(dim=2, dtype=torch.int32)

    def _cpu_distances(self, q: torch.Tensor, rows: slice) -> np.ndarray:
        """The CPU: numpy has the POPCNT instruction (``np.bitwise_count``). One word column at a time
        keeps every array contiguous and (Q, rows) in size, with no slow 4-wide reduction."""
        assert self._cols is not None
        qw = q.numpy().view(np.uint64)
        d = np.bitwise_count(self._cols[0, None, rows] ^ qw[:, 0, None]).astype(np.int32)
        for k in range(1, 4):
            d += np.bitwise_count(self._cols[k, None, rows] ^ qw[:, k, None])
        return d

    def _hits(self, q: torch.Tensor, rows: slice, max_distance: int) -> tuple[np.ndarray, ...]:
        """(query index, bank row, distance) of every pair within max_distance in this slice."""
        start = rows.start or 0
        if self._cols is not None:  # all numpy: its comparisons and nonzero are the fastest on a CPU
            d = self._cpu_distances(q, rows)
            qi, ri = np.nonzero(d <= max_distance)
            return qi, ri + start, d[qi, ri]
        if self.method == "matmul":
            # distance <= t  <=>  dot >= 256 - 2t: compare the dot products themselves, so only the few
            # hits, not the whole (Q x rows) block, are ever turned into distances
            dots = q @ self._bank[rows].T
            tqi, tri = torch.nonzero(dots >= 256 - 2 * max_distance, as_tuple=True)
            tdist = ((256 - dots[tqi, tri].float()) * 0.5).round().to(torch.int32)
        else:
            dd = self._distances(q, rows)
            tqi, tri = torch.nonzero(dd <= max_distance, as_tuple=True)
            tdist = dd[tqi, tri]
        return tqi.cpu().numpy(), tri.cpu().numpy() + start, tdist.cpu().numpy()

    def match_words(
        self, queries: np.ndarray | torch.Tensor, max_distance: int, top_k: int | None = None
    ) -> list[list[tuple[int, int]]]:
        """For each query, every (entry id, distance) with distance <= max_distance, nearest first
        (ties by id); at most ``top_k`` of them when given."""
        q = words_to_int64(queries) if isinstance(queries, np.ndarray) else queries
        out: list[list[tuple[int, int]]] = [[] for _ in range(len(q))]
        if len(q) == 0 or len(self._bank) == 0:
            return out
        for qf, rows in self._chunks(q.to(self.device)):
            qi, ri, dist = self._hits(qf, rows, max_distance)
            for a, r, dd in zip(qi.tolist(), ri.tolist(), dist.tolist(), strict=True):
                out[a].append((int(self.ids[r]), int(dd)))
        return _nearest_first(out, top_k)

    def match_hex(
        self, values: Sequence[str], max_distance: int, top_k: int | None = None
    ) -> list[list[tuple[int, int]]]:
        return self.match_words(hex_to_words(list(values), 4), max_distance, top_k)


#: Costs of the two exact ways to match a batch on the CPU, measured on the 2-core AMD EPYC of
#: docs/performance.md (GPU path): :class:`TorchMatcher` compares ~1.1e8 pairs/s; the multi-index
#: hashing index took 5.1 s to build for 1M entries (~5 us per entry) and answers a query in
#: 70-280 us (distance 31-40).
CPU_SCAN_PAIRS_PER_S = 1.1e8
INDEX_BUILD_S_PER_ROW = 5e-6
INDEX_QUERY_S = 3e-4


def index_pays(rows: int, queries: int) -> bool:
    """Whether, on the CPU, building an :class:`IndexMatcher` for ``queries`` queries against ``rows``
    bank entries costs less than scanning every entry for every query (from the costs above: at 1M
    entries, from about 600 queries on)."""
    scan = queries * rows / CPU_SCAN_PAIRS_PER_S
    return rows * INDEX_BUILD_S_PER_ROW + queries * INDEX_QUERY_S < scan


def pick_matcher(device: torch.device, rows: int, queries: int) -> Literal["index", "scan"]:
    """What ``--matcher auto`` runs: the index on the CPU when it pays, else a scan on the device (a
    GPU compares a whole chunk of the bank in one matrix product)."""
    return "index" if device.type == "cpu" and index_pays(rows, queries) else "scan"


class IndexMatcher:
    """The same answers as :class:`TorchMatcher` from the service's multi-index hashing index
    (:class:`safeguard.index.mih.MIHIndex`, exact): on the CPU a query probes a few buckets instead of
    reading the whole bank, once the index is built (see :func:`index_pays`)."""

    method = "index"
    device = torch.device("cpu")

    def __init__(self, ids: Sequence[int] | np.ndarray, words: np.ndarray) -> None:
        from safeguard.index.mih import MIHIndex

        self.ids = np.asarray(ids, dtype=np.int64)
        if words.shape != (len(self.ids), 4):
            raise ValueError(f"expected ({len(self.ids)}, 4) words, got {words.shape}")
        self.index = MIHIndex.build(self.ids, words)

    def __len__(self) -> int:
        return len(self.ids)

    def match_hex(
        self, values: Sequence[str], max_distance: int, top_k: int | None = None
    ) -> list[list[tuple[int, int]]]:
        """As :meth:`TorchMatcher.match_hex`: every (entry id, distance) within ``max_distance``,
        nearest first (ties by id); at most ``top_k`` when given."""
        return _nearest_first(self.index.query_many(list(values), max_distance), top_k)


def _nearest_first(out: list[list[tuple[int, int]]], top_k: int | None) -> list[list[tuple[int, int]]]:
    """Each query's (entry id, distance) pairs sorted by distance, then id; cut to ``top_k`` if given."""
    for hits in out:
        hits.sort(key=lambda t: (t[1], t[0]))
        if top_k is not None:
            del hits[top_k:]
    return out
