"""Group commit: many threads' writes share one transaction, each still durable before it returns.

Scans record a decision, its actions' rows and their events. Committing each on its own costs a
transaction per request; under concurrency the :class:`Recorder` lets one writer thread run every
waiting request's write function inside a single transaction (each in its own SAVEPOINT, so one
failure does not undo the others), commit once, and wake the waiters. A caller returns only after its
work has committed, so nothing acknowledged is lost if the process dies; with one caller at a time
it behaves like a plain transaction.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from safeguard.store.db import Database

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_BATCH = 256


class Recorder:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: queue.SimpleQueue[tuple[Callable[[Session], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pid = 0
        self.batches = 0
        self.items = 0

    def _ensure_thread(self) -> None:
        import os

        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="safeguard-recorder", daemon=True)
                self._thread.start()

    def submit(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` in a write transaction shared with other waiting callers; return its result."""
        if threading.current_thread() is self._thread:  # re-entrant use from inside a batch
            with self.db.write() as s:
                return work(s)
        fut: Future[T] = Future()
        self._ensure_thread()
        self._queue.put((work, fut))
        return fut.result()

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
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

    def _commit(self, batch: list[tuple[Callable[[Session], Any], Future[Any]]]) -> None:
        results: list[tuple[Future[Any], bool, Any]] = []
        try:
            with self.db.write() as s:
                if len(batch) == 1:
                    work, fut = batch[0]
                    results.append((fut, True, work(s)))
                else:
                    for work, fut in batch:
                        try:
                            with s.begin_nested():
                                value = work(s)
                        except Exception as exc:  # this caller's failure (its work or its savepoint); others go on
                            # Locks and rows taken inside the savepoint are gone with it (PostgreSQL releases
                            # row locks on ROLLBACK TO SAVEPOINT): forget what the session cached about them.
                            s.info.clear()
                            results.append((fut, False, exc))
                        else:
                            results.append((fut, True, value))
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
