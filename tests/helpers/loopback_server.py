"""The scaffolding of the local stand-ins for outside services (NCMEC, the DSA database): a threaded HTTP
server on an ephemeral 127.0.0.1 port that hands every request to ``respond``, and the faults tests inject
into it (counted, after some requests let through, and a *hold* that parks a request until released)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, Self, TypeVar


class CountedFault(Protocol):
    count: int  # how many more requests it hits
    after: int  # how many matching requests it lets through first


F = TypeVar("F", bound=CountedFault)


class LoopbackServer:
    """Subclasses answer in ``respond``; ``content_type`` labels every answer."""

    content_type = "application/octet-stream"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held = threading.Event()  # set when a held request did its part and waits
        self.release = threading.Event()  # set by the test (or ``stop``) to let held requests go
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> Self:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def hold(self) -> None:
        """Park the request in hand: say so through ``held``, then wait (a minute at most) for ``release``."""
        self.held.set()
        self.release.wait(60)

    def take_fault(self, faults: Sequence[F], matches: Callable[[F], bool] = lambda f: True) -> F | None:
        """The first live fault that ``matches``, counted down; None while it still lets requests through."""
        with self.lock:
            for f in faults:
                if matches(f) and f.count > 0:
                    if f.after > 0:
                        f.after -= 1
                        return None
                    f.count -= 1
                    return f
        return None

    def respond(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, bytes]:
        """The status and body of the answer to one request."""
        raise NotImplementedError

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _any(self, method: str) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                status, out = fake.respond(method, self.path, self.headers, body)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", fake.content_type)
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                except OSError:  # the client went away (a test killed it)
                    pass

            def do_GET(self) -> None:
                self._any("GET")

            def do_POST(self) -> None:
                self._any("POST")

        return H
