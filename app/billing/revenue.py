"""Recurring revenue as the sync path sees it change: what a subscription is worth a month, and
each customer's monthly recurring revenue (MRR) recorded as a movement whenever it moves.

The revenue page draws its history from these records (and from the worker's daily snapshots),
never from guesses. An imported account has no changes seen as they happened, so its history is
rebuilt from its invoices (``rebuild_from_invoices``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

import stripe
from sqlalchemy import delete, func, select

from app.accounts.mirror import Invoice, Subscription, SubscriptionStatus
from app.accounts.models import Customer
from app.billing.gateway import optional_id
from app.billing.models import RevenueChange, RevenueMovement, RevenueSnapshot
from app.catalog import current_catalog
from app.clock import now
from app.extensions import db

# Statuses whose subscriptions are recurring revenue. Past due still counts (Stripe is still
# collecting) and is shown apart; a trial is pipeline, not revenue.
EARNING = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)

MONTHS_IN = {"day": Decimal(12) / Decimal(365), "week": Decimal(12) / Decimal(52)}
AVERAGE_MONTH_DAYS = Decimal("30.436875")  # 365.2425 / 12


@dataclass(frozen=True)
class RecurringItem:
    """One licensed recurring item of a subscription: its price, how often, how many."""

    unit_amount: int
    interval: str  # day, week, month or year
    interval_count: int
    quantity: int


@dataclass(frozen=True)
class Discount:
    """A discount in force on a subscription: a percentage, or an amount off each invoice."""

    percent_off: Decimal | None = None
    amount_off: int | None = None


def months_in(interval: str, interval_count: int) -> Decimal:
    """How many months one billing interval lasts (a year is twelve)."""
    per_interval = {"month": Decimal(1), "year": Decimal(12)}.get(interval) or MONTHS_IN[interval]
    return per_interval * interval_count


def monthly_amount(items: Iterable[RecurringItem], discounts: Iterable[Discount] = ()) -> int:
    """What the items are worth a month in minor units: price times quantity over the months
    of its interval, less the discounts (percentages first, then amounts off, never below 0)."""
    per_interval = Decimal(0)
    per_month = Decimal(0)
    for item in items:
        amount = Decimal(item.unit_amount * item.quantity)
        per_interval += amount
        per_month += amount / months_in(item.interval, item.interval_count)
    if per_month == 0:
        return 0
    for discount in discounts:
        if discount.percent_off is not None:
            per_month *= 1 - discount.percent_off / 100
    for discount in discounts:
        if discount.amount_off is not None:
            # An amount off applies to each invoice, i.e. to each interval's worth.
            per_month -= per_month * Decimal(discount.amount_off) / per_interval
    return max(int(per_month.quantize(Decimal(1), rounding=ROUND_HALF_EVEN)), 0)


def classify(before: int, after: int, earned_before: bool) -> RevenueMovement | None:
    """The movement from one MRR to another (ChartMogul's names): from nothing is new business,
    or a reactivation for a customer that paid before; to nothing is churn."""
    if before == after:
        return None
    if before == 0:
        return RevenueMovement.REACTIVATION if earned_before else RevenueMovement.NEW
    if after == 0:
        return RevenueMovement.CHURN
    return RevenueMovement.EXPANSION if after > before else RevenueMovement.CONTRACTION


# While an import runs, changes are not recorded as they are seen: an imported customer's
# history is rebuilt from its invoices afterwards, dated when it happened.
_rebuilding: ContextVar[bool] = ContextVar("revenue_rebuilding", default=False)


@contextmanager
def history_from_invoices() -> Iterator[None]:
    """Within this block the sync path does not record revenue changes (an import uses it,
    then calls ``rebuild_from_invoices``)."""
    token = _rebuilding.set(True)
    try:
        yield
    finally:
        _rebuilding.reset(token)


def subscription_terms(stripe_subscription: stripe.Subscription) -> tuple[int, int, str]:
    """The subscription's monthly amount, its plan quantity and currency, from Stripe's object
    (the items of its plan's fee only: metered overage is usage, not recurring revenue)."""
    items = [
        RecurringItem(
            unit_amount=item.price.unit_amount or 0,
            interval=item.price.recurring.interval,
            interval_count=item.price.recurring.interval_count,
            # An in-arrears plan's fee is metered, one unit a period.
            quantity=item.quantity or 1,
        )
        for item in stripe_subscription.items.data
        if item.price.recurring is not None and not _usage_priced(item.price)
    ]
    discounts = [
        _discount(found.source.coupon)
        for found in stripe_subscription.discounts or []
        # Discounts and their coupons come as ids unless expanded (fetch.py expands them).
        if not isinstance(found, str) and not isinstance(found.source.coupon, (str, type(None)))
    ]
    quantity = sum(item.quantity for item in items) or 1
    return monthly_amount(items, discounts), quantity, stripe_subscription.currency


def _discount(coupon: stripe.Coupon) -> Discount:
    percent_off = coupon.percent_off
    return Discount(
        percent_off=Decimal(str(percent_off)) if percent_off is not None else None,
        amount_off=coupon.amount_off,
    )


def record_change(customer_id: int) -> RevenueChange | None:
    """Record the customer's MRR if it moved since the last record, dated now (in the caller's
    transaction, after its subscriptions were flushed)."""
    if _rebuilding.get():
        return None
    after, currency = _current_mrr(customer_id)
    last = db.session.scalar(
        select(RevenueChange)
        .where(RevenueChange.customer_id == customer_id)
        .order_by(RevenueChange.at.desc(), RevenueChange.id.desc())
        .limit(1)
    )
    before = last.mrr_after if last is not None else 0
    earned_before = last is not None and (last.mrr_before > 0 or last.mrr_after > 0)
    movement = classify(before, after, earned_before)
    if movement is None:
        return None
    change = RevenueChange(
        customer_id=customer_id,
        at=now(),
        currency=currency or (last.currency if last else current_catalog().currency),
        mrr_before=before,
        mrr_after=after,
        movement=movement,
        source="sync",
    )
    db.session.add(change)
    return change


def _current_mrr(customer_id: int) -> tuple[int, str | None]:
    row = db.session.execute(
        select(
            func.coalesce(func.sum(Subscription.monthly_amount), 0), func.max(Subscription.currency)
        ).where(Subscription.customer_id == customer_id, Subscription.status.in_(EARNING))
    ).one()
    return int(row[0]), row[1]


def invoice_monthly_amount(
    stripe_invoice: stripe.Invoice, stripe_subscription: stripe.Subscription | None
) -> int | None:
    """The recurring part of a subscription invoice, a month: its licensed lines (not
    prorations, not metered usage) net of their discounts, over the months their period spans.
    None for an invoice that opens no subscription period. A line's item is told licensed or
    metered by the subscription's items; a line of an item since removed (an older plan) counts
    unless its price is one of the subscription's metered prices."""
    if stripe_invoice.billing_reason not in ("subscription_create", "subscription_cycle"):
        return None
    items = stripe_subscription.items.data if stripe_subscription is not None else []
    metered_items = {item.id for item in items if _usage_priced(item.price)}
    metered_prices = {item.price.id for item in items if _usage_priced(item.price)}
    total = Decimal(0)
    for line in stripe_invoice.lines.data:
        details = line.parent.subscription_item_details if line.parent else None
        if details is None or details.proration:
            continue
        price = (
            line.pricing.price_details.price
            if line.pricing and line.pricing.price_details
            else None
        )
        if details.subscription_item in metered_items or optional_id(price) in metered_prices:
            continue
        discounted = line.amount - sum(part.amount for part in line.discount_amounts or [])
        days = Decimal(line.period.end - line.period.start) / 86_400
        months = max((days / AVERAGE_MONTH_DAYS).quantize(Decimal(1)), Decimal(1))
        total += Decimal(discounted) / months
    return int(total.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _usage_priced(price: stripe.Price) -> bool:
    """A metered price that bills usage (overage). An in-arrears plan's fee is metered too, one
    unit a period, but is the plan's price (its lookup key names the plan): recurring revenue."""
    recurring = price.recurring
    if recurring is None or recurring.usage_type != "metered":
        return False
    return price.lookup_key not in current_catalog().plans


@dataclass(frozen=True)
class Point:
    """What one subscription was worth a month from a moment on."""

    at: datetime
    subscription: str
    amount: int


def history(points: Iterable[Point]) -> list[tuple[datetime, int]]:
    """A customer's MRR over time from its subscriptions' points: each point sets what its
    subscription is worth from then on; the customer's MRR is their sum."""
    worth: dict[str, int] = {}
    series: list[tuple[datetime, int]] = []
    for point in sorted(points, key=lambda point: point.at):
        worth[point.subscription] = point.amount
        total = sum(worth.values())
        if series and series[-1][0] == point.at:
            series[-1] = (point.at, total)
        elif not series or series[-1][1] != total:
            series.append((point.at, total))
    return series


def rebuild_from_invoices(customer_ids: list[int]) -> int:
    """Replace the customers' revenue history with the one their paid invoices tell: each
    paid period sets what its subscription was worth; an ended subscription is worth nothing
    from its end (or from the end of its last paid period if that came first); the history
    ends at what they are worth now. Returns the number of changes written."""
    if not customer_ids:
        return 0
    db.session.execute(delete(RevenueChange).where(RevenueChange.customer_id.in_(customer_ids)))
    points: dict[int, list[Point]] = defaultdict(list)
    currencies: dict[int, str] = {}
    for invoice in db.session.scalars(
        select(Invoice).where(
            Invoice.customer_id.in_(customer_ids),
            Invoice.status == "paid",
            Invoice.monthly_amount.is_not(None),
            Invoice.stripe_subscription_id.is_not(None),
        )
    ):
        start = invoice.period_start or invoice.created
        points[invoice.customer_id].append(
            Point(start, invoice.stripe_subscription_id or "", invoice.monthly_amount or 0)
        )
        currencies[invoice.customer_id] = invoice.currency
    for subscription in db.session.scalars(
        select(Subscription).where(Subscription.customer_id.in_(customer_ids))
    ):
        if subscription.ended_at is not None:
            points[subscription.customer_id].append(
                Point(subscription.ended_at, subscription.stripe_subscription_id, 0)
            )
        elif subscription.status in EARNING:
            # Worth what it is worth now from its current period on (a plan change since the
            # last invoice, a discount) so the rebuilt history meets the live figure.
            points[subscription.customer_id].append(
                Point(
                    subscription.current_period_start or now(),
                    subscription.stripe_subscription_id,
                    subscription.monthly_amount,
                )
            )
        else:
            # Live but not earning (a trial, unpaid, paused): nothing from its current period.
            points[subscription.customer_id].append(
                Point(
                    subscription.current_period_start or subscription.stripe_created,
                    subscription.stripe_subscription_id,
                    0,
                )
            )
        currencies.setdefault(subscription.customer_id, subscription.currency or "")
    written = 0
    for customer_id, customer_points in points.items():
        before, earned = 0, False
        for at, mrr in history(customer_points):
            movement = classify(before, mrr, earned)
            if movement is None:
                continue
            db.session.add(
                RevenueChange(
                    customer_id=customer_id,
                    at=at,
                    currency=currencies.get(customer_id) or current_catalog().currency,
                    mrr_before=before,
                    mrr_after=mrr,
                    movement=movement,
                    source="invoices",
                )
            )
            written += 1
            earned = earned or mrr > 0
            before = mrr
    return written


# Imported customers whose history is rebuilt in one transaction.
REBUILD_BATCH = 500


def rebuild_imported() -> tuple[int, int]:
    """Rebuild every imported customer's history from its invoices, committing a batch of
    customers at a time (a long account is not one transaction). Customers Tollgate saw from
    the start keep the history it recorded. Returns (customers, changes written)."""
    imported = list(
        db.session.scalars(select(Customer.id).where(Customer.imported_at.is_not(None)))
    )
    written = 0
    for start in range(0, len(imported), REBUILD_BATCH):
        written += rebuild_from_invoices(imported[start : start + REBUILD_BATCH])
        db.session.commit()
    return len(imported), written


def take_snapshot(day: date) -> int:
    """Record each plan's recurring revenue as it stands (the worker calls this once a day);
    a day already recorded is left as it was. Returns the number of rows written."""
    if db.session.scalar(select(RevenueSnapshot.id).where(RevenueSnapshot.day == day).limit(1)):
        return 0
    catalog = current_catalog()
    totals: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for plan_key, currency, status, count, amount in db.session.execute(
        select(
            Subscription.plan_key,
            Subscription.currency,
            Subscription.status,
            func.count(),
            func.coalesce(func.sum(Subscription.monthly_amount), 0),
        )
        .where(
            Subscription.status.in_((*EARNING, SubscriptionStatus.TRIALING)),
        )
        .group_by(Subscription.plan_key, Subscription.currency, Subscription.status)
    ):
        row = totals[(plan_key, currency or catalog.currency)]
        if status == SubscriptionStatus.TRIALING:
            row["trialing"] += count
            row["trial_pipeline"] += amount
        else:
            row["subscriptions"] += count
            row["mrr"] += amount
            if status == SubscriptionStatus.PAST_DUE:
                row["past_due_mrr"] += amount
    for (plan_key, currency), row in totals.items():
        plan = catalog.plan(plan_key)
        db.session.add(
            RevenueSnapshot(
                day=day,
                plan_key=plan_key,
                tier=plan.tier if plan is not None else None,
                currency=currency,
                mrr=row["mrr"],
                past_due_mrr=row["past_due_mrr"],
                subscriptions=row["subscriptions"],
                trialing=row["trialing"],
                trial_pipeline=row["trial_pipeline"],
            )
        )
    return len(totals)
