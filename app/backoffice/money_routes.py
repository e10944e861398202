"""The back office's money pages (added to the blueprint in routes.py): disputes and refunds,
geography, invoices, top customers. Each table downloads as CSV with the page's filters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from flask import render_template, request
from sqlalchemy import func, select
from werkzeug.wrappers import Response as BaseResponse

from app.backoffice import money_queries as queries
from app.backoffice.charts import bar_chart_layout, line_chart_layout
from app.backoffice.csv_export import (
    AnySelect,
    csv_link_args,
    csv_response,
    stream_rows,
    wants_csv,
)
from app.backoffice.money import (
    CountryFigures,
    MonthFigures,
    by_country,
    last_months,
    monthly_figures,
    months_ago,
    plan_histories,
)
from app.backoffice.routes import PAGE_SIZE, bp, page_count, page_of, requested_page
from app.catalog import current_catalog
from app.clock import now
from app.extensions import db
from app.money import to_major

# The chart macros (templates/backoffice/_charts.html) lay their charts out with these.
bp.add_app_template_global(bar_chart_layout)
bp.add_app_template_global(line_chart_layout)

# Stripe's dispute statuses, inquiries (warning_...) first.
DISPUTE_STATUSES = (
    "warning_needs_response",
    "warning_under_review",
    "warning_closed",
    "needs_response",
    "under_review",
    "won",
    "lost",
)
INVOICE_STATUSES = ("draft", "open", "paid", "uncollectible", "void")
# The windows the geography page offers, in months; 0 is all time.
WINDOWS = (1, 3, 6, 12, 24, 0)
CHART_BARS = 12
TOP = 25


@bp.route("/disputes")
def disputes() -> str | BaseResponse:
    """Disputes and refunds, newest first, and their monthly totals with the dispute rate."""
    status = _choice("status", DISPUTE_STATUSES)
    table = request.args.get("table")
    if wants_csv() and table == "refunds":
        return csv_response(
            "refunds", REFUND_HEADER, map(_refund_row, stream_rows(queries.refunds()))
        )
    if wants_csv() and table == "months":
        return csv_response("disputes-by-month", MONTH_HEADER, _month_rows(_months()))
    if wants_csv():
        rows = stream_rows(queries.disputes(status))
        return csv_response("disputes", DISPUTE_HEADER, map(_dispute_row, rows))
    dispute_rows, more_disputes = _paged(queries.disputes(status), "page")
    refund_rows, more_refunds = _paged(queries.refunds(), "refunds_page")
    return render_template(
        "backoffice/disputes.html",
        disputes=dispute_rows,
        more_disputes=more_disputes,
        refunds=refund_rows,
        more_refunds=more_refunds,
        months=_months(),
        status=status,
        statuses=DISPUTE_STATUSES,
        csv_args=csv_link_args(),
    )


DISPUTE_HEADER = ("dispute", "customer", "email", "charge", "amount", "currency", "status",
                  "reason", "evidence_due_by", "created")  # fmt: skip
REFUND_HEADER = ("refund", "customer", "email", "charge", "amount", "currency", "status",
                 "reason", "created")  # fmt: skip
MONTH_HEADER = ("month", "disputes", "disputed", "refunds", "refunded", "successful_charges",
                "dispute_rate")  # fmt: skip


def _dispute_row(row: Any) -> tuple[Any, ...]:
    dispute, reference_id, email = row
    return (dispute.stripe_dispute_id, reference_id, email, dispute.stripe_charge_id,
            _major(dispute.amount, dispute.currency), dispute.currency, dispute.status,
            dispute.reason, _iso(dispute.evidence_due_by), _iso(dispute.created))  # fmt: skip


def _refund_row(row: Any) -> tuple[Any, ...]:
    refund, reference_id, email = row
    return (refund.stripe_refund_id, reference_id, email, refund.stripe_charge_id,
            _major(refund.amount, refund.currency), refund.currency, refund.status,
            refund.reason, _iso(refund.created))  # fmt: skip


def _months() -> list[MonthFigures]:
    months = last_months(now().date())
    since = datetime(months[0].year, months[0].month, 1, tzinfo=UTC)
    return monthly_figures(
        months,
        queries.monthly_disputes(since),
        queries.monthly_refunds(since),
        queries.monthly_successful_charges(since),
    )


def _month_rows(months: list[MonthFigures]) -> Iterator[tuple[Any, ...]]:
    for month in months:
        rate = month.dispute_rate
        yield (f"{month.month:%Y-%m}", month.disputes, _amounts(month.disputed), month.refunds,
               _amounts(month.refunded), month.successful_charges,
               "" if rate is None else f"{rate:.4f}")  # fmt: skip


@bp.route("/geography")
def geography() -> str | BaseResponse:
    """Revenue (succeeded charges net of refunds, over a window) and customers with a live
    subscription, by country."""
    window = request.args.get("months", 12, type=int)
    window = window if window in WINDOWS else 12
    since = months_ago(now(), window) if window else None
    currencies = queries.charge_currencies()
    default_currency = current_catalog().currency
    currency = _choice("currency", currencies) or default_currency
    countries = by_country(
        queries.revenue_by_location(since), queries.live_customers_by_location(), currency
    )
    shown = sorted({*currencies, default_currency} - {""})
    if wants_csv():
        header = ("country", *(f"revenue_{code}" for code in shown), "customers")
        return csv_response("geography", header, _country_rows(countries, shown))
    by_revenue = countries[:CHART_BARS]
    by_customers = sorted(countries, key=lambda c: (c.country is None, -c.customers))[:CHART_BARS]
    return render_template(
        "backoffice/geography.html",
        countries=countries,
        currencies=shown,
        currency=currency,
        window=window,
        windows=WINDOWS,
        csv_args=csv_link_args(),
        revenue_chart=_chart(
            by_revenue,
            f"Revenue ({currency.upper()})",
            lambda c: c.revenue.get(currency, 0),
            "chart-revenue",
        ),
        customers_chart=_chart(by_customers, "Customers", lambda c: c.customers, "chart-customers"),
    )


def _chart(
    countries: list[CountryFigures], name: str, value: Any, css_class: str
) -> dict[str, Any]:
    """A chart's labels and its one series, for the bar_chart macro."""
    return {
        "labels": [c.country or "Unknown" for c in countries],
        "series": [{"name": name, "values": [value(c) for c in countries], "class": css_class}],
    }


