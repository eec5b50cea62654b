"""A lean HTTP/1.1 load generator for the end-to-end benchmarks.

The servers under test share two cores with the client, so the client must cost little per request:
a thread pool of ``httpx`` clients spends more CPU per request than a hash-only scan does, and then
measures itself. Here each of ``concurrency`` keep-alive connections sends one pre-built request,
reads the response (``Content-Length`` framed, as FastAPI and uvicorn send it) and sends the next,
all on one asyncio loop (uvloop when installed). The same client drives both services in a run.
Warm-up requests go over the same connections, all at once, before the clock starts, so that every
worker process that will be timed has served a few requests first.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies_ms: list[float]
    verdicts: dict[str, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def build_request(host: str, path: str, headers: dict[str, str], body: bytes, content_type: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def json_request(url: str, key: str, payload: object, path: str = "/v1/scan") -> bytes:
    host = urlsplit(url).netloc
    return build_request(
        host, path, {"Authorization": f"Bearer {key}"}, json.dumps(payload).encode(), "application/json"
    )


def multipart_request(
    url: str, key: str, data: bytes, filename: str = "bench.jpg", media_type: str = "image/jpeg", path: str = "/v1/scan"
) -> bytes:
    boundary = "safeguardbench7c1f"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {media_type}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    host = urlsplit(url).netloc
    return build_request(
        host, path, {"Authorization": f"Bearer {key}"}, body, f"multipart/form-data; boundary={boundary}"
    )


def _verdict(body: bytes, status: int) -> str:
    marker = b'"verdict":"'
    i = body.find(marker)
    if status != 200 or i < 0:
        return f"HTTP {status}"
    j = body.find(b'"', i + len(marker))
    return body[i + len(marker) : j].decode()


async def _run(url: str, request: bytes | list[bytes], total: int, concurrency: int, warmup: int) -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    latencies: list[float] = []
    verdicts: dict[str, int] = {}
    clock = time.perf_counter
    pool = [request] if isinstance(request, bytes) else request
    sent = 0

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[float, str]:
        nonlocal sent
        t = clock()
        writer.write(pool[sent % len(pool)])  # a list of requests is sent in turn, round robin
        sent += 1
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = -1
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        if length < 0:
            raise RuntimeError("response without Content-Length; this client does not read chunked bodies")
        body = await reader.readexactly(length)
        return (clock() - t) * 1000, _verdict(body, status)

    async def drain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: list[int], timed: bool) -> None:
        while count[0] > 0:
            count[0] -= 1
            ms, v = await one(reader, writer)
            if timed:
                latencies.append(ms)
                verdicts[v] = verdicts.get(v, 0) + 1

    conns = [await asyncio.open_connection(host, port) for _ in range(concurrency)]
    try:
        # warm-up on the connections that are then timed, all at once: every worker process that
        # accepted one of them has served requests (imports, caches, first transactions) before the
        # clock starts, not just the one that would take a lone warm-up connection
        warm = [max(warmup, concurrency if warmup else 0)]
        await asyncio.gather(*(drain(r, w, warm, False) for r, w in conns))
        todo = [total]
        t0 = clock()
        await asyncio.gather(*(drain(r, w, todo, True) for r, w in conns))
        seconds = clock() - t0
    finally:
        for _, w in conns:
            w.close()
    return LoadResult(total, seconds, latencies, verdicts)


def run_load(url: str, request: bytes | list[bytes], total: int, concurrency: int, warmup: int = 20) -> LoadResult:
    """Send ``request`` (or each of a list in turn) ``total`` times over ``concurrency`` keep-alive
    connections; time each one."""
    try:
        import uvloop

        return uvloop.run(_run(url, request, total, concurrency, warmup))
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.run(_run(url, request, total, concurrency, warmup))
