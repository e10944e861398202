"""Rows in bulk: COPY on PostgreSQL, multi-row INSERTs elsewhere."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import JSON, Connection, Table, insert

from app.extensions import db


def table(name: str) -> Table:
    """The application's table called ``name``."""
    return db.metadata.tables[name]


class Writer:
    """Bulk rows into one connection: COPY on PostgreSQL, multi-row INSERTs elsewhere."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.postgres = connection.dialect.name == "postgresql"
        self.rows = 0

    def write(self, table: Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
        """Write ``rows``, each a tuple of ``columns`` in order (plain values: str, not enums)."""
        as_json = [isinstance(table.c[name].type, JSON) for name in columns]
        if self.postgres:
            raw = self.connection.connection.dbapi_connection
            assert raw is not None
            statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
            with raw.cursor() as cursor, cursor.copy(statement) as copy:  # type: ignore[attr-defined]
                for row in rows:
                    if any(as_json):
                        row = tuple(
                            json.dumps(v) if j and v is not None else v
                            for v, j in zip(row, as_json, strict=True)
                        )
                    copy.write_row(row)
                    self.rows += 1
            return
        chunk: list[dict[str, Any]] = []
        for row in rows:
            chunk.append(dict(zip(columns, row, strict=True)))
            if len(chunk) == 5_000:
                self._insert(table, chunk)
                chunk = []
        if chunk:
            self._insert(table, chunk)

    def _insert(self, table: Table, chunk: list[dict[str, Any]]) -> None:
        self.connection.execute(insert(table), chunk)
        self.rows += len(chunk)
