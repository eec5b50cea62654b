"""Group commit: many threads' writes share one transaction, each still durable before it returns.

Scans record a decision, its actions' rows and their events. Committing each on its own costs a
transaction per request; under concurrency the :class:`Recorder` lets one writer thread run every
waiting request's write inside a single transaction, commit once, and wake the waiters. A caller
returns only after its work has committed, so nothing acknowledged is lost if the process dies; with
one caller at a time it behaves like a plain transaction.

A write is one of three kinds:

- a function of the session, run in its own SAVEPOINT, so one failure does not undo the others;
- a :class:`Rerunnable` function, which changes nothing but the database. The batch runs all of them
  in one savepoint and, only if that fails, each in its own.
- a :class:`Bulk`: plain rows and events with no logic. The whole batch writes them with one
  multi-row INSERT per table. Most scans are ``allow`` decisions with no actions (one decision row
  and one event), and the ORM's per-object cost was most of their recording time.

A function write may carry :class:`AfterCommit` hooks (``work.after``): local work started before the
write and running beside it (the evidence vault writing a sealed file while the decision commits).
``submit`` returns only when the write has committed *and* that work is done, then tells it the write
committed; if the write failed, it tells it so instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection, Table
from sqlalchemy.orm import Session

from safeguard import events
from safeguard.store import driver
from safeguard.store.db import Database, connection_of

log = logging.getLogger(__name__)
T = TypeVar("T")
W = TypeVar("W", "Bulk", "Rerunnable")
MAX_BATCH = 256


@dataclass
class Bulk:
    """Rows to insert and events to append, as data; ``result`` is what the submitter gets back."""

    rows: list[tuple[Table, dict[str, Any]]] = field(default_factory=list)
    events: list[events.EventDraft] = field(default_factory=list)
    result: Any = None


class AfterCommit:
    """Local work that runs beside a write and must be done before its submitter returns."""

    def __init__(self, future: Future[Any]) -> None:
        self.future = future  # the local work itself (a thread pool's future)

    def wait(self) -> None:
        """Block until the local work is done; raise its error, if any, once the write has committed."""
        self.future.result()

    def committed(self) -> None:
        """The write committed and the local work is done (quick: never blocks on IO)."""

    def abandoned(self) -> None:
        """The write did not commit: undo the local work once it is done (quick: never blocks)."""


class Once:
    """A function write with :class:`AfterCommit` hooks (not rerunnable: it gets its own savepoint)."""

    __slots__ = ("after", "fn")

    def __init__(self, fn: Callable[[Session], Any], after: tuple[AfterCommit, ...] = ()) -> None:
        self.fn = fn
        self.after = after

    def __call__(self, s: Session) -> Any:
        return self.fn(s)


class Rerunnable:
    """A write that changes nothing but the database, so it may run again after a rollback.

    A savepoint per write cost about as much as a matched decision's own statements; a batch's
    rerunnable writes share one, and are rerun one savepoint each only when that fails.
    """

    __slots__ = ("after", "fn")

    def __init__(self, fn: Callable[[Session], Any], after: tuple[AfterCommit, ...] = ()) -> None:
        self.fn = fn
        self.after = after

    def __call__(self, s: Session) -> Any:
        return self.fn(s)


Work = Callable[[Session], Any] | Bulk


def _after(work: Work) -> tuple[AfterCommit, ...]:
    return work.after if isinstance(work, Rerunnable | Once) else ()


def _finish(after: tuple[AfterCommit, ...], ok: bool) -> None:
    """After the write: wait for the local work and report; or, when the write failed, abandon it."""
    if not ok:
        for a in after:
            a.abandoned()
        return
    for a in after:
        a.wait()
    for a in after:
        a.committed()


class _LoopWaiter:
    """Where a :meth:`Recorder.submit_async` caller's outcome goes. The writer thread only notes it; once
    the batch is done, every outcome for one event loop is handed over in a single
    ``call_soon_threadsafe`` (:func:`_deliver`): one wakeup of the loop per batch, where a
    ``concurrent.futures.Future`` per item cost a cross-thread wakeup and two chained futures each.
    It offers the three calls the writer makes on a ``Future``."""

    __slots__ = ("future", "loop", "outcome")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any]) -> None:
        self.loop = loop
        self.future = future
        self.outcome: tuple[bool, Any] | None = None

    def done(self) -> bool:
        return self.outcome is not None

    def set_result(self, value: Any) -> None:
        self.outcome = (True, value)

    def set_exception(self, exc: BaseException) -> None:
        self.outcome = (False, exc)


_Waiter = Future[Any] | _LoopWaiter
_Item = tuple[Work, _Waiter]


def _deliver(batch: list[_Item]) -> None:
    """Hand a finished batch's outcomes to their event loops, one call per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_LoopWaiter]] = {}
    for _, waiter in batch:
        if isinstance(waiter, _LoopWaiter) and waiter.outcome is not None:
            by_loop.setdefault(waiter.loop, []).append(waiter)
    for loop, waiters in by_loop.items():
        try:
            loop.call_soon_threadsafe(_resolve, waiters)
        except RuntimeError:  # the loop has closed: nobody is waiting any more (the writes stand)
            log.debug("recorder: %d results for a closed event loop", len(waiters))


