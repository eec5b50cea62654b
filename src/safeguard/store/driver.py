"""A few hot statements run straight on the DBAPI cursor, with SQLAlchemy's own SQL and bind processing.

``Connection.execute`` spends tens of microseconds of Python on every call before the database sees
the statement (execution context, parameter construction, result setup). The recorder commits a
transaction of a handful of decisions in five statements. Through Core that overhead was most of
the transaction's cost. So those statements are compiled once per dialect (and per column set, for
INSERTs) by SQLAlchemy itself, and their parameters go through the same bind processors
(``TypeDecorator``s, JSON, dates) that ``execute`` would apply. Then they run on the connection's DBAPI
cursor, inside the same transaction.

A statement whose compiled form needs anything this does not reproduce (a column default computed
at execution time, a bind with no value given) is run through ``Connection.execute`` instead.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.expression import ClauseElement, Executable

_Processor = Callable[[Any], Any] | None


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # bind names, in the order a positional paramstyle wants them
    positional: bool
    processors: tuple[_Processor, ...]
    literals: dict[str, Any]  # binds with a value fixed in the statement (``WHERE id = 1``), processed

    def params(self, values: Mapping[str, Any]) -> Any:
        vals = [
            (p(values[n]) if p else values[n]) if n in values else self.literals[n]
            for n, p in zip(self.names, self.processors, strict=True)
        ]
        return tuple(vals) if self.positional else dict(zip(self.names, vals, strict=True))


class Prepared:
    """A statement built once (keep it at module level) and run on the DBAPI cursor; compiled once per
    dialect and set of parameter names."""

    def __init__(self, stmt: ClauseElement) -> None:
        self.stmt = stmt
        self._compiled: dict[tuple[str, tuple[str, ...]], _Compiled | None] = {}

    def _compile(self, conn: Connection | Engine, keys: tuple[str, ...]) -> _Compiled | None:
        dialect = conn.dialect
        ck = (dialect.name, keys)
        if ck in self._compiled:
            return self._compiled[ck]
        stmt = self.stmt
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys) if isinstance(stmt, Insert) else None)
        out: _Compiled | None = None
        if isinstance(compiled, SQLCompiler):
            names = tuple(compiled.positiontup or ()) if compiled.positional else tuple(compiled.bind_names.values())
            binds = compiled.binds
            procs = {n: binds[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names}
            # values fixed in the statement go through their bind processor too, once, here
            literals = {
                n: (procs[n] or _same)(binds[n].effective_value)
                for n in names
                if n not in keys and not binds[n].required
            }
            complete = all(n in keys or n in literals for n in names)
            computed = getattr(compiled, "insert_prefetch", None) or getattr(compiled, "postfetch", None)
            if complete and not computed:
                processors = tuple(procs[n] for n in names)
                out = _Compiled(str(compiled), names, bool(compiled.positional), processors, literals)
        self._compiled[ck] = out
        return out

    def executemany(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """``conn.execute(stmt, rows)`` (every row with the same keys), on the DBAPI cursor."""
        if not rows:
            return
        c = self._compile(conn, tuple(rows[0]))
        if c is None:
            conn.execute(cast(Executable, self.stmt), list(rows))
            return
        cur = conn.connection.cursor()
        try:
            if len(rows) == 1:
                cur.execute(c.sql, c.params(rows[0]))
            else:
                cur.executemany(c.sql, [c.params(r) for r in rows])
        finally:
            cur.close()

    def first(self, conn: Connection, values: Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
        """The first row of ``conn.execute(stmt, values)`` as a plain tuple, or ``None``. No result
        processing: use it for columns whose values need none, such as integers and strings."""
        values = values or {}
        c = self._compile(conn, tuple(values))
        if c is None:
            row = conn.execute(cast(Executable, self.stmt), dict(values)).first()
            return None if row is None else tuple(row)
        cur = conn.connection.cursor()
        try:
            cur.execute(c.sql, c.params(values))
            got = cur.fetchone()
        finally:
            cur.close()
        return None if got is None else tuple(got)

    def all(self, conn: Connection, values: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Every row of ``conn.execute(stmt, values)`` as plain tuples. No result processing, as for
        :meth:`first`: a JSON column arrives as the driver gives it (text on SQLite)."""
        values = values or {}
        c = self._compile(conn, tuple(values))
        if c is None:
            return [tuple(r) for r in conn.execute(cast(Executable, self.stmt), dict(values))]
        return _fetch_all(conn.connection, c, values)

    def read(self, engine: Engine, values: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """:meth:`all` outside any transaction: on a pooled DBAPI connection, with no SQLAlchemy
        ``Connection`` and no BEGIN (SQLite runs the single SELECT in its own implicit transaction, a
        consistent snapshot). For one short read on the request path, where checking out a
        ``Connection``, beginning and rolling back cost more than the query (docs/performance.md,
        section 5, run 20)."""
        values = values or {}
        c = self._compile(engine, tuple(values))
        if c is None:
            with engine.connect() as conn:
                return self.all(conn, values)
        raw = engine.raw_connection()
        try:
            return _fetch_all(raw, c, values)
        finally:
            raw.close()  # back to the pool, which rolls back whatever the driver began (PostgreSQL)


def _fetch_all(dbapi_conn: Any, c: _Compiled, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    cur = dbapi_conn.cursor()
    try:
        cur.execute(c.sql, c.params(values))
        return [tuple(r) for r in cur.fetchall()]
    finally:
        cur.close()


def json_column(value: Any) -> Any:
    """A JSON column's value from a raw row: text on SQLite (parsed here, once per distinct text, so
    callers must only read the result), already parsed by psycopg."""
    return _parsed_json(value) if isinstance(value, str | bytes) else value


@functools.lru_cache(maxsize=1024)
def _parsed_json(text: str | bytes) -> Any:
    return json.loads(text)


_INSERTS: dict[Table, Prepared] = {}


def inserter(table: Table) -> Prepared:
    """The plain ``table.insert()``, prepared (one per table)."""
    got = _INSERTS.get(table)
    if got is None:
        got = _INSERTS[table] = Prepared(table.insert())
    return got
