"""What the catalog is called in Stripe: product ids, price lookup keys and meter event names.

Pure naming, so every layer can find a plan's Stripe objects; pushing them to Stripe is
app/billing/catalog_sync.py's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from app.catalog.schema import MeteredAllowance, Plan

PRODUCT_PREFIX = "tollgate_"
# In-arrears plans are billed after the period through a meter that Tollgate reports one unit to
# at the start of each period: Stripe bills metered prices at the end of the period.
PLAN_FEE_METER = "tollgate_plan_fee"
# What restores a plan's margin floor is billed through one meter, in minor units (a metered
# price of 1 minor unit per unit per plan), under one product that names it on the invoice.
MARGIN_FLOOR_METER = "tollgate_margin_floor"
MARGIN_FLOOR_PRODUCT = "tollgate_margin_floor"
MARGIN_FLOOR_PRODUCT_NAME = "Usage cost above the margin floor"


def product_id(tier: str) -> str:
    """The Stripe product id of a tier (Stripe accepts ids chosen by the caller)."""
    return f"{PRODUCT_PREFIX}{tier}"


def usage_product_id(feature_key: str) -> str:
    """The Stripe product that overage of a feature is billed under."""
    return f"{PRODUCT_PREFIX}{feature_key}_usage"


def meter_event_name(feature_key: str) -> str:
    """The Stripe meter event name for a feature's billable overage."""
    return f"tollgate_{feature_key}"


def overage_lookup_key(plan_key: str, feature_key: str) -> str:
    """The lookup key of a plan's overage price for a feature."""
    return f"{plan_key}__{feature_key}_overage"


def margin_floor_lookup_key(plan_key: str) -> str:
    """The lookup key of a plan's margin floor price (for plans that bill their floor)."""
    return f"{plan_key}__margin_floor"


def usage_lookup_keys(plan: Plan) -> list[str]:
    """The lookup keys of the plan's metered usage prices, which sit beside its own price on
    its subscriptions: each billable overage's, then the margin floor's if the plan bills it."""
    keys = [overage_lookup_key(plan.key, feature) for feature, _ in overage_allowances(plan)]
    if plan.bills_margin_floor:
        keys.append(margin_floor_lookup_key(plan.key))
    return keys


def overage_allowances(plan: Plan) -> Iterator[tuple[str, MeteredAllowance]]:
    """The plan's metered features whose overage is billed."""
    for feature_key, grant in plan.features.items():
        if isinstance(grant, MeteredAllowance) and grant.billable_overage:
            yield feature_key, grant


def catalog_lookup_keys(plans: Iterable[Plan]) -> set[str]:
    """Every lookup key `flask catalog sync` gives a price: each plan's, each overage's, each
    margin floor's."""
    keys: set[str] = set()
    for plan in plans:
        keys.add(plan.key)
        keys.update(usage_lookup_keys(plan))
    return keys
