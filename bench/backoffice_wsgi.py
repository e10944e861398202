"""Tollgate as wsgi.py serves it, with each answer saying in ``X-Bench-Queries`` how many SQL
statements the request ran (for bench/backoffice_volume.py)."""

from __future__ import annotations

from typing import Any

from flask import Response, g, has_request_context
from sqlalchemy import event

from app import create_app
from app.extensions import db

app = create_app()
with app.app_context():
    engine = db.engine


@event.listens_for(engine, "before_cursor_execute")
def _count(*_: Any) -> None:
    if has_request_context():
        g.bench_queries = g.get("bench_queries", 0) + 1


@app.after_request
def _say_how_many(response: Response) -> Response:
    response.headers["X-Bench-Queries"] = str(g.get("bench_queries", 0))
    return response
