"""Every back-office table downloads as CSV with the filters its page was given, streamed."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from flask import Response, request, stream_with_context


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


def csv_link_args() -> dict[str, str]:
    """The page's own query string with ``format=csv``: for the template's download link."""
    return {**request.args.to_dict(), "format": "csv"}
