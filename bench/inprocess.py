"""CPU per hash-only scan inside one process: ``/v1/scan`` called through the ASGI app, no HTTP.

End-to-end runs on a small machine drift by a third from one minute to the next (docs/performance.md,
section 5), more than most changes to the scan path are worth. This tool takes the network, the load
generator and the other worker processes out: it drives the app object itself with N requests in
flight on one event loop and reports the process's CPU time per scan, and how much of it the
recorder's writer thread spent committing. Compare two versions of the code by running it on the
same data directory with each one's ``src`` first on ``PYTHONPATH``, alternating, several times:

    python -m bench.inprocess --data-dir /tmp/inproc                       # first run fills a 1M bank
    PYTHONPATH=/path/to/other/checkout/src python -m bench.inprocess --data-dir /tmp/inproc

Hits are hashes 1-20 bits from a banked hash (each opens or updates a case, queues a webhook and
appends four events); misses are random hashes. There is no reference column: the reference records
nothing, so this measures Safeguard against itself; ``bench/api_bench.py`` is the side-by-side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

console = Console()


def _prepare(data_dir: Path, entries: int) -> dict[str, str]:
    """The bank, an API key and the banked hash, made once per data directory."""
    meta = data_dir / "inprocess.json"
    if meta.exists():
        got: dict[str, str] = json.loads(meta.read_text())
        return got
    from bench.scan_api import fill_bank
    from safeguard.config import Settings
    from safeguard.keys import KeyService
    from safeguard.store import Database

    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env({**os.environ, "SAFEGUARD_DATA_DIR": str(data_dir)})
    banked = bytes(np.random.default_rng(7).integers(0, 256, 32, dtype=np.uint8)).hex()
    took = fill_bank(settings, entries, [("pdq", banked)])
    console.print(f"filled a bank of {entries + 1:,} PDQ entries in {took:.1f} s")
    db = Database(settings.resolved_database_url)
    key = KeyService(db).create("platform", "inprocess", actor="bench")["key"]
    db.dispose()
    out = {"key": key, "banked": banked}
    meta.write_text(json.dumps(out))
    return out


def _bodies(case: str, banked: str, n: int = 1000) -> list[bytes]:
    rng = np.random.default_rng(5 if case == "hit" else 6)
    base = int(banked, 16)
    out = []
    for k in range(n):
        if case == "hit":
            flips = rng.choice(256, 1 + k % 20, replace=False)
            value = format(base ^ sum(1 << int(b) for b in flips), "064x")
        else:
            value = bytes(rng.integers(0, 256, 32, dtype=np.uint8)).hex()
        out.append(json.dumps({"signals": [{"type": "pdq", "value": value}]}).encode())
    return out


class _RecorderClock:
    """Thread CPU time of the recorder's commits (wraps ``Recorder._commit`` in this process only)."""

    def __init__(self) -> None:
        from safeguard.store import recorder

        self.seconds = 0.0
        self.batches = 0
        self.items = 0
        self._lock = threading.Lock()
        orig = recorder.Recorder._commit

        def timed(rec: Any, batch: Any) -> None:
            t = time.thread_time()
            try:
                orig(rec, batch)
            finally:
                with self._lock:
                    self.seconds += time.thread_time() - t
                    self.batches += 1
                    self.items += len(batch)

        recorder.Recorder._commit = timed  # type: ignore[method-assign,assignment]

    def reset(self) -> None:
        with self._lock:
            self.seconds, self.batches, self.items = 0.0, 0, 0


async def _drive(
    app: Any, bodies: list[bytes], headers: list[tuple[bytes, bytes]], n: int, conc: int
) -> dict[str, int]:
    """Send ``n`` scans, ``conc`` at a time; the verdicts counted."""
    todo = iter(range(n))
    verdicts: dict[str, int] = {}

    async def one(i: int) -> None:
        body = bodies[i % len(bodies)]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/scan",
            "raw_path": b"/v1/scan",
            "query_string": b"",
            "root_path": "",
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the client never disconnects
            return {"type": "http.disconnect"}

        status: list[int] = []
        body_out: list[bytes] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            elif message["type"] == "http.response.body":
                body_out.append(message.get("body", b""))

        await app(scope, receive, send)
        if status != [200]:
            raise SystemExit(f"/v1/scan answered {status}: {b''.join(body_out)[:300]!r}")
        verdict = json.loads(b"".join(body_out))["verdict"]
        verdicts[verdict] = verdicts.get(verdict, 0) + 1

    async def worker() -> None:
        for i in todo:
            await one(i)

    await asyncio.gather(*(worker() for _ in range(conc)))
    return verdicts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="", help="kept between runs (default: a new temporary directory)")
    ap.add_argument("--entries", type=int, default=1_000_000, help="bank size when the data directory is new")
    ap.add_argument("--cases", default="miss,hit")
    ap.add_argument("--scans", type=int, default=4000, help="scans per case (after 500 to warm up)")
    ap.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    args = ap.parse_args()

    data_dir = Path(args.data_dir or tempfile.mkdtemp(prefix="sg-inprocess-"))
    meta = _prepare(data_dir, args.entries)
    os.environ["SAFEGUARD_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("SAFEGUARD_LOG_LEVEL", "warning")
    # the hits are thousands of distinct near-duplicates of one banked hash within seconds: exactly what the
    # surge quarantine (banks/quality.py) sends to review. Off by default here, so hits stay the block path
    # this tool measures; the per-entry figures are still written. SAFEGUARD_SURGE_DISTINCT=50 measures it on.
    os.environ.setdefault("SAFEGUARD_SURGE_DISTINCT", "0")
    import safeguard
    from safeguard.api.app import create_app_from_env

    clock = _RecorderClock()
    app = create_app_from_env()
    headers = [
        (b"host", b"inprocess"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {meta['key']}".encode()),
    ]
    loop: asyncio.AbstractEventLoop
    try:
        import uvloop

        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    table = Table(title=f"/v1/scan in process, {args.concurrency} in flight ({Path(safeguard.__file__).parent})")
    for col in (
        "case",
        "scans",
        "scans/s",
        "process CPU ms/scan",
        "recorder CPU ms/scan",
        "mean batch",
        "verdicts",
    ):
        table.add_column(col, justify="left" if col == "case" else "right")
    for case in args.cases.split(","):
        bodies = _bodies(case, meta["banked"])
        loop.run_until_complete(_drive(app, bodies, headers, 500, args.concurrency))
        clock.reset()
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        verdicts = loop.run_until_complete(_drive(app, bodies, headers, args.scans, args.concurrency))
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime
        table.add_row(
            case,
            f"{args.scans:,}",
            f"{args.scans / wall:,.0f}",
            f"{cpu / args.scans * 1e3:.3f}",
            f"{clock.seconds / max(clock.items, 1) * 1e3:.3f}",
            f"{clock.items / max(clock.batches, 1):.1f}",
            " ".join(f"{v}:{n}" for v, n in sorted(verdicts.items())),
        )
    console.print(table)
    console.print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
