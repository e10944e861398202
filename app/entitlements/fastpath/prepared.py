"""Reads for the API's hot path: a Core SELECT compiled once per dialect, run on a DBAPI cursor.

An entitlement check is one query of a few indexed lookups (the API key, the customer, its
subscription, counter and credits); through the ORM session and Core's per-call machinery it cost
several times what the database spends on it.
A ``PreparedRead`` keeps what the statement says in SQLAlchemy (types, both dialects) and does
the per-call work itself: bind values through the column types' processors, one ``execute`` on
a connection the thread keeps, result values through the columns' processors.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.engine import Dialect, Engine

from app.extensions import db

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    positional: tuple[str, ...] | None  # the order of qmark parameters; None for named ones
    binds: Mapping[str, Processor]
    constants: Mapping[str, Any]
    results: Sequence[Processor]

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        processed: dict[str, Any] = {}
        for name, process in self.binds.items():
            value = values[name] if name in values else self.constants[name]
            processed[name] = process(value) if process is not None else value
        if self.positional is None:
            return processed
        return [processed[name] for name in self.positional]

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(
            process(value) if process is not None else value
            for process, value in zip(self.results, raw, strict=True)
        )


class PreparedRead:
    """A SELECT whose parameters are ``bindparam(name, required=False)``; values known when it
    is built (a catalog's pool keys, say) are ``literal_execute`` and rendered into the SQL."""

    def __init__(self, statement: Select[*tuple[Any, ...]]) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self.statement.compile(
            dialect=dialect, compile_kwargs={"render_postcompile": True}
        )
        # Literal-execute values are in the SQL now; the rest are placeholders, bound per call
        # from the caller's values or, for constants (LIMIT 1), the statement's own.
        placeholders = (
            compiled.positiontup or [] if compiled.positional else compiled.construct_params()
        )
        binds: dict[str, Processor] = {}
        constants: dict[str, Any] = {}
        for name in placeholders:
            bind = compiled.binds.get(name)
            if bind is None:
                raise ValueError(
                    f"Parameter {name!r} is one of an expanded list: make the list "
                    "literal_execute, or bind it as one value."
                )
            binds[name] = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if bind.value is not None:
                constants[name] = bind.value
        return _Compiled(
            sql=compiled.string,
            positional=tuple(compiled.positiontup or ()) if compiled.positional else None,
            binds=binds,
            constants=constants,
            results=[
                column.type.dialect_impl(dialect).result_processor(dialect, None)
                for column in self.statement.selected_columns
            ],
        )

    def first(self, **values: Any) -> tuple[Any, ...] | None:
        """The first row for ``values``, converted as the ORM would; None when there is none.

        Inside a session transaction it reads there (so it sees that transaction's writes);
        otherwise on the thread's own reading connection, leaving the session as it was.
        """
        engine = db.engine
        compiled = self._compiled.get(engine.dialect.name)
        if compiled is None:
            compiled = self._compiled[engine.dialect.name] = self._compile(engine.dialect)
        parameters = compiled.parameters(values)
        if db.session.registry.has() and db.session().in_transaction():
            in_session = db.session.connection().connection.dbapi_connection
            assert in_session is not None  # a session in a transaction holds its connection
            return self._fetch(in_session, compiled, parameters)
        reader = _reader(engine)
        try:
            return self._fetch(reader, compiled, parameters)
        except Exception:
            # Whatever went wrong, the next read starts on a new connection; if this one had
            # been closed under it (a restarted server), one more try on the new one.
            closed_under_us = _is_closed(reader)
            _drop_reader()
            if not closed_under_us:
                raise
        return self._fetch(_reader(engine), compiled, parameters)

    @staticmethod
    def _fetch(
        connection: Any, compiled: _Compiled, parameters: Sequence[Any] | dict[str, Any]
    ) -> tuple[Any, ...] | None:
        cursor = connection.cursor()
        try:
            cursor.execute(compiled.sql, parameters)
            raw = cursor.fetchone()
        finally:
            cursor.close()
        return None if raw is None else compiled.row(raw)


# Each thread's reading connection, with the engine it came from. Checking a connection out of
# the pool and back in for every call cost a check about a tenth of its CPU: a thread keeps
# one instead, taken from the engine's pool and detached from it, in autocommit on PostgreSQL
# (no BEGIN or ROLLBACK round trips; sqlite3 opens no transaction for a SELECT anyway).
_THREAD = threading.local()


class _Reader:
    """A thread's reading connection, closed when the thread ends (its locals go) or drops it."""

    __slots__ = ("connection", "engine")

    def __init__(self, engine: Engine, connection: Any) -> None:
        self.engine = engine
        self.connection = connection

    def __del__(self) -> None:
        with suppress(Exception):  # closing a broken connection may fail too; it is gone
            self.connection.close()


def _reader(engine: Engine) -> Any:
    held: _Reader | None = getattr(_THREAD, "reader", None)
    if held is not None:
        if held.engine is engine and not _is_closed(held.connection):
            return held.connection
        _drop_reader()  # another app's engine (the tests build many), or closed under us
    pooled = engine.raw_connection()
    pooled.detach()  # the thread's own now: the pool neither counts nor resets it
    connection: Any = pooled.dbapi_connection
    if getattr(connection, "autocommit", None) is False:
        connection.autocommit = True
    _THREAD.reader = _Reader(engine, connection)
    return connection


def _drop_reader() -> None:
    """Close this thread's reading connection, if it has one."""
    _THREAD.reader = None  # the reader closes its connection as it goes


# The main thread's locals outlive the interpreter's teardown: close its reader before that.
atexit.register(_drop_reader)


def _is_closed(connection: Any) -> bool:
    """Whether psycopg knows the connection closed (a server restart, say). sqlite3 has no such
    flag, and nothing closes its connections but _drop_reader()."""
    return bool(getattr(connection, "closed", False))
