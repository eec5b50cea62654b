"""Do worker processes share one copy of a memory-mapped MIH snapshot? Prints RSS and PSS per process.

PSS (proportional set size) divides shared pages among the processes mapping them, so with N
workers sharing the snapshot each worker's PSS for the index is about 1/N of its RSS.

    python bench/shared_memory.py [--entries 1000000] [--workers 4]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from safeguard.index.mih import MIHIndex

console = Console(width=int(os.environ.get("COLUMNS", "160")))


def _mem() -> tuple[float, float]:
    fields = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if parts[0] in ("Rss:", "Pss:"):
                fields[parts[0]] = int(parts[1]) / 1024
    return fields["Rss:"], fields["Pss:"]


def worker(path: str, queries: list[str], barrier, out) -> None:  # type: ignore[no-untyped-def]
    base_rss, base_pss = _mem()
    t = time.perf_counter()
    idx, _ = MIHIndex.load(Path(path))
    load_s = time.perf_counter() - t
    for q in queries:
        idx.query(q, 31)
    # touch every page once so the whole index is resident, as after hours of traffic
    for arr in (a for a in idx._parts().values() if a.size):
        int(np.asarray(arr[:: max(1, len(arr) // 100_000)]).sum())
        arr.max()
    barrier.wait()  # all workers mapped and resident before measuring
    rss, pss = _mem()
    out.put((os.getpid(), load_s, rss - base_rss, pss - base_pss))
    barrier.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**64, size=(args.entries, 4), dtype=np.uint64)
    idx = MIHIndex.build(np.arange(args.entries), hashes)
    queries = [hashes[i].astype(">u8").tobytes().hex() for i in range(200)]
    with tempfile.TemporaryDirectory() as td:
        path = Path(td) / "pdq.mih"
        idx.save(path)
        size_mb = sum(f.stat().st_size for f in path.iterdir()) / 2**20
        del idx
        ctx = mp.get_context("spawn")
        barrier, out = ctx.Barrier(args.workers), ctx.Queue()
        procs = [ctx.Process(target=worker, args=(str(path), queries, barrier, out)) for _ in range(args.workers)]
        for p in procs:
            p.start()
        rows = [out.get() for _ in procs]
        for p in procs:
            p.join()
    table = Table(
        title=f"{args.workers} processes memory-mapping one {args.entries:,}-entry snapshot ({size_mb:.0f} MB on disk)"
    )
    for col in ("pid", "load s", "RSS growth MB", "PSS growth MB"):
        table.add_column(col, justify="right")
    for pid, load_s, rss, pss in rows:
        table.add_row(str(pid), f"{load_s:.3f}", f"{rss:.0f}", f"{pss:.0f}")
    table.add_row("sum", "", f"{sum(r[2] for r in rows):.0f}", f"{sum(r[3] for r in rows):.0f}", style="bold")
    console.print(table)


if __name__ == "__main__":
    main()
