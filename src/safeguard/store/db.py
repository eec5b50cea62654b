"""Engine and sessions.

SQLite runs in WAL mode with ``synchronous=FULL`` (``SAFEGUARD_SQLITE_SYNCHRONOUS``: every commit is
synced to the WAL before it is acknowledged, so a power cut loses no acknowledged decision; ``NORMAL``
syncs only at checkpoints) and a busy timeout, and write transactions start with ``BEGIN IMMEDIATE`` so
that two processes never both read-then-write on a stale snapshot.
PostgreSQL uses the ordinary driver transactions; appends to the event chain lock its head row.
WAL checkpoints run in a background thread per process (``store/checkpoint.py``), not inside the
commit that happens to fill the log.

SQLite's own wait for its write lock is a sleep-and-retry loop (sleeps of up to 100 ms), so API
worker processes that all record decisions waited far longer than the transactions they queued
behind. Writers to a SQLite file therefore first take an exclusive ``flock`` on ``<db>.writelock``:
the kernel wakes the next writer the moment the lock is released.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from safeguard.errors import ConfigError
from safeguard.store.checkpoint import SAFETY_NET_PAGES, Checkpointer

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: SQLite's own busy wait only
    fcntl = None  # type: ignore[assignment]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: SQLite ``synchronous`` modes an operator may choose (``SAFEGUARD_SQLITE_SYNCHRONOUS``)
SYNCHRONOUS_MODES = ("FULL", "NORMAL")


class Database:
    def __init__(self, url: str, *, echo: bool = False, synchronous: str = "FULL") -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.synchronous = synchronous.strip().upper()
        if self.synchronous not in SYNCHRONOUS_MODES:
            raise ConfigError(
                f"SAFEGUARD_SQLITE_SYNCHRONOUS must be one of {SYNCHRONOUS_MODES}, not {synchronous!r}",
                code="invalid_setting",
            )
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine, self.synchronous)
            self._write_engine: Engine = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        else:
            self._write_engine = self.engine
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._thread_lock = threading.RLock()
        self._lock_depth = 0
        self._lock_fd: int | None = None
        self._lock_pid = 0
        self._lock_path: str | None = None
        self._write = sessionmaker(self._write_engine, expire_on_commit=False)
        #: WAL checkpoints in a background thread, started by the first write (file databases only)
        self.checkpointer: Checkpointer | None = None
        if self.is_sqlite:
            db_file = make_url(url).database
            if db_file and db_file != ":memory:" and "mode=memory" not in url:
                self.checkpointer = Checkpointer(db_file)
                if fcntl is not None:
                    self._lock_path = db_file + ".writelock"

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as s:
            yield s

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on any exception."""
        if self.checkpointer is not None:
            self.checkpointer.ensure_running()
        with self._writer_lock(), self._write() as s, s.begin():
            yield s

    @contextmanager
    def write_connection(self) -> Iterator[Connection]:
        """:meth:`write` without an ORM session: a Core connection in a write transaction."""
        if self.checkpointer is not None:
            self.checkpointer.ensure_running()
        with self._writer_lock(), self._write_engine.begin() as conn:
            yield conn

    def connect_writer(self) -> Connection:
        """A connection for :meth:`write_on`, for a caller that writes often and keeps it open."""
        return self._write_engine.connect()

    @contextmanager
    def write_on(self, conn: Connection) -> Iterator[Connection]:
        """:meth:`write_connection` on a connection the caller keeps between transactions (from
        :meth:`connect_writer`): no pool checkout, reset and return (nor PostgreSQL's liveness ping)
        per transaction. The recorder's writer thread keeps one for its batches of plain rows."""
        if self.checkpointer is not None:
            self.checkpointer.ensure_running()
        with self._writer_lock(), conn.begin():
            yield conn

    @contextmanager
    def _writer_lock(self) -> Iterator[None]:
        """Serialise SQLite writers across threads and processes with a blocking lock (no-op elsewhere)."""
        if self._lock_path is None:
            yield
            return
        with self._thread_lock:
            outermost = self._lock_depth == 0
            fd = self._lock_fd
            if outermost:
                if fd is None or self._lock_pid != os.getpid():  # first use in this (possibly forked) process
                    fd = self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
                    self._lock_pid = os.getpid()
                fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if outermost and fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_UN)

    def migrate(self, settings: Any = None) -> None:
        """Bring the schema to the newest Alembic revision (idempotent). ``settings`` (a ``Settings``): for
        migrations that seal data with a key kept outside the database; without them the environment's."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            cfg.attributes["settings"] = settings
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
        self.engine.dispose()
        if self._lock_fd is not None and self._lock_pid == os.getpid():
            os.close(self._lock_fd)
        self._lock_fd = None


_CONNECTION_KEY = "transaction_connection"


def connection_of(session: Session) -> Connection:
    """``session.connection()``, looked up once per transaction or savepoint. Each ``connection()`` call
    walks the transaction's state machine again, several times per recorded match
    (bench/results/2026-12-06-performance-history.md, section 5, run 20). It must still be called once in each new savepoint: that
    call is what emits the ``SAVEPOINT``. Cached in ``session.info`` with the transaction it belongs
    to; dropped when the outermost transaction ends."""
    current = session.get_nested_transaction() or session.get_transaction()
    got: tuple[SessionTransaction, Connection] | None = session.info.get(_CONNECTION_KEY)
    if got is not None and current is got[0] and not got[1].closed:
        return got[1]
    conn = session.connection()  # begins the session's transaction if there was none
    session.info[_CONNECTION_KEY] = (current or session.get_transaction(), conn)
    return conn


@event.listens_for(Session, "after_transaction_end")
def _forget_connection(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the next transaction may get another connection from the pool
        session.info.pop(_CONNECTION_KEY, None)


_BEGIN = {m: f"BEGIN {m}" for m in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE")}


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")  # one of SYNCHRONOUS_MODES, checked above
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute(f"PRAGMA wal_autocheckpoint={SAFETY_NET_PAGES}")  # Checkpointer does it off the request path
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        # on the DBAPI connection: exec_driver_sql builds a whole execution context for it, a large
        # part of a small write transaction's Python time (bench/results/2026-12-06-performance-history.md, section 5, run 19)
        conn.connection.driver_connection.execute(_BEGIN[mode])
