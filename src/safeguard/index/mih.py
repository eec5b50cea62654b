"""Exact Hamming search by multi-index hashing (MIH), in numpy, with memory-mappable snapshots.

Why it is exact: split the 256 bits into ``m`` disjoint substrings and give substring ``t`` a
radius ``r_t`` with ``sum(r_t + 1) > d``. If two hashes differ in ``d`` bits, some substring ``t``
differs in at most ``r_t`` bits (pigeonhole: were every substring ``r_t + 1`` or more bits apart, the
hashes would be more than ``d`` apart). So probing every substring's table with every key within
``r_t`` of the query's substring finds every entry within distance ``d``; each candidate is then
verified by XOR and popcount on the full 256 bits. The radii need not be equal (Norouzi et al.'s
generalised pigeonhole): for ``d = 40`` and 11 substrings, eight at radius 3 and three at radius 2
suffice, a quarter fewer probes than eleven at ``floor(40 / 11) = 3``. Nothing is approximate:
recall is 1.0 for every ``max_distance`` (a distance past what the probe tables are built for falls
back to a brute-force scan, still exact).

Two layouts, one table per substring. *Dense* (most buckets full, e.g. 10M entries over 23-24-bit
keys; CSR): ``offsets`` holds, for each table, ``2**width + 1`` start positions into ``rows``;
``rows[t*N + k]`` are row numbers sorted by that table's key; a probe reads two offsets, then rows,
then each row's hash. *Sparse* (most buckets empty, e.g. 1M entries over the same keys; see
:meth:`MIHIndex._build_sparse`): a bitmap of the non-empty buckets with a running count per 64-bit
word gives a non-empty bucket's number, under which a one-row bucket keeps its row and a copy of its
hash, so that a probe verifies with one random read (a few rows share an overflow list). At 1M
entries the sparse layout is a fifth smaller (448 vs 569 MB) and the service spent ~10% less CPU per
hash-only scan with it (bench/results/2026-12-06-performance-history.md, section 1). Candidates of all probes of one query (or
of a batch of queries) are expanded and verified in a handful of vectorised numpy calls.

Where the optional C extension is built (``setup.py``; ``_mihkernel.c``), those passes run in one
compiled call per batch instead, on the same arrays and with the same answers, with the GIL released:
1.3-1.7x faster per query at 1M entries and 16-18% more hash-only scans per second end to end
(docs/performance.md). Without a C compiler the install goes on without it and the numpy path answers.

Changes patch the index without a rebuild: additions go to a small brute-force *delta* buffer that
every query also scans; removals are tombstones (a ``live`` mask; main rows are sorted by entry id so
an id's row is a binary search, no 10M-entry dict). When the delta passes ``merge_threshold`` rows the
main tables are rebuilt from live rows plus delta (``compact()``; the :class:`IndexSet` may also call
it off the request path).

Snapshots are a directory of ``.npy`` files plus ``meta.json``; :meth:`load` memory-maps them
read-only, so worker processes that load the same snapshot share one copy in the page cache and
start in well under a second. Nothing on the load path unpickles.
"""

from __future__ import annotations

import ctypes
import importlib
import itertools
import json
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from safeguard.index.base import SignalIndex
from safeguard.index.hamming import hex_to_words

FORMAT = "safeguard-mih-2"  # 2: the sparse layout (an older snapshot is rebuilt from the database)
#: the arrays of a snapshot, one .npy file each
_PARTS = ("ids", "hashes", "offsets", "rows", "occ", "rank", "ent_rows", "ent_hash", "ovf_off", "ovf_rows")


def _load_kernel() -> tuple[Callable[..., int], Callable[..., int]] | None:
    """The compiled probe-and-verify loops (``_mihkernel.c``: dense and sparse layouts), or ``None``
    where they were not built: the extension is optional (``setup.py``), and the numpy path gives the
    same answers without it."""
    try:
        ext = importlib.import_module("safeguard.index._mihkernel")
    except ImportError:
        return None
    lib = ctypes.CDLL(ext.__file__)
    p, i, flag = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    dense, sparse = lib.sg_mih_search, lib.sg_mih_search_sparse
    dense.restype = sparse.restype = i
    dense.argtypes = [p, i, i, p, p, p, p, p, i, p, flag, p, flag, p, p, i, p, p, p, i]
    sparse.argtypes = [p, i, i, p, p, p, p, p, i, p, p, p, p, p, p, flag, p, p, i, p, p, p, i]
    return dense, sparse


#: ``None`` where the extension is missing; an index's ``kernel`` attribute picks per index
_KERNELS = _load_kernel()
KERNEL, KERNEL_SPARSE = _KERNELS if _KERNELS is not None else (None, None)

