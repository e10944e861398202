"""The margin floor: what happens to a period whose usage cost took its margin below the floor its
plan declares (plans.toml's ``margin_floor`` and ``margin_floor_action``).

``bill``: the amount that restores the floor, cost ÷ (1 - floor) - what the period is billed
otherwise (PeriodMargin.restoring_amount), is billed on the period's own invoice through the
margin floor's meter, one unit per minor unit (a metered price of 1 minor unit). The worker
queues what the amount has grown by since the last run, as a meter event the forwarder sends
like overage, and keeps the period's cumulative total in ``floor_billed`` in the same
transaction, under the customer's lock (the lock usage recording takes, so the cost cannot move
meanwhile). The event's identifier names the period and that cumulative total, so a retry, a
re-run or a second worker queues and sends it once, and a later rise sends only the difference.
A fall (a cost corrected downwards, overage that now covers more of the cost) sends nothing:
what was billed stays billed, and the period is billed again only past it.

``alert``: the operator is told once per period, by a warning in the log with the customer,
the plan, the margin and the floor, and ``floor_alerted_at`` on the period (the back office's
accounts at risk read it). The operator's product is to get a signed ``margin.below_floor``
webhook too once Tollgate sends webhooks of its own (issue #24); until then the log line and
the period's mark are the whole alert.

Only running periods are settled: the live, paid (not trialing) current period of a
subscription, while it runs. A meter event is billed on the invoice of the period its
timestamp falls in, which Stripe drafts when the period ends; Stripe takes usage for it during
the invoice's finalization grace period (an hour by default: docs.stripe.com/billing/
subscriptions/usage-based/configure-grace-period), but whether an invoice is still open to it
depends on the account's setting, and the sandbox bills a period's usage when it ends. So what
the last minute of a period costs after the worker's last run in it is not billed: a minute's
worth of cost at most, never a period billed twice or late.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from sqlalchemy import select

from app.accounts.mirror import Subscription, SubscriptionStatus
from app.accounts.models import Customer
from app.billing.margin import PeriodMargin, period_margins
from app.billing.models import BillingPeriod
from app.billing.overage_forwarding import queue_meter_event
from app.catalog import Plan, current_catalog
from app.catalog.stripe_names import MARGIN_FLOOR_METER
from app.clock import now
from app.entitlements.access import period_key
from app.entitlements.ledger import lock_customers
from app.extensions import db
from app.money import format_percent

log = logging.getLogger(__name__)

# Paid periods: a trial has no revenue to hold a floor against, and the floor bills none of it.
RUNNING = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)
# Periods read at once: keeps each IN list short whatever the number of subscriptions.
CHUNK = 500


@dataclass(frozen=True)
class FloorBilled:
    """A meter event queued for a period: ``units`` minor units, ``total`` billed in all."""

    customer_id: int
    period_key: str
    units: int
    total: int
    identifier: str


@dataclass(frozen=True)
class FloorReport:
    """What a run queued for plans that bill their floor, and which periods it alerted on."""

    billed: list[FloorBilled] = field(default_factory=list)
    alerted: list[str] = field(default_factory=list)


def floor_identifier(period: str, total: int) -> str:
    """The meter event identifier that brings a period's margin floor billing to ``total``:
    one per period and cumulative total (Stripe takes up to 100 characters; this is about 60)."""
    return f"margin_floor:{period}:{total}"


def settle_margin_floors() -> FloorReport:
    """Worker: bill or alert each running period below its plan's floor, each customer in its
    own short transaction under its lock; owns its commits (nothing is sent to Stripe here:
    the forwarder sends what this queues)."""
    plans = {
        key: plan for key, plan in current_catalog().plans.items() if plan.margin_floor is not None
    }
    report = FloorReport()
    due = [(margin.customer_id, margin.period_key) for margin in _unsettled(plans)]
    db.session.rollback()  # the first look is done: each period is settled under its own lock
    for customer_id, key in due:
        lock_customers([customer_id])
        _settle(customer_id, key, plans, report)
        db.session.commit()
    return report


def _unsettled(
    plans: dict[str, Plan], customer_ids: Collection[int] | None = None
) -> Iterator[PeriodMargin]:
    """The margins of running periods on ``plans`` that the floor has something to do for:
    more to bill, or an alert not given yet."""
    if not plans:
        return
    conditions = [
        Subscription.status.in_(RUNNING),
        Subscription.plan_key.in_(plans),
        Subscription.current_period_end > now(),
    ]
    if customer_ids is not None:
        conditions.append(Subscription.customer_id.in_(customer_ids))
    keys = [period_key(sub) for sub in db.session.scalars(select(Subscription).where(*conditions))]
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        alerted = set(
            db.session.scalars(
                select(BillingPeriod.period_key).where(
                    BillingPeriod.period_key.in_(chunk), BillingPeriod.floor_alerted_at.is_not(None)
                )
            )
        )
        for margin in period_margins(period_keys=chunk):
            plan = plans.get(margin.plan_key)
            if plan is None:
                continue
            floor = _floor(plan)
            if plan.bills_margin_floor:
                if margin.floor_due(floor) > margin.floor_billed:
                    yield margin
            elif margin.period_key not in alerted and margin.below(floor):
                yield margin


def _settle(customer_id: int, key: str, plans: dict[str, Plan], report: FloorReport) -> None:
    """Bill or alert one period, under its customer's lock, as its margin stands now."""
    margin = next((m for m in _unsettled(plans, [customer_id]) if m.period_key == key), None)
    if margin is None:
        return  # settled by another run, renewed or ended since the first look
    period = db.session.scalars(select(BillingPeriod).where(BillingPeriod.period_key == key)).one()
    plan = plans[margin.plan_key]
    floor = _floor(plan)
    reference_id = db.session.get_one(Customer, customer_id).reference_id
    if not plan.bills_margin_floor:
        period.floor_alerted_at = now()
        report.alerted.append(key)
        log.warning(
            "margin below floor",
            extra={
                "customer": reference_id,
                "plan": plan.key,
                "period": key,
                "margin": format_percent(margin.margin_ratio),
                "floor": format_percent(Fraction(floor)),
            },
        )
        return
    total = margin.floor_due(floor)
    units = total - period.floor_billed
    identifier = floor_identifier(key, total)
    queue_meter_event(
        customer_id,
        event_name=MARGIN_FLOOR_METER,
        identifier=identifier,
        units=units,
        # The period runs now (``_unsettled``): the event counts on this period's invoice.
        at=now(),
    )
    period.floor_billed = total
    report.billed.append(FloorBilled(customer_id, key, units, total, identifier))
    log.info(
        "margin floor billed",
        extra={
            "customer": reference_id,
            "plan": plan.key,
            "period": key,
            "units": units,
            "floor_billed": total,
        },
    )


def _floor(plan: Plan) -> Decimal:
    assert plan.margin_floor is not None  # only plans with a floor are settled
    return plan.margin_floor