def _resolve(waiters: list[_LoopWaiter]) -> None:
    for w in waiters:
        if w.future.done() or w.outcome is None:  # cancelled while its write was committing
            continue
        ok, value = w.outcome
        if ok:
            w.future.set_result(value)
        else:
            w.future.set_exception(value)


def _grouped(bulks: list[Bulk]) -> tuple[dict[Table, list[dict[str, Any]]], list[events.EventDraft]]:
    by_table: dict[Table, list[dict[str, Any]]] = {}
    drafts: list[events.EventDraft] = []
    for b in bulks:
        for table, row in b.rows:
            by_table.setdefault(table, []).append(row)
        drafts.extend(b.events)
    return by_table, drafts


def write_bulk(s: Session, bulks: list[Bulk]) -> None:
    """Write several :class:`Bulk` items in a session: one executemany per table, one for all their events."""
    by_table, drafts = _grouped(bulks)
    conn = connection_of(s)
    for table, rows in by_table.items():
        driver.inserter(table).executemany(conn, rows)
    if drafts:
        events.append_many(s, drafts)  # the session's chain head: other writes in this session append too


def write_bulk_core(conn: Connection, bulks: list[Bulk]) -> None:
    """:func:`write_bulk` on a Core connection (no session, so the chain head is read and written in SQL)."""
    by_table, drafts = _grouped(bulks)
    for table, rows in by_table.items():
        driver.inserter(table).executemany(conn, rows)
    if drafts:
        events.append_many_core(conn, drafts)


class Recorder:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pid = 0
        self._pending: dict[asyncio.AbstractEventLoop, list[_Item]] = {}  # submit_async, per loop turn
        self._conn: Connection | None = None  # the writer thread's own, for batches of plain rows
        self.batches = 0
        self.items = 0

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                if self._pid != os.getpid() and self._conn is not None:
                    # a forked child: the parent's connection is not ours to use or close
                    _INHERITED.append(self._conn)
                    self._conn = None
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="safeguard-recorder", daemon=True)
                self._thread.start()

    def submit(self, work: Work) -> Any:
        """Run ``work`` (a function of the session, or a :class:`Bulk`) in a write transaction shared with
        other waiting callers; return its result (a Bulk's ``result``) once that transaction has committed."""
        after = _after(work)
        try:
            if threading.current_thread() is self._thread:  # re-entrant use from inside a batch
                with self.db.write() as s:
                    result = _run_one(s, work)
            else:
                fut: Future[Any] = Future()
                self._ensure_thread()
                self._queue.put((work, fut))
                result = fut.result()
        except BaseException:
            _finish(after, ok=False)
            raise
        _finish(after, ok=True)
        return result

    async def submit_async(self, work: Work) -> Any:
        """:meth:`submit` for the event loop: the loop serves other requests while the batch commits.

        Writes submitted during one turn of the loop reach the writer thread together, after the turn:
        requests that arrived together are matched one after another on the loop, and handing each
        to the writer at once let it commit the first alone while the rest were still being matched.
        """
        loop = asyncio.get_running_loop()
        waiter = _LoopWaiter(loop, loop.create_future())
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
            loop.call_soon(self._hand_over, loop)
        pending.append((work, waiter))
        after = _after(work)
        if not after:
            return await waiter.future
        try:
            result = await waiter.future
        except asyncio.CancelledError:
            # the write may still commit: leave the local work as it is (its owner recovers it at start)
            raise
        except BaseException:
            _finish(after, ok=False)
            raise
        for a in after:
            try:
                await asyncio.wrap_future(a.future)
            except Exception:
                await asyncio.to_thread(a.wait)  # lets the hook record the failure, then raises it
        _finish(after, ok=True)  # the futures are done: no waiting left
        return result

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        self._ensure_thread()
        for item in self._pending.pop(loop, ()):
            self._queue.put(item)

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._drop_connection()
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            try:
                self._commit(batch)
            except BaseException as exc:  # never leave a caller waiting on a dead thread
                log.exception("recorder batch failed unexpectedly")
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
            finally:
                _deliver(batch)

    def _commit(self, batch: list[_Item]) -> None:
        if all(isinstance(w, Bulk) for w, _ in batch) and self._commit_bulk_core(batch):
            return
        results: list[tuple[_Waiter, bool, Any]] = []
        try:
            with self.db.write() as s:
                if len(batch) == 1:
                    work, fut = batch[0]
                    results.append((fut, True, _run_one(s, work)))
                else:
                    bulks = [(w, f) for w, f in batch if isinstance(w, Bulk)]
                    reruns = [(w, f) for w, f in batch if isinstance(w, Rerunnable)]
                    for work, fut in batch:
                        if not isinstance(work, Bulk | Rerunnable):
                            results.append(_in_savepoint(s, work, fut))
                    if reruns:
                        results.extend(_reruns_in_savepoint(s, reruns))
                    if bulks:
                        results.extend(_bulks_in_savepoint(s, bulks))
        except Exception as exc:  # the commit itself failed: nobody's work is durable
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        self.batches += 1
        self.items += len(batch)
        for fut, ok, value in results:
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)

    def _commit_bulk_core(self, batch: list[_Item]) -> bool:
        """A batch of plain rows only: write it on a Core connection, no ORM session (the common case:
        a burst of allow decisions). False if it failed; the caller then retries it item by item."""
        bulks = [w for w, _ in batch if isinstance(w, Bulk)]
        try:
            if self._conn is None:
                self._conn = self.db.connect_writer()
            with self.db.write_on(self._conn) as conn:
                write_bulk_core(conn, bulks)
        except Exception:
            log.warning("bulk batch of %d failed; retrying its items one by one", len(batch), exc_info=True)
            self._drop_connection()  # the next batch starts on a fresh one
            return False
        self.batches += 1
        self.items += len(batch)
        for b, (_, fut) in zip(bulks, batch, strict=True):
            fut.set_result(b.result)
        return True

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # a connection that broke mid-batch may fail to close as well
                log.debug("closing the recorder's connection failed", exc_info=True)


