"""PDQ index benchmark: Safeguard's MIHIndex against the reference index, side by side, same data.

The reference is what HMA uses: ``threatexchange``'s ``PdqSignal.get_index_cls()`` (``PDQIndex``, a
faiss ``IndexBinaryMultiHash`` with 16 tables). Both get the same hex strings, the same queries and
the same threshold (31). Queries are planted near-duplicates of bank entries at distances 1-31;
recall is measured two ways: the planted entry found, and the full result set against brute force.

    OMP_NUM_THREADS=1 python bench/index_bench.py --sizes 1000000,10000000

Memory is the RSS growth while building (hex strings are made before either build).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before faiss loads: fair on small machines

import argparse
import gc
import multiprocessing as mp
import pickle
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress, track
from rich.table import Table

from safeguard.index.mih import MIHIndex

console = Console(width=int(os.environ.get("COLUMNS", "230")))
THRESHOLD = 31


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_bank(n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """(n, 4) uint64 hashes: uniform random, or noisy copies (~16 flipped bits) of 4,000 centres."""
    if kind == "random":
        return rng.integers(0, 2**64, size=(n, 4), dtype=np.uint64)
    centres = rng.integers(0, 2**64, size=(4000, 4), dtype=np.uint64)
    out = np.empty((n, 4), dtype=np.uint64)
    step = 1_000_000
    for a in range(0, n, step):
        b = min(n, a + step)
        noise = rng.integers(0, 2**64, size=(b - a, 4, 4), dtype=np.uint64)
        mask = noise[:, 0] & noise[:, 1] & noise[:, 2] & noise[:, 3]  # each bit set with p = 1/16
        out[a:b] = centres[rng.integers(0, len(centres), b - a)] ^ mask
    return out


def to_hex(words: np.ndarray) -> list[str]:
    raw = np.ascontiguousarray(words.astype(">u8")).tobytes().hex()
    return [raw[i : i + 64] for i in range(0, len(raw), 64)]


def plant(bank: np.ndarray, q: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Queries at exact distances 1..31 from random bank rows: (queries, source rows, distances)."""
    rows = rng.integers(0, len(bank), q)
    dists = 1 + np.arange(q) % 31
    bits = np.unpackbits(np.ascontiguousarray(bank[rows].astype(">u8")).view(np.uint8), axis=1)
    for k, d in enumerate(dists):
        bits[k, rng.choice(256, int(d), replace=False)] ^= 1
    qs = np.packbits(bits, axis=1).view(">u8").astype(np.uint64)
    return qs, rows, dists


def brute(bank: np.ndarray, q: np.ndarray) -> set[int]:
    d = np.bitwise_count(bank ^ q).sum(axis=1, dtype=np.int32)
    return set(np.flatnonzero(d <= THRESHOLD).tolist())


@dataclass
class Result:
    name: str
    build_s: float = 0.0
    mem_mb: float = 0.0
    qps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    batch_qps: float = 0.0
    planted_recall: float = 0.0
    bf_recall: float = 0.0
    save_s: float = 0.0
    load_s: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


def time_queries(fn, queries: list[str], label: str) -> tuple[list, np.ndarray]:
    """Time ``fn`` on each query, for either side alike.

    The progress bar is redrawn here, between queries: a bar that refreshes from its own thread takes
    the GIL whenever a query runs in C code without it (numpy, faiss, Safeguard's compiled MIH loop)
    and holds the query's return back. And the cyclic garbage collector is off while the clock runs,
    as ``timeit`` does: the answers kept for the recall check (about 322,000 tuples on a clustered
    10M bank) made collections ever longer, and whichever query triggered one was charged for it
    (10M clustered, compiled loop: p99 1.235 ms with it on, 0.677 ms with it off, 0.765 ms when the
    answers are not kept; docs/performance.md, section 1)."""
    out, lat = [], np.empty(len(queries))
    gc.disable()
    try:
        with Progress(console=console, transient=True, auto_refresh=False) as progress:
            task = progress.add_task(label, total=len(queries))
            for k, q in enumerate(queries):
                t = time.perf_counter()
                out.append(fn(q))
                lat[k] = time.perf_counter() - t
                if k % 100 == 99:
                    progress.update(task, completed=k + 1, refresh=True)
    finally:
        gc.enable()
    return out, lat


TABLES: int | None = None


def run_safeguard(ids: np.ndarray, hexes: list[str], queries: list[str], tmp: Path) -> tuple[Result, list[set[int]]]:
    r = Result("Safeguard MIHIndex")
    gc.collect()
    m0 = rss_mb()
    t = time.perf_counter()
    idx = MIHIndex(tables=TABLES)
    idx.add(ids.tolist(), hexes)
    r.build_s = time.perf_counter() - t
    r.mem_mb = rss_mb() - m0
    r.extra["tables"] = idx.tables
    idx.query(queries[0], THRESHOLD)  # warm the probe tables
    search = idx.query
    found, lat = time_queries(lambda q: search(q, THRESHOLD), queries, "safeguard queries")
    r.qps, r.p50_ms, r.p99_ms = len(queries) / lat.sum(), *(np.percentile(lat, [50, 99]) * 1e3)
    _, lat40 = time_queries(lambda q: search(q, 40), queries[:500], "safeguard @40")
    r.extra["p50_40_ms"] = float(np.percentile(lat40, 50) * 1e3)
    r.extra["p99_40_ms"] = float(np.percentile(lat40, 99) * 1e3)
    t = time.perf_counter()
    idx.query_many(queries, THRESHOLD)
    r.batch_qps = len(queries) / (time.perf_counter() - t)
    # a patch: one new entry findable at once, no rebuild
    new_id = int(ids.max()) + 1
    t = time.perf_counter()
    idx.add([new_id], [queries[0]])
    assert any(i == new_id for i, _ in idx.query(queries[0], 0))
    r.extra["patch_ms"] = (time.perf_counter() - t) * 1e3
    idx.remove([new_id])
    path = tmp / "pdq.mih"
    t = time.perf_counter()
    idx.save(path)
    r.save_s = time.perf_counter() - t
    del idx
    gc.collect()
    t = time.perf_counter()
    idx, _ = MIHIndex.load(path)
    idx.query(queries[0], THRESHOLD)
    r.load_s = time.perf_counter() - t
    del idx
    shutil.rmtree(path)
    gc.collect()
    return r, [{i for i, _ in res} for res in found]


