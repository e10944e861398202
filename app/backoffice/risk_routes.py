"""The back office's risk pages (added to the blueprint in routes.py).

The page runs one query per kind of reason, each restricted in SQL to the accounts that kind
could flag, then one query for those accounts (plain rows: there are thousands at volume);
risk.py judges and ranks what they read. Every account at risk is judged on each visit, so the
list is exact as of that moment; the sentences that figures make costly are written only for
the accounts shown (and all of them for the CSV).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from flask import render_template
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    String,
    Subquery,
    and_,
    case,
    cast,
    func,
    or_,
    select,
)
from sqlalchemy.orm import InstrumentedAttribute, aliased
from werkzeug.wrappers import Response as BaseResponse

from app.accounts.mirror import (
    LIVE_STATUSES,
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
from app.entitlements.models import CreditLedgerEntry, CreditPool, LedgerKind, UsageCounter
from app.extensions import db

Reasons = dict[int, list[risk.Reason]]
LIVE = (Subscription.status.in_(risk.AT_STAKE),)
# Unix seconds in SQL are whole, "now" and risk.py's sums are not: SQL's filters give this much.
SLACK_SECONDS = 2
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
    """Each credit pool that usage drew from in its customer's running period and that SQL
    finds may run out before the period ends: its balance and what was drawn, summed in SQL."""
    start = Subscription.current_period_start
    # PostgreSQL sums bigints as numeric: back to a whole number here.
    deducted = cast(-func.sum(CreditLedgerEntry.amount), BigInteger)
    seconds = int(moment.timestamp())
    rows = db.session.execute(
        select(
            CreditPool.customer_id,
            CreditPool.key,
            CreditPool.denomination,
            CreditPool.balance,
            deducted,
            Subscription.stripe_subscription_id,
            start,
            Subscription.current_period_end,
        )
        .join(CreditLedgerEntry, CreditLedgerEntry.pool_id == CreditPool.id)
        .join(Subscription, Subscription.customer_id == CreditPool.customer_id)
        .where(
            *LIVE,
            CreditLedgerEntry.kind == LedgerKind.DEDUCT,
            CreditLedgerEntry.created_at >= start,
            Subscription.current_period_end > moment,
            start <= moment - risk.MIN_BURN_HISTORY,
        )
        .group_by(CreditPool.id, Subscription.id)
        # A superset of what credits_run_out flags (slack against its floats): at this burn,
        # what is left lasts less than what is left of the period.
        .having(
            case((CreditPool.balance > 0, CreditPool.balance), else_=0)
            * (seconds - _unix(start) - SLACK_SECONDS)
            <= deducted * (_unix(Subscription.current_period_end) - seconds + SLACK_SECONDS)
        )
    )
    for row in rows:
        pool = risk.PoolBurn(*row[1:5])
        _note(found, row[0], risk.credits_run_out(pool, _running(row), moment))


def _usage(found: Reasons, moment: datetime) -> None:
    """Each live subscription's features that SQL finds may have fallen, with this period's
    counter and the latest one before it (usage_falls reads no other); risk.usage_falls decides."""
    recent = _recent_usage(moment)
    previous = aliased(UsageCounter)
    rows = db.session.execute(
        select(recent, previous.used.label("previous_used"))
        .join(
            previous,
            and_(
                previous.customer_id == recent.c.customer_id,
                previous.feature_key == recent.c.feature_key,
                previous.period_key == recent.c.previous_key,
            ),
        )
        .where(
            previous.used >= risk.MIN_PREVIOUS_USAGE,
            # A superset of what usage_falls flags (a second's slack against its floats): this
            # period's usage, pro-rated, at most half of the previous period's.
            recent.c.current_used * (recent.c.end - recent.c.start)
            <= previous.used
            * (int(moment.timestamp()) - recent.c.start + SLACK_SECONDS)
            * (1 - risk.SHARP_FALL),
        )
        .order_by(recent.c.customer_id, recent.c.feature_key)
    )
    for row in rows:
        usage = [
            risk.PeriodUsage(row.feature_key, row.current_key, row.current_used),
            risk.PeriodUsage(row.feature_key, row.previous_key, row.previous_used),
        ]
        reason = risk.usage_falls(row.feature_key, usage, _running(row), moment)
        _note(found, row.customer_id, reason)


def _recent_usage(moment: datetime) -> Subquery:
    """Per live subscription a fifth or more into its period, and per feature: the running
    period's usage (0 without a counter) and the key of the latest earlier counter, with the
    period in Unix seconds. A counter's period key is the subscription's id and its period's
    start in Unix seconds (ten digits until 2286, so one subscription's keys sort by time):
    only the running period's and those of the two period lengths before it are read, by the
    key's range, so the rest of the history is never scanned."""
    start, end = _unix(Subscription.current_period_start), _unix(Subscription.current_period_end)
    prefix = Subscription.stripe_subscription_id + ":"
    elapsed = int(moment.timestamp()) - start
    periods = (
        select(
            Subscription.id,
            Subscription.customer_id,
            Subscription.stripe_subscription_id,
            Subscription.current_period_start,
            Subscription.current_period_end,
            start.label("start"),
            end.label("end"),
            (prefix + cast(start, String)).label("current_key"),
            (prefix + cast(start - 2 * (end - start), String)).label("first_key"),
        )
        .where(
            *LIVE,
            Subscription.current_period_start < moment,
            (elapsed + SLACK_SECONDS) * 5 >= end - start,
        )
        # Worked out once per subscription, not once per counter it is compared with.
        .cte("usage_periods")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    current = UsageCounter.period_key == periods.c.current_key
    return (
        select(
            UsageCounter.customer_id,
            UsageCounter.feature_key,
            periods.c.stripe_subscription_id,
            periods.c.current_period_start,
            periods.c.current_period_end,
            periods.c.current_key,
            periods.c.start,
            periods.c.end,
            # PostgreSQL sums bigints as numeric: back to a whole number here.
            cast(func.sum(case((current, UsageCounter.used), else_=0)), BigInteger).label(
                "current_used"
            ),
            func.max(case((~current, UsageCounter.period_key))).label("previous_key"),
        )
        .join(periods, periods.c.customer_id == UsageCounter.customer_id)
        .where(UsageCounter.period_key.between(periods.c.first_key, periods.c.current_key))
        .group_by(UsageCounter.customer_id, UsageCounter.feature_key, *periods.c)
        .subquery()
    )


def _unix(moment: InstrumentedAttribute[datetime | None]) -> ColumnElement[int]:
    """Whole Unix seconds, cut as name_period cuts them (PostgreSQL would round a cast)."""
    return cast(func.floor(func.extract("epoch", moment)), BigInteger)


def _accounts(customer_ids: set[int]) -> dict[int, risk.Account]:
    """The customers, each with its current subscription (as the account page picks it): plain
    rows, not ORM objects, as there are thousands."""
    if not customer_ids:
        return {}
    rows = db.session.execute(
        select(
            Customer.id,
            Customer.reference_id,
            Customer.email,
            Customer.card_brand,
            Customer.card_last4,
            Customer.card_expires_on,
            Subscription.id.label("subscription_id"),
            Subscription.plan_key,
            Subscription.status,
            Subscription.monthly_amount,
            Subscription.currency,
            Subscription.current_period_start,
            Subscription.current_period_end,
            Subscription.trial_end,
            Subscription.cancel_at_period_end,
        )
        .outerjoin(Subscription, Subscription.customer_id == Customer.id)
        .where(Customer.id.in_(customer_ids))
        .order_by(Customer.id, *NEWEST_FIRST)
    )
    accounts: dict[int, risk.Account] = {}
    for row in rows:
        found = accounts.get(row.id)
        # As pick_current picks: rows come newest first; the first live one, else the latest.
        if found is None or (found.status not in LIVE_STATUSES and row.status in LIVE_STATUSES):
            accounts[row.id] = _account(row)
    return accounts


def _account(row: Any) -> risk.Account:
    """The account of one row of _accounts' query."""
    customer = {
        "customer_id": row.id,
        "reference_id": row.reference_id,
        "email": row.email,
        "card_brand": row.card_brand,
        "card_last4": row.card_last4,
        "card_expires_on": row.card_expires_on,
    }
    if row.subscription_id is None:
        return risk.Account(**customer)
    return risk.Account(
        **customer,
        plan_key=row.plan_key,
        status=row.status,
        monthly_amount=row.monthly_amount,
        currency=row.currency,
        current_period_start=row.current_period_start,
        current_period_end=row.current_period_end,
        trial_end=row.trial_end,
        cancel_at_period_end=row.cancel_at_period_end,
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
