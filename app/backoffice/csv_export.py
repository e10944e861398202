"""Every back-office table downloads as CSV with the filters its page was given, streamed."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from flask import Response, request, stream_with_context
from sqlalchemy import Select

from app.extensions import db

# Any statement's type, for the helpers every page's tables share.
AnySelect = Select[*tuple[Any, ...]]


def wants_csv() -> bool:
    """Whether the table was asked for as CSV (``?format=csv`` beside the page's own filters)."""
    return request.args.get("format") == "csv"


def csv_response(filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Response:
    """Stream ``rows`` as a CSV download; the rows are read while the response is written, so
    a long table is never held in memory (pass an iterator over a query)."""

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        for row in rows:
            writer.writerow(["" if value is None else value for value in row])
            if buffer.tell() > 16_384:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    return Response(
        stream_with_context(lines()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'},
    )


def stream_rows(query: AnySelect) -> Iterator[Any]:
    """The rows of ``query`` read a batch at a time, for a CSV download of any length. A
    generator, so the query runs while the response streams, in the session it streams in (a
    query run before the view returns would find its session closed)."""
    yield from db.session.execute(query.execution_options(yield_per=500))


def csv_link_args() -> dict[str, str]:
    """The page's own query string with ``format=csv``: for the template's download link."""
    return {**request.args.to_dict(), "format": "csv"}
