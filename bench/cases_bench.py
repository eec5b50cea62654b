"""The review queue at scale: ``GET /v1/cases`` over 100,000 open cases, first and deep keyset pages, with filters.

Bulk-inserts N open cases (plus claimed, decided and closed ones) spread over the four queues and
three priorities, then times requests through the real app in process (FastAPI's TestClient: API-key
authentication, the expired-claim check, the query, JSON), each scenario ``--requests`` times:

- the first page of the open queue, and of each filter (queue; queue + priority; assignee; claimed);
- deep pages: a cursor at 50%, 90% and 99.9% of the open cases (keyset pagination: no OFFSET);
- a walk of ``--requests`` consecutive pages from the top, following ``next_cursor``.

The target is p95 <= 200 ms on SQLite and PostgreSQL. On PostgreSQL the database named by
``--db-url`` is used as is (give an empty one) and ANALYZEd after the load, as autovacuum would.

    python bench/cases_bench.py [--cases 100000] [--requests 200] [--db-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from fastapi.testclient import TestClient
from sqlalchemy import Table, text

from safeguard.api import create_app
from safeguard.cases.service import encode_cursor
from safeguard.config import Settings
from safeguard.engine import Engine
from safeguard.keys import KeyService
from safeguard.store.models import Case

CASES = cast(Table, Case.__table__)
QUEUES = ("csam", "grooming", "streams", "user_reports")
MODERATORS = [f"user:mod{i}" for i in range(20)]


def rows(n_open: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    extra = {"claimed": n_open // 50, "decided": n_open // 20, "closed": n_open // 20}
    statuses = ["open"] * n_open + [s for s, k in extra.items() for _ in range(k)]
    out = []
    for i, status in enumerate(statuses):
        opened = start + timedelta(seconds=i * 7)
        claimed = status == "claimed"
        out.append(
            {
                "subject_kind": "user",
                "subject_id": f"u{i}",
                "status": status,
                "priority": rng.choice((0, 1, 1, 2, 2, 2)),
                "verdict": "block" if i % 3 == 0 else "review",
                "reason": "known-csam",
                "opened_at": opened,
                "updated_at": opened,
                "queue": QUEUES[i % 4],
                "assignee": rng.choice(MODERATORS) if claimed else None,
                "claim_expires_at": datetime(2100, 1, 1, tzinfo=UTC) if claimed else None,
                "due_at": opened + timedelta(hours=4),
                "report_count": 0,
                "escalated": False,
                "report_status": "none",
            }
        )
    return out


def load(engine: Engine, data: list[dict[str, Any]]) -> float:
    t = time.perf_counter()
    for a in range(0, len(data), 5000):
        with engine.db.write_connection() as conn:
            conn.execute(CASES.insert(), data[a : a + 5000])
    if not engine.db.is_sqlite:
        with engine.db.write_connection() as conn:
            conn.execute(text("ANALYZE cases"))
    return time.perf_counter() - t


def timed(n: int, fn: Callable[[], Any]) -> list[float]:
    fn()  # warm: the first call compiles statements
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=100_000, help="open cases (plus 2%% claimed, 5%% decided, 5%% closed)")
    ap.add_argument("--requests", type=int, default=200, help="requests per scenario")
    ap.add_argument("--limit", type=int, default=50, help="page size")
    ap.add_argument("--db-url", default="", help="default: a fresh SQLite file")
    args = ap.parse_args()
    print(f"# cases_bench {datetime.now(UTC).isoformat(timespec='seconds')} on {platform.node()}")
    print(f"# python {platform.python_version()}, {os.cpu_count()} CPUs, load average {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as td:
        url = args.db_url or f"sqlite:///{Path(td) / 'bench.db'}"
        settings = Settings(data_dir=td, database_url=url, run_worker=False)
        engine = Engine(settings, load_indexes=False)
        data = rows(args.cases)
        secs = load(engine, data)
        print(f"# {engine.db.engine.dialect.name}: inserted {len(data):,} cases in {secs:.1f} s")
        key = KeyService(engine.db).create("moderator", "bench", actor="bench")["key"]
        h = {"Authorization": f"Bearer {key}"}
        open_sorted = sorted(
            (r["priority"], i + 1) for i, r in enumerate(data) if r["status"] == "open"
        )  # ids are 1.. in insert order on a fresh table
        client = TestClient(create_app(settings, engine=engine))
        lim = f"limit={args.limit}"

        def get(query: str) -> Callable[[], Any]:
            def go() -> Any:
                r = client.get(f"/v1/cases?{lim}&{query}", headers=h)
                if r.status_code != 200 or not r.json()["cases"]:
                    raise SystemExit(f"{query}: {r.status_code} {r.text[:200]}")
                return r

            return go

        def deep(frac: float, query: str = "") -> Callable[[], Any]:
            p, i = open_sorted[int(frac * (len(open_sorted) - 1)) - 1]
            return get(f"cursor={encode_cursor(p, i)}&{query}")

        def walk(pages: int) -> list[float]:
            cursor, out = "", []
            for _ in range(pages):
                t = time.perf_counter()
                r = client.get(f"/v1/cases?{lim}{cursor}", headers=h).json()
                out.append((time.perf_counter() - t) * 1000)
                cursor = f"&cursor={r['next_cursor']}"
            return out

        scenarios: list[tuple[str, Callable[[], Any]]] = [
            ("first page, open", get("status=open")),
            ("first page, queue=grooming", get("queue=grooming")),
            ("first page, queue=csam&priority=2", get("queue=csam&priority=2")),
            ("first page, status=claimed&assignee=user:mod3", get("status=claimed&assignee=user:mod3")),
            ("first page, status=all", get("status=all")),
            ("first page, status=open,claimed", get("status=open,claimed")),
            ("deep page at 50%", deep(0.5)),
            ("deep page at 90%", deep(0.9)),
            ("deep page at 99.9%", deep(0.999)),
            ("deep page at 90%, queue=streams", deep(0.9, "queue=streams")),
            ("deep page at 90%, priority=2", deep(0.9, "priority=2")),
        ]
        print(f"# {args.requests} requests per scenario, {args.limit} cases per page; milliseconds per request")
        print(f"{'scenario':48} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}")
        worst = 0.0
        measured = [(name, timed(args.requests, fn)) for name, fn in scenarios]
        measured.append((f"walk: {args.requests} consecutive pages from the top", walk(args.requests)))
        for name, xs in measured:
            worst = max(worst, pct(xs, 0.95))
            print(f"{name:48} {statistics.median(xs):8.2f} {pct(xs, 0.95):8.2f} {pct(xs, 0.99):8.2f} {max(xs):8.2f}")
        print(f"# worst p95: {worst:.2f} ms (target <= 200 ms): {'PASS' if worst <= 200 else 'FAIL'}")
        client.close()
        engine.close()


if __name__ == "__main__":
    main()
