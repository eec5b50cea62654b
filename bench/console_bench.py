"""The console's queue page with 100,000 open cases: p95 latency per view (target: <= 200 ms).

    python bench/console_bench.py                        # SQLite, 100,000 cases, 200 requests per view
    python bench/console_bench.py --db-url postgresql+psycopg://postgres@127.0.0.1:54329/sg_console_bench

Opens a fresh data directory (and, with --db-url, an EMPTY database), inserts the cases in bulk (four queues,
priorities 0-2, a few claimed, report counts 0-4), logs a moderator in, and serves the console with uvicorn
on a loopback port. Each request is a real HTTP GET of ``/console/queue`` (session check, the query, the
Jinja2 render of 50 rows), timed at the client. Views: the default queue, one queue, unassigned cases, the
second page (keyset cursor), and the two other queue orders (``reports``, ``risk``). The log is appended to
``bench/results/console_bench_<date>.txt``.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # runs as ``python bench/console_bench.py`` from the repository root

import httpx  # noqa: E402
import pyotp  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from tests.web import live  # noqa: E402
from tests.web.live import live_console  # noqa: E402

from safeguard.accounts import UserService  # noqa: E402
from safeguard.cases.model import QUEUES  # noqa: E402
from safeguard.engine import Engine  # noqa: E402
from safeguard.store.models import Case  # noqa: E402


def fill(engine: Engine, n: int) -> None:
    rng = random.Random(16)
    now = datetime.now(UTC)
    batch: list[dict[str, object]] = []
    for i in range(n):
        opened = now - timedelta(seconds=rng.randint(0, 7 * 86400))
        claimed = i % 50 == 0
        batch.append(
            {
                "subject_kind": "user",
                "subject_id": f"bench-{i}",
                "status": "claimed" if claimed else "open",
                "priority": rng.choice((0, 1, 1, 2, 2, 2)),
                "verdict": rng.choice(("block", "review", "review")),
                "reason": "bench",
                "opened_at": opened,
                "updated_at": opened,
                "queue": QUEUES[i % len(QUEUES)],
                "assignee": "user:someone" if claimed else None,
                "claim_expires_at": now + timedelta(days=1) if claimed else None,
                "due_at": opened + timedelta(hours=4),
                "report_count": rng.choice((0, 0, 0, 1, 2, 4)),
            }
        )
        if len(batch) == 10_000:
            with engine.db.write() as s:
                s.execute(insert(Case), batch)
            batch = []
    if batch:
        with engine.db.write() as s:
            s.execute(insert(Case), batch)


def p(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--db-url", default=None, help="an empty PostgreSQL database (default: SQLite in a temp dir)")
    args = ap.parse_args()
    lines: list[str] = []

    def out(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    db = "postgresql" if args.db_url else "sqlite"
    out(f"# console_bench {datetime.now(UTC).isoformat(timespec='seconds')} commit {commit.strip()} db {db}")
    out(f"# {args.cases} cases, {args.requests} requests per view, client-side latency in ms")
    views = [
        ("default (priority_age)", "priority_age", {}),
        ("queue=grooming", "priority_age", {"queue": "grooming"}),
        ("assignee=none", "priority_age", {"assignee": "none"}),
        ("status=claimed", "priority_age", {"status": "claimed"}),
        ("page 2 (cursor)", "priority_age", {"_next": "1"}),
        ("order=reports", "reports", {}),
        ("order=risk", "risk", {}),
    ]
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp, live_console(Path(tmp), args.db_url) as (base, engine):
        t0 = time.perf_counter()
        fill(engine, args.cases)
        out(f"# inserted in {time.perf_counter() - t0:.1f} s")
        users = UserService(engine.db, engine.settings)
        creds = users.create("bench", "moderator", actor="bench")
        got = users.login("bench", creds.password, pyotp.TOTP(creds.totp_secret).now())
        users.change_password(got.token, creds.password, "a long bench password 1")
        with httpx.Client(base_url=base, cookies={"sg_session": got.token}, timeout=30) as client:
            for label, order, params in views:
                # the queue order is a setting (SAFEGUARD_QUEUE_ORDER); the running app's is switched per view
                live.last_app.state.console.order = order
                query = {k: v for k, v in params.items() if not k.startswith("_")}
                if "_next" in params:
                    first = client.get("/console/queue").text
                    m = re.search(r'href="/console/queue\?([^"]+)" rel="next"', first)
                    assert m, "no next page"
                    url = "/console/queue?" + m.group(1).replace("&amp;", "&")
                    query = {}
                else:
                    url = "/console/queue"
                r = client.get(url, params=query)
                assert r.status_code == 200 and r.text.count('class="case-link"') == 50, (label, r.status_code)
                times = []
                for _ in range(args.requests):
                    t = time.perf_counter()
                    r = client.get(url, params=query)
                    times.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200
                p95 = p(times, 0.95)
                worst = max(worst, p95)
                out(
                    f"{label:26s} p50 {statistics.median(times):7.1f}  p95 {p95:7.1f}  max {max(times):7.1f}"
                    f"  {'ok' if p95 <= 200 else 'OVER 200 ms'}"
                )
    out(f"# worst p95 {worst:.1f} ms (target <= 200 ms)")
    res = ROOT / "bench" / "results" / f"console_bench_{datetime.now(UTC).date().isoformat()}.txt"
    with res.open("a") as f:
        f.write("\n".join(lines) + "\n\n")
    print(f"log appended to {res.relative_to(ROOT)}")
    return 0 if worst <= 200 else 1


if __name__ == "__main__":
    raise SystemExit(main())
