"""Counting the SQL statements a served page runs, for the tests that hold a page's query count
fixed as the data grows (tests/backoffice/test_query_counts.py, tests/billing/...)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, has_request_context, request
from sqlalchemy import event

from app.extensions import db


@contextmanager
def counting_queries(app: Flask) -> Iterator[Counter[str]]:
    """Count the SQL statements run while answering each request, by the request's URL
    (request_key)."""
    counts: Counter[str] = Counter()

    def count(*_: Any) -> None:
        if has_request_context():
            counts[request_key(request.full_path)] += 1

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield counts
    finally:
        event.remove(engine, "before_cursor_execute", count)


def request_key(url: str) -> str:
    """A URL as counting_queries counts it: the path, and the query string when there is one."""
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path