def run_reference(hexes: list[str], queries: list[str], tmp: Path) -> tuple[Result, list[set[int]]]:
    from threatexchange.signal_type.pdq.signal import PdqSignal

    r = Result("threatexchange PDQIndex (HMA)")
    cls = PdqSignal.get_index_cls()
    gc.collect()
    m0 = rss_mb()
    t = time.perf_counter()
    idx = cls.build((h, i) for i, h in enumerate(hexes))
    r.build_s = time.perf_counter() - t
    r.mem_mb = rss_mb() - m0
    idx.query(queries[0])
    found, lat = time_queries(idx.query, queries, "reference queries")
    r.qps, r.p50_ms, r.p99_ms = len(queries) / lat.sum(), *(np.percentile(lat, [50, 99]) * 1e3)
    t = time.perf_counter()
    idx.index.search_with_distance_in_result(queries, THRESHOLD)
    r.batch_qps = len(queries) / (time.perf_counter() - t)
    path = tmp / "ref.pickle"
    t = time.perf_counter()
    with path.open("wb") as f:
        pickle.dump(idx, f, protocol=pickle.HIGHEST_PROTOCOL)  # how HMA stores its index
    r.save_s = time.perf_counter() - t
    del idx
    gc.collect()
    t = time.perf_counter()
    with path.open("rb") as f:
        idx = pickle.load(f)  # our own file, benchmark only
    idx.query(queries[0])
    r.load_s = time.perf_counter() - t
    del idx
    path.unlink()
    gc.collect()
    return r, [{m.metadata for m in res} for res in found]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000")
    ap.add_argument("--kinds", default="random,clustered")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--brute-queries", type=int, default=100, help="queries checked against brute force")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tables", type=int, default=None, help="force MIH's table count (default: by bank size)")
    args = ap.parse_args()
    global TABLES
    TABLES = args.tables
    console.print(f"load average before: {os.getloadavg()}; OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        for kind in args.kinds.split(","):
            rng = np.random.default_rng(args.seed)
            bank = make_bank(n, kind, rng)
            qw, src, _ = plant(bank, args.queries, rng)
            hexes, queries = to_hex(bank), to_hex(qw)
            ids = np.arange(n, dtype=np.int64)
            nb = min(args.brute_queries, len(queries))
            truth = [
                brute(bank, qw[k]) for k in track(range(nb), description="brute force", console=console, transient=True)
            ]
            del bank
            gc.collect()
            with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as td:
                results = []
                for runner in [run_safeguard] + ([] if args.no_reference else [run_reference]):
                    console.print(f"[dim]{n:,} {kind}: {runner.__name__} ...[/dim]")
                    job = (ids, hexes, queries, Path(td)) if runner is run_safeguard else (hexes, queries, Path(td))
                    # a forked child per index: its RSS growth is that index's alone, and freed memory
                    # of one run cannot flatter the next
                    with mp.get_context("fork").Pool(1) as pool:
                        res, found = pool.apply(runner, job)
                    res.planted_recall = float(np.mean([int(s) in f for s, f in zip(src, found, strict=True)]))
                    got = sum(len(found[k] & truth[k]) for k in range(nb))
                    res.bf_recall = got / max(1, sum(len(t) for t in truth))
                    results.append(res)
                rows.append((n, kind, results, float(np.mean([len(t) for t in truth]))))
            del hexes, queries
            gc.collect()
    table = Table(title=f"PDQ index, threshold {THRESHOLD}, single process (OMP_NUM_THREADS=1)")
    for col in (
        "bank", "index", "build s", "mem MB", "1-query q/s", "p50 ms", "p99 ms", "batch q/s",
        "recall planted", "recall vs brute", "save s", "load s", "speed-up (q/s)",
    ):  # fmt: skip
        table.add_column(col, justify="right" if col not in ("bank", "index") else "left")
    for n, kind, results, mean_hits in rows:
        base = results[-1] if len(results) > 1 else None
        for res in results:
            ratio = f"{res.qps / base.qps:.1f}x" if base and res is not base else ""
            table.add_row(
                f"{n:,} {kind} ({mean_hits:.0f} hits/q)",
                res.name,
                f"{res.build_s:.1f}",
                f"{res.mem_mb:.0f}",
                f"{res.qps:,.0f}",
                f"{res.p50_ms:.3f}",
                f"{res.p99_ms:.3f}",
                f"{res.batch_qps:,.0f}",
                f"{res.planted_recall:.4f}",
                f"{res.bf_recall:.4f}",
                f"{res.save_s:.2f}",
                f"{res.load_s:.2f}",
                ratio,
            )
        sg = results[0]
        console.print(
            f"{n:,} {kind}: Safeguard tables={sg.extra['tables']:.0f}, at threshold 40 p50 {sg.extra['p50_40_ms']:.3f} ms "
            f"p99 {sg.extra['p99_40_ms']:.3f} ms; add-then-find one entry {sg.extra['patch_ms']:.2f} ms"
        )
    console.print(table)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    console.print(f"peak RSS {ru.ru_maxrss / 1024:.0f} MB; load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