#: the most tables the compiled loop takes (``SG_MAX_TABLES`` in ``_mihkernel.c``)
KERNEL_MAX_TABLES = 64


def _widths(bits: int, m: int) -> list[int]:
    base, extra = divmod(bits, m)
    return [base + 1] * extra + [base] * (m - extra)


def _masks(width: int, radius: int) -> np.ndarray:
    """Every ``width``-bit mask with at most ``radius`` bits set, lightest first (none for ``radius < 0``)."""
    if radius < 0:
        return np.zeros(0, dtype=np.int64)
    out = [0]
    for r in range(1, radius + 1):
        out.extend(sum(1 << b for b in c) for c in itertools.combinations(range(width), r))
    return np.asarray(out, dtype=np.int64)


def _extract(words: np.ndarray, start: int, width: int) -> np.ndarray:
    """Bits ``[start, start+width)`` (bit 0 = most significant of word 0) of each row, as int64."""
    wi, off = divmod(start, 64)
    col = words[:, wi]
    if off + width <= 64:
        key = (col >> np.uint64(64 - off - width)) & np.uint64((1 << width) - 1)
    else:
        hi = 64 - off
        lo = width - hi
        key = ((col & np.uint64((1 << hi) - 1)) << np.uint64(lo)) | (words[:, wi + 1] >> np.uint64(64 - lo))
    return key.astype(np.int64)


