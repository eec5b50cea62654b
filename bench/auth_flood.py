"""Issue 15, finding 5, replayed against a real ``safeguard serve``: requests without a valid key must
cost the server neither memory nor a read of their bodies.

Two attacks, each on a fresh server (one worker, SQLite, default settings apart from the failure
limit, which would otherwise answer most of them with 429 before any lookup):

1. ``--prefixes`` keyless requests, each with a different made-up key (``sg_<random prefix>_x``, the
   prefix ``--prefix-chars`` long): the red team grew a worker from 144 to 339 MB with 32,000 of
   them, never released.
2. ``--bodies`` requests at once, each declaring and sending a ``--body-mb`` MB body to the hash-only
   fast path with a bad key: 16 of 50 MB peaked at 967 MB.

It reports the worker's resident memory (RSS, from /proc) before and after each, its peak (VmHWM),
the answers' status codes, and how long the answers took.

    python -m bench.auth_flood [--prefixes 32000] [--prefix-chars 12] [--bodies 16] [--body-mb 50]

Compare with an older checkout by putting its ``src`` first: ``PYTHONPATH=/path/to/old/src python -m
bench.auth_flood`` (the server is started with the same interpreter and environment).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# run as `python bench/NAME.py`: the repository root (for `bench` and `tests`) is importable too
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._vault import vault_key
from bench.api_bench import child_pids, wait_ready
from bench.scan_api import console, free_port


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of ``pid`` in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(value.split()[0]) // 1024
    return out


def _worker(pid: int) -> int:
    """The process that serves: uvicorn's worker when there is one, else the server itself."""
    kids = child_pids(pid)
    return kids[0] if kids else pid


async def _request(port: int, head: bytes, body_bytes: int, chunk: bytes) -> tuple[int, float, bool, int]:
    """Send ``head``, wait up to 2 s for an answer, then up to ``body_bytes`` of body. Returns the status,
    the seconds to the answer, whether it came before any body was sent, and the body bytes the
    connection took before the server closed it."""
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)
    await writer.drain()
    line = b""
    took = 0.0
    if body_bytes:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=2.0)
            took = time.perf_counter() - t0
        except TimeoutError:  # the server waits for the body: send it
            pass
    early = bool(line)
    sent = 0
    try:
        while sent < body_bytes:
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
        if not line:
            line = await reader.readline()
            took = time.perf_counter() - t0
    except ConnectionError:  # refused and closed: the rest of the body is not read
        pass
    writer.close()
    return (int(line.split()[1]) if line else 0), took, early, sent


def _head(port: int, path: str, key: str, length: int, ctype: str = "application/json") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: {ctype}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


async def _prefixes(port: int, n: int, concurrency: int, chars: int) -> dict[int, int]:
    counts: dict[int, int] = {}
    todo = iter(range(n))

    async def one() -> None:
        for _ in todo:
            body = b'{"signals":[{"type":"md5","value":"00000000000000000000000000000000"}]}'
            head = _head(port, "/v1/scan", f"sg_{secrets.token_hex(chars // 2)}_x", len(body))
            status, *_ = await _request(port, head + body, 0, b"")
            counts[status] = counts.get(status, 0) + 1

    await asyncio.gather(*(one() for _ in range(concurrency)))
    return counts


async def _bodies(port: int, n: int, mb: int) -> list[tuple[int, float, bool, int]]:
    size = mb * 1024 * 1024
    chunk = b"x" * (256 * 1024)
    head = _head(port, "/v1/scan", f"sg_{secrets.token_hex(6)}_bad", size)
    return list(await asyncio.gather(*(_request(port, head, size, chunk) for _ in range(n))))


def _serve(tmp: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "SAFEGUARD_DATA_DIR": tmp,
        "SAFEGUARD_VAULT_KEY_FILE": vault_key(tmp),
        "SAFEGUARD_LOG_LEVEL": "warning",
        "SAFEGUARD_PORT": str(port),
        "SAFEGUARD_AUTH_FAILURES_PER_MINUTE": "0",  # let every made-up key reach the lookup
    }
    cmd = [sys.executable, "-m", "safeguard.cli", "serve", "--workers", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_ready(f"http://127.0.0.1:{port}", proc)
    return proc, port


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefixes", type=int, default=32_000, help="keyless requests with distinct made-up keys")
    ap.add_argument("--concurrency", type=int, default=16, help="connections for the made-up keys")
    ap.add_argument("--prefix-chars", type=int, default=12, help="length of each made-up key's prefix (hex)")
    ap.add_argument("--bodies", type=int, default=16, help="large bad-key requests at once")
    ap.add_argument("--body-mb", type=int, default=50)
    args = ap.parse_args()
    console.print(f"load average before: {os.getloadavg()}; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = _serve(tmp)
        try:
            pid = _worker(proc.pid)
            asyncio.run(
                _prefixes(port, 2000, args.concurrency, args.prefix_chars)
            )  # warm up: threads, caches, allocator
            before = _status(pid)
            t0 = time.perf_counter()
            counts = asyncio.run(_prefixes(port, args.prefixes, args.concurrency, args.prefix_chars))
            took = time.perf_counter() - t0
            after = _status(pid)
            console.print(
                f"{args.prefixes:,} made-up keys with {args.prefix_chars}-character prefixes (after 2,000 to warm up) in {took:.1f} s: statuses {counts}; "
                f"worker RSS {before['VmRSS']} -> {after['VmRSS']} MB"
            )
            if not args.bodies:
                return
            before = after
            t0 = time.perf_counter()
            answers = asyncio.run(_bodies(port, args.bodies, args.body_mb))
            took = time.perf_counter() - t0
            after = _status(pid)
            statuses = sorted({a[0] for a in answers})
            console.print(
                f"{args.bodies} x {args.body_mb} MB bad-key bodies at once, done in {took:.2f} s: statuses {statuses}; "
                f"answered before any body byte was sent: {sum(a[2] for a in answers)}/{len(answers)}; "
                f"slowest answer {max(a[1] for a in answers) * 1000:.0f} ms; body bytes the connections took "
                f"before being closed: at most {max(a[3] for a in answers) / 2**20:.1f} MB of {args.body_mb}; "
                f"worker RSS {before['VmRSS']} -> {after['VmRSS']} MB, peak over the whole run {after['VmHWM']} MB"
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
