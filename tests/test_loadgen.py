"""bench/loadgen.py: warm-up requests travel over the timed connections and are not counted."""

from __future__ import annotations

import asyncio
import threading

from bench.loadgen import json_request, run_load


class _Server:
    """A loopback HTTP/1.1 server that answers every request with a verdict and counts, per
    connection, the requests it served."""

    def __init__(self) -> None:
        self.per_conn: list[int] = []
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._serve, daemon=True).start()
        self._ready.wait(5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        k = len(self.per_conn)
        self.per_conn.append(0)
        body = b'{"verdict":"allow"}'
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(x.split(b":")[1]) for x in head.split(b"\r\n") if x.lower().startswith(b"content-length")
                )
                await reader.readexactly(length)
                self.per_conn[k] += 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def _serve(self) -> None:
        async def main() -> None:
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await asyncio.sleep(3600)

        self._loop.run_until_complete(main())


def test_warm_up_uses_the_timed_connections_and_is_not_counted() -> None:
    srv = _Server()
    url = f"http://127.0.0.1:{srv.port}"
    r = run_load(url, json_request(url, "k", {"signals": []}), total=40, concurrency=4, warmup=8)
    assert r.requests == 40 and len(r.latencies_ms) == 40 and r.verdicts == {"allow": 40}
    # four connections in all (no separate warm-up connection), 48 requests served
    assert len(srv.per_conn) == 4 and sum(srv.per_conn) == 48
    assert all(n >= 2 for n in srv.per_conn)


def test_no_warm_up() -> None:
    srv = _Server()
    url = f"http://127.0.0.1:{srv.port}"
    r = run_load(url, json_request(url, "k", {}), total=10, concurrency=2, warmup=0)
    assert len(r.latencies_ms) == 10 and sum(srv.per_conn) == 10
