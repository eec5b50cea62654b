"""Bulk import benchmark: a CSV hash list of N PDQ rows into a bank, through BankService.import_rows.

Times parsing alone (the CSV format's ``parse``) and the full import (parse + validate + upsert +
change log) on a fresh SQLite database (or ``--db-url`` for PostgreSQL), then builds the index
from the database as a process would at start.

    python bench/import_bench.py [--rows 1000000] [--db-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from safeguard.banks.service import BankService
from safeguard.banks.sources.csv_list import CSVHashList
from safeguard.index.manager import IndexSet
from safeguard.store import Database

console = Console(width=int(os.environ.get("COLUMNS", "160")))


def make_csv(n: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=(n, 32), dtype=np.uint8).tobytes().hex()
    lines = ["signal_type,value,category,source"]
    lines += [f"pdq,{raw[i * 64 : (i + 1) * 64]},A1,bench" for i in range(n)]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--db-url", default="")
    ap.add_argument("--batch-size", type=int, default=5000, help="rows per transaction (import_rows' batch_size)")
    args = ap.parse_args()
    console.print(f"load average before: {os.getloadavg()}")
    text = make_csv(args.rows)
    results: list[tuple[str, float, str]] = []
    t = time.perf_counter()
    n_rows = sum(1 for _ in CSVHashList().parse(io.StringIO(text)))
    results.append(("parse + validate CSV", time.perf_counter() - t, f"{n_rows:,} rows"))
    with tempfile.TemporaryDirectory() as td:
        db = Database(args.db_url or f"sqlite:///{Path(td) / 'bench.db'}")
        db.migrate()
        svc = BankService(db)
        svc.create("bench", actor="bench", kind="other")
        with Progress(console=console, transient=True) as prog:
            task = prog.add_task("importing", total=args.rows)
            t = time.perf_counter()
            res = svc.import_rows(
                "bench",
                CSVHashList().parse(io.StringIO(text)),
                actor="bench",
                source="bench",
                batch_size=args.batch_size,
                progress=lambda k: prog.advance(task, k),
            )
            took = time.perf_counter() - t
        assert res.added_or_updated == args.rows and not res.errors, res.to_dict()
        results.append(("import_rows (parse + upsert + change log)", took, f"{args.rows / took:,.0f} rows/s"))
        t = time.perf_counter()
        res2 = svc.import_rows("bench", CSVHashList().parse(io.StringIO(text)), actor="bench", source="bench")
        took = time.perf_counter() - t
        results.append(("re-import same rows (all updates)", took, f"{res2.added_or_updated / took:,.0f} rows/s"))
        t = time.perf_counter()
        idx = IndexSet(db, None)
        idx.load()
        results.append(("index build from database", time.perf_counter() - t, f"{idx.sizes()}"))
        db.dispose()
    table = Table(
        title=f"Bulk import of {args.rows:,} PDQ rows ({'SQLite' if not args.db_url else args.db_url.split(':')[0]})"
    )
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("rate / notes", justify="right")
    for name, secs, note in results:
        table.add_row(name, f"{secs:.1f}", note)
    console.print(table)
    console.print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
