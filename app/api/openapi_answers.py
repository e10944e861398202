"""The shapes of the API's answers, for the OpenAPI document only (views.py and the route
modules build the answers themselves).

Each model is closed (``additionalProperties: false``) and lists every field as required, as
the views always send every field, null when there is nothing to say. The reliability suite's
fuzzing checks every answer against these shapes, so a view that drifts from them fails there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.accounts.mirror import SubscriptionStatus


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Why units are not allowed: the check's and the pre-flight's `reason` (None when allowed).
Reason = Literal[
    "no_subscription",
    "not_entitled",
    "feature_not_in_plan",
    "limit_exceeded",
    "insufficient_credits",
]


class ErrorDetail(_Answer):
    """What was refused: ``code`` for programs, ``message`` for people."""

    code: str
    message: str


class Error(_Answer):
    """A refusal; nothing was written."""

    error: ErrorDetail


class Money(_Answer):
    """An amount in minor units of its currency."""

    amount: int
    currency: str


class MeteredFeature(_Answer):
    """A feature counted in units, with the plan's allowance of it."""

    key: str
    name: str
    type: Literal["metered"]
    unlimited: bool
    included: int
    limit: int | None
    overagePrice: int | None
    overagePer: int | None


class BooleanFeature(_Answer):
    """A feature that is on or off."""

    key: str
    name: str
    type: Literal["boolean"]
    enabled: bool


class PlanCredit(_Answer):
    """Credits a plan grants each period."""

    pool: str
    denomination: str
    amount: int
    features: list[str]
    rollover: Literal["none", "full", "capped", "expire"]
    rolloverCap: int | None
    expireAfterPeriods: int | None


class Plan(_Answer):
    """A plan of the catalog; ``id`` is what POST /subscriptions takes as ``planId``."""

    id: str
    key: str
    name: str
    tier: str
    interval: Literal["month", "year"]
    price: Money
    billing: Literal["in_advance", "in_arrears"]
    trialDays: int
    trialRequiresCard: bool
    features: list[Annotated[MeteredFeature | BooleanFeature, Field(discriminator="type")]]
    credits: list[PlanCredit]


class CatalogEntry(_Answer):
    """One entry of GET /plans."""

    plan: Plan


class ScheduledChange(_Answer):
    """A downgrade waiting for the end of the period."""

    planId: str
    at: datetime | None


class Subscription(_Answer):
    """A subscription; its ``id`` is Stripe's."""

    id: str
    planId: str
    status: SubscriptionStatus
    currentPeriodStart: datetime | None
    currentPeriodEnd: datetime | None
    trialEnd: datetime | None
    cancelAtPeriodEnd: bool
    canceledAt: datetime | None
    scheduledChange: ScheduledChange | None


class Customer(_Answer):
    """A customer with its subscriptions, newest first."""

    customerReferenceId: str
    email: str
    firstName: str | None
    lastName: str | None
    createdAt: datetime
    subscriptions: list[Subscription]


class CheckoutStarted(_Answer):
    """A paid in-advance plan: the buyer pays on ``checkoutUrl``; nothing exists yet."""

    checkoutUrl: str
    subscription: None


class SubscriptionStarted(_Answer):
    """A free or in-arrears plan, active at once."""

    checkoutUrl: None
    subscription: Subscription


class CheckUsage(_Answer):
    """Where the feature's usage stands this period."""

    used: int
    limit: int | None
    remaining: int | None
    included: int
    unlimited: bool
    periodEnd: datetime | None


class Entitlement(_Answer):
    """May the customer use the units now."""

    customerReferenceId: str
    featureKey: str
    isAllowed: bool
    reason: Reason | None
    subscriptionStatus: SubscriptionStatus | None
    usage: CheckUsage
    creditBalance: int


class CreditDraw(_Answer):
    """Credits taken (or that would be taken) from one pool."""

    pool: str
    denomination: str
    amount: int


