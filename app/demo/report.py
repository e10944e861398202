"""What the demo left in Tollgate, as an operator would count it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from typing import Any

from sqlalchemy import distinct, func, select

from app.accounts.mirror import Charge, Dispute, Invoice, Refund, Subscription
from app.accounts.models import Customer, User
from app.billing.models import RevenueChange
from app.entitlements.models import UsageEvent
from app.extensions import db


def _count(model: Any, customer_ids: Collection[int], *where: Any) -> int:
    query = select(func.count()).select_from(model).where(model.customer_id.in_(customer_ids))
    return db.session.scalar(query.where(*where)) or 0


def _months(column: Any, model: Any, customer_ids: Collection[int]) -> int:
    """How many calendar months the rows' dates fall in."""
    dates = db.session.scalars(
        select(column).where(model.customer_id.in_(customer_ids)).distinct()
    ).all()
    return len({(at.year, at.month) for at in dates})


def _tally(counter: Counter[str]) -> str:
    return ", ".join(f"{count:,} {name}" for name, count in counter.most_common()) or "none"


def summary(
    customer_ids: Collection[int], current: dict[int, Subscription]
) -> list[tuple[str, str]]:
    """Lines of (what, how many) about the demo's customers."""
    ids = list(customer_ids)
    logins = db.session.scalar(
        select(func.count()).select_from(User).where(User.customer_id.in_(ids))
    )
    countries = db.session.scalar(
        select(func.count(distinct(Customer.country))).where(Customer.id.in_(ids))
    )
    statuses = Counter(subscription.status.value for subscription in current.values())
    plans = Counter(s.plan_key for s in current.values() if s.is_live)
    disputes = Counter(
        db.session.scalars(select(Dispute.status).where(Dispute.customer_id.in_(ids))).all()
    )
    return [
        ("customers", f"{len(ids):,} ({logins or 0:,} with a login) in {countries or 0} countries"),
        ("subscriptions now", _tally(statuses)),
        ("live plans", _tally(plans)),
        (
            "invoices",
            f"{_count(Invoice, ids):,} over {_months(Invoice.created, Invoice, ids)} months",
        ),
        ("declined charges", f"{_count(Charge, ids, Charge.status == 'failed'):,}"),
        ("refunds", f"{_count(Refund, ids):,}"),
        ("disputes", _tally(disputes)),
        ("usage events", f"{_count(UsageEvent, ids):,}"),
        (
            "revenue changes",
            f"{_count(RevenueChange, ids):,} over "
            f"{_months(RevenueChange.at, RevenueChange, ids)} months",
        ),
    ]