def _country_rows(
    countries: list[CountryFigures], currencies: list[str]
) -> Iterator[tuple[Any, ...]]:
    for country in countries:
        revenue = (_major(country.revenue.get(code, 0), code) for code in currencies)
        yield (country.country or "unknown", *revenue, country.customers)


@bp.route("/invoices")
def invoices() -> str | BaseResponse:
    """Every invoice, newest first, found by customer or invoice id, a page at a time."""
    search = request.args.get("q", "").strip()
    status = _choice("status", INVOICE_STATUSES)
    query = queries.invoices(search, status)
    if wants_csv():
        return csv_response("invoices", INVOICE_HEADER, map(_invoice_row, stream_rows(query)))
    total = (
        db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    )
    page = requested_page()
    rows = db.session.execute(query.limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)).all()
    return render_template(
        "backoffice/invoices.html",
        invoices=rows,
        search=search,
        status=status,
        statuses=INVOICE_STATUSES,
        csv_args=csv_link_args(),
        page=page,
        total=total,
        pages=page_count(total),
    )


INVOICE_HEADER = ("invoice", "customer", "email", "status", "amount_due", "amount_paid",
                  "currency", "created", "period_start", "period_end",
                  "hosted_invoice_url")  # fmt: skip


def _invoice_row(row: Any) -> tuple[Any, ...]:
    invoice, reference_id, email = row
    return (invoice.stripe_invoice_id, reference_id, email, invoice.status,
            _major(invoice.amount_due, invoice.currency),
            _major(invoice.amount_paid, invoice.currency), invoice.currency,
            _iso(invoice.created), _iso(invoice.period_start), _iso(invoice.period_end),
            invoice.hosted_invoice_url)  # fmt: skip


@bp.route("/top")
def top_customers() -> str | BaseResponse:
    """The customers who paid the most, and who used a feature the most (this period and all
    time), each with its plan history."""
    catalog = current_catalog()
    features = [key for key, f in catalog.features.items() if f.kind == "metered"]
    feature = _choice("feature", features) or (features[0] if features else "")
    currencies = queries.invoice_currencies()
    currency = _choice("currency", currencies) or catalog.currency
    by_revenue = db.session.execute(queries.top_by_revenue(currency, TOP)).all()
    this_period = db.session.execute(queries.top_by_usage(feature, TOP, this_period=True)).all()
    ever = db.session.execute(queries.top_by_usage(feature, TOP, this_period=False)).all()
    listed = {row[0].id for rows in (by_revenue, this_period, ever) for row in rows}
    histories = plan_histories(queries.subscription_spans(sorted(listed)))
    table = request.args.get("table")
    if wants_csv() and table in ("usage_period", "usage_all"):
        usage = this_period if table == "usage_period" else ever
        rows = ((c.reference_id, c.email, used, _history(histories, c.id)) for c, used in usage)
        return csv_response(f"top-usage-{feature}", ("customer", "email", "units", "plans"), rows)
    if wants_csv():
        header = ("customer", "email", "currency", "paid", "refunded", "net", "plans")
        return csv_response("top-revenue", header, (
            (c.reference_id, c.email, currency, _major(paid, currency),
             _major(refunded, currency), _major(net, currency), _history(histories, c.id))
            for c, paid, refunded, net in by_revenue
        ))  # fmt: skip
    return render_template(
        "backoffice/top_customers.html",
        by_revenue=by_revenue,
        this_period=this_period,
        ever=ever,
        histories=histories,
        currency=currency,
        currencies=sorted({*currencies, catalog.currency}),
        feature=feature,
        features=features,
        unit=catalog.features[feature].units if feature else "units",
        csv_args=csv_link_args(),
    )


def _history(histories: dict[int, Any], customer_id: int) -> str:
    return "; ".join(str(span) for span in histories.get(customer_id, []))


# Shared by the pages.


def _choice(name: str, allowed: Any) -> str | None:
    """The query argument ``name`` when it is one of ``allowed``, else None (every value)."""
    value = request.args.get(name)
    return value if value in allowed else None


def _paged(query: AnySelect, name: str) -> tuple[list[Any], bool]:
    """The page of ``query`` that the argument ``name`` asks for, and whether more follow."""
    return page_of(query, requested_page(name))


def _major(amount: int, currency: str) -> str:
    return str(to_major(amount, currency))


def _amounts(amounts: dict[str, int]) -> str:
    return " ".join(f"{_major(amount, code)} {code}" for code, amount in sorted(amounts.items()))


def _iso(at: datetime | None) -> str | None:
    return at.isoformat(timespec="seconds") if at else None