class SimulationOutcome(_Answer):
    """What recording the event would do."""

    eventName: str
    usageUnits: int
    wouldExceedLimit: bool
    fromIncluded: int
    fromCredits: list[CreditDraw]
    overageUnits: int
    overageBillable: bool


class Simulation(_Answer):
    """The pre-flight's answer; nothing was recorded."""

    customerReferenceId: str
    featureKey: str
    isAllowed: bool
    reason: Reason | None
    simulation: SimulationOutcome


class EventUsage(_Answer):
    """The feature's usage after the event."""

    used: int
    limit: int | None
    remaining: int | None


class EventCost(_Answer):
    """What serving the event cost; null when nothing about it has a cost."""

    amountDecimal: Annotated[
        str | None,
        Field(description="Minor units of the currency, exact; null when unpriced."),
    ]
    currency: str
    priced: bool
    source: Literal["stated", "operator", "genai-prices", "unpriced"]
    model: str | None


class EventResult(_Answer):
    """What recording an event did; a retry with its key answers the same, ``replayed``."""

    eventIdempotencyKey: str
    featureKey: str
    usageUnits: int
    fromIncluded: int
    fromCredits: list[CreditDraw]
    overageUnits: int
    overageBillable: bool
    usage: EventUsage
    creditBalance: int
    cost: EventCost | None
    replayed: bool


class BatchRecorded(_Answer):
    """An event of a batch that was recorded now, or earlier (replayed)."""

    status: Literal["recorded", "replayed"]
    result: EventResult


class BatchRejected(_Answer):
    """An event of a batch that was refused; the others went on."""

    status: Literal["rejected"]
    error: ErrorDetail


BatchItem = Annotated[BatchRecorded | BatchRejected, Field(discriminator="status")]


class RejectedRow(_Answer):
    """A row of a CSV file that was not recorded, and why."""

    line: int
    code: str
    reason: str


class ImportReport(_Answer):
    """How many rows were recorded, and every rejected row."""

    recorded: int
    rejected: list[RejectedRow]


class CreditPool(_Answer):
    """A credit pool with its balance, next expiry and renewal."""

    key: str
    denomination: str
    balance: int
    expiring: int
    nextExpiry: datetime | None
    renewsAmount: int | None
    renewsAt: datetime | None
    rollover: str


class Plans(_Answer):
    """GET /plans"""

    data: list[CatalogEntry]


class CustomerAnswer(_Answer):
    """A customer."""

    data: Customer


class CheckoutAnswer(_Answer):
    """POST /subscriptions for a paid in-advance plan."""

    data: CheckoutStarted


class SubscriptionStartedAnswer(_Answer):
    """POST /subscriptions for a free or in-arrears plan."""

    data: SubscriptionStarted


class SubscriptionAnswer(_Answer):
    """A subscription after a change."""

    data: Subscription


class EntitlementAnswer(_Answer):
    """GET /entitlements/{customerReferenceId}/{featureKey}"""

    data: Entitlement


class SimulationAnswer(_Answer):
    """POST /entitlements"""

    data: Simulation


class EventAnswer(_Answer):
    """POST /events"""

    data: EventResult


class BatchAnswer(_Answer):
    """POST /events/batch: one result per event, in order."""

    data: list[BatchItem]


class ImportAnswer(_Answer):
    """POST /usage/import"""

    data: ImportReport


class CreditPools(_Answer):
    """GET /credits/{customerReferenceId}/pools"""

    data: list[CreditPool]


# Every answer's envelope, as the operations of the document name them.
ANSWERS: list[type[BaseModel]] = [
    Error,
    Plans,
    CustomerAnswer,
    CheckoutAnswer,
    SubscriptionStartedAnswer,
    SubscriptionAnswer,
    EntitlementAnswer,
    SimulationAnswer,
    EventAnswer,
    BatchAnswer,
    ImportAnswer,
    CreditPools,
]
