"""MIH's compiled search loop against its numpy path: same index, same planted queries, alternating.

``MIHIndex`` answers probed queries with the optional C loop (``src/safeguard/index/_mihkernel.c``)
where it was built, and with numpy otherwise. This builds one index, plants near-duplicate queries
(1-31 bits from a bank entry, as ``bench/index_bench.py`` does), and times single queries through both
paths in turn, ``--rounds`` times at each distance; every round checks that both gave the same
answers. The reference (threatexchange) is in ``bench/index_bench.py``; this compares Safeguard with
itself.

    OMP_NUM_THREADS=1 python bench/mih_kernel.py [--size 1000000] [--kind random|clustered]
        [--distances 31,40] [--queries 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from index_bench import make_bank, plant
from safeguard.index import mih
from safeguard.index.mih import MIHIndex

console = Console(width=int(os.environ.get("COLUMNS", "160")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--kind", default="random", choices=("random", "clustered"))
    ap.add_argument("--distances", default="31,40")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if mih.KERNEL is None:
        raise SystemExit("the compiled loop is not built here (no C compiler at install): nothing to compare")
    console.print(f"load average before: {os.getloadavg()}")
    rng = np.random.default_rng(1)
    bank = make_bank(args.size, args.kind, rng)
    idx = MIHIndex.build(np.arange(args.size), bank)
    queries = plant(bank, args.queries, rng)[0]
    table = Table(title=f"MIH single queries, {args.size:,} {args.kind} entries, {idx.tables} tables")
    for col in ("distance", "round", "path", "p50 ms", "p99 ms", "mean ms", "speed-up (mean)"):
        table.add_column(col, justify="left" if col == "path" else "right")
    for d in (int(x) for x in args.distances.split(",")):
        for rnd in range(args.rounds):
            answers, means = {}, {}
            for compiled in (False, True):
                idx.kernel = compiled
                lat, got = [], []
                for i in range(len(queries)):
                    t = time.perf_counter()
                    _, ids, dist = idx._search(queries[i : i + 1], d)
                    lat.append(time.perf_counter() - t)
                    got.append(sorted(zip(ids.tolist(), dist.tolist(), strict=True)))
                answers[compiled] = got
                ms = np.asarray(lat) * 1000
                means[compiled] = float(ms.mean())
                table.add_row(
                    str(d),
                    str(rnd),
                    "compiled" if compiled else "numpy",
                    f"{np.percentile(ms, 50):.3f}",
                    f"{np.percentile(ms, 99):.3f}",
                    f"{ms.mean():.3f}",
                    f"{means[False] / means[True]:.2f}x" if compiled else "",
                )
            if answers[True] != answers[False]:
                raise SystemExit(f"the two paths disagree at distance {d}")
    console.print(table)
    console.print(f"same answers on every query: yes; load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
