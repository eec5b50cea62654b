"""How soon a new bank entry blocks uploads, end to end, on a running ``safeguard serve --workers N``.

HMA rebuilds its whole index on a bank change, so a new hash became findable after 68-111 s on a 1M
bank (the issue's measurement). Safeguard patches each process's index from the ``entry_changes`` log,
checked every ``SAFEGUARD_INDEX_REFRESH_SECONDS`` (0.5 by default). This starts the service on a bank
of ``--entries`` random PDQ hashes, then ``--adds`` times: adds one new hash through ``POST
/v1/banks/{bank}/entries`` (a moderator's key) and, from the moment that call returns, scans the same
hash through ``POST /v1/scan`` (a platform's key), each scan on a new connection so that the kernel
spreads them over the workers, until ``--confirm`` scans in a row answer ``block``. It reports the time
to the first ``block`` and to the confirmed run (every worker, with high probability, has patched).

Then it measures how fast entries go in through the API (HMA: 84 adds/s, per the issue): ``--rate-adds``
distinct new hashes through ``POST /v1/banks/{bank}/entries`` over ``--rate-concurrency`` keep-alive
connections (the end-to-end benchmarks' load generator), and checks that a sample of them blocks.

    python -m bench.freshness [--entries 1000000] [--workers 2] [--adds 20] [--confirm 10]
        [--rate-adds 2000] [--rate-concurrency 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# run as `python bench/NAME.py`: the repository root (for `bench` and `tests`) is importable too
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import numpy as np
from rich.progress import track
from rich.table import Table

from bench._vault import vault_key
from bench.api_bench import start
from bench.loadgen import json_request, run_load
from bench.scan_api import console, fill_bank, percentile
from safeguard.config import Settings
from safeguard.keys import KeyService
from safeguard.store import Database


def scan_verdict(url: str, key: str, value: str) -> str:
    with httpx.Client(timeout=10) as client:  # a new connection each time
        r = client.post(
            url + "/v1/scan",
            headers={"Authorization": f"Bearer {key}"},
            json={"signals": [{"type": "pdq", "value": value}]},
        )
        r.raise_for_status()
        return str(r.json()["verdict"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--adds", type=int, default=20)
    ap.add_argument("--confirm", type=int, default=10, help="blocks in a row that count as seen everywhere")
    ap.add_argument("--rate-adds", type=int, default=2000, help="adds through the API for the rate (0: skip)")
    ap.add_argument("--rate-concurrency", type=int, default=8)
    args = ap.parse_args()
    console.print(f"load average before: {os.getloadavg()}")
    rng = np.random.default_rng(7)
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "SAFEGUARD_DATA_DIR": tmp,
            "SAFEGUARD_VAULT_KEY_FILE": vault_key(tmp),
            "SAFEGUARD_LOG_LEVEL": "warning",
            "OMP_NUM_THREADS": "1",
        }
        settings = Settings.from_env(env)
        took = fill_bank(settings, args.entries, [])
        console.print(f"bank: {args.entries:,} random PDQ entries, imported in {took:.1f} s")
        db = Database(settings.resolved_database_url)
        keys = KeyService(db)
        moderator = keys.create("moderator", "bench-mod", actor="bench")["key"]
        platform = keys.create("platform", "bench", actor="bench")["key"]
        db.dispose()
        proc, url, ready = start(
            [sys.executable, "-m", "safeguard.cli", "serve", "--workers", str(args.workers)], env, None
        )
        try:
            console.print(f"serve --workers {args.workers}: ready in {ready:.1f} s")
            first, confirmed, misses = [], [], []
            for _ in track(range(args.adds), description="add, then scan until blocked", console=console):
                value = bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex()
                assert scan_verdict(url, platform, value) == "allow"  # not there before
                r = httpx.post(
                    url + "/v1/banks/bench/entries",
                    headers={"Authorization": f"Bearer {moderator}"},
                    json={"signal_type": "pdq", "value": value, "category": "A1"},
                    timeout=10,
                )
                r.raise_for_status()
                added = time.perf_counter()
                streak, seen, allowed = 0, None, 0
                while streak < args.confirm:
                    if scan_verdict(url, platform, value) == "block":
                        streak += 1
                        seen = seen if seen is not None else time.perf_counter() - added
                    else:
                        streak, allowed = 0, allowed + 1
                    if time.perf_counter() - added > 30:
                        raise SystemExit("a new entry was not findable within 30 s")
                first.append((seen or 0.0) * 1000)
                confirmed.append((time.perf_counter() - added) * 1000)
                misses.append(allowed)
            rate = None
            if args.rate_adds:
                values = [bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex() for _ in range(args.rate_adds)]
                reqs = [
                    json_request(url, moderator, {"signal_type": "pdq", "value": v}, path="/v1/banks/bench/entries")
                    for v in values
                ]
                rate = run_load(url, reqs, args.rate_adds, args.rate_concurrency)
                time.sleep(2 * settings.index_refresh_seconds + 1)
                sample = [values[int(i)] for i in rng.choice(len(values), 20, replace=False)]
                blocked = sum(scan_verdict(url, platform, v) == "block" for v in sample)
        finally:
            proc.terminate()
            proc.wait(30)
    refresh = settings.index_refresh_seconds
    table = Table(
        title=f"New entry to block, {args.entries:,}-entry bank, {args.workers} workers, refresh every {refresh} s"
    )
    for col in ("measure", "p50 ms", "p99 ms", "max ms"):
        table.add_column(col, justify="left" if col == "measure" else "right")
    for name, xs in (("first block", first), (f"{args.confirm} blocks in a row (new connections)", confirmed)):
        table.add_row(name, f"{percentile(xs, 50):.0f}", f"{percentile(xs, 99):.0f}", f"{max(xs):.0f}")
    table.add_row("allow answers after the add (all adds)", "", "", str(sum(misses)))
    console.print(table)
    if rate is not None:
        lat = sorted(rate.latencies_ms)
        console.print(
            f"adds through the API: {rate.requests:,} at concurrency {args.rate_concurrency}: "
            f"[bold]{rate.rps:,.1f} adds/s[/bold], p50 {percentile(lat, 50):.1f} ms, p99 {percentile(lat, 99):.1f} ms, "
            f"answers {rate.verdicts}; {blocked} of {len(sample)} sampled new entries block a scan (HMA: 84 adds/s)"
        )
    console.print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
