"""The margin page: revenue, cost and margin by month, tier and plan, the most expensive
features and models, and the customers to look at (margin.py figures them, margin_data.py
queries them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import render_template, request
from werkzeug.wrappers import Response

from app.backoffice.csv_export import csv_response, wants_csv
from app.backoffice.margin import MarginMonth, percent_of
from app.backoffice.margin_data import CSV_HEADER, csv_rows, margin_figures, twelve_months
from app.backoffice.routes import bp

COST_LINES_SHOWN = 10


def parse_month(text: str | None) -> datetime | None:
    """``2026-03`` as the first instant of that month (UTC); None for anything else."""
    try:
        return datetime.strptime(text or "", "%Y-%m").replace(tzinfo=UTC)
    except ValueError:
        return None


@bp.route("/margin")
def margin() -> str | Response:
    """This month's margin, the last 12 months' as a chart and a table, a month by tier and
    plan with its most expensive features and models, and the customers below their floor."""
    month = parse_month(request.args.get("month"))
    if month not in twelve_months():
        month = None
    if wants_csv():
        name = f"margin-{month:%Y-%m}" if month else "margin-12-months"
        return csv_response(name, CSV_HEADER, csv_rows(month))
    figures = margin_figures(month)
    return render_template(
        "backoffice/margin.html",
        figures=figures,
        currency=figures.currency,
        selected=figures.selected,
        chart=_chart(figures.months),
        cost_lines=figures.lines[:COST_LINES_SHOWN],
    )


def _chart(months: list[MarginMonth]) -> dict[str, Any]:
    return {
        "labels": [month.start.strftime("%b %y") for month in months],
        "percents": [percent_of(month.total.margin_ratio) for month in months],
    }