#: kept connections inherited from a parent process (never used or closed by the child)
_INHERITED: list[Connection] = []


def _run_one(s: Session, work: Work) -> Any:
    if isinstance(work, Bulk):
        write_bulk(s, [work])
        return work.result
    return work(s)


def _in_savepoint(s: Session, work: Work, fut: _Waiter) -> tuple[_Waiter, bool, Any]:
    try:
        with s.begin_nested():
            value = _run_one(s, work)
    except Exception as exc:  # this caller's failure (its work or its savepoint); others go on
        # Locks and rows taken inside the savepoint are gone with it (PostgreSQL releases row locks on
        # ROLLBACK TO SAVEPOINT): forget what the session cached about them.
        s.info.clear()
        return (fut, False, exc)
    return (fut, True, value)


def _together(
    s: Session, items: list[tuple[W, _Waiter]], run_all: Callable[[list[W]], list[Any]]
) -> list[tuple[_Waiter, bool, Any]]:
    """Run ``items`` together in one savepoint (``run_all`` returns each one's value); if that fails,
    roll it back and run each in its own savepoint, so only the failing ones fail."""
    if len(items) == 1:
        return [_in_savepoint(s, *items[0])]
    try:
        with s.begin_nested():
            values = run_all([work for work, _ in items])
    except Exception:
        s.info.clear()
        return [_in_savepoint(s, work, fut) for work, fut in items]
    return [(fut, True, value) for (_, fut), value in zip(items, values, strict=True)]


_COLLECTING = "recorder_collecting"


def collecting(s: Session) -> Bulk | None:
    """While a batch of :class:`Rerunnable` writes runs in its shared savepoint, the :class:`Bulk`
    that gathers their plain rows and events, written once after the last of them (one INSERT per
    table and one chain append for the whole batch, instead of a few statements per write); else
    ``None``, and the caller writes its rows itself. A write that uses it must not read back what it
    put there."""
    return s.info.get(_COLLECTING)


def _reruns_in_savepoint(s: Session, items: list[tuple[Rerunnable, _Waiter]]) -> list[tuple[_Waiter, bool, Any]]:
    def run_all(works: list[Rerunnable]) -> list[Any]:
        later = s.info[_COLLECTING] = Bulk()
        try:
            values = [work(s) for work in works]
        finally:
            s.info.pop(_COLLECTING, None)
        write_bulk(s, [later])  # inside the shared savepoint: it fails (and reruns) with them
        return values

    return _together(s, items, run_all)


def _bulks_in_savepoint(s: Session, bulks: list[tuple[Bulk, _Waiter]]) -> list[tuple[_Waiter, bool, Any]]:
    def run_all(works: list[Bulk]) -> list[Any]:
        write_bulk(s, works)
        return [b.result for b in works]

    return _together(s, bulks, run_all)
