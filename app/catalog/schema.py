"""The shape of plans.toml, validated field by field with pydantic."""

from __future__ import annotations

from decimal import Decimal
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Key = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[a-z]{3}$")]
Interval = Literal["month", "year"]
Billing = Literal["in_advance", "in_arrears"]
Rollover = Literal["none", "full", "capped", "expire"]
PositiveInt = Annotated[int, Field(gt=0)]
# An exact amount in minor units of the catalog's currency, fractions allowed: TOML's decimals
# are read as Decimal (loader.py), never as binary floats.
MinorUnits = Annotated[Decimal, Field(ge=0, le=10**9, strict=False, allow_inf_nan=False)]
FloorAction = Literal["alert", "bill"]

# Stripe refuses trials longer than two years (subscription_data.trial_period_days <= 730).
MAX_TRIAL_DAYS = 730


class _Strict(BaseModel):
    # A misspelt field must stop start-up rather than be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class FeatureDefinition(_Strict):
    """A capability a plan can grant: on/off (``boolean``) or counted in units (``metered``)."""

    name: str
    kind: Literal["boolean", "metered"]
    unit: str = "unit"
    unit_plural: str | None = None

    @property
    def units(self) -> str:
        """The unit's plural, for sentences like "1,000 messages"."""
        return self.unit_plural or f"{self.unit}s"


class MeteredAllowance(_Strict):
    """How much of a metered feature a plan gives each period, and what happens beyond it."""

    unlimited: bool = False
    included: Annotated[int, Field(ge=0)] = 0
    limit: PositiveInt | None = None
    overage_price: PositiveInt | None = None
    overage_per: PositiveInt = 1

    @property
    def billable_overage(self) -> bool:
        """Whether units past the allowance and credits are billed through a Stripe Meter."""
        return self.overage_price is not None


class CreditGrant(_Strict):
    """Credits granted into a pool every paid period, drawn down by the features listed."""

    pool: Key
    denomination: Key
    amount: PositiveInt
    features: Annotated[list[Key], Field(min_length=1)]
    rollover: Rollover = "none"
    rollover_cap: PositiveInt | None = None
    expire_after_periods: PositiveInt | None = None


class ModelRate(_Strict):
    """The operator's own price of a model (negotiated, or a model of its own), in minor units of
    the catalog's currency per million tokens, and per call; it wins over the bundled prices."""

    input: MinorUnits = Decimal(0)
    output: MinorUnits = Decimal(0)
    # Input tokens read from the provider's cache, and written to it; input's rate if not given.
    cached_input: MinorUnits | None = None
    cache_write: MinorUnits | None = None
    per_call: MinorUnits = Decimal(0)


class FeatureCost(_Strict):
    """What a unit of a feature costs to serve, besides any model it calls (infrastructure,
    a third-party API): minor units of the catalog's currency per unit."""

    per_unit: MinorUnits


class Costs(_Strict):
    """How usage events are priced (docs/costs.md): the bundled model prices are in US dollars,
    overridden by ``models`` ("provider/model" or "model") and extended by ``features``."""

    # What one US dollar is worth in the catalog's currency, for the bundled prices; required
    # when the catalog's currency is not usd (without it, events priced in dollars stay unpriced).
    usd_rate: (
        Annotated[Decimal, Field(gt=0, le=10**6, strict=False, allow_inf_nan=False)] | None
    ) = None
    models: dict[Annotated[str, StringConstraints(min_length=1, max_length=255)], ModelRate] = (
        Field(default_factory=dict)
    )
    features: dict[Key, FeatureCost] = Field(default_factory=dict)


class Plan(_Strict):
    """One price point: a tier at an interval, with its features, credits and trial."""

    key: Key
    name: str
    tier: Key
    interval: Interval
    price: Annotated[int, Field(ge=0)]
    currency: Currency
    billing: Billing = "in_advance"
    trial_days: Annotated[int, Field(ge=0, le=MAX_TRIAL_DAYS)] = 0
    trial_requires_card: bool = True
    description: str = ""
    highlight: bool = False
    features: dict[Key, bool | MeteredAllowance] = Field(default_factory=dict)
    credits: list[CreditGrant] = Field(default_factory=list)
    # Prices of the Stripe account that predate Tollgate (no lookup key, or another one) and
    # bill this plan: `flask stripe import` and the sync map subscriptions on them to it.
    stripe_prices: list[Annotated[str, StringConstraints(pattern=r"^price_\w+$")]] = Field(
        default_factory=list
    )
    # The share of a period's revenue that must remain after the cost of serving it (0.8: cost
    # may take at most 20%), and what happens to a period below it: the operator is alerted, or
    # the amount that restores the floor is billed on the period's invoice (docs/costs.md).
    margin_floor: (
        Annotated[Decimal, Field(ge=0, lt=1, strict=False, allow_inf_nan=False)] | None
    ) = None
    margin_floor_action: FloorAction = "alert"

    @property
    def bills_margin_floor(self) -> bool:
        """Whether cost past the margin floor is billed through the margin floor's meter."""
        return self.margin_floor is not None and self.margin_floor_action == "bill"

    @property
    def is_free(self) -> bool:
        """A plan with no price never goes through Checkout."""
        return self.price == 0


class Catalog(_Strict):
    """Every feature and plan, and the order of the tiers from lowest to highest."""

    currency: Currency
    tiers: Annotated[list[Key], Field(min_length=1)]
    features: dict[Key, FeatureDefinition] = Field(default_factory=dict)
    plans: Annotated[dict[Key, Plan], Field(min_length=1)]
    costs: Costs = Field(default_factory=Costs)

    def plan(self, key: str) -> Plan | None:
        """The plan with this key, or None."""
        return self.plans.get(key)

    @cached_property
    def _by_stripe_price(self) -> dict[str, str]:
        return {price: plan.key for plan in self.plans.values() for price in plan.stripe_prices}

    def plan_key_of_price(self, price_id: str, lookup_key: str | None) -> str | None:
        """The plan a Stripe price bills: by its lookup key (the prices `flask catalog sync`
        makes), else by its id in a plan's ``stripe_prices``; None for a price of no plan."""
        if lookup_key in self.plans:
            return lookup_key
        return self._by_stripe_price.get(price_id)

    # Worked out on first use; the catalog never changes once loaded. A cached_property, not a
    # private attribute: after the first call it is a plain instance attribute, where pydantic
    # routes private ones through its own __getattr__ on every access.
    @cached_property
    def _covering(self) -> dict[str, frozenset[str]]:
        pools: dict[str, set[str]] = {}
        for plan in self.plans.values():
            for grant in plan.credits:
                for feature_key in grant.features:
                    pools.setdefault(feature_key, set()).add(grant.pool)
        return {feature_key: frozenset(keys) for feature_key, keys in pools.items()}

    def pools_covering(self, feature_key: str) -> frozenset[str]:
        """Credit pools that may pay for a feature: any a plan grants for it, whichever plan."""
        return self._covering.get(feature_key, frozenset())

    def tier_rank(self, plan: Plan) -> int:
        """Where the plan's tier stands: higher is a bigger plan."""
        return self.tiers.index(plan.tier)

    def is_upgrade(self, current: Plan, target: Plan) -> bool:
        """A higher tier, or the same tier billed yearly instead of monthly: applied at once."""
        current_rank, target_rank = self.tier_rank(current), self.tier_rank(target)
        if target_rank != current_rank:
            return target_rank > current_rank
        return target.interval == "year" and current.interval != "year"
