"""Where a grooming request's time goes, phase by phase, with CPU time beside wall time.

    python bench/grooming_phases.py single|batch [--database-url URL] [--messages 5000] [--autocheckpoint PAGES]

On a shared machine wall time swings with the load; CPU time per message (the whole process, the
recorder thread included) is steadier, so use it for before/after comparisons. To compare with an
older version of the service, run this same script against that version's sources, e.g.

    git archive 5e12f86 src | tar -x -C /tmp/old && PYTHONPATH=/tmp/old/src python bench/grooming_phases.py single

``--autocheckpoint PAGES`` (SQLite, a diagnostic) sets ``PRAGMA wal_autocheckpoint`` for the run
(SQLite's default is 1,000 pages; 0 turns the automatic checkpoint off, and the log then grows
without bound, so not a setting to run with) to show how much of the tail the checkpoint is.

Phases are timed by wrapping the service's methods when they exist (``_transact`` and
``Engine.decide_in`` in this version, ``_commit`` and ``Engine.decide`` before it).
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from sqlalchemy import event

from grooming_bench import _messages, _pct
from safeguard.config import Settings
from safeguard.detectors.grooming.scorer import Message, Scorer
from safeguard.detectors.grooming.service import GroomingService
from safeguard.engine import Engine

TIMES: dict[str, list[float]] = collections.defaultdict(list)


def _wrap(obj: Any, name: str) -> None:
    if not hasattr(obj, name):
        return
    f: Callable[..., Any] = getattr(obj, name)

    def timed(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            TIMES[name].append((time.perf_counter() - t) * 1000)

    setattr(obj, name, timed)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["single", "batch"])
    ap.add_argument("--database-url", default="")
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--single", type=int, default=1000)
    ap.add_argument("--autocheckpoint", type=int, default=None, help="SQLite diagnostic: PRAGMA wal_autocheckpoint")
    args = ap.parse_args()
    sc = Scorer.load()
    msgs = _messages(args.messages)
    with tempfile.TemporaryDirectory() as d:
        eng = Engine(Settings(data_dir=d, database_url=args.database_url, run_worker=False), load_indexes=False)
        if args.autocheckpoint is not None and eng.db.is_sqlite:
            eng.db.engine.dispose()  # new connections get the pragma below

            @event.listens_for(eng.db.engine, "connect")
            def _checkpoint_pages(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute(f"PRAGMA wal_autocheckpoint={int(args.autocheckpoint)}")
                cur.close()

        svc = GroomingService(eng, sc)
        for name in ("_commit", "_transact", "_answer"):
            _wrap(svc, name)
        _wrap(sc, "analyse")
        for name in ("decide", "decide_in"):
            _wrap(eng, name)
        t0, c0 = time.perf_counter(), time.process_time()
        if args.mode == "batch":
            by_conv: dict[str, list[Message]] = {}
            for cid, m in msgs:
                by_conv.setdefault(cid, []).append(m)
            n = 0
            for cid, ms in by_conv.items():
                for i in range(0, len(ms), 100):
                    svc.post(cid, ms[i : i + 100])
                    n += len(ms[i : i + 100])
        else:
            n = min(args.single, len(msgs))
            slowest: list[tuple[float, int, bool]] = []
            for i, (cid, m) in enumerate(msgs[:n]):
                t = time.perf_counter()
                out = svc.post("s-" + cid, [m])
                ms_ = (time.perf_counter() - t) * 1000
                slowest.append((ms_, i, out["decision"]["recorded"]))
                TIMES["post"].append(ms_)
                TIMES["post, decision recorded" if out["decision"]["recorded"] else "post, no decision"].append(ms_)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        eng.close()
    print(f"{args.mode}: {n / wall:,.0f} msg/s wall, {n / cpu:,.0f} msg per CPU-second; load {os.getloadavg()[0]:.2f}")
    print(f"{'phase':28s} {'calls':>6s} {'total ms':>10s} {'mean':>7s} {'p50':>7s} {'p99':>7s}")
    for k, v in TIMES.items():
        print(f"{k:28s} {len(v):6d} {sum(v):10.1f} {statistics.fmean(v):7.2f} {_pct(v, 0.5):7.2f} {_pct(v, 0.99):7.2f}")
    if args.mode == "single":
        top = sorted(slowest, reverse=True)[:10]
        print("slowest requests (ms, index, decision recorded):", [(round(ms, 1), i, r) for ms, i, r in top])


if __name__ == "__main__":
    main()
