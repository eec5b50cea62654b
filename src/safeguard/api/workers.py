"""Several API worker processes, with the connections spread evenly over them.

uvicorn's ``--workers`` binds one socket in the parent and shares it with every child; whichever
child wakes first accepts. With a few long-lived keep-alive connections (a reverse proxy's upstream
pool, a platform's client pool, the benchmarks' eight connections) that often puts all of them on
one process: in five runs of eight connections against two workers, three sent every request to the
same worker and left the other idle (bench/results/2026-12-06-performance-history.md, section 5).

Two ways to do better (``safeguard serve --balance``, ``SAFEGUARD_SERVE_BALANCE``):

- ``dispatch`` (the default): the parent accepts every connection and hands it to the workers in
  turn, passing the socket itself over a Unix socket (``SCM_RIGHTS``); the worker serves it as if it
  had accepted it. Eight connections over two workers are four and four, always. The parent's cost is
  an ``accept`` and a ``sendmsg`` per connection, nothing per request.
- ``reuseport``: each worker binds its own socket to the address with ``SO_REUSEPORT`` and the kernel
  spreads new connections by a hash of their addresses. Every worker gets a share, but a random one:
  eight connections over two workers split 6/2 or worse about three times in ten (and 98/2 of the
  requests was seen in a benchmark run).

The parent also supervises: it starts the workers (``spawn``, as uvicorn does), restarts one that
dies, and stops them all on SIGINT or SIGTERM. Without ``SO_REUSEPORT`` and ``SCM_RIGHTS`` (not
Linux), :func:`run` falls back to uvicorn's own supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import socket
import threading
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any, cast

log = logging.getLogger(__name__)

APP = "safeguard.api.app:create_app_from_env"
#: a worker that dies this soon after its start is not restarted in a loop: the supervisor gives up
CRASH_LOOP_SECONDS = 5.0
#: how long a dispatched connection may wait for a worker with room in its queue before it is closed
HAND_OVER_SECONDS = 5.0


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` that other sockets with ``SO_REUSEPORT`` may share."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


BALANCES = ("dispatch", "reuseport")


def _worker(host: str, port: int, log_level: str, app: str, factory: bool) -> None:
    import uvicorn

    sock = bind(host, port)
    config = uvicorn.Config(app, factory=factory, host=host, port=port, log_level=log_level)
    uvicorn.Server(config).run(sockets=[sock])


def _dispatched_worker(channel: socket.socket, host: str, port: int, log_level: str, app: str, factory: bool) -> None:
    import uvicorn

    config = uvicorn.Config(app, factory=factory, host=host, port=port, log_level=log_level)
    _served_from(uvicorn.Server, channel)(config).run(sockets=[])


def _served_from(base: type[Any], channel: socket.socket) -> type[Any]:
    """uvicorn's ``Server`` serving the connections that arrive over ``channel`` (one socket per
    message, as :meth:`Supervisor._dispatch` sends them) instead of a listening socket of its own."""

    class DispatchedServer(base):  # type: ignore[misc]  # uvicorn.Server, imported late
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=[])  # the app's start-up (lifespan); no listener
            loop = asyncio.get_running_loop()
            config = self.config

            def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
                # what uvicorn's own startup builds for its listening sockets
                return cast(
                    asyncio.Protocol,
                    config.http_protocol_class(
                        config=config, server_state=self.server_state, app_state=self.lifespan.state, _loop=_loop
                    ),
                )

            taking: set[asyncio.Task[None]] = set()

            async def serve(conn: socket.socket) -> None:
                try:
                    await loop.connect_accepted_socket(create_protocol, conn)
                except OSError:  # the client left before we took it over
                    conn.close()

            def take() -> None:
                try:
                    msg, fds, _flags, _addr = socket.recv_fds(channel, 16, 8)
                except BlockingIOError:
                    return
                except OSError:
                    msg, fds = b"", []
                if not msg:  # end of the channel: the supervisor is gone; finish what is open and stop
                    loop.remove_reader(channel.fileno())
                    self.should_exit = True
                    return
                if not fds:  # the kernel dropped the socket (this process is out of descriptors)
                    log.error("a connection passed to this worker was lost: out of file descriptors?")
                for fd in fds:
                    task = loop.create_task(serve(socket.socket(fileno=fd)))
                    taking.add(task)  # held until done (the loop keeps only a weak reference)
                    task.add_done_callback(taking.discard)

            channel.setblocking(False)
            loop.add_reader(channel.fileno(), take)
            self._channel_open = True

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            if getattr(self, "_channel_open", False):
                asyncio.get_running_loop().remove_reader(channel.fileno())  # take no new connections
                self._channel_open = False
            await super().shutdown(sockets=sockets)

    return DispatchedServer


class Supervisor:
    """Start ``workers`` processes on ``host:port``, keep them running, stop them on a signal.

    ``app`` is uvicorn's import string (Safeguard's app factory by default; the end-to-end benchmark
    serves its reference harness the same way, so both sides get the same balancing)."""

    def __init__(
        self,
        host: str,
        port: int,
        workers: int,
        log_level: str = "info",
        app: str = APP,
        factory: bool = True,
        balance: str = "dispatch",
    ) -> None:
        if balance not in BALANCES:
            raise ValueError(f"balance must be one of {', '.join(BALANCES)}, not {balance!r}")
        self.host, self.port, self.workers, self.log_level = host, port, workers, log_level
        self.app, self.factory, self.balance = app, factory, balance
        self._ctx = multiprocessing.get_context("spawn")
        self._procs: list[BaseProcess] = []
        self._stop = threading.Event()
        self._listener: socket.socket | None = None  # dispatch: the one listening socket, in this process
        self._channels: list[socket.socket | None] = []  # dispatch: this end of each worker's channel
        self.dispatched = 0

    def _start_one(self, slot: int) -> BaseProcess:
        args = (self.host, self.port, self.log_level, self.app, self.factory)
        if self.balance == "reuseport":
            p = self._ctx.Process(target=_worker, args=args, name="safeguard-api")
            p.start()
            return p
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setblocking(False)  # a busy worker's full queue must not stall the dispatcher
        p = self._ctx.Process(target=_dispatched_worker, args=(theirs, *args), name="safeguard-api")
        p.start()  # the child has its own copy of its end now
        theirs.close()
        old, self._channels[slot] = self._channels[slot], ours
        if old is not None:
            old.close()
        return p

    def _dispatch(self) -> None:
        """Accept connections and hand each to the next worker (see :meth:`_hand_over`)."""
        assert self._listener is not None
        turn = 0
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                if self._stop.is_set():
                    return
                log.warning("accept failed", exc_info=True)
                time.sleep(0.01)
                continue
            try:
                turn = self._hand_over(conn, turn)
            except Exception:  # one connection's trouble must not stop the dispatcher
                log.exception("could not hand a connection to a worker")
            finally:
                conn.close()  # the worker holds its own copy now

    def _hand_over(self, conn: socket.socket, turn: int, patience: float = HAND_OVER_SECONDS) -> int:
        """Pass ``conn`` to the worker at ``turn``, or the next one that takes it: a worker that is gone,
        being replaced, or has a full queue (the channels do not block; one holds a few hundred
        unread connections, by its socket buffer) is skipped. If none takes it within ``patience``
        seconds it is closed. Returns the next turn."""
        with contextlib.suppress(OSError):  # a client that has already gone
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        deadline = time.monotonic() + patience
        while True:
            n = len(self._channels)
            for k in range(n):
                channel = self._channels[(turn + k) % n]
                if channel is None:
                    continue
                try:
                    socket.send_fds(channel, [b"c"], [conn.fileno()])
                except OSError:  # full (BlockingIOError), or that worker died or is being replaced
                    continue
                self.dispatched += 1
                return turn + k + 1
            if time.monotonic() > deadline or self._stop.is_set():
                log.error("no worker took a connection within %.1f s; closing it", patience)
                return turn
            time.sleep(0.005)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stop.set()

    def run(self) -> int:
        # bind here first: a taken port fails now, in the parent, with a clear error
        sock = bind(self.host, self.port)
        if self.balance == "reuseport":
            sock.close()
        else:
            sock.listen(2048)
            self._listener = sock
            self._channels = [None] * self.workers
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        started = {}
        for slot in range(self.workers):
            p = self._start_one(slot)
            self._procs.append(p)
            started[p.pid] = time.monotonic()
        dispatcher = threading.Thread(target=self._dispatch, name="safeguard-dispatch", daemon=True)
        if self._listener is not None:
            dispatcher.start()
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
                q = self._start_one(i)
                self._procs[i] = q
                started[q.pid] = time.monotonic()
        if self._listener is not None:  # no new connections; the workers finish the ones they hold
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the dispatcher's accept
            self._listener.close()
            dispatcher.join(5)
        for p in self._procs:
            if p.is_alive():
                p.terminate()  # SIGTERM: uvicorn finishes in-flight requests, the app's shutdown runs
        for p in self._procs:
            p.join(30)
            if p.is_alive():
                p.kill()
        for channel in self._channels:
            if channel is not None:
                channel.close()
        return rc


def run(
    host: str,
    port: int,
    workers: int,
    log_level: str = "info",
    app: str = APP,
    factory: bool = True,
    balance: str = "dispatch",
) -> int:
    """Serve ``app`` with ``workers`` processes, connections spread by ``balance`` (see the module's
    notes); one process, or a platform without ``SO_REUSEPORT`` and ``SCM_RIGHTS``: plain uvicorn."""
    if workers > 1 and hasattr(socket, "SO_REUSEPORT") and hasattr(socket, "send_fds"):
        return Supervisor(host, port, workers, log_level, app, factory, balance).run()
    import uvicorn

    uvicorn.run(app, factory=factory, host=host, port=port, workers=workers, log_level=log_level)
    return 0
