"""SQL shared by the set-wise paths: a batch filters by sets of up to a thousand values."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    ColumnElement,
    Insert,
    Select,
    Text,
    any_,
    cast,
    column,
    func,
    literal,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import QueryableAttribute

from app.extensions import Base, db

T = TypeVar("T")
U = TypeVar("U")


def one_of(column: QueryableAttribute[T], values: Collection[T]) -> ColumnElement[bool]:
    """``column IN values``; on PostgreSQL ``column = ANY(array)``: one parameter instead of one
    per value, so the statement keeps one shape that psycopg parses once, not per batch."""
    if db.session.get_bind().dialect.name == "postgresql":
        array: Any = literal(list(values), ARRAY(column.expression.type))
        return column == any_(array)
    return column.in_(values)


def pair_in(
    first: QueryableAttribute[T], second: QueryableAttribute[U], pairs: Collection[tuple[T, U]]
) -> ColumnElement[bool]:
    """``(first, second) IN pairs``, so an index on the two columns finds exactly those rows
    (two separate IN lists make SQLite probe every combination)."""
    if db.session.get_bind().dialect.name == "postgresql":
        firsts: Any = literal([a for a, _ in pairs], ARRAY(first.expression.type))
        seconds: Any = literal([b for _, b in pairs], ARRAY(second.expression.type))
        wanted = func.unnest(firsts, seconds).table_valued("first", "second").render_derived()
        return tuple_(first, second).in_(select(wanted.c.first, wanted.c.second))
    return tuple_(first, second).in_(list(pairs))


def insert_rows(statement: Insert, rows: Sequence[Mapping[str, Any]]) -> None:
    """Run an INSERT for many rows as one executemany (psycopg pipelines it); none for no rows."""
    if rows:
        db.session.connection().execute(statement, list(rows))


def is_postgresql() -> bool:
    """Whether the session's database is PostgreSQL."""
    return db.session.get_bind().dialect.name == "postgresql"


def recordset(model: type[Base], rows: Sequence[Mapping[str, Any]]) -> Select[*tuple[Any, ...]]:
    """PostgreSQL: ``rows`` (each with the same keys, in ``model``'s columns) as a SELECT from
    json_to_recordset() of one JSON parameter, for an INSERT ... SELECT that takes a whole batch
    in one statement of one shape. An executemany costs a round trip's work per row; arrays of
    text cost psycopg a regular expression per value; json.dumps is C."""
    table = model.__table__
    document = json.dumps(list(rows), default=_json_value)
    derived = (
        func.json_to_recordset(cast(literal(document, Text()), JSON))
        .table_valued(*(column(name, table.c[name].type) for name in rows[0]))
        .render_derived(name="batch_rows", with_types=True)
    )
    return select(*derived.c)


def _json_value(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a column value")
