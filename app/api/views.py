"""How Tollgate's objects look in the JSON API (camelCase, ISO 8601 times, money in minor units)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.accounts.mirror import Subscription
from app.accounts.models import Customer
from app.catalog import Catalog, MeteredAllowance, Plan, current_catalog
from app.entitlements.costs import EventCost, nanos_as_decimal


def iso(value: datetime | None) -> str | None:
    """A timestamp as ISO 8601 in UTC, or None."""
    return value.isoformat().replace("+00:00", "Z") if value else None


def cost_view(cost: EventCost | None) -> dict[str, Any] | None:
    """What an event cost to serve; None when nothing about it has a cost."""
    if cost is None:
        return None
    return {
        # Minor units of the catalog's currency, as a decimal string (Stripe's *_decimal).
        "amountDecimal": None if cost.nanos is None else format(nanos_as_decimal(cost.nanos), "f"),
        "currency": current_catalog().currency,
        "priced": cost.priced,
        "source": cost.source.value,
        "model": cost.model or None,
    }


def plan_view(catalog: Catalog, plan: Plan) -> dict[str, Any]:
    """A plan as GET /plans lists it."""
    features = []
    for key, grant in plan.features.items():
        feature: dict[str, Any] = {"key": key, "name": catalog.features[key].name}
        if isinstance(grant, MeteredAllowance):
            feature.update(
                type="metered",
                unlimited=grant.unlimited,
                included=grant.included,
                limit=grant.limit,
                overagePrice=grant.overage_price,
                overagePer=grant.overage_per if grant.billable_overage else None,
            )
        else:
            feature.update(type="boolean", enabled=grant)
        features.append(feature)
    return {
        "id": plan.key,
        "key": plan.key,
        "name": plan.name,
        "tier": plan.tier,
        "interval": plan.interval,
        "price": {"amount": plan.price, "currency": plan.currency},
        "billing": plan.billing,
        "trialDays": plan.trial_days,
        "trialRequiresCard": plan.trial_requires_card,
        "features": features,
        "credits": [
            {
                "pool": credit.pool,
                "denomination": credit.denomination,
                "amount": credit.amount,
                "features": credit.features,
                "rollover": credit.rollover,
                "rolloverCap": credit.rollover_cap,
                "expireAfterPeriods": credit.expire_after_periods,
            }
            for credit in plan.credits
        ],
    }


def subscription_view(subscription: Subscription) -> dict[str, Any]:
    """A subscription as the API shows it; its id is Stripe's."""
    scheduled = None
    if subscription.scheduled_plan_key:
        scheduled = {
            "planId": subscription.scheduled_plan_key,
            "at": iso(subscription.scheduled_change_at),
        }
    return {
        "id": subscription.stripe_subscription_id,
        "planId": subscription.plan_key,
        "status": subscription.status.value,
        "currentPeriodStart": iso(subscription.current_period_start),
        "currentPeriodEnd": iso(subscription.current_period_end),
        "trialEnd": iso(subscription.trial_end),
        "cancelAtPeriodEnd": subscription.cancel_at_period_end,
        "canceledAt": iso(subscription.canceled_at),
        "scheduledChange": scheduled,
    }


def customer_view(customer: Customer, subscriptions: list[Subscription]) -> dict[str, Any]:
    """A customer with its subscriptions, newest first."""
    return {
        "customerReferenceId": customer.reference_id,
        "email": customer.email,
        "firstName": customer.first_name,
        "lastName": customer.last_name,
        "createdAt": iso(customer.created_at),
        "subscriptions": [subscription_view(s) for s in subscriptions],
    }
