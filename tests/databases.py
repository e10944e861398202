"""Throwaway databases for a test run: SQLite files, and PostgreSQL databases of the run's own."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager

import psycopg
from sqlalchemy.engine import make_url

POSTGRES_HOWTO = (
    "PostgreSQL runs skipped: set TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres "
    "to run every database test on PostgreSQL too"
)


def postgres_admin_url() -> str | None:
    """The server to create test databases on, from TEST_DATABASE_URL."""
    return os.environ.get("TEST_DATABASE_URL") or None


@contextmanager
def postgres_database(admin_url: str, label: str) -> Iterator[str]:
    """Create a database that only this run uses, yield its SQLAlchemy URL, then drop it."""
    name = f"tollgate_{label}_{uuid.uuid4().hex[:10]}"
    url = make_url(admin_url).set(drivername="postgresql")
    conninfo = url.render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cut_connections(database_url: str, which: str) -> int:
    """Terminate the connections to the database that ``which`` (SQL on pg_stat_activity)
    picks, as a restarting server or a network fault would; how many there were."""
    conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        cut = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"  # noqa: S608 (tests' own SQL)
            f" WHERE datname = current_database() AND pid <> pg_backend_pid() AND {which}"
        ).fetchone()
    assert cut is not None
    return int(cut[0])


def change_from_outside(database_url: str, statement: str) -> None:
    """Run ``statement`` and commit on a connection of its own, as an operator's psql (or
    sqlite3) session would, behind the app's back."""
    url = make_url(database_url)
    if url.get_backend_name() == "postgresql":
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(statement)
        return
    with closing(sqlite3.connect(str(url.database))) as connection:
        connection.execute(statement)
        connection.commit()
