"""`safeguard serve --workers 2`: connections reach both workers (``dispatch``: handed out in turn by
the parent; ``reuseport``: a listening socket each), a worker that dies is replaced, and SIGTERM stops
them all."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bench.api_bench import child_pids

from tests.helpers.net import free_port

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; SO_REUSEPORT balancing")


def _sockets(port: int, state: str) -> set[str]:
    """Inodes of the sockets on local ``port`` in ``state`` (/proc/net/tcp*: 0A listening, 01 established)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] == state:
                found.add(f[9])
    return found


def _socket_inodes(pid: int) -> set[str]:
    out = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(target[8:-1])
    return out


def _workers(pid: int, port: int) -> dict[int, set[str]]:
    """The children of ``pid`` that hold a socket listening on ``port``, and those sockets."""
    listening = _sockets(port, "0A")
    found = {}
    for child in child_pids(pid):
        try:
            mine = _socket_inodes(child) & listening
        except OSError:
            continue
        if mine:
            found[child] = mine
    return found


def _spawned(pid: int) -> list[int]:
    """The worker processes of supervisor ``pid`` (multiprocessing's spawned children, not its
    resource tracker)."""
    out = []
    for child in child_pids(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                out.append(child)
        except OSError:
            continue
    return out


def _held(pids: list[int], port: int) -> dict[int, int]:
    """How many established connections to local ``port`` each process holds."""
    established = _sockets(port, "01")
    return {pid: len(_socket_inodes(pid) & established) for pid in pids}


def _wait(cond, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def _healthy(port: int, path: str = "/healthz") -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(params=["dispatch", "reuseport"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, str]]:
    port = free_port()
    env = {**os.environ, "SAFEGUARD_DATA_DIR": str(tmp_path / "data"), "SAFEGUARD_LOG_LEVEL": "warning"}
    env.pop("SAFEGUARD_DATABASE_URL", None)
    env.pop("SAFEGUARD_SERVE_BALANCE", None)
    balance = ["--balance", "reuseport"] if request.param == "reuseport" else []  # dispatch: the default
    proc = subprocess.Popen(
        [sys.executable, "-m", "safeguard.cli", "serve", "--port", str(port), "--workers", "2", *balance],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        listening = 2 if request.param == "reuseport" else 0  # dispatch: only the parent listens

        def up() -> bool:
            return len(_spawned(proc.pid)) == 2 and _healthy(port) and len(_workers(proc.pid, port)) == listening

        _wait(lambda: up() or proc.poll() is not None)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        yield proc, port, request.param
    finally:
        workers = _spawned(proc.pid)  # before the parent goes: then they are init's children
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for child in workers:  # reuseport workers outlive a killed parent (dispatched ones stop)
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


@pytest.mark.parametrize("served", ["dispatch"], indirect=True)
def test_dispatch_hands_connections_to_the_workers_in_turn(served) -> None:  # type: ignore[no-untyped-def]
    """Only the parent listens; twenty keep-alive connections opened one after another are ten and ten
    (a kernel hash over two sockets gives 15/5 or worse about four times in a hundred)."""
    proc, port, _balance = served
    workers = _spawned(proc.pid)
    assert _workers(proc.pid, port) == {}  # no worker holds a listening socket
    assert _socket_inodes(proc.pid) & _sockets(port, "0A")  # the parent does
    clients = [httpx.Client() for _ in range(20)]
    try:
        for c in clients:
            assert c.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        assert sorted(_held(workers, port).values()) == [10, 10]
    finally:
        for c in clients:
            c.close()


@pytest.mark.parametrize("served", ["dispatch"], indirect=True)
def test_dispatched_workers_stop_when_the_supervisor_is_gone(served) -> None:  # type: ignore[no-untyped-def]
    """A killed supervisor (SIGKILL: no clean stop) leaves no orphans serving on: its workers see their
    channel close, finish what they hold and exit."""
    proc, _port, _balance = served
    workers = _spawned(proc.pid)
    proc.kill()
    proc.wait(10)
    _wait(lambda: not any(Path(f"/proc/{w}").exists() and _state(w) != "Z" for w in workers), timeout=40)


@pytest.mark.parametrize("served", ["reuseport"], indirect=True)
def test_each_worker_listens_on_its_own_socket_and_takes_connections(served) -> None:  # type: ignore[no-untyped-def]
    proc, port, _balance = served
    workers = _workers(proc.pid, port)
    assert len(workers) == 2
    a, b = workers.values()
    assert a.isdisjoint(b)  # two sockets, not one shared socket
    url = f"http://127.0.0.1:{port}/healthz"
    _wait(lambda: httpx.get(url, timeout=2).status_code == 200)
    # twenty keep-alive connections held open at once: the kernel hashes them over the two sockets,
    # so each worker holds some of them (all twenty on one worker: odds of about 2 in a million)
    clients = [httpx.Client() for _ in range(20)]
    try:
        for c in clients:
            assert c.get(url, timeout=5).status_code == 200
        held = {pid: len(_socket_inodes(pid) & _sockets(port, "01")) for pid in workers}
        assert sum(held.values()) == 20 and all(n > 0 for n in held.values()), held
    finally:
        for c in clients:
            c.close()


def test_a_dead_worker_is_replaced_and_sigterm_stops_all(served) -> None:  # type: ignore[no-untyped-def]
    proc, port, balance = served
    time.sleep(5.5)  # past the crash-loop guard
    victim = _spawned(proc.pid)[0]
    os.kill(victim, signal.SIGKILL)
    _wait(lambda: len(_spawned(proc.pid)) == 2 and victim not in _spawned(proc.pid))
    kids = _spawned(proc.pid)
    _wait(lambda: _healthy(port) and (balance == "dispatch" or len(_workers(proc.pid, port)) == 2))
    # every connection is answered again, by both workers (a dispatcher skips none, the kernel hashes)
    clients = [httpx.Client() for _ in range(20)]
    try:
        for c in clients:
            assert c.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        assert all(n > 0 for n in _held(kids, port).values())
    finally:
        for c in clients:
            c.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(40) == 0
    assert not any(Path(f"/proc/{k}").exists() and _state(k) != "Z" for k in kids)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


APP = """
async def app(scope, receive, send):
    import os
    if scope["type"] != "http":
        return
    body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
"""


@pytest.mark.parametrize("balance", ["dispatch", "reuseport"])
def test_the_supervisor_serves_any_app_the_same_way(tmp_path: Path, balance: str) -> None:
    """The end-to-end benchmark serves its reference harness through the same supervisor, so both
    sides of a 2-worker row really run two workers, balanced the same way; and its CPU split shows it."""
    from bench.api_bench import split, worker_cpu

    (tmp_path / "plain_app.py").write_text(APP)
    port = free_port()
    code = (
        "from safeguard.api.workers import run; raise SystemExit(run('127.0.0.1', "
        f"{port}, 2, 'warning', app='plain_app:app', factory=False, balance={balance!r}))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stderr=subprocess.PIPE)
    try:
        listening = 2 if balance == "reuseport" else 0

        def up() -> bool:
            return len(_spawned(proc.pid)) == 2 and _healthy(port, "/") and len(_workers(proc.pid, port)) == listening

        _wait(lambda: up() or proc.poll() is not None)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        before = worker_cpu(proc.pid)
        assert set(before) == set(_spawned(proc.pid))
        clients = [httpx.Client() for _ in range(20)]
        try:
            pids = {int(c.get(f"http://127.0.0.1:{port}/", timeout=5).text) for c in clients}
        finally:
            for c in clients:
                c.close()
        assert pids == set(before)  # each worker answered some of the twenty connections
        shares = split(before, {p: before[p] + cpu for p, cpu in zip(before, (0.3, 0.1), strict=True)})
        assert shares == "75/25"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(40) == 0
    finally:
        workers = _spawned(proc.pid)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for child in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


def test_a_served_app_freezes_its_startup_heap(tmp_path: Path) -> None:
    """``create_app_from_env`` (what each ``safeguard serve`` worker runs) leaves the start-up objects
    in the permanent generation, so full collections no longer walk them (docs/performance.md)."""
    code = (
        "import gc; from safeguard.api.app import create_app_from_env; create_app_from_env(); "
        "print(gc.get_freeze_count(), len(gc.get_objects(2)))"
    )
    env = {**os.environ, "SAFEGUARD_DATA_DIR": str(tmp_path / "data"), "SAFEGUARD_LOG_LEVEL": "warning"}
    env.pop("SAFEGUARD_DATABASE_URL", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    frozen, gen2 = (int(x) for x in out.stdout.split())
    assert frozen > 50_000  # the start-up heap
    assert gen2 < frozen // 10  # what a full collection still walks


def test_hand_over_skips_a_full_or_gone_worker_and_gives_up_in_time() -> None:
    """The dispatcher never blocks on one worker: a full queue or a dead worker is skipped, and a
    connection no worker can take is closed after the patience instead of stalling every other."""
    import socket

    from safeguard.api.workers import Supervisor

    sup = Supervisor("127.0.0.1", 0, 2)
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET) for _ in range(2)]
    for ours, _ in pairs:
        ours.setblocking(False)
    sup._channels = [ours for ours, _ in pairs]
    conn, peer = socket.socketpair()  # stands for an accepted client connection
    received: list[int] = []

    def take(worker: int) -> None:
        msg, fds, _flags, _addr = socket.recv_fds(pairs[worker][1], 16, 8)
        assert msg == b"c" and len(fds) == 1
        received.extend(fds)

    try:
        queued = 0
        while True:  # fill worker 0's queue: a busy worker that reads nothing
            try:
                socket.send_fds(pairs[0][0], [b"c"], [conn.fileno()])
            except BlockingIOError:
                break
            queued += 1
        assert queued >= 1
        assert sup._hand_over(conn, 0) == 2  # worker 0 full: worker 1 took it, the next turn is 2
        take(1)
        pairs[1][1].close()  # worker 1 dies
        t = time.monotonic()
        assert sup._hand_over(conn, 0, patience=0.2) == 0  # nobody can take it: given up, not stuck
        assert 0.2 <= time.monotonic() - t < 2
        take(0)  # worker 0 reads one: room again
        assert sup._hand_over(conn, 1) == 3  # worker 1 skipped (gone), worker 0 took it
        assert sup.dispatched == 2
    finally:
        for fd in received:
            os.close(fd)
        for ours, theirs in pairs:
            ours.close()
            theirs.close()
        conn.close()
        peer.close()
