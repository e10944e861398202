"""SQL shared by the set-wise paths: a batch filters by sets of up to a thousand values."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    JSON,
    ColumnElement,
    Insert,
    Select,
    Text,
    any_,
    bindparam,
    cast,
    column,
    func,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.selectable import TableValuedAlias

from app.extensions import Base, db

T = TypeVar("T")
U = TypeVar("U")
S = TypeVar("S")


def statement_per_dialect(build: Callable[[], S]) -> Callable[[], S]:
    """A statement built once per dialect, not per call: building a statement costs more than
    running it on one row. Its sets are parameters (one_of, pair_in), bound per call."""
    built: dict[str, S] = {}

    @wraps(build)
    def statement() -> S:
        dialect = dialect_name()
        found = built.get(dialect)
        if found is None:
            found = built[dialect] = build()
        return found

    return statement


def one_of(column: QueryableAttribute[T], name: str) -> ColumnElement[bool]:
    """``column IN :name``, the set bound per call as one list; on PostgreSQL
    ``column = ANY(:name)``: one array parameter whatever the set's size, so the statement keeps
    one shape that psycopg prepares once."""
    if is_postgresql():
        return column == any_(bindparam(name, type_=ARRAY(column.expression.type)))
    return column.in_(bindparam(name, expanding=True))


def pair_in(
    first: QueryableAttribute[T], second: QueryableAttribute[U], name: str
) -> ColumnElement[bool]:
    """``(first, second) IN :name``, bound per call with pairs(), so an index on the two columns
    finds exactly those rows (two separate IN lists make SQLite probe every combination)."""
    if is_postgresql():
        wanted = pair_rows(first, second, name)
        return tuple_(first, second).in_(select(wanted.c.first, wanted.c.second))
    return tuple_(first, second).in_(bindparam(name, expanding=True))


def pair_rows(
    first: QueryableAttribute[T], second: QueryableAttribute[U], name: str
) -> TableValuedAlias:
    """PostgreSQL: the pairs bound with pairs(name, ...) as rows of two columns, ``first`` and
    ``second``, typed as the two columns given."""
    firsts = bindparam(f"{name}_first", type_=ARRAY(first.expression.type))
    seconds = bindparam(f"{name}_second", type_=ARRAY(second.expression.type))
    return func.unnest(firsts, seconds).table_valued("first", "second").render_derived()


def pairs(name: str, values: Collection[tuple[T, U]]) -> dict[str, Any]:
    """The parameters of ``pair_in(..., name)`` for these pairs."""
    if is_postgresql():
        return {f"{name}_first": [a for a, _ in values], f"{name}_second": [b for _, b in values]}
    return {name: list(values)}


def insert_rows(statement: Insert, rows: Sequence[Mapping[str, Any]]) -> None:
    """Run an INSERT for many rows as one executemany (psycopg pipelines it); none for no rows."""
    if rows:
        db.session.connection().execute(statement, list(rows))


def dialect_name() -> str:
    """The session's database: ``sqlite`` or ``postgresql``."""
    return db.session.get_bind().dialect.name


def is_postgresql() -> bool:
    """Whether the session's database is PostgreSQL."""
    return dialect_name() == "postgresql"


def recordset(model: type[Base], names: Sequence[str]) -> Select[*tuple[Any, ...]]:
    """PostgreSQL: rows of ``model``'s columns ``names`` as a SELECT from json_to_recordset() of
    one parameter, ``rows`` (bind it with as_recordset()), for an INSERT ... SELECT that takes
    a whole batch in one statement of one shape. An executemany costs a round trip's work per
    row; arrays of text cost psycopg a regular expression per value; orjson writes it in C."""
    table = model.__table__
    derived = (
        func.json_to_recordset(cast(bindparam("rows", type_=Text()), JSON))
        .table_valued(*(column(name, table.c[name].type) for name in names))
        .render_derived(name="batch_rows", with_types=True)
    )
    return select(*derived.c)


def as_recordset(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict[str, str]:
    """The ``rows`` parameter of recordset(model, names). json_to_recordset() ignores keys it
    was not told of, so a row with other keys than ``names`` is refused, not half-written."""
    if set(rows[0]) != set(names):
        raise ValueError(f"rows have keys {sorted(rows[0])}, the statement {sorted(names)}")
    try:
        # orjson writes datetimes in ISO 8601, as PostgreSQL reads them.
        return {"rows": orjson.dumps(rows).decode()}
    except orjson.JSONEncodeError:
        # Past orjson (an integer past 64 bits in a JSON column): the standard library.
        return {"rows": json.dumps(list(rows), default=_json_value)}


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a column value")
