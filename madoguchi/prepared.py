"""Statements of the burst's hot path, compiled once and run straight on the DB-API driver (R9.2).

SQLAlchemy Core costs ~60–100 µs of Python per execution (execution context, events, result
wrapping) even for a cached statement; the resident's booking sends a handful of statements while
it holds SQLite's write lock, so that overhead was most of the lock's hold time and a fifth of the
request (profiled). A ``DriverStatement`` is still written as a Core statement — the same table
objects, types and dialects — but it is compiled once per dialect, its bind processors are looked
up once, and each execution is one call on the driver's cursor inside the session's transaction.

Only statements whose parameters are all named bind parameters belong here (no Python-side column
defaults: an INSERT lists every column it sets). Driver errors are raised as SQLAlchemy's own
exception classes, so callers catch ``IntegrityError`` as for any other statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

from sqlalchemy import bindparam, insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError


@dataclass(frozen=True)
class _Compiled:
    sql: str
    # Positional drivers (SQLite's qmark) take a tuple in this order, each value through its bind
    # processor (or none); named ones (psycopg) a dict.
    order: tuple[tuple[str, Any], ...] | None
    processors: dict[str, Any]


class DriverStatement:
    """A Core statement with named bind parameters, run on the driver of a SQLAlchemy connection."""

    def __init__(self, statement):
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def _for(self, dialect) -> _Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            done = self.statement.compile(dialect=dialect)
            processors = {}
            for name, bind in done.binds.items():
                # The dialect's own type (SQLite's DATETIME writes its own text form): the generic
                # type's processor would let the driver format it, which compares differently.
                processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if processor is not None:
                    processors[name] = processor
            order = (
                tuple((name, processors.get(name)) for name in done.positiontup) if done.positional else None
            )
            compiled = self._compiled[dialect.name] = _Compiled(done.string, order, processors)
        return compiled

    def _parameters(self, compiled: _Compiled, values: dict):
        if compiled.order is not None:
            return tuple(
                [values[name] if bind is None else bind(values[name]) for name, bind in compiled.order]
            )
        processors = compiled.processors
        if processors:
            values = {k: (processors[k](v) if k in processors else v) for k, v in values.items()}
        return values

    def execute(self, conn: Connection, values: dict):
        """Run once with ``values``; returns the driver's cursor (rows of RETURNING or a SELECT)."""
        compiled = self._for(conn.dialect)
        return self._call(conn, compiled, "execute", self._parameters(compiled, values))

    def execute_many(self, conn: Connection, rows: list[dict]) -> None:
        """Run once per row in one driver call (``executemany``)."""
        compiled = self._for(conn.dialect)
        self._call(conn, compiled, "executemany", [self._parameters(compiled, row) for row in rows])

    def first(self, conn: Connection, values: dict) -> tuple | None:
        """The first row, or None. Every row is fetched: SQLite finishes a statement (a DELETE …
        RETURNING included) only when it has been stepped to its end."""
        rows = self.execute(conn, values).fetchall()
        return rows[0] if rows else None

    def scalar(self, conn: Connection, values: dict):
        """The first column of the first row, or None."""
        row = self.first(conn, values)
        return None if row is None else row[0]

    @staticmethod
    def _call(conn: Connection, compiled: _Compiled, method: str, parameters):
        driver = conn.connection.driver_connection
        cursor = driver.cursor()
        try:
            getattr(cursor, method)(compiled.sql, parameters)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise_driver_error(conn, compiled.sql, exc, cursor)
        return cursor


def raise_driver_error(conn, sql: str, exc: Exception, cursor=None) -> NoReturn:
    """Raise a driver error of ``conn`` (a SQLAlchemy ``Connection`` or an ``extensions.DriverLink``)
    as SQLAlchemy's exception class, invalidating a dead connection first."""
    if conn.dialect.is_disconnect(exc, conn.connection.driver_connection, cursor):
        # As SQLAlchemy does: the pool must not hand this connection out again.
        conn.invalidate(exc)
    # The statement, never the parameters: they may hold personal values (standard 4).
    raise DBAPIError.instance(sql, None, exc, conn.dialect.loaded_dbapi.Error, hide_parameters=True) from exc


class InsertStatement(DriverStatement):
    """A single-row INSERT of named columns, each a bind parameter of its name (``insert_of``)."""

    def __init__(self, table, columns: tuple[str, ...]):
        self.table, self.columns = table, columns
        super().__init__(self.prefixed(""))

    def prefixed(self, prefix: str):
        """The same INSERT with its bind parameters named ``prefix`` + column."""
        return insert(self.table).values({name: bindparam(prefix + name) for name in self.columns})


def insert_of(table, columns: str) -> InsertStatement:
    """An INSERT into ``table`` of the space-separated ``columns``, each a bind parameter of its name.
    Every column is named: a DriverStatement runs no Python-side column default."""
    return InsertStatement(table, tuple(columns.split()))


# The combined statements of ``insert_rows``, one per sequence of INSERTs (a handful of shapes).
_TOGETHER: dict[tuple[InsertStatement, ...], DriverStatement] = {}


def insert_rows(conn, rows: list[tuple[InsertStatement, dict]]) -> None:
    """Run single-row INSERTs, in one round trip on PostgreSQL.

    There the first row is the statement's INSERT and the others are data-modifying CTEs (WITH …
    INSERT), which PostgreSQL runs exactly once each, whether or not they are referenced. The
    statement keeps its server-side prepared plan; foreign keys are checked at its end, so a row
    may refer to another of the same statement (an event to its booking). Measured on the booking's
    confirmation (R9.2): three INSERTs, one of them an ``executemany``, cost more in waits and
    driver calls than the rest of its statements together. SQLite has no DML in WITH, and its
    statements are calls into the same process: one after another there.
    """
    if conn.dialect.name != "postgresql" or len(rows) == 1:
        for statement, values in rows:
            statement.execute(conn, values)
        return
    shape = tuple(statement for statement, _values in rows)
    combined = _TOGETHER.get(shape)
    if combined is None:
        main, *others = (statement.prefixed(f"r{i}_") for i, statement in enumerate(shape))
        ctes = [other.cte(f"row_{i}") for i, other in enumerate(others, 1)]
        combined = _TOGETHER[shape] = DriverStatement(main.add_cte(*ctes))
    combined.execute(
        conn, {f"r{i}_{name}": value for i, (_s, values) in enumerate(rows) for name, value in values.items()}
    )
