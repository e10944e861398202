"""What the money pages read from the mirror: each a fixed number of statements, aggregated in
SQL, whatever the number of customers (the figures themselves are in money.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    case,
    cast,
    extract,
    func,
    not_,
    or_,
    select,
)
from sqlalchemy.orm import InstrumentedAttribute

from app.accounts.mirror import LIVE_STATUSES, Charge, Dispute, Invoice, Refund, Subscription
from app.accounts.models import Customer
from app.backoffice.money import (
    INQUIRY_PREFIX,
    REFUNDS_NOT_COUNTED,
    CountryCustomers,
    CountryRevenue,
    MonthlyAmounts,
    SubscriptionSpan,
)
from app.entitlements.fastpath.check_read import period_key_sql
from app.entitlements.models import UsageCounter
from app.extensions import db

SUCCEEDED = "succeeded"


def _counted_refund() -> ColumnElement[bool]:
    return or_(Refund.status.is_(None), Refund.status.not_in(REFUNDS_NOT_COUNTED))


def _chargeback() -> ColumnElement[bool]:
    return not_(Dispute.status.startswith(INQUIRY_PREFIX))


def _year_month(column: InstrumentedAttribute[datetime]) -> tuple[Any, Any]:
    return cast(extract("year", column), Integer), cast(extract("month", column), Integer)


# Disputes and refunds.


def disputes(status: str | None) -> Select[Dispute, str, str | None]:
    """Disputes with their customer, newest first; of one status when given."""
    query = select(Dispute, Customer.reference_id, Customer.email).join(
        Customer, Customer.id == Dispute.customer_id
    )
    if status:
        query = query.where(Dispute.status == status)
    return query.order_by(Dispute.created.desc(), Dispute.id.desc())


def refunds() -> Select[Refund, str, str | None]:
    """Refunds with their customer, newest first."""
    return (
        select(Refund, Customer.reference_id, Customer.email)
        .join(Customer, Customer.id == Refund.customer_id)
        .order_by(Refund.created.desc(), Refund.id.desc())
    )


def monthly_disputes(since: datetime) -> list[MonthlyAmounts]:
    """Chargebacks opened since ``since``: per month and currency, how many and how much."""
    return _monthly(Dispute, Dispute.created >= since, _chargeback())


def monthly_refunds(since: datetime) -> list[MonthlyAmounts]:
    """Refunds made since ``since`` that gave money back: per month and currency."""
    return _monthly(Refund, Refund.created >= since, _counted_refund())


def _monthly(
    model: type[Dispute] | type[Refund], *where: ColumnElement[bool]
) -> list[MonthlyAmounts]:
    year, month = _year_month(model.created)
    rows = db.session.execute(
        select(year, month, model.currency, func.count(), func.sum(model.amount))
        .where(*where)
        .group_by(year, month, model.currency)
    )
    return [(y, m, currency, count, int(amount)) for y, m, currency, count, amount in rows]


def monthly_successful_charges(since: datetime) -> list[tuple[int, int, int]]:
    """How many charges succeeded each month since ``since``."""
    year, month = _year_month(Charge.created)
    rows = db.session.execute(
        select(year, month, func.count())
        .where(Charge.status == SUCCEEDED, Charge.created >= since)
        .group_by(year, month)
    )
    return [(y, m, count) for y, m, count in rows]


# Geography.


def _latest_charge(column: InstrumentedAttribute[str | None]) -> Any:
    """``column`` of the customer's latest charge that has one."""
    return (
        select(column)
        .where(Charge.customer_id == Customer.id, column.is_not(None), column != "")
        .order_by(Charge.created.desc(), Charge.id.desc())
        .limit(1)
        .correlate(Customer)
        .scalar_subquery()
    )


def _located(per_customer: Any, *values: Any) -> Any:
    """``per_customer`` rows with where their customer is: its own country, and the billing and
    card countries of its latest charges (money.country_of chooses), looked up only for a
    customer without a country of its own: country_of would not read them, and looking them up
    is a query per customer."""
    known = and_(Customer.country.is_not(None), Customer.country != "")
    return (
        select(
            Customer.country.label("country"),
            case((known, None), else_=_latest_charge(Charge.billing_country)).label("billing"),
            case((known, None), else_=_latest_charge(Charge.card_country)).label("card"),
            *values,
        )
        .join_from(per_customer, Customer, Customer.id == per_customer.c.customer_id)
        .subquery("located")
    )


