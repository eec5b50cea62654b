"""The cost of the per-entry quality figures (safeguard/banks/quality.py), on and off the match path.

On the match path a matched decision only appends to a buffer (``QualityRecorder.observe``); a
background thread writes the buffer (``flush``: figures, HyperLogLog merge, surge window) once per
``SAFEGUARD_QUALITY_FLUSH_SECONDS``. This times both directly, on a fresh SQLite database (or
``--database-url``): microseconds per observed decision, and milliseconds per flush of N matches over
E entries, with the surge check on. The side-by-side end-to-end figure is ``bench/inprocess.py`` run
on this checkout and on one without the figures (see bench/results/2026-12-06-quality.txt).

    python bench/quality_bench.py [--observations 200000] [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console
from rich.table import Table

from safeguard.banks import BankService
from safeguard.config import Settings
from safeguard.content import Content, ContentKind, Finding, Signal
from safeguard.engine import Engine

console = Console()
FLUSHES = ((100, 1), (1000, 1), (1000, 100), (10_000, 100), (10_000, 1000))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--observations", type=int, default=200_000, help="observe() calls timed")
    ap.add_argument("--repeats", type=int, default=5, help="flushes per row (the median is shown)")
    ap.add_argument("--database-url", default="", help="default: SQLite in a temporary directory")
    args = ap.parse_args()
    logging.getLogger("safeguard").setLevel(logging.ERROR)  # quarantines are logged as warnings

    data = tempfile.mkdtemp(prefix="sg-quality-bench-")
    engine = Engine(Settings(data_dir=data, database_url=args.database_url, run_worker=False, surge_distinct=50))
    banks = BankService(engine.db)
    banks.create("bench", actor="bench")
    n_entries = max(e for _, e in FLUSHES)
    ids = [
        int(banks.add_entry("bench", signal_type="md5", value=f"{i:032x}", actor="bench").id) for i in range(n_entries)
    ]
    rec = engine.quality
    rec._thread = object()  # type: ignore[assignment]  # no background flushes while timing

    content = Content(kind=ContentKind.HASHES, content_id="bench")
    signals = (Signal("sha256", "a" * 64),)
    found = [
        Finding(detector="hash_match", kind="hash_match", signal_type="md5", signal_value="b" * 32, entry_id=ids[0])
    ]
    t = time.perf_counter()
    for _ in range(args.observations):
        rec.observe(content, signals, found)
    per_observe = (time.perf_counter() - t) / args.observations * 1e6
    rec._pending.clear()

    table = Table(title=f"quality figures ({engine.db.engine.dialect.name})")
    for col in ("what", "matches", "entries", "median ms", "µs per match"):
        table.add_column(col, justify="right" if col != "what" else "left")
    table.add_row("observe (request path)", "1", "1", f"{per_observe / 1000:.4f}", f"{per_observe:.2f}")
    for batch, entries in FLUSHES:
        took = []
        for r in range(args.repeats):
            now = time.time()
            for k in range(batch):
                key = hashlib.sha256(f"{batch}-{entries}-{r}-{k}".encode()).hexdigest()
                rec._pending.append((ids[k % entries], key, now))
            t = time.perf_counter()
            rec.flush()
            took.append(time.perf_counter() - t)
        med = statistics.median(took)
        table.add_row(
            "flush (background)", f"{batch:,}", f"{entries:,}", f"{med * 1000:.1f}", f"{med / batch * 1e6:.1f}"
        )
    rec._thread = None
    engine.close()
    console.print(table)


if __name__ == "__main__":
    main()
