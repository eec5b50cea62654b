"""Exchange benchmark: two Safeguard instances on loopback, one sharing a bank with the other.

There is no reference implementation to run side by side here: python-threatexchange's exchanges are
clients of hosted APIs (ThreatExchange, NCMEC), not an instance-to-instance feed, and HMA has no feed of
its own. The table states Safeguard's figures against the targets of issue 19.

1. **feed**: the publisher's ``GET /v1/exchange/banks/{bank}/changes`` read from the first cursor to the
   end with 50,000-entry pages, the bytes discarded (entries/s of the endpoint), and once more through
   the subscriber's reader (parse + verify the signature, no database).
2. **first sync**: ``ExchangeService.sync`` of the whole bank into an empty local bank: fetch, verify,
   apply each page in a transaction with its checkpoint.
3. **add → blocked**: the subscriber runs as ``safeguard serve`` with a 1 s poll; an MD5 entry is
   added on the publisher over its API and the subscriber's ``/v1/scan`` (hash-only) is asked until it
   blocks; repeated ``--latency-runs`` times.

The publisher runs as ``safeguard serve`` (its own process); the bank is filled beforehand with
``BankService.import_rows`` (not timed). SQLite by default; ``--db-url-a/--db-url-b`` for PostgreSQL.

    python bench/exchange_bench.py [--entries 1000000] [--page-size 50000] [--latency-runs 5]
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
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

console = Console(width=int(os.environ.get("COLUMNS", "160")))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve(data_dir: Path, db_url: str, **env_extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "SAFEGUARD_DATA_DIR": str(data_dir),
        "SAFEGUARD_PORT": str(port),
        "SAFEGUARD_EGRESS_ALLOW": "127.0.0.1",
        "SAFEGUARD_LOG_LEVEL": "warning",
        **env_extra,
    }
    if db_url:
        env["SAFEGUARD_DATABASE_URL"] = db_url
    exe = str(Path(sys.executable).with_name("safeguard"))
    proc = subprocess.Popen([exe, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit(proc.stderr.read().decode() if proc.stderr else "server did not start")
        time.sleep(0.2)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (from /proc: the machine may be shared)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_note(pub: float, sub: float) -> str:
    return f"CPU: publisher {pub:.1f} s, subscriber {sub:.1f} s"


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def settings_for(data_dir: Path, db_url: str, **changes: object) -> object:
    from safeguard.config import Settings

    return Settings(data_dir=str(data_dir), database_url=db_url, egress_allow="127.0.0.1", run_worker=False, **changes)  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument(
        "--page-size", type=int, default=0, help="the subscriber's page size (default: SAFEGUARD_EXCHANGE_PAGE_SIZE's)"
    )
    ap.add_argument("--latency-runs", type=int, default=5)
    ap.add_argument("--db-url-a", default="", help="the publisher's database (default: SQLite in a temp dir)")
    ap.add_argument("--db-url-b", default="", help="the subscriber's database")
    args = ap.parse_args()

    from safeguard.banks.service import BankService
    from safeguard.banks.sources.base import Row
    from safeguard.banks.sources.partner import load_raw_public_key
    from safeguard.config import Settings
    from safeguard.engine import Engine
    from safeguard.exchange.follower import ExchangeService
    from safeguard.exchange.shares import share
    from safeguard.exchange.wire import PageReader
    from safeguard.keys import KeyService

    console.print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}")
    args.page_size = args.page_size or Settings().exchange_page_size
    rows_out: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory() as td:
        a_dir, b_dir = Path(td) / "a", Path(td) / "b"
        sa = Settings(data_dir=str(a_dir), database_url=args.db_url_a, run_worker=False)
        ea = Engine(sa)
        banks_a = BankService(ea.db)
        banks_a.create("shared", actor="bench", kind="csam", shareable=True, default_category="A1")
        rng = np.random.default_rng(0)
        raw = rng.integers(0, 256, size=(args.entries, 32), dtype=np.uint8).tobytes().hex()
        t = time.perf_counter()
        banks_a.import_rows(
            "shared",
            (Row(i, "pdq", raw[i * 64 : (i + 1) * 64], source="bench") for i in range(args.entries)),
            actor="bench",
        )
        console.print(f"publisher filled with {args.entries:,} PDQ entries in {time.perf_counter() - t:.1f} s")
        ks = KeyService(ea.db)
        partner = ks.create("partner", "bench-partner", actor="bench")
        share(ea.db, partner["id"], ["shared"], actor="bench")
        admin_a = ks.create("moderator", "bench-mod", actor="bench")["key"]
        ea.close()
        proc_a, url_a = serve(a_dir, args.db_url_a, SAFEGUARD_RUN_WORKER="0")
        try:
            hdr = {"Authorization": f"Bearer {partner['key']}"}
            pk = httpx.get(url_a + "/v1/exchange/key", headers=hdr).json()["public_key"]

            # 1. the feed endpoint, raw, then through the reader
            for verify in (False, True):
                cursor, n, t = "", 0, time.perf_counter()
                c0, p0 = cpu_seconds(proc_a.pid), time.process_time()
                with httpx.Client(timeout=120) as c:
                    while True:
                        params = {"cursor": cursor, "limit": 50_000}
                        with c.stream(
                            "GET", url_a + "/v1/exchange/banks/shared/changes", params=params, headers=hdr
                        ) as r:
                            if verify:
                                reader = PageReader(
                                    load_raw_public_key(pk), bank="shared", cursor=cursor, max_entries=50_000
                                )
                                page = reader.read(r.iter_bytes())
                                n += len(page.rows)
                                cursor, more = page.next_cursor, page.more
                            else:
                                last = b""
                                lines = 0
                                for chunk in r.iter_bytes():
                                    lines += chunk.count(b"\n")
                                    last = (last + chunk)[-2048:]
                                n += lines - 2
                                import json

                                end = json.loads(last.rstrip(b"\n").rsplit(b"\n", 1)[-1])
                                cursor, more = end["next_cursor"], end["more"]
                        if not more:
                            break
                dt = time.perf_counter() - t
                pub_cpu, sub_cpu = cpu_seconds(proc_a.pid) - c0, time.process_time() - p0
                what = "feed + reader (parse, verify)" if verify else "feed endpoint (bytes read)"
                rows_out.append(
                    (
                        what,
                        f"{n:,} entries in {dt:.1f} s; {cpu_note(pub_cpu, sub_cpu)}",
                        f"{n / dt:,.0f} entries/s; {n / pub_cpu:,.0f} per publisher CPU-s",
                        "≥ 50,000 entries/s",
                    )
                )
                console.print(rows_out[-1])

            # 2. the first sync into an empty local bank
            sb = Settings(
                data_dir=str(b_dir),
                database_url=args.db_url_b,
                run_worker=False,
                egress_allow="127.0.0.1",
                exchange_page_size=args.page_size,
                exchange_poll_seconds=1.0,
            )
            eb = Engine(sb)
            BankService(eb.db).create("from-a", actor="bench", kind="csam")
            ex = ExchangeService(eb.db, sb)
            ex.add("a", url=f"{url_a}/v1/exchange/banks/shared", key=partner["key"], bank="from-a", actor="bench")
            t = time.perf_counter()
            c0, p0 = cpu_seconds(proc_a.pid), time.process_time()
            res = ex.sync("a")
            dt = time.perf_counter() - t
            pub_cpu, sub_cpu = cpu_seconds(proc_a.pid) - c0, time.process_time() - p0
            if res.error:
                raise SystemExit(f"sync failed: {res.error}")
            rows_out.append(
                (
                    f"first sync, {args.page_size:,}-entry pages",
                    f"{res.upserts:,} entries, {res.pages} pages in {dt:.1f} s; {cpu_note(pub_cpu, sub_cpu)}",
                    f"{res.upserts / dt:,.0f} entries/s",
                    "1,000,000 in ≤ 60 s",
                )
            )
            console.print(rows_out[-1])
            platform_b = KeyService(eb.db).create("platform", "bench-platform", actor="bench")["key"]
            eb.close()

            # 3. add on A -> blocked on B, B polling every second
            proc_b, url_b = serve(b_dir, args.db_url_b, SAFEGUARD_EXCHANGE_POLL_SECONDS="1", SAFEGUARD_RUN_WORKER="1")
            try:
                lat: list[float] = []
                with httpx.Client(timeout=30) as c:
                    for i in range(args.latency_runs):
                        value = f"{i:08x}" + "e" * 24
                        body = {"signals": [{"type": "md5", "value": value}]}
                        pb = {"Authorization": f"Bearer {platform_b}"}
                        assert c.post(url_b + "/v1/scan", json=body, headers=pb).json()["verdict"] == "allow"
                        t = time.perf_counter()
                        r = c.post(
                            url_a + "/v1/banks/shared/entries",
                            json={"signal_type": "md5", "value": value},
                            headers={"Authorization": f"Bearer {admin_a}"},
                        )
                        assert r.status_code == 201, r.text
                        while c.post(url_b + "/v1/scan", json=body, headers=pb).json()["verdict"] != "block":
                            if time.perf_counter() - t > 30:
                                raise SystemExit("not blocked within 30 s")
                            time.sleep(0.02)
                        lat.append(time.perf_counter() - t)
                        time.sleep(0.3 * (i % 3))  # land at different points of the poll interval
                rows_out.append(
                    (
                        "add on A → blocked on B (1 s poll)",
                        f"{len(lat)} runs",
                        f"median {statistics.median(lat):.2f} s, max {max(lat):.2f} s",
                        "≤ 5 s",
                    )
                )
                console.print(rows_out[-1])
            finally:
                stop(proc_b)
        finally:
            stop(proc_a)
    t = Table("measure", "work", "result", "target", title="exchange (no reference: see the module docstring)")
    for r in rows_out:
        t.add_row(*r)
    console.print(t)
    console.print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
