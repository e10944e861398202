"""The back office's risk pages (added to the blueprint in routes.py).

The page runs one query per kind of reason, each restricted in SQL to the accounts that kind
could flag, then one query for those accounts; risk.py judges and ranks what they read.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

from flask import render_template
from sqlalchemy import CTE, BigInteger, String, and_, case, cast, func, or_, select
from werkzeug.wrappers import Response as BaseResponse

from app.accounts.mirror import (
    NEWEST_FIRST,
    Charge,
    Dispute,
    Invoice,
    Subscription,
    SubscriptionStatus,
)
from app.accounts.models import Customer
from app.backoffice import risk
from app.backoffice.csv_export import csv_link_args, csv_response, wants_csv
from app.backoffice.margin_risk import breaches_at_risk
from app.backoffice.routes import PAGE_SIZE, bp, page_count, requested_page
from app.clock import now
from app.entitlements.access import pick_current
from app.entitlements.models import CreditLedgerEntry, CreditPool, LedgerKind, UsageCounter
from app.extensions import db

Reasons = dict[int, list[risk.Reason]]
LIVE = (Subscription.status.in_(risk.AT_STAKE),)
CSV_HEADER = [
    "rank",
    "reference_id",
    "email",
    "plan",
    "status",
    "mrr_at_stake",
    "currency",
    "score",
    "deadline",
    "reasons",
]


@bp.route("/risk", endpoint="risk")
def risk_page() -> str | BaseResponse:
    """Accounts at risk, the riskiest first (see risk.py for the rule), a page at a time."""
    ranked = accounts_at_risk(now())
    if wants_csv():
        return csv_response("accounts-at-risk", CSV_HEADER, _csv_rows(ranked))
    page = requested_page()
    return render_template(
        "backoffice/risk.html",
        accounts=ranked[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
        first=(page - 1) * PAGE_SIZE + 1,
        page=page,
        pages=page_count(len(ranked)),
        total=len(ranked),
        weights=risk.WEIGHTS,
        csv_args=csv_link_args(),
    )


def accounts_at_risk(moment: datetime) -> list[risk.AtRisk]:
    """Every account with a reason to worry about, ranked; a fixed number of queries."""
    found: Reasons = defaultdict(list)
    open_invoices = _past_due()
    flagged = _flag_subscriptions(moment)
    _failed_payments(found, moment)
    _disputes(found)
    _credits(found, moment)
    _usage(found, moment)
    for customer_id, breach in breaches_at_risk(moment).items():
        _note(found, customer_id, risk.below_margin_floor(breach))
    accounts = _accounts(set(found) | set(open_invoices) | flagged)
    ranked = []
    for customer_id, account in accounts.items():
        reasons = [
            *found.get(customer_id, []),
            risk.past_due(account, open_invoices.get(customer_id, []), moment),
            risk.cancels(account),
            risk.card_expires(account, moment),
            risk.trial_without_card(account, moment),
        ]
        assessed = risk.at_risk(account, reasons)
        if assessed is not None:
            ranked.append(assessed)
    return risk.rank(ranked)


def _past_due() -> dict[int, list[risk.OpenInvoice]]:
    """Past-due subscriptions' customers, with their subscriptions' open invoices."""
    rows = db.session.execute(
        select(
            Subscription.customer_id,
            Invoice.amount_due,
            Invoice.amount_paid,
            Invoice.currency,
            Invoice.attempt_count,
            Invoice.next_payment_attempt,
            Invoice.created,
        )
        .outerjoin(
            Invoice,
            and_(
                Invoice.stripe_subscription_id == Subscription.stripe_subscription_id,
                Invoice.status == "open",
            ),
        )
        .where(Subscription.status == SubscriptionStatus.PAST_DUE)
    )
    invoices: dict[int, list[risk.OpenInvoice]] = {}
    for row in rows:
        # A past-due customer with no open invoice mirrored is still past due.
        listed = invoices.setdefault(row[0], [])
        if row.amount_due is not None:
            listed.append(risk.OpenInvoice(*row[1:]))
    return invoices


def _flag_subscriptions(moment: datetime) -> set[int]:
    """Customers whose own rows may flag them: cancelling, a card that expires before the
    period ends, a trial ending soon without a card (risk.py decides each precisely)."""
    no_card = and_(Customer.card_expires_on.is_(None), Customer.card_last4.is_(None))
    return set(
        db.session.scalars(
            select(Subscription.customer_id)
            .join(Customer, Customer.id == Subscription.customer_id)
            .where(
                *LIVE,
                or_(
                    Subscription.cancel_at_period_end.is_(True),
                    Customer.card_expires_on < func.date(Subscription.current_period_end),
                    and_(
                        Subscription.status == SubscriptionStatus.TRIALING,
                        Subscription.trial_end.between(moment, moment + risk.TRIAL_WARNING),
                        no_card,
                    ),
                ),
            )
        )
    )


def _failed_payments(found: Reasons, moment: datetime) -> None:
    by_customer: dict[int, list[risk.FailedCharge]] = defaultdict(list)
    for row in db.session.execute(
        select(
            Charge.customer_id,
            Charge.amount,
            Charge.currency,
            Charge.created,
            Charge.failure_message,
        ).where(Charge.status == "failed", Charge.created >= moment - risk.FAILED_PAYMENT_WINDOW)
    ):
        by_customer[row[0]].append(risk.FailedCharge(*row[1:]))
    for customer_id, charges in by_customer.items():
        _note(found, customer_id, risk.failed_payments(charges, moment))


def _disputes(found: Reasons) -> None:
    for row in db.session.execute(
        select(
            Dispute.customer_id,
            Dispute.amount,
            Dispute.currency,
            Dispute.reason,
            Dispute.evidence_due_by,
        ).where(Dispute.status.in_(risk.OPEN_DISPUTE_STATUSES))
    ):
        _note(found, row[0], risk.dispute(risk.OpenDispute(*row[1:])))


def _note(found: Reasons, customer_id: int, reason: risk.Reason | None) -> None:
    """Keep a reason that applies: only customers with one are read and ranked."""
    if reason is not None:
        found[customer_id].append(reason)


def _running(subscription: Any) -> risk.Running:
    return risk.Running(
        subscription.stripe_subscription_id,
        subscription.current_period_start,
        subscription.current_period_end,
    )


def _credits(found: Reasons, moment: datetime) -> None:
    """Each credit pool that usage drew from in its customer's running period: its balance
    and what was drawn, summed in SQL."""
    rows = db.session.execute(
        select(
            CreditPool.customer_id,
            CreditPool.key,
            CreditPool.denomination,
            CreditPool.balance,
            # PostgreSQL sums bigints as numeric: back to a whole number here.
            cast(-func.sum(CreditLedgerEntry.amount), BigInteger),
            Subscription.stripe_subscription_id,
            Subscription.current_period_start,
            Subscription.current_period_end,
        )
        .join(CreditLedgerEntry, CreditLedgerEntry.pool_id == CreditPool.id)
        .join(Subscription, Subscription.customer_id == CreditPool.customer_id)
        .where(
            *LIVE,
            CreditLedgerEntry.kind == LedgerKind.DEDUCT,
            CreditLedgerEntry.created_at >= Subscription.current_period_start,
            Subscription.current_period_end > moment,
        )
        .group_by(CreditPool.id, Subscription.id)
    )
    for row in rows:
        pool = risk.PoolBurn(*row[1:5])
        _note(found, row[0], risk.credits_run_out(pool, _running(row), moment))


def _usage(found: Reasons, moment: datetime) -> None:
    """The two latest usage counters of each feature of each live subscription (its running
    period's and the one before, named by the subscription's id and their start), for the
    features SQL finds may have fallen; risk.usage_falls decides."""
    recent = _recent_counters(moment)
    current = recent.c.period_key == recent.c.current_key
    current_used = func.coalesce(func.sum(case((current, recent.c.used), else_=0)), 0)
    previous_used = func.max(case((~current, recent.c.used)))
    # A superset of what usage_falls flags (the latest previous period is at most the largest
    # of them): this period's usage, pro-rated, at most half the previous period's.
    falling = (
        select(recent.c.subscription_id, recent.c.feature_key)
        .group_by(recent.c.subscription_id, recent.c.feature_key, recent.c.start, recent.c.end)
        .having(
            previous_used >= risk.MIN_PREVIOUS_USAGE,
            current_used * (recent.c.end - recent.c.start)
            <= previous_used * (int(moment.timestamp()) - recent.c.start) * (1 - risk.SHARP_FALL),
        )
        .subquery()
    )
    rows = select(recent).join(
        falling,
        and_(
            falling.c.subscription_id == recent.c.subscription_id,
            falling.c.feature_key == recent.c.feature_key,
        ),
    )
    groups: dict[tuple[int, str, str], list[risk.PeriodUsage]] = defaultdict(list)
    periods: dict[str, risk.Running] = {}
    for row in db.session.execute(rows):
        groups[row.customer_id, row.stripe_subscription_id, row.feature_key].append(
            risk.PeriodUsage(row.feature_key, row.period_key, row.used)
        )
        periods[row.stripe_subscription_id] = _running(row)
    for (customer_id, sub_id, feature_key), usage in groups.items():
        reason = risk.usage_falls(feature_key, usage, periods[sub_id], moment)
        _note(found, customer_id, reason)


def _recent_counters(moment: datetime) -> CTE:
    """Each live subscription's two latest counters per feature, with its period in Unix
    seconds. A counter's period key is the subscription's id and its period's start in Unix
    seconds (ten digits until 2286, so one subscription's keys sort by time): only the running
    period's and those of the two period lengths before it are read, by the key's range, so the
    rest of the history is never scanned."""
    start = cast(func.extract("epoch", Subscription.current_period_start), BigInteger)
    end = cast(func.extract("epoch", Subscription.current_period_end), BigInteger)
    prefix = Subscription.stripe_subscription_id + ":"
    current_key = prefix + cast(start, String)
    in_range = UsageCounter.period_key.between(
        prefix + cast(start - 2 * (end - start), String), current_key
    )
    ranked = (
        select(
            UsageCounter.customer_id,
            UsageCounter.feature_key,
            UsageCounter.period_key,
            UsageCounter.used,
            Subscription.id.label("subscription_id"),
            Subscription.stripe_subscription_id,
            Subscription.current_period_start,
            Subscription.current_period_end,
            current_key.label("current_key"),
            start.label("start"),
            end.label("end"),
            func.row_number()
            .over(
                partition_by=(Subscription.id, UsageCounter.feature_key),
                order_by=UsageCounter.period_key.desc(),
            )
            .label("latest"),
        )
        .join(Subscription, Subscription.customer_id == UsageCounter.customer_id)
        .where(*LIVE, in_range, Subscription.current_period_start < moment)
        .subquery()
    )
    # A CTE: read twice (the features that fell, then their rows), computed once.
    return select(ranked).where(ranked.c.latest <= 2).cte("recent_counters")


def _accounts(customer_ids: set[int]) -> dict[int, risk.Account]:
    """The customers, each with its current subscription (as the account page picks it)."""
    if not customer_ids:
        return {}
    rows = db.session.execute(
        select(Customer, Subscription)
        .outerjoin(Subscription, Subscription.customer_id == Customer.id)
        .where(Customer.id.in_(customer_ids))
        .order_by(Customer.id, *NEWEST_FIRST)
    )
    customers: dict[int, Customer] = {}
    subscriptions: dict[int, list[Subscription]] = defaultdict(list)
    for customer, subscription in rows:
        customers[customer.id] = customer
        if subscription is not None:
            subscriptions[customer.id].append(subscription)
    return {
        customer_id: _account(customer, pick_current(subscriptions[customer_id]))
        for customer_id, customer in customers.items()
    }


def _account(customer: Customer, subscription: Subscription | None) -> risk.Account:
    found = risk.Account(
        customer.id,
        customer.reference_id,
        customer.email,
        card_brand=customer.card_brand,
        card_last4=customer.card_last4,
        card_expires_on=customer.card_expires_on,
    )
    if subscription is None:
        return found
    return replace(
        found,
        plan_key=subscription.plan_key,
        status=subscription.status,
        monthly_amount=subscription.monthly_amount,
        currency=subscription.currency,
        current_period_start=subscription.current_period_start,
        current_period_end=subscription.current_period_end,
        trial_end=subscription.trial_end,
        cancel_at_period_end=subscription.cancel_at_period_end,
    )


def _csv_rows(ranked: list[risk.AtRisk]) -> Iterator[list[Any]]:
    for place, found in enumerate(ranked, start=1):
        account = found.account
        yield [
            place,
            account.reference_id,
            account.email,
            account.plan_key,
            account.status.value if account.status else None,
            account.mrr_at_stake,
            account.currency,
            found.score,
            found.deadline.isoformat() if found.deadline else None,
            " ".join(reason.text for reason in found.reasons),
        ]