def revenue_by_location(since: datetime | None) -> list[CountryRevenue]:
    """Succeeded charges since ``since`` (None: ever) net of what was refunded of them, by
    currency and by where their customer is."""
    window = [Charge.status == SUCCEEDED]
    if since is not None:
        window.append(Charge.created >= since)
    per_customer = (
        select(
            Charge.customer_id,
            Charge.currency,
            func.sum(Charge.amount - Charge.amount_refunded).label("net"),
        )
        .where(*window)
        .group_by(Charge.customer_id, Charge.currency)
        .subquery()
    )
    located = _located(per_customer, per_customer.c.currency, per_customer.c.net)
    place = (located.c.country, located.c.billing, located.c.card, located.c.currency)
    rows = db.session.execute(select(*place, func.sum(located.c.net)).group_by(*place))
    return [(country, billing, card, cur, int(net)) for country, billing, card, cur, net in rows]


def live_customers_by_location() -> list[CountryCustomers]:
    """Customers with a live subscription (trialing, active, past due), by where they are."""
    live = (
        select(Subscription.customer_id)
        .where(Subscription.status.in_(LIVE_STATUSES))
        .distinct()
        .subquery()
    )
    located = _located(live)
    place = (located.c.country, located.c.billing, located.c.card)
    rows = db.session.execute(select(*place, func.count()).group_by(*place))
    return [(country, billing, card, count) for country, billing, card, count in rows]


def charge_currencies() -> list[str]:
    """Every currency a charge was made in."""
    return list(db.session.scalars(select(Charge.currency).distinct().order_by(Charge.currency)))


# Invoices.


def invoices(search: str, status: str | None) -> Select[Invoice, str, str | None]:
    """Invoices with their customer, newest first, found by the customer's email or reference
    id or by the invoice's id; of one status when given."""
    query = select(Invoice, Customer.reference_id, Customer.email).join(
        Customer, Customer.id == Invoice.customer_id
    )
    if search:
        pattern = f"%{search.lower()}%"
        query = query.where(
            or_(
                func.lower(Customer.email).like(pattern),
                func.lower(Customer.reference_id).like(pattern),
                func.lower(Invoice.stripe_invoice_id).like(pattern),
            )
        )
    if status:
        query = query.where(Invoice.status == status)
    return query.order_by(Invoice.created.desc(), Invoice.id.desc())


# Top customers.


def top_by_revenue(currency: str, limit: int) -> Select[Customer, int, int, int]:
    """The customers whose paid invoices in ``currency`` brought the most, net of refunds:
    (customer, paid, refunded, net)."""
    paid = (
        select(Invoice.customer_id, func.sum(Invoice.amount_paid).label("paid"))
        .where(Invoice.status == "paid", Invoice.currency == currency)
        .group_by(Invoice.customer_id)
        .subquery()
    )
    refunded = (
        select(Refund.customer_id, func.sum(Refund.amount).label("refunded"))
        .where(Refund.currency == currency, _counted_refund())
        .group_by(Refund.customer_id)
        .subquery()
    )
    refunded_amount = func.coalesce(refunded.c.refunded, 0)
    net = (paid.c.paid - refunded_amount).label("net")
    return (
        select(Customer, paid.c.paid, refunded_amount.label("refunded"), net)
        .join(paid, paid.c.customer_id == Customer.id)
        .outerjoin(refunded, refunded.c.customer_id == Customer.id)
        .order_by(net.desc(), Customer.id)
        .limit(limit)
    )


def top_by_usage(feature_key: str, limit: int, *, this_period: bool) -> Select[Customer, int]:
    """The customers who used ``feature_key`` the most: (customer, units), in the current
    period of their live subscription, or ever."""
    counted = select(UsageCounter.customer_id, func.sum(UsageCounter.used).label("used")).where(
        UsageCounter.feature_key == feature_key
    )
    if this_period:
        counted = counted.join(
            Subscription,
            and_(
                Subscription.customer_id == UsageCounter.customer_id,
                Subscription.status.in_(LIVE_STATUSES),
                UsageCounter.period_key == period_key_sql(),
            ),
        )
    used = counted.group_by(UsageCounter.customer_id).subquery()
    return (
        select(Customer, used.c.used)
        .join(used, used.c.customer_id == Customer.id)
        .where(used.c.used > 0)
        .order_by(used.c.used.desc(), Customer.id)
        .limit(limit)
    )


def invoice_currencies() -> list[str]:
    """Every currency an invoice was paid in."""
    return list(
        db.session.scalars(
            select(Invoice.currency)
            .where(Invoice.status == "paid")
            .distinct()
            .order_by(Invoice.currency)
        )
    )


def subscription_spans(customer_ids: list[int]) -> list[SubscriptionSpan]:
    """Every subscription of these customers, in one statement, for their plan histories."""
    rows = db.session.execute(
        select(
            Subscription.customer_id,
            Subscription.plan_key,
            Subscription.stripe_created,
            Subscription.ended_at,
            Subscription.canceled_at,
            Subscription.status,
        )
        .where(Subscription.customer_id.in_(customer_ids))
        .order_by(Subscription.customer_id, Subscription.stripe_created, Subscription.id)
    )
    return [tuple(row) for row in rows]  # type: ignore[misc]
