"""End to end: Safeguard's /v1/scan against an HMA-style service, same requests, same bank, same run.

Safeguard is started with ``safeguard serve`` (as ``bench/scan_api.py`` does). The HMA-style side is a
minimal FastAPI app doing what HMA does per request: full decode + ``pdq_from_bytes`` for uploads,
then a query of threatexchange's ``PDQIndex`` (``PdqSignal.get_index_cls()``) built from the same
bank; hash-only requests skip the hashing. Both run under uvicorn on loopback with the same number
of worker processes and are driven by the same client code.

    OMP_NUM_THREADS=1 python -m bench.api_bench [--entries 1000000] [--workers 1] [--requests 200]
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from rich.table import Table
from tests.media_factory import encode, make_image

from bench.scan_api import console, fill_bank, free_port, percentile, run_load
from safeguard.config import Settings
from safeguard.keys import KeyService
from safeguard.media import Media
from safeguard.signals import compute_signals
from safeguard.store import Database

HMA_APP = """
import os, pickle
from fastapi import FastAPI, Request
from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_bytes
with open(os.environ["HMA_INDEX"], "rb") as f:
    INDEX = pickle.load(f)
app = FastAPI()

@app.get("/readyz")
def ready():
    return {"ok": True}

@app.post("/v1/scan")
async def scan(request: Request):
    if request.headers.get("content-type", "").startswith("multipart/"):
        form = await request.form()
        data = await form["file"].read()
        value, _quality = pdq_from_bytes(data)
    else:
        value = (await request.json())["signals"][0]["value"]
    matches = INDEX.query(value)
    return {"verdict": "block" if matches else "allow", "matches": len(matches)}
"""


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> float:
    t0 = time.perf_counter()
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(proc.stderr.read().decode() if proc.stderr else "server died")
        time.sleep(0.2)


def drive(url: str, key: str, jpeg: bytes, hash_payload: dict, requests: int, conc: list[int]) -> list[tuple]:
    rows = []
    for kind, payload in (("upload 1080p JPEG", jpeg), ("hash-only PDQ", hash_payload)):
        for c in conc:
            n = requests if kind.startswith("upload") else requests * 5
            rps, lat, verdicts = run_load(url, key, "upload" if kind.startswith("upload") else "hash", payload, n, c)
            rows.append((kind, c, n, rps, percentile(lat, 50), percentile(lat, 99), statistics.fmean(lat), verdicts))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--concurrency", default="1,8")
    args = ap.parse_args()
    conc = [int(x) for x in args.concurrency.split(",")]
    console.print(f"load average before: {os.getloadavg()}")
    jpeg = encode(make_image(42, (1920, 1080)), "JPEG", quality=90)
    sigs = {s.type: s for s in compute_signals(Media.from_bytes(jpeg))}
    ref_value = sigs["pdq"].value
    hash_payload = {"signals": [{"type": "pdq", "value": ref_value, "quality": sigs["pdq"].quality}]}
    results: dict[str, list[tuple]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SAFEGUARD_DATA_DIR": tmp, "SAFEGUARD_LOG_LEVEL": "warning", "OMP_NUM_THREADS": "1"}
        settings = Settings.from_env(env)
        fill_bank(settings, args.entries, [("pdq", ref_value)])
        db = Database(settings.resolved_database_url)
        key = KeyService(db).create("platform", "bench", actor="bench")["key"]
        db.dispose()
        # the reference index over the same hashes (fill_bank's generator, same seed)
        from threatexchange.signal_type.pdq.signal import PdqSignal

        raw = np.random.default_rng(0).integers(0, 256, (args.entries, 32), dtype=np.uint8).tobytes().hex()
        entries = [(raw[i * 64 : (i + 1) * 64], i) for i in range(args.entries)] + [(ref_value, args.entries)]
        with console.status("building the reference index"):
            index = PdqSignal.get_index_cls().build(entries)
        idx_path = Path(tmp) / "hma_index.pickle"
        with idx_path.open("wb") as f:
            pickle.dump(index, f, protocol=pickle.HIGHEST_PROTOCOL)
        del index, entries, raw
        (Path(tmp) / "hma_app.py").write_text(HMA_APP)
        servers = {
            "Safeguard": [sys.executable, "-m", "safeguard.cli", "serve", "--workers", str(args.workers)],
            "HMA-style (full decode + PDQIndex)": [
                sys.executable,
                "-m",
                "uvicorn",
                "hma_app:app",
                "--workers",
                str(args.workers),
                "--log-level",
                "warning",
            ],
        }
        for name, cmd in servers.items():
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            proc = subprocess.Popen(
                [*cmd, "--port", str(port)],
                env={**env, "HMA_INDEX": str(idx_path), "PYTHONPATH": tmp},
                cwd=tmp if name != "Safeguard" else None,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            try:
                ready = wait_ready(url, proc)
                console.print(f"{name}: ready in {ready:.1f} s")
                results[name] = drive(url, key, jpeg, hash_payload, args.requests, conc)
            finally:
                proc.terminate()
                proc.wait(20)
    table = Table(title=f"/v1/scan, {args.entries:,} PDQ entries, {args.workers} worker(s), {os.cpu_count()} CPUs")
    for col in ("request", "conc.", "service", "req/s", "p50 ms", "p99 ms", "mean ms", "verdicts", "speed-up"):
        table.add_column(col, justify="left" if col in ("request", "service", "verdicts") else "right")
    sg, hma = results["Safeguard"], results["HMA-style (full decode + PDQIndex)"]
    for a, b in zip(sg, hma, strict=True):
        for name, r in (("Safeguard", a), ("HMA-style", b)):
            ratio = f"{a[3] / b[3]:.1f}x" if name == "Safeguard" else ""
            table.add_row(
                r[0],
                str(r[1]),
                name,
                f"{r[3]:,.1f}",
                f"{r[4]:.1f}",
                f"{r[5]:.1f}",
                f"{r[6]:.1f}",
                ",".join(sorted(r[7])),
                ratio,
            )
    console.print(table)
    console.print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