def _expand(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the ranges ``[starts[i], ends[i])``; also return which range each position came from."""
    lens = ends - starts
    total = int(lens.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    which = np.repeat(np.arange(len(lens)), lens)
    first = np.cumsum(lens) - lens
    pos = np.arange(total, dtype=np.int64) + (starts - first)[which]
    return pos, which


class MIHIndex(SignalIndex):
    """Exact multi-index-hashing Hamming index (see module docstring).

    ``tables`` fixes the number of substrings; by default it follows the bank's size (no tables under
    32K rows, 16 x 16 bits under 500K, 11 x 23-24 bits above). A query whose radius per substring
    (see :meth:`radii`) passes ``max_radius`` is answered by a scan: slower, still exact.
    """

    snapshot_suffix = ".mih"

    #: below this many rows the main part is scanned by brute force (faster than probing, no tables)
    SCAN_BELOW = 1 << 15

    #: answer probed queries with the compiled loop when it is built (tests and benchmarks turn it off
    #: on an instance to compare with the numpy path)
    kernel: bool = True

    def __init__(self, bits: int = 256, tables: int | None = None, merge_threshold: int = 50_000) -> None:
        if bits % 64:
            raise ValueError("bits must be a multiple of 64")
        self.bits = bits
        self.words = bits // 64
        self.fixed_tables = tables
        self.merge_threshold = merge_threshold
        self._configure(tables or 0)
        # main part (possibly memory-mapped, read-only); rows sorted by id
        self._ids = np.zeros(0, dtype=np.int64)
        self._hashes = np.zeros((0, self.words), dtype=np.uint64)
        self._offsets = np.zeros(0, dtype=np.int32)
        self._rows = np.zeros(0, dtype=np.int32)
        self._occ: np.ndarray | None = None
        self._clear_sparse()
        self._live = np.zeros(0, dtype=bool)
        self._dead = 0
        # delta part (brute force)
        self._d_ids = np.zeros(0, dtype=np.int64)
        self._d_hashes = np.zeros((0, self.words), dtype=np.uint64)
        self._d_row: dict[int, int] = {}
        self._kernel_cap = 1024  # room for matches in a compiled search (grows to what a bank needs)

    def _configure(self, tables: int) -> None:
        """Set the substring layout; ``tables == 0`` means no tables (brute-force main part)."""
        self.tables = tables
        self._probe_cache: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._probe_addrs: dict[int, tuple[int, int, int, int]] = {}
        self._layout = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        self._kargs: tuple[tuple[object, ...], tuple[object, ...], tuple[int, ...]] | None = None
        if not tables:
            self.widths, self.starts, self._shifts = [], [], []
            self.max_radius = -1
            self._n_offsets = 0
            return
        self.widths = _widths(self.bits, tables)
        if max(self.widths) > 26:
            raise ValueError("substrings over 26 bits would need huge offset tables; use more tables")
        # probe sets grow as width**radius: stop where a scan of 10M rows would be cheaper anyway
        self.max_radius = 3 if max(self.widths) <= 24 else 2
        self.starts = [sum(self.widths[:t]) for t in range(tables)]
        self._layout = (np.asarray(self.starts, dtype=np.int64), np.asarray(self.widths, dtype=np.int64))
        self._shifts = [(self.bits - s - w, (1 << w) - 1) for s, w in zip(self.starts, self.widths, strict=True)]
        sizes = [(1 << w) + 1 for w in self.widths]
        self._table_base = np.cumsum([0, *sizes[:-1]]).astype(np.int64)
        self._n_offsets = int(sum(sizes))

    def _auto_tables(self, n: int) -> int:
        """Table count for ``n`` rows (measured in bench/index_bench.py; see docs/performance.md)."""
        if self.fixed_tables is not None:
            return self.fixed_tables
        if n < self.SCAN_BELOW or self.bits != 256:
            return 0
        # 16 x 16 bits (radius 1 for d <= 31): 4 MB of offsets, buckets of n/65536 rows.
        # 11 x 23-24 bits (radius 2 for d <= 32): ~470 MB of offsets, buckets of ~1 row at 10M.
        return 16 if n < 500_000 else 11

    # -- building --------------------------------------------------------------------------
    def _build(self, ids: np.ndarray, hashes: np.ndarray) -> None:
        order = np.argsort(ids, kind="stable")
        ids = ids[order]
        if len(ids) > 1 and bool((ids[1:] == ids[:-1]).any()):
            raise ValueError("duplicate ids in build")
        hashes = np.ascontiguousarray(hashes[order])
        n = len(ids)
        self._configure(self._auto_tables(n))
        self._ids, self._hashes = ids, hashes
        self._live = np.ones(n, dtype=bool)
        self._dead = 0
        self._offsets = np.zeros(0, dtype=np.int32)
        self._rows = np.zeros(0, dtype=np.int32)
        self._occ = None
        self._clear_sparse()
        if not self.tables:
            return
        if self._sparse_fits(n):
            self._build_sparse(hashes)
            return
        row_dtype = np.int32 if n < 2**31 else np.int64
        off_dtype = np.int32 if n * self.tables < 2**31 else np.int64
        offsets: np.ndarray = np.empty(self._n_offsets, dtype=off_dtype)
        rows: np.ndarray = np.empty(n * self.tables, dtype=row_dtype)
        for t, (s, w) in enumerate(zip(self.starts, self.widths, strict=True)):
            key = _extract(hashes, s, w)
            counts = np.bincount(key, minlength=1 << w)
            base = int(self._table_base[t])
            offsets[base] = t * n
            np.cumsum(counts, out=offsets[base + 1 : base + 1 + (1 << w)])
            offsets[base + 1 : base + 1 + (1 << w)] += t * n
            rows[t * n : (t + 1) * n] = np.argsort(key, kind="stable").astype(row_dtype)
        self._offsets, self._rows = offsets, rows

    def _sparse_fits(self, n: int) -> bool:
        """Whether most buckets are empty (a bank of ``n`` rows over at most half of the narrowest
        table's keys): then the sparse layout, else the dense one."""
        return n * 2 <= (1 << min(self.widths)) and sys.byteorder == "little"

    def _clear_sparse(self) -> None:
        self._occ64 = np.zeros(0, dtype=np.uint64)
        self._rank = np.zeros(0, dtype=np.uint32)
        self._ent_rows = np.zeros(0, dtype=np.int32)
        self._ent_hash = np.zeros((0, self.words), dtype=np.uint64)
        self._ovf_off = np.zeros(1, dtype=np.int64)
        self._ovf_rows = np.zeros(0, dtype=np.int32)

    def _build_sparse(self, hashes: np.ndarray) -> None:
        """The sparse layout: when most buckets are empty, a dense ``offsets`` array (one entry per
        possible key, ~450 MB for 11 tables of 23-24 bits) is mostly repeated numbers, and a probe that
        finds a bucket reads it, then ``rows``, then the row's hash: three dependent random reads.

        Here a bitmap marks the non-empty buckets (``_occ``; read as 64-bit words) and ``_rank``
        counts the set bits before each word, so a non-empty bucket's number among all non-empty
        buckets is one cached read and a popcount. Bucket ``r`` holding one row (~94% at 1M entries
        over 23-24-bit keys) keeps that row in ``_ent_rows[r]`` and a copy of its hash in
        ``_ent_hash[r]``: the probe verifies from there, one random read instead of three. A bucket
        of several rows stores ``-(k + 1)``; its rows are ``_ovf_rows[_ovf_off[k]:_ovf_off[k + 1]]``
        and are verified against ``_hashes`` as in the dense layout.
        """
        n = len(self._ids)
        row_dtype = np.int32 if n < 2**31 else np.int64
        nonempty = np.zeros(self._n_offsets, dtype=bool)
        ent_rows, ovf_rows, ovf_lens = [], [], []
        n_multi = 0
        for t, (s, w) in enumerate(zip(self.starts, self.widths, strict=True)):
            key = _extract(hashes, s, w)
            order = np.argsort(key, kind="stable")
            sk = key[order]
            first = np.flatnonzero(np.concatenate([[True], sk[1:] != sk[:-1]])) if n else order
            counts = np.diff(np.append(first, n))
            nonempty[int(self._table_base[t]) + sk[first]] = True
            er = order[first].astype(np.int64)
            multi = np.flatnonzero(counts > 1)
            er[multi] = -(n_multi + np.arange(len(multi), dtype=np.int64) + 1)
            n_multi += len(multi)
            pos, _ = _expand(first[multi], first[multi] + counts[multi])
            ovf_rows.append(order[pos])
            ovf_lens.append(counts[multi])
            ent_rows.append(er)
        occ = np.packbits(nonempty, bitorder="little")
        occ = np.concatenate([occ, np.zeros(-len(occ) % 8, dtype=np.uint8)])
        words = occ.view(np.uint64)
        rank = np.zeros(len(words), dtype=np.uint32)
        np.cumsum(np.bitwise_count(words)[:-1], out=rank[1:], dtype=np.uint32)
        er_all = np.concatenate(ent_rows)
        ent_hash = self._hashes[np.maximum(er_all, 0)]
        ent_hash[er_all < 0] = 0
        self._occ, self._occ64, self._rank = occ, words, rank
        self._ent_rows = er_all.astype(row_dtype)
        self._ent_hash = np.ascontiguousarray(ent_hash)
        self._ovf_off = np.concatenate([[0], np.cumsum(np.concatenate(ovf_lens))]).astype(np.int64)
        self._ovf_rows = np.concatenate(ovf_rows).astype(row_dtype)

    @classmethod
    def build(cls, ids: Sequence[int] | np.ndarray, hashes: np.ndarray, **kw: int) -> MIHIndex:
        """Build from ids and packed (n, words) uint64 hashes (most significant word first)."""
        idx = cls(**kw)
        idx._build(np.asarray(ids, dtype=np.int64), np.asarray(hashes, dtype=np.uint64).reshape(-1, idx.words))
        return idx

    def compact(self) -> None:
        """Fold the delta and tombstones into freshly built tables (a rebuild; O(N log N))."""
        live = np.flatnonzero(self._live)
        ids = np.concatenate([self._ids[live], self._d_ids])
        hashes = np.concatenate([self._hashes[live], self._d_hashes])
        self._d_ids = np.zeros(0, dtype=np.int64)
        self._d_hashes = np.zeros((0, self.words), dtype=np.uint64)
        self._d_row = {}
        self._build(ids, hashes)

    def settle(self) -> None:
        """Compact if anything is buffered: a bulk load in chunks leaves up to ``merge_threshold`` rows in
        the delta, which every query would otherwise scan by brute force (about 2 ms at 50K rows)."""
        if len(self._d_ids) or self._dead:
            self.compact()

    # -- changes ---------------------------------------------------------------------------
    def _main_rows(self, ids: np.ndarray) -> np.ndarray:
        """Rows of the main part holding these ids (live or not); -1 where absent."""
        if len(self._ids) == 0:
            return np.full(len(ids), -1, dtype=np.int64)
        pos = np.searchsorted(self._ids, ids)
        pos_c = np.minimum(pos, len(self._ids) - 1)
        return np.where(self._ids[pos_c] == ids, pos_c, -1)

    def add(self, ids: Sequence[int], values: Sequence[str]) -> None:
        if len(ids) != len(values):
            raise ValueError("ids and values differ in length")
        if not len(ids):
            return
        # last value wins for an id given twice
        latest = dict(zip((int(i) for i in ids), values, strict=True))
        id_arr = np.fromiter(latest.keys(), dtype=np.int64, count=len(latest))
        self.remove(id_arr.tolist())
        words = hex_to_words(list(latest.values()), self.words)
        if len(self._ids) == 0 and len(self._d_ids) == 0 and len(id_arr) >= 1024:
            self._build(id_arr, words)
            return
        start = len(self._d_ids)
        self._d_ids = np.concatenate([self._d_ids, id_arr])
        self._d_hashes = np.concatenate([self._d_hashes, words])
        for k, i in enumerate(id_arr.tolist()):
            self._d_row[i] = start + k
        if len(self._d_ids) > self.merge_threshold:
            self.compact()

    def remove(self, ids: Sequence[int]) -> None:
        if not len(ids):
            return
        arr = np.asarray(ids, dtype=np.int64)
        rows = self._main_rows(arr)
        rows = rows[rows >= 0]
        if len(rows):
            rows = rows[self._live[rows]]
            if len(rows):
                if not self._live.flags.writeable:
                    self._live = self._live.copy()
                self._live[rows] = False
                self._dead += len(rows)
        gone = [self._d_row.pop(int(i)) for i in arr.tolist() if int(i) in self._d_row]
        if gone:
            keep = np.ones(len(self._d_ids), dtype=bool)
            keep[gone] = False
            self._d_ids = self._d_ids[keep]
            self._d_hashes = self._d_hashes[keep]
            self._d_row = {int(i): r for r, i in enumerate(self._d_ids.tolist())}
        if self._dead > 1024 and self._dead * 4 > len(self._ids):
            self.compact()

    def warm(self, max_distance: int) -> None:
        """Build the probe set for ``max_distance`` and run one query, so that a worker's first request
        does not pay for them (the first query at 1M entries and d = 40 took 20-29 ms).

        The mapped pages are not faulted in ahead: reading one byte per page (~50 ms at 1M entries)
        made the first queries fast, but steady-state queries ran 0-30% slower afterwards in an
        interleaved in-process A/B (bench/results/2026-12-06-performance-history.md, section 5), so the pages fault in as
        queries reach them.
        """
        if self._probed(max_distance):
            self._probes(max_distance)
        self.query_many(["0" * (self.bits // 4)], max_distance)

    def __len__(self) -> int:
        return len(self._ids) - self._dead + len(self._d_ids)

    # -- queries ---------------------------------------------------------------------------
    def radii(self, max_distance: int) -> list[int]:
        """Per-table probe radii for ``max_distance``: the fewest that keep ``sum(r_t + 1) > max_distance``.

        ``max_distance + 1 = q * m + rem``: ``rem`` tables probe radius ``q`` and the rest ``q - 1``.
        The larger radius goes to the narrowest tables (the last ones), whose balls are smallest.
        """
        q, rem = divmod(max_distance + 1, self.tables)
        return [q - 1] * (self.tables - rem) + [q] * rem

    def _probed(self, max_distance: int) -> bool:
        """Whether a query at ``max_distance`` probes the tables (else the main part is scanned)."""
        return bool(self.tables) and 0 <= max(self.radii(max_distance)) <= self.max_radius

    def _probes(self, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(table of each probe, xor mask of each probe, offsets base of each probe) for a query distance."""
        got = self._probe_cache.get(max_distance)
        if got is None:
            tabs, masks = [], []
            for t, (w, r) in enumerate(zip(self.widths, self.radii(max_distance), strict=True)):
                mk = _masks(w, r)
                tabs.append(np.full(len(mk), t, dtype=np.int64))
                masks.append(mk)
            ptab = np.concatenate(tabs)
            got = (ptab, np.concatenate(masks), self._table_base[ptab])
            self._probe_cache[max_distance] = got
        return got

    def _keys(self, q: np.ndarray) -> np.ndarray:
        """(nq, tables) substring keys of packed queries."""
        if len(q) <= 16:  # plain ints beat a dozen small numpy calls per table
            out = []
            for row in q.tolist():
                v = 0
                for w in row:
                    v = (v << 64) | w
                out.append([(v >> sh) & mk for sh, mk in self._shifts])
            return np.asarray(out, dtype=np.int64)
        return np.stack([_extract(q, s, w) for s, w in zip(self.starts, self.widths, strict=True)], axis=1)

    def _candidates(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows listed in the buckets at offsets positions ``pos``, and which probe each came from."""
        if self._occ is not None:
            return self._sparse_candidates(pos)
        starts = self._offsets[pos]
        lens = self._offsets[pos + 1] - starts
        nz = np.flatnonzero(lens)
        if len(nz) == 0:
            return np.zeros(0, dtype=np.int64), nz
        s = starts[nz].astype(np.int64)
        ln = lens[nz]
        if int(ln.max()) == 1:
            return self._rows[s], nz
        first = np.cumsum(ln) - ln
        which = np.repeat(np.arange(len(nz)), ln)
        cpos = np.arange(int(first[-1] + ln[-1]), dtype=np.int64) + (s - first)[which]
        return self._rows[cpos], nz[which]

    def _sparse_candidates(self, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_candidates` in the sparse layout (see :meth:`_build_sparse`)."""
        word_at = pos >> 6
        bit = (pos & 63).astype(np.uint64)
        words = self._occ64[word_at]
        sel = np.flatnonzero((words >> bit) & np.uint64(1))
        if len(sel) == 0:
            return np.zeros(0, dtype=np.int64), sel
        below = words[sel] & ((np.uint64(1) << bit[sel]) - np.uint64(1))
        rank = self._rank[word_at[sel]].astype(np.int64) + np.bitwise_count(below)
        er = self._ent_rows[rank].astype(np.int64)
        single = er >= 0
        if bool(single.all()):
            return er, sel
        k = -er[~single] - 1
        cpos, which = _expand(self._ovf_off[k], self._ovf_off[k + 1])
        multi_probe = sel[~single][which]
        return np.concatenate([er[single], self._ovf_rows[cpos]]), np.concatenate([sel[single], multi_probe])

    @staticmethod
    def _popcount_rows(x: np.ndarray) -> np.ndarray:
        """Per-row popcount of an (n, 4) uint64 array, modulo 256 (a row of 256 ones reads 0).

        Summing the four byte counts with one multiply is several times faster than numpy's
        ``sum(axis=1)`` over a 4-wide axis; callers re-check hits exactly, so the one wrap-around
        case (distance 256) cannot produce a false match.
        """
        c = np.bitwise_count(x).view(np.uint32).ravel()
        return (c * np.uint32(0x01010101)) >> np.uint32(24)

    def _verify(self, rows: np.ndarray, q: np.ndarray, qi: np.ndarray | None, max_distance: int) -> np.ndarray:
        """Mask of candidate rows within ``max_distance`` of their query (exact)."""
        hh = np.take(self._hashes, rows, axis=0)
        if qi is None:
            hh ^= q[0]
        else:
            hh ^= np.take(q, qi, axis=0)
        dist = self._popcount_rows(hh) if self.words == 4 else np.bitwise_count(hh).sum(axis=1, dtype=np.int32)
        return dist <= max_distance

    def _search(self, q: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query number, entry id, distance) of every match of packed queries ``q``, unordered."""
        out_q, out_id, out_d = [], [], []
        n = len(self._ids)
        if n:
            if not self._probed(max_distance):
                qi, rows, dist = self._scan(q, self._hashes, max_distance)
                keep = self._live[rows]
                out_q.append(qi[keep])
                out_id.append(self._ids[rows[keep]])
                out_d.append(dist[keep])
            elif self.kernel and KERNEL is not None and self.words == 4 and self.tables <= KERNEL_MAX_TABLES:
                qi, rows, dist = self._kernel_search(q, max_distance)
                out_q.append(qi)
                out_id.append(self._ids[rows])
                out_d.append(dist)
            else:
                ptab, pmask, pbase = self._probes(max_distance)
                keys = self._keys(q)  # (nq, tables)
                pos = (pbase + (keys[:, ptab] ^ pmask)).ravel()
                cand, probe = self._candidates(pos)
                if len(cand):
                    cq = None if len(q) == 1 else probe // len(ptab)
                    hit = self._verify(cand, q, cq, max_distance)
                    if hit.any():
                        # one entry can be reached from several tables: keep each (query, row) once
                        hq = np.zeros(int(hit.sum()), dtype=np.int64) if cq is None else cq[hit]
                        pair = np.unique(hq * n + cand[hit])
                        qi, rows = np.divmod(pair, n)
                        live = self._live[rows]
                        qi, rows = qi[live], rows[live]
                        dist = np.bitwise_count(self._hashes[rows] ^ q[qi]).sum(axis=1, dtype=np.int64)
                        ok = dist <= max_distance
                        out_q.append(qi[ok])
                        out_id.append(self._ids[rows[ok]])
                        out_d.append(dist[ok])
        if len(self._d_ids):
            qi, rows, dist = self._scan(q, self._d_hashes, max_distance)
            out_q.append(qi)
            out_id.append(self._d_ids[rows])
            out_d.append(dist)
        if not out_q:
            e = np.zeros(0, dtype=np.int64)
            return e, e, e
        return np.concatenate(out_q), np.concatenate(out_id), np.concatenate(out_d)

    def _kernel_arrays(self) -> tuple[int, ...]:
        """Addresses (and index widths) of the arrays the compiled loop reads, for this index's current
        arrays: taking an array's address costs about 2 us in numpy, a dozen per query was a third of
        a single query's time at distance 31. Cached, and re-taken whenever any of the arrays was
        replaced (a build, a compaction, a load, the first tombstone on a mapped snapshot)."""
        sparse = self._occ is not None
        if sparse:
            arrays: tuple[np.ndarray, ...] = (
                self._occ64, self._rank, self._ent_rows, self._ent_hash, self._ovf_off, self._ovf_rows,
            )  # fmt: skip
        else:
            arrays = (self._offsets, self._rows)
        arrays = (*arrays, self._hashes, self._live, *self._layout)
        cached = self._kargs
        if (
            cached is not None
            and len(cached[0]) == len(arrays)
            and all(a is b for a, b in zip(cached[0], arrays, strict=True))
        ):
            return cached[2]
        # the loop reads raw memory: C-contiguous arrays (the index's own are; this only checks)
        conv = tuple(np.ascontiguousarray(a) for a in arrays)
        *main, hashes, live, starts, widths = conv
        live = live.view(np.uint8)
        head = (starts.ctypes.data, widths.ctypes.data)
        body: tuple[int, ...]
        if sparse:
            occ, rank, ent_rows, ent_hash, ovf_off, ovf_rows = main
            if ent_rows.dtype != ovf_rows.dtype:
                raise ValueError("sparse MIH layout: row arrays of different widths")
            body = (
                occ.ctypes.data, rank.ctypes.data, ent_rows.ctypes.data, ent_hash.ctypes.data,
                ovf_off.ctypes.data, ovf_rows.ctypes.data, int(ent_rows.dtype == np.int64),
            )  # fmt: skip
        else:
            offsets, rows = main
            body = (offsets.ctypes.data, int(offsets.dtype == np.int64), rows.ctypes.data, int(rows.dtype == np.int64))
        addrs = (*head, *body, hashes.ctypes.data, live.ctypes.data)
        # the originals (compared by identity next time) and what the addresses point into (kept alive)
        self._kargs = (arrays, (*conv, live), addrs)
        return addrs

    def _probe_arrays(self, max_distance: int) -> tuple[int, int, int, int]:
        got = self._probe_addrs.get(max_distance)
        if got is None:
            ptab, pmask, pbase = self._probes(max_distance)  # cached with it, so the addresses stay valid
            got = self._probe_addrs[max_distance] = (ptab.ctypes.data, pmask.ctypes.data, pbase.ctypes.data, len(ptab))
        return got

    def _kernel_search(self, q: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query number, row, distance) of the live main-part matches, through the compiled loop."""
        assert KERNEL is not None and KERNEL_SPARSE is not None
        arrays = self._kernel_arrays()
        fn = KERNEL_SPARSE if self._occ is not None else KERNEL
        ptab, pmask, pbase, nprobes = self._probe_arrays(max_distance)
        q = np.ascontiguousarray(q, dtype=np.uint64)
        head = (q.ctypes.data, len(q), self.tables, *arrays[:2], ptab, pmask, pbase, nprobes, *arrays[2:])
        cap = self._kernel_cap
        while True:
            out = np.empty(3 * cap, dtype=np.int64)
            o = out.ctypes.data
            n = fn(*head, max_distance, o, o + 8 * cap, o + 16 * cap, cap)
            if n < 0:
                raise MemoryError("MIH search: no memory for its scratch buffers")
            if n <= cap:
                break
            # more matches than room (a query near a dense cluster): run again with enough, and start
            # there next time, so that such banks do not search every query twice
            cap = self._kernel_cap = 2 * n
        qi, found, dist = out[:n], out[cap : cap + n], out[2 * cap : 2 * cap + n]
        if n <= 1:  # a miss, or one match: nothing to dedupe (the usual single-hash scan)
            return qi, found, dist
        # one entry can be reached from several tables: keep each (query, row) once
        pair, first = np.unique(qi * len(self._ids) + found, return_index=True)
        qi, found = np.divmod(pair, len(self._ids))
        return qi, found, dist[first]

    @staticmethod
    def _scan(q: np.ndarray, hashes: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        qs, rs, ds = [], [], []
        for k in range(len(q)):
            dist = np.bitwise_count(hashes ^ q[k]).sum(axis=1, dtype=np.int32)
            rows = np.flatnonzero(dist <= max_distance)
            qs.append(np.full(len(rows), k, dtype=np.int64))
            rs.append(rows)
            ds.append(dist[rows])
        return np.concatenate(qs), np.concatenate(rs), np.concatenate(ds)

    def query(self, value: str, max_distance: int) -> list[tuple[int, int]]:
        _, ids, dist = self._search(hex_to_words([value], self.words), max_distance)
        order = np.argsort(ids, kind="stable")
        return list(zip(ids[order].tolist(), dist[order].tolist(), strict=True))

    def query_many(self, values: Sequence[str], max_distance: int) -> list[list[tuple[int, int]]]:
        out: list[list[tuple[int, int]]] = [[] for _ in values]
        if not values:
            return out
        # Batches bound the temporary arrays: about 256K probe positions per call (at d = 40, 1M entries
        # and 11 tables, 15 queries per call ran at 514 us/query, 256 per call at 739; one at a time 551).
        probes = len(self._probes(max_distance)[0]) if len(self._ids) and self._probed(max_distance) else 1
        step = max(1, min(256, (1 << 18) // max(1, probes)))
        for b in range(0, len(values), step):
            chunk = list(values[b : b + step])
            qi, ids, dist = self._search(hex_to_words(chunk, self.words), max_distance)
            order = np.lexsort((ids, qi))
            for k, i, d in zip(qi[order].tolist(), ids[order].tolist(), dist[order].tolist(), strict=True):
                out[b + k].append((i, d))
        return out

    # -- snapshots -------------------------------------------------------------------------
    def _config(self) -> dict[str, int]:
        return {"bits": self.bits, "tables": self.tables}

    def arrays(self) -> dict[str, np.ndarray]:
        live = np.flatnonzero(self._live)
        return {
            "ids": np.concatenate([self._ids[live], self._d_ids]),
            "hashes": np.concatenate([self._hashes[live], self._d_hashes]),
            "bits": np.asarray(self.bits, dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> MIHIndex:
        idx = cls(bits=int(arrays["bits"]))
        if len(arrays["ids"]):
            idx._build(np.asarray(arrays["ids"], dtype=np.int64), np.asarray(arrays["hashes"], dtype=np.uint64))
        return idx

    def _parts(self) -> dict[str, np.ndarray]:
        """Every array a snapshot holds (empty ones for the layout not in use)."""
        occ = self._occ if self._occ is not None else np.zeros(0, dtype=np.uint8)
        return {name: occ if name == "occ" else getattr(self, f"_{name}") for name in _PARTS}

    def save(self, path: Path, **meta: int) -> None:
        """Write a snapshot directory atomically (write beside, then rename over)."""
        if len(self._d_ids) or self._dead:
            self.compact()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        for name, arr in self._parts().items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(arr), allow_pickle=False)
        (tmp / "meta.json").write_text(json.dumps({"format": FORMAT, **self._config(), "meta": meta}))
        old = path.with_name(path.name + f".old{os.getpid()}")
        if path.exists():
            path.rename(old)
        tmp.rename(path)
        if old.exists():
            shutil.rmtree(old)

    @classmethod
    def load(cls, path: Path, mmap: bool = True) -> tuple[MIHIndex, dict[str, int]]:
        """Open a snapshot directory; with ``mmap`` the arrays are shared read-only pages."""
        path = Path(path)
        info = json.loads((path / "meta.json").read_text())
        if info.get("format") != FORMAT:
            raise ValueError(f"{path} is not a {FORMAT} snapshot")
        idx = cls(bits=int(info["bits"]))
        idx._configure(int(info["tables"]))
        mode: Literal["r"] | None = "r" if mmap else None
        # Plain ndarray views of the maps (the mapping lives on in their .base), so that a query's fancy
        # indexing skips np.memmap's Python-level __getitem__ and __array_finalize__.
        arrs = {
            name: np.load(path / f"{name}.npy", mmap_mode=mode, allow_pickle=False).view(np.ndarray) for name in _PARTS
        }
        n = len(arrs["ids"])
        occ = arrs["occ"]
        if len(occ):  # sparse layout
            n_buckets = len(arrs["ent_rows"])
            ok = (
                len(occ) == -(-idx._n_offsets // 64) * 8
                and len(arrs["rank"]) == len(occ) // 8
                and arrs["ent_hash"].shape == (n_buckets, idx.words)
                and len(arrs["ovf_off"]) >= 1
                and len(arrs["ovf_rows"]) == int(arrs["ovf_off"][-1])
            )
        else:
            ok = len(arrs["offsets"]) == idx._n_offsets and len(arrs["rows"]) == n * idx.tables
        # the compiled loop reads these as raw memory: their types must be the ones it was built for
        rows_t = arrs["ent_rows"].dtype if len(occ) else arrs["rows"].dtype
        types_ok = (
            arrs["ids"].dtype == np.int64
            and arrs["hashes"].dtype == np.uint64
            and rows_t in (np.int32, np.int64)
            and (
                (occ.dtype == np.uint8 and arrs["rank"].dtype == np.uint32 and arrs["ent_hash"].dtype == np.uint64)
                and arrs["ovf_off"].dtype == np.int64
                and arrs["ovf_rows"].dtype == rows_t
                if len(occ)
                else arrs["offsets"].dtype in (np.int32, np.int64)
            )
        )
        if arrs["hashes"].shape != (n, idx.words) or not ok or not types_ok:
            raise ValueError(f"{path} does not match its meta.json")
        for name in _PARTS:
            setattr(idx, f"_{name}", arrs[name])
        if len(occ):
            idx._occ64 = occ.view(np.uint64)
        else:
            idx._occ = None
        idx._live = np.ones(n, dtype=bool)
        return idx, {k: int(v) for k, v in info.get("meta", {}).items()}
