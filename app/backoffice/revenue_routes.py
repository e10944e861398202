"""The revenue page: MRR and ARR now, the last twelve months' movements, trials and churn.

Figures come from the mirror and the recorded revenue history (app/billing/revenue.py), in the
catalog's currency, with a fixed number of queries whatever the data.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import render_template, request
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.backoffice.csv_export import csv_link_args, csv_response, stream_rows, wants_csv
from app.backoffice.revenue import Month, RevenueNow
from app.backoffice.revenue_data import revenue_figures
from app.backoffice.routes import bp
from app.billing.models import RevenueMovement, RevenueSnapshot
from app.money import format_percent


@bp.route("/revenue")
def revenue() -> str | Response:
    """MRR and ARR by tier and plan, the months' movements as a chart and a table, trials."""
    figures = revenue_figures()
    if wants_csv() and request.args.get("table") == "snapshots":
        return csv_response("revenue-snapshots", SNAPSHOT_HEADER, _snapshot_rows())
    if wants_csv() and request.args.get("table") == "plans":
        return csv_response("revenue-by-plan", PLAN_HEADER, _plan_rows(figures.current))
    if wants_csv():
        return csv_response("revenue-movements", MOVEMENT_HEADER, _movement_rows(figures.months))
    return render_template(
        "backoffice/revenue.html",
        figures=figures,
        currency=figures.currency,
        current=figures.current,
        months=figures.months,
        movements=list(RevenueMovement),
        chart=_chart(figures.months),
        csv_args=csv_link_args(),
    )


MOVEMENT_HEADER = [
    "month",
    "opening_mrr",
    *(movement.value for movement in RevenueMovement),
    "closing_mrr",
    "paying_customers",
    "logo_churn",
    "revenue_churn",
]


def _movement_rows(months: list[Month]) -> Iterator[list[Any]]:
    for month in months:
        yield [
            month.start.strftime("%Y-%m"),
            month.opening_mrr,
            *(month.amount(movement) for movement in RevenueMovement),
            month.closing_mrr,
            month.closing_customers,
            format_percent(month.logo_churn),
            format_percent(month.revenue_churn),
        ]


SNAPSHOT_HEADER = [
    "day",
    "plan",
    "tier",
    "currency",
    "mrr",
    "past_due_mrr",
    "subscriptions",
    "trialing",
    "trial_pipeline",
]


def _snapshot_rows() -> Iterator[list[Any]]:
    """Every snapshot, newest day first, read while the response streams."""
    query = select(RevenueSnapshot).order_by(RevenueSnapshot.day.desc(), RevenueSnapshot.plan_key)
    for (row,) in stream_rows(query):
        yield [
            row.day.isoformat(),
            row.plan_key,
            row.tier,
            row.currency,
            row.mrr,
            row.past_due_mrr,
            row.subscriptions,
            row.trialing,
            row.trial_pipeline,
        ]


PLAN_HEADER = [
    "kind",
    "name",
    "mrr",
    "arr",
    "past_due_mrr",
    "subscriptions",
    "trialing",
    "trial_pipeline",
]


def _plan_rows(current: RevenueNow) -> Iterator[list[Any]]:
    for kind, lines in (("tier", current.by_tier), ("plan", current.by_plan)):
        for line in lines:
            yield [
                kind,
                line.name,
                line.mrr,
                line.arr,
                line.past_due_mrr,
                line.subscriptions,
                line.trialing,
                line.trial_pipeline,
            ]


def _chart(months: list[Month]) -> dict[str, Any]:
    labels = [month.start.strftime("%b %y") for month in months]
    return {
        "labels": labels,
        "series": [
            {
                "name": movement.value.capitalize(),
                "values": [month.amount(movement) for month in months],
                "class": f"movement-{movement.value}",
            }
            for movement in RevenueMovement
        ],
        "mrr": [month.closing_mrr for month in months],
    }
