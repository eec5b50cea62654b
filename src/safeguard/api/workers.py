"""Several API worker processes, each with its own listening socket (``SO_REUSEPORT``).

uvicorn's ``--workers`` binds one socket in the parent and shares it with every child; whichever
child wakes first accepts. With a few long-lived keep-alive connections (a reverse proxy's upstream
pool, a platform's client pool, the benchmarks' eight connections) that often puts all of them on
one process: in five runs of eight connections against two workers, three sent every request to the
same worker and left the other idle (docs/performance.md, section 5). Here each worker binds its own
socket to the same address with ``SO_REUSEPORT``, and the kernel spreads new connections over the
workers' sockets by a hash of the connection's addresses, so every worker takes its share.

The parent only supervises: it starts the workers (``spawn``, as uvicorn does), restarts one that
dies, and stops them all on SIGINT or SIGTERM. Where ``SO_REUSEPORT`` is missing (not Linux),
:func:`run` falls back to uvicorn's own supervisor.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import threading
import time
from multiprocessing.process import BaseProcess
from types import FrameType

log = logging.getLogger(__name__)

APP = "safeguard.api.app:create_app_from_env"
#: a worker that dies this soon after its start is not restarted in a loop: the supervisor gives up
CRASH_LOOP_SECONDS = 5.0


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` that other sockets with ``SO_REUSEPORT`` may share."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _worker(host: str, port: int, log_level: str, app: str, factory: bool) -> None:
    import uvicorn

    sock = bind(host, port)
    config = uvicorn.Config(app, factory=factory, host=host, port=port, log_level=log_level)
    uvicorn.Server(config).run(sockets=[sock])


class Supervisor:
    """Start ``workers`` processes on ``host:port``, keep them running, stop them on a signal.

    ``app`` is uvicorn's import string (Safeguard's app factory by default; the end-to-end benchmark
    serves its reference harness the same way, so both sides get the same sockets)."""

    def __init__(
        self, host: str, port: int, workers: int, log_level: str = "info", app: str = APP, factory: bool = True
    ) -> None:
        self.host, self.port, self.workers, self.log_level = host, port, workers, log_level
        self.app, self.factory = app, factory
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: list[BaseProcess] = []
        self._stop = threading.Event()

    def _start_one(self) -> BaseProcess:
        p = self._ctx.Process(
            target=_worker, args=(self.host, self.port, self.log_level, self.app, self.factory), name="safeguard-api"
        )
        p.start()
        return p

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stop.set()

    def run(self) -> int:
        # bind once here first: a taken port fails now, in the parent, with a clear error
        bind(self.host, self.port).close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        started = {}
        for _ in range(self.workers):
            p = self._start_one()
            self._procs.append(p)
            started[p.pid] = time.monotonic()
        rc = 0
        while not self._stop.wait(0.5):
            for i, p in enumerate(self._procs):
                if p.is_alive():
                    continue
                if time.monotonic() - started.get(p.pid, 0.0) < CRASH_LOOP_SECONDS:
                    log.error("worker %s exited with %s right after its start; stopping", p.pid, p.exitcode)
                    self._stop.set()
                    rc = 1
                    break
                log.warning("worker %s exited with %s; starting another", p.pid, p.exitcode)
                q = self._start_one()
                self._procs[i] = q
                started[q.pid] = time.monotonic()
        for p in self._procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: uvicorn finishes in-flight requests, the app's shutdown runs
        for p in self._procs:
            p.join(30)
            if p.is_alive():
                p.kill()
        return rc


def run(host: str, port: int, workers: int, log_level: str = "info", app: str = APP, factory: bool = True) -> int:
    """Serve ``app`` with ``workers`` processes (one process, or no ``SO_REUSEPORT``: plain uvicorn)."""
    if workers > 1 and hasattr(socket, "SO_REUSEPORT"):
        return Supervisor(host, port, workers, log_level, app, factory).run()
    import uvicorn

    uvicorn.run(app, factory=factory, host=host, port=port, workers=workers, log_level=log_level)
    return 0
