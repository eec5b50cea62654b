"""One submitter at a time per report, across threads and processes.

The submitter's steps are each committed before and after their call to NCMEC, so one submitter resumes
where another stopped; but two submitters working the *same* report at once could both ``POST /submit``.
Before it works a report, a submitter takes that report's lock without waiting, and skips the report if
another holds it:

- PostgreSQL: a session advisory lock (``pg_try_advisory_lock(key, report id)``) on a connection held for
  the work; a process that dies loses its connection and with it the lock, so nothing stays locked.
- SQLite (one machine): an exclusive ``flock`` on a file per report beside the database file; the kernel
  drops it when the process dies.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from safeguard.config import Settings
from safeguard.store import Database

PG_KEY = 0x53475250  # "SGRP": the first key of the two-key advisory lock; the report id is the second


class ReportLocks:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.dir: Path | None = None
        if db.is_sqlite:
            name = make_url(db.url).database
            base = Path(name).parent if name and name != ":memory:" else settings.data_path
            self.dir = base / "report-locks"

    @contextmanager
    def hold(self, report_id: int) -> Iterator[bool]:
        """``True`` inside while this holder has the report's lock; ``False`` when another holds it."""
        if self.dir is not None:
            with self._file_lock(report_id) as got:
                yield got
            return
        with self.db.engine.connect() as conn:
            auto = conn.execution_options(isolation_level="AUTOCOMMIT")
            key = {"k": PG_KEY, "r": report_id & 0x7FFFFFFF}  # the second key is an int4
            got = bool(auto.execute(text("SELECT pg_try_advisory_lock(:k, :r)"), key).scalar())
            try:
                yield got
            finally:
                if got:
                    auto.execute(text("SELECT pg_advisory_unlock(:k, :r)"), key)

    @contextmanager
    def _file_lock(self, report_id: int) -> Iterator[bool]:
        assert self.dir is not None
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / f"report-{report_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
