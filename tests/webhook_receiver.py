"""A real HTTP server on loopback that records webhook deliveries (and can be told to fail)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from tests.helpers.net import serving


@dataclass
class Receiver:
    url: str
    deliveries: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    fail_next: int = 0  # answer 500 to this many requests first
    event: threading.Event = field(default_factory=threading.Event)


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    state: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            if state.fail_next > 0:
                state.fail_next -= 1
                self.send_response(500)
                self.end_headers()
                return
            state.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
            state.event.set()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as server:
        state = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hook")
        yield state
