"""End to end: Safeguard's /v1/scan against an HMA-style service, same requests, same bank, same run.

Safeguard is started with ``safeguard serve`` (as ``bench/scan_api.py`` does). The HMA-style side is a
minimal FastAPI app doing what HMA does per request: full decode + ``pdq_from_bytes`` for uploads,
then a query of threatexchange's ``PDQIndex`` (``PdqSignal.get_index_cls()``) built from the same
bank; hash-only requests skip the hashing. It records nothing; Safeguard records every decision
durably (decision row and hash-chained events; for a match also the case, outbox row and action
events) before it answers.

``--kinds batch`` sends ``POST /v1/scan/batch`` with ``--batch-items`` hash-only items per request
(the harness gets the same route: a loop of index queries); its rows count lookups, not requests.

Both run under uvicorn on loopback with the same number of worker processes, one after the other,
each worker with its own ``SO_REUSEPORT`` socket (``safeguard.api.workers``, as ``safeguard serve
--workers N`` runs), and are driven by the same lean client (``bench/loadgen.py``: keep-alive
connections on one event loop, so the client costs little of the two cores). Each request kind is sent as a *hit* (the JPEG,
or its hash, is in the bank: ``block``) and as a *miss* (a different benign JPEG, or its hash:
``allow``, the common case on a real platform).

Besides requests/s and latency, the table gives each server's CPU time per request (user + system of
all its processes, from /proc): on a machine shared with other work that figure is steadier than
throughput.

    OMP_NUM_THREADS=1 python -m bench.api_bench [--entries 1000000] [--workers 1,2,4] [--requests 200]
        [--concurrency 1,8] [--cases hit,miss] [--kinds upload,hash,batch] [--batch-items 100]
        [--database-url postgresql+psycopg://...]
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
from dataclasses import dataclass
from pathlib import Path

# run as `python bench/NAME.py`: the repository root (for `bench` and `tests`) is importable too
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import numpy as np
from rich.table import Table
from tests.media_factory import encode, make_image

from bench._vault import vault_key
from bench.loadgen import json_request, multipart_request, run_load
from bench.scan_api import console, fill_bank, free_port, percentile
from safeguard.banks.service import BankService
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

@app.post("/v1/scan/batch")
async def scan_batch(request: Request):
    out = []
    for item in (await request.json())["items"]:
        matches = INDEX.query(item["signals"][0]["value"])
        out.append({"verdict": "block" if matches else "allow", "matches": len(matches)})
    return {"decisions": out}
"""

#: starts the harness with Safeguard's worker supervisor: with uvicorn's own ``--workers`` (one shared
#: socket) eight keep-alive connections often all land on one worker (docs/performance.md, section 5)
HMA_SERVE = """
import argparse
from safeguard.api.workers import run
ap = argparse.ArgumentParser()
ap.add_argument("--workers", type=int, default=1)
ap.add_argument("--port", type=int, required=True)
a = ap.parse_args()
raise SystemExit(run("127.0.0.1", a.port, a.workers, "warning", app="hma_app:app", factory=False))
"""

SAFEGUARD = "Safeguard"
HMA = "HMA-style"


