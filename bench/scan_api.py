"""Scan latency and throughput through the HTTP API.

Starts ``safeguard serve`` in a subprocess on loopback (SQLite in a temporary directory), fills a
bank with N random PDQ entries (default 100,000) plus the hash of one generated benign 1080p JPEG,
then sends that JPEG (multipart upload) and its hash (hash-only JSON) at several concurrencies and
prints a table: requests/s, p50, p99 and the verdicts seen (every request must be answered `block`).

    .venv/bin/python -m bench.scan_api [--entries 100000] [--requests 200] [--workers 1]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# run as `python bench/NAME.py`: the repository root (for `bench` and `tests`) is importable too
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table
from tests.media_factory import encode, make_image

from bench._vault import vault_key
from safeguard.banks import BankService
from safeguard.banks.sources.base import Row
from safeguard.config import Settings
from safeguard.keys import KeyService
from safeguard.media import Media
from safeguard.signals import compute_signals
from safeguard.store import Database

console = Console()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(xs: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(xs), p))


def fill_bank(settings: Settings, n: int, extra: list[tuple[str, str]]) -> float:
    db = Database(settings.resolved_database_url)
    db.migrate()
    svc = BankService(db)
    svc.create("bench", actor="bench", default_category="A1")
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    rows = [Row(line=i, signal_type="pdq", value=bytes(r).hex()) for i, r in enumerate(raw)]
    rows += [Row(line=n + i, signal_type=t, value=v) for i, (t, v) in enumerate(extra)]
    t0 = time.perf_counter()
    with console.status(f"importing {len(rows):,} entries"):
        svc.import_rows("bench", rows, actor="bench", batch_size=10_000)
    took = time.perf_counter() - t0
    db.dispose()
    return took


def run_load(
    url: str, key: str, make_request: str, payload: object, total: int, concurrency: int
) -> tuple[float, list[float], set[str]]:
    headers = {"Authorization": f"Bearer {key}"}
    latencies: list[float] = []
    verdicts: set[str] = set()
    with httpx.Client(base_url=url, timeout=30, limits=httpx.Limits(max_connections=concurrency)) as client:

        def one(_: int) -> None:
            t = time.perf_counter()
            if make_request == "upload":
                r = client.post("/v1/scan", headers=headers, files={"file": ("bench.jpg", payload, "image/jpeg")})
            else:
                r = client.post("/v1/scan", headers=headers, json=payload)
            latencies.append((time.perf_counter() - t) * 1000)
            verdicts.add(r.json().get("verdict", f"HTTP {r.status_code}"))

        for i in range(min(10, total)):  # warm-up
            one(i)
        latencies.clear()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(
                track(
                    pool.map(one, range(total)),
                    total=total,
                    description=f"{make_request} c={concurrency}",
                    console=console,
                    transient=True,
                )
            )
        wall = time.perf_counter() - t0
    return total / wall, latencies, verdicts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--concurrency", default="1,8")
    args = ap.parse_args()

    jpeg = encode(make_image(42, (1920, 1080)), "JPEG", quality=90)
    sigs = {s.type: s for s in compute_signals(Media.from_bytes(jpeg))}
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "SAFEGUARD_DATA_DIR": tmp,
            "SAFEGUARD_VAULT_KEY_FILE": vault_key(tmp),
            "SAFEGUARD_LOG_LEVEL": "warning",
        }
        settings = Settings.from_env(env)
        import_s = fill_bank(settings, args.entries, [("pdq", sigs["pdq"].value)])
        db = Database(settings.resolved_database_url)
        key = KeyService(db).create("platform", "bench", actor="bench")["key"]
        db.dispose()
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "-m", "safeguard.cli", "serve", "--port", str(port), "--workers", str(args.workers)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            t0 = time.perf_counter()
            while True:
                try:
                    if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None:
                    raise SystemExit(server.stderr.read().decode() if server.stderr else "server died")
                time.sleep(0.2)
            start_s = time.perf_counter() - t0
            table = Table(
                title=f"/v1/scan, bank of {args.entries:,} PDQ entries, {args.workers} worker(s), {os.cpu_count()} CPUs"
            )
            for col in ("request", "concurrency", "requests", "req/s", "p50 ms", "p99 ms", "mean ms", "verdicts"):
                table.add_column(col, justify="right" if col not in ("request", "verdicts") else "left")
            hash_payload = {"signals": [{"type": "pdq", "value": sigs["pdq"].value, "quality": sigs["pdq"].quality}]}
            for kind, payload in (("upload 1080p JPEG", jpeg), ("hash-only PDQ", hash_payload)):
                for c in (int(x) for x in args.concurrency.split(",")):
                    n = args.requests if kind.startswith("upload") else args.requests * 5
                    rps, lat, verdicts = run_load(
                        url, key, "upload" if kind.startswith("upload") else "hash", payload, n, c
                    )
                    table.add_row(
                        kind,
                        str(c),
                        str(n),
                        f"{rps:,.1f}",
                        f"{percentile(lat, 50):.1f}",
                        f"{percentile(lat, 99):.1f}",
                        f"{statistics.fmean(lat):.1f}",
                        ",".join(sorted(verdicts)),
                    )
            console.print(table)
            console.print(
                f"bank import: {import_s:.1f} s for {args.entries:,} rows; "
                f"server ready (index loaded) in {start_s:.1f} s; JPEG {len(jpeg) / 1024:.0f} KiB"
            )
        finally:
            server.terminate()
            server.wait(10)


if __name__ == "__main__":
    main()
