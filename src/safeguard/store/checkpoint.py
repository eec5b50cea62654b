"""SQLite WAL checkpoints off the request path.

In WAL mode SQLite copies the log back into the database file (a *checkpoint*, with an fsync) inside
whichever commit pushes the log past ``wal_autocheckpoint`` pages. That commit, and every request
waiting on it, then takes 5-15 ms longer: measured as most of the p99 of a grooming message on SQLite
(docs/grooming.md). So each process that writes runs one :class:`Checkpointer` thread with its own
connection, which checkpoints in ``PASSIVE`` mode (it never waits for, or blocks, readers and writers)
every ``interval`` seconds. The connections' own automatic checkpoint stays on with a high threshold
as a safety net, so the log still cannot grow without bound if this thread falls behind.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading

log = logging.getLogger(__name__)

#: the connections' own checkpoint threshold (pages): reached only if the background thread falls behind
SAFETY_NET_PAGES = 16_000


class Checkpointer:
    def __init__(self, path: str, interval: float = 0.25) -> None:
        self.path = path
        self.interval = interval
        self.runs = 0
        self.frames = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def ensure_running(self) -> None:
        """Start the thread in this process (once; again after a fork)."""
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="safeguard-wal-checkpoint", daemon=True)
                self._thread.start()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """One PASSIVE checkpoint; counts the frames now in the database file."""
        _busy, _log_frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.runs += 1
        self.frames += max(0, int(done))

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=1.0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            log.exception("WAL checkpointer could not open %s; SQLite's own checkpoints remain", self.path)
            return
        try:
            while not self._stop.wait(self.interval):
                try:
                    self.checkpoint(conn)
                except sqlite3.Error as exc:  # busy or locked: the next round tries again
                    log.debug("WAL checkpoint skipped: %s", exc)
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            self._thread.join(timeout=5)