@dataclass
class Row:
    kind: str
    case: str
    workers: int
    concurrency: int
    service: str
    requests: int
    rps: float
    p50: float
    p99: float
    mean: float
    cpu_ms: float
    verdicts: dict[str, int]
    split: str = ""


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


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(p.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants (uvicorn's worker processes)."""
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        total += _own_cpu(p)
        todo.extend(child_pids(p))
    return total


def _own_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each worker process: the children of a supervisor (not multiprocessing's resource
    tracker), or ``pid`` itself if it has none."""
    workers = [p for p in child_pids(pid) if b"resource_tracker" not in _cmdline(p)]
    return {p: cpu_seconds(p) for p in workers or [pid]}


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def split(before: dict[int, float], after: dict[int, float]) -> str:
    """Each worker's share of the CPU between two :func:`worker_cpu` readings, in percent, largest first
    (the kernel spreads connections over the workers' sockets by a hash: eight connections do not
    always split evenly, and a worker with more of them is the bottleneck)."""
    used = sorted((after[p] - before.get(p, 0.0) for p in after), reverse=True)
    total = sum(used) or 1.0
    return "/".join(f"{100 * u / total:.0f}" for u in used)


def drive(
    service: str,
    url: str,
    pid: int,
    requests: dict[tuple[str, str], bytes | list[bytes]],
    counts: dict[str, int],
    conc: list[int],
) -> list[tuple[str, str, int, int, float, list[float], float, dict[str, int], str]]:
    out = []
    for (kind, case), req in requests.items():
        for c in conc:
            n = counts[kind]
            before, per_worker = cpu_seconds(pid), worker_cpu(pid)
            r = run_load(url, req, n, c)
            cpu = cpu_seconds(pid) - before
            shares = split(per_worker, worker_cpu(pid))
            out.append((kind, case, c, n, r.rps, r.latencies_ms, cpu * 1000 / (n + 20), r.verdicts, shares))
            console.print(
                f"  {service:9s} {kind:6s} {case:4s} c={c}: {r.rps:8.1f} req/s  p50 {percentile(r.latencies_ms, 50):7.1f}"
                f"  p99 {percentile(r.latencies_ms, 99):7.1f} ms  cpu {cpu * 1000 / (n + 20):5.2f} ms/req"
                f"  split {shares}  {r.verdicts}"
            )
    return out


def start(cmd: list[str], env: dict[str, str], cwd: str | None) -> tuple[subprocess.Popen[bytes], str, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [*cmd, "--port", str(port)], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    return proc, url, wait_ready(url, proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=200, help="uploads per run (hash-only runs send 10x)")
    ap.add_argument("--workers", default="1", help="worker process counts to run, e.g. 1,2,4")
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--cases", default="hit,miss", help="hit (in the bank: block) and/or miss (allow)")
    ap.add_argument(
        "--kinds", default="upload,hash", help="upload (1080p JPEG), hash (hash-only JSON), batch (/v1/scan/batch)"
    )
    ap.add_argument("--batch-items", type=int, default=100, help="hash-only items per batch request")
    ap.add_argument(
        "--repeat-hash",
        action="store_true",
        help="hash-only: send one hash over and over (runs before 2026-11-23 16:30)",
    )
    ap.add_argument("--database-url", default="", help="Safeguard's database (default: SQLite in a temp dir)")
    ap.add_argument("--no-reference", action="store_true", help="run Safeguard only")
    ap.add_argument(
        "--review-threshold",
        type=int,
        default=None,
        help="the bank's PDQ review distance (default: the product's, 40; 31 queries what the reference does)",
    )
    args = ap.parse_args()
    conc = [int(x) for x in args.concurrency.split(",")]
    worker_counts = [int(x) for x in args.workers.split(",")]
    cases = args.cases.split(",")
    kinds = args.kinds.split(",")
    console.print(f"load average before: {os.getloadavg()}; {os.cpu_count()} CPUs")

    jpegs = {"hit": encode(make_image(42, (1920, 1080)), "JPEG", quality=90)}
    jpegs["miss"] = encode(make_image(43, (1920, 1080)), "JPEG", quality=90)
    pdq = {case: {s.type: s for s in compute_signals(Media.from_bytes(j))}["pdq"] for case, j in jpegs.items()}
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "SAFEGUARD_DATA_DIR": tmp,
            "SAFEGUARD_VAULT_KEY_FILE": vault_key(tmp),
            "SAFEGUARD_LOG_LEVEL": "warning",
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": tmp,
        }
        if args.database_url:
            env["SAFEGUARD_DATABASE_URL"] = args.database_url
        settings = Settings.from_env(env)
        import_s = fill_bank(settings, args.entries, [("pdq", pdq["hit"].value)])
        console.print(f"bank: {args.entries:,} random PDQ entries + the hit JPEG's hash, imported in {import_s:.1f} s")
        db = Database(settings.resolved_database_url)
        key = KeyService(db).create("platform", "bench", actor="bench")["key"]
        banks = BankService(db)
        if args.review_threshold is not None:
            banks.update("bench", actor="bench", review_thresholds={"pdq": args.review_threshold})
        review = banks.describe("bench").review_thresholds["pdq"]
        console.print(f"Safeguard's bank: match at distance <= 31, review up to {review}; the reference: <= 31")
        db.dispose()
        idx_path = Path(tmp) / "hma_index.pickle"
        if not args.no_reference:
            # the reference index over the same hashes (fill_bank's generator, same seed)
            from threatexchange.signal_type.pdq.signal import PdqSignal

            raw = np.random.default_rng(0).integers(0, 256, (args.entries, 32), dtype=np.uint8).tobytes().hex()
            entries = [(raw[i * 64 : (i + 1) * 64], i) for i in range(args.entries)]
            entries.append((pdq["hit"].value, args.entries))
            with console.status("building the reference index"):
                index = PdqSignal.get_index_cls().build(entries)
            with idx_path.open("wb") as f:
                pickle.dump(index, f, protocol=pickle.HIGHEST_PROTOCOL)
            del index, entries, raw
            (Path(tmp) / "hma_app.py").write_text(HMA_APP)

        counts = {"upload": args.requests, "hash": args.requests * 10, "batch": max(20, args.requests // 2)}
        # Misses are distinct random hashes (none in the bank). Hits are distinct near-duplicates of the
        # banked hash (1-20 bits flipped: re-encodes and resizes of a known image). A batch holds
        # --batch-items of them; hash-only requests cycle through 1,000 of each.
        rng = np.random.default_rng(99)
        hit_int = int(pdq["hit"].value, 16)

        def near(k: int) -> str:
            flips = rng.choice(256, 1 + k % 20, replace=False)
            return format(hit_int ^ sum(1 << int(b) for b in flips), "064x")

        hash_values = {
            "miss": [bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex() for _ in range(1000)],
            "hit": [near(k) for k in range(1000)],
        }
        batch_values = {case: values[: args.batch_items] for case, values in hash_values.items()}
        services = {
            SAFEGUARD: ([sys.executable, "-m", "safeguard.cli", "serve"], None),
            # served like Safeguard: one process, or a socket per worker (safeguard.api.workers)
            HMA: ([sys.executable, "-c", HMA_SERVE], tmp),
        }
        if args.no_reference:
            del services[HMA]
        for w in worker_counts:
            for name, (cmd, cwd) in services.items():
                proc, url, ready = start([*cmd, "--workers", str(w)], {**env, "HMA_INDEX": str(idx_path)}, cwd)
                console.print(f"{name}, {w} worker(s): ready in {ready:.1f} s")
                requests: dict[tuple[str, str], bytes | list[bytes]] = {}
                for kind in kinds:
                    for case in cases:
                        if kind == "upload":
                            requests[(kind, case)] = multipart_request(url, key, jpegs[case])
                        elif kind == "batch":
                            items = [{"signals": [{"type": "pdq", "value": v}]} for v in batch_values[case]]
                            requests[(kind, case)] = json_request(url, key, {"items": items}, path="/v1/scan/batch")
                        elif args.repeat_hash:
                            sig = pdq[case]
                            payload = {"signals": [{"type": "pdq", "value": sig.value, "quality": sig.quality}]}
                            requests[(kind, case)] = json_request(url, key, payload)
                        else:  # distinct hashes, sent in turn: what a platform's traffic looks like
                            requests[(kind, case)] = [
                                json_request(url, key, {"signals": [{"type": "pdq", "value": v}]})
                                for v in hash_values[case]
                            ]
                try:
                    for kind, case, c, n, rps, lat, cpu, verdicts, shares in drive(
                        name, url, proc.pid, requests, counts, conc
                    ):
                        if kind == "batch":  # per lookup: throughput x items, CPU / items (latency per request)
                            n, rps, cpu = n * args.batch_items, rps * args.batch_items, cpu / args.batch_items
                        p50, p99, mean = percentile(lat, 50), percentile(lat, 99), statistics.fmean(lat)
                        rows.append(Row(kind, case, w, c, name, n, rps, p50, p99, mean, cpu, verdicts, shares))
                finally:
                    proc.terminate()
                    proc.wait(30)
    print_table(rows, args.entries)
    console.print(f"load average after: {os.getloadavg()}")


def print_table(rows: list[Row], entries: int) -> None:
    table = Table(title=f"/v1/scan, {entries:,} PDQ entries, {os.cpu_count()} CPUs")
    cols = (
        "request",
        "case",
        "workers",
        "conc.",
        "service",
        "req/s",
        "p50 ms",
        "p99 ms",
        "CPU ms/req",
        "CPU split %",
        "verdicts",
    )
    for col in (*cols, "speed-up"):
        table.add_column(col, justify="left" if col in ("request", "case", "service", "verdicts") else "right")
    by_key = {(r.kind, r.case, r.workers, r.concurrency, r.service): r for r in rows}
    for r in rows:
        if r.service != SAFEGUARD:
            continue
        ref = by_key.get((r.kind, r.case, r.workers, r.concurrency, HMA))
        for name, x in ((SAFEGUARD, r), (HMA, ref)):
            if x is None:
                continue
            label = {"upload": "upload 1080p JPEG", "hash": "hash-only PDQ", "batch": "batch: lookups/s"}
            table.add_row(
                label[x.kind],
                x.case,
                str(x.workers),
                str(x.concurrency),
                name,
                f"{x.rps:,.1f}",
                f"{x.p50:.1f}",
                f"{x.p99:.1f}",
                f"{x.cpu_ms:.2f}",
                x.split,
                ",".join(f"{k}" for k in sorted(x.verdicts)),
                f"{r.rps / ref.rps:.2f}x" if name == SAFEGUARD and ref is not None else "",
            )
    console.print(table)


if __name__ == "__main__":
    main()
