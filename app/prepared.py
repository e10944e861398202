"""Reads for the API's hot path: a Core SELECT compiled once per dialect, run on a DBAPI cursor.

An entitlement check is one query of a few indexed lookups (the API key, the customer, its
subscription, counter and credits); through the ORM session and Core's per-call machinery it cost
several times what the database spends on it.
A ``PreparedRead`` keeps what the statement says in SQLAlchemy (types, both dialects) and does
the per-call work itself: bind values through the column types' processors, one ``execute`` on
a pooled connection, result values through the columns' processors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask, g
from sqlalchemy import Select
from sqlalchemy.engine import Dialect

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
        otherwise on a pooled connection of the app context's own (a request's prepared reads
        share one, returned when the context ends), leaving the session as it was.
        """
        engine = db.engine
        compiled = self._compiled.get(engine.dialect.name)
        if compiled is None:
            compiled = self._compiled[engine.dialect.name] = self._compile(engine.dialect)
        return self._fetch(_connection(), compiled, compiled.parameters(values))

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


def _connection() -> Any:
    """The DBAPI connection to read on: the session's, if it is in a transaction, else one
    checked out for this app context."""
    if db.session.registry.has() and db.session().in_transaction():
        in_session = db.session.connection().connection.dbapi_connection
        assert in_session is not None  # a session in a transaction holds its connection
        return in_session
    pooled = g.get(_CONNECTION)
    if pooled is None:
        pooled = db.engine.raw_connection()
        # Reads only: in autocommit, psycopg sends no BEGIN before them and no ROLLBACK after,
        # two round trips fewer. (sqlite3 opens no transaction for a SELECT anyway.)
        reader: Any = pooled.dbapi_connection
        if getattr(reader, "autocommit", None) is False:
            reader.autocommit = True
            setattr(g, _AUTOCOMMIT_SET, True)
        setattr(g, _CONNECTION, pooled)
    return pooled


_CONNECTION = "_prepared_read_connection"
_AUTOCOMMIT_SET = "_prepared_read_autocommit"


def init_app(app: Flask) -> None:
    """Return an app context's read connection to the pool (rolled back) when it ends."""

    @app.teardown_appcontext
    def _release(_error: BaseException | None) -> None:
        pooled = g.pop(_CONNECTION, None)
        if pooled is not None:
            if g.pop(_AUTOCOMMIT_SET, False):
                reader: Any = pooled.dbapi_connection
                reader.autocommit = False  # as the pool's other users expect
            pooled.close()
