"""A batch's state: its locked customers' subscriptions, counters and lots, moved in memory."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.accounts.mirror import SubscriptionRead
from app.entitlements.access import Access, Terms, current_terms, judge_access
from app.entitlements.alerts import Alert, alert_base
from app.entitlements.costs import EventCost
from app.entitlements.ledger import LotBalance
from app.entitlements.results import UsageResult


# Plain slotted dataclasses: a batch makes two per event, and frozen ones cost twice as much.
@dataclass(slots=True)
class NewEvent:
    """An event recorded by this batch, by the index of its row (its id comes with the insert)."""

    index: int
    replayed: bool = False


@dataclass(slots=True)
class StoredEvent:
    """An event recorded before, or earlier in this batch."""

    body: dict[str, Any]
    result: UsageResult | NewEvent


@dataclass(slots=True)
class FeatureState:
    """What a customer's events of one feature are judged by, which holds for the whole batch:
    worked out at its first event, not at each."""

    access: Access
    counter: tuple[int, str, str]
    alert_base: int  # see alerts.alert_base()
    # Whether units past the allowance and credits are billed (Cover.overage_billable), asked
    # of every event.
    overage_billable: bool
    # The customer's open lots of the pools that cover the feature, in burn order.
    lots: list[LotBalance]


@dataclass
class Batch:
    """The locked customers' state, loaded once and moved in memory as events apply."""

    at: datetime
    subscriptions: dict[int, SubscriptionRead | None]
    periods: dict[int, str]  # each customer's current period key
    open_lots: dict[int, list[LotBalance]]
    used: dict[tuple[int, str, str], int]
    stored: dict[tuple[int, str], StoredEvent]
    rows: list[dict[str, Any]] = field(default_factory=list)
    results: list[UsageResult] = field(default_factory=list)
    deductions: list[tuple[int, LotBalance, int]] = field(default_factory=list)
    overage: list[tuple[int, int]] = field(default_factory=list)
    counted: dict[tuple[int, str, str], int] = field(default_factory=lambda: defaultdict(int))
    alerts: list[Alert] = field(default_factory=list)
    # What the batch's events cost, by customer, feature, period and model: nanos, events, and
    # how many of them no one could price.
    costs: dict[tuple[int, str, str, str], list[int]] = field(default_factory=dict)
    terms: Terms = field(default_factory=current_terms)
    feature_states: dict[tuple[int, str], FeatureState] = field(default_factory=dict)

    def add_cost(self, counter: tuple[int, str, str], cost: EventCost) -> None:
        """Count an event's cost towards its period's totals."""
        customer_id, feature_key, period = counter
        totals = self.costs.setdefault((customer_id, feature_key, period, cost.model), [0, 0, 0])
        totals[0] += cost.nanos or 0
        totals[1] += 1
        totals[2] += cost.nanos is None

    def feature_state(self, customer_id: int, feature_key: str) -> FeatureState:
        """What the customer's events of the feature are judged by."""
        found = self.feature_states.get((customer_id, feature_key))
        if found is None:
            access = judge_access(self.subscriptions[customer_id], feature_key, self.at, self.terms)
            catalog, _ = self.terms
            pools = catalog.pools_covering(feature_key)
            allowance = access.allowance
            found = self.feature_states[customer_id, feature_key] = FeatureState(
                access,
                (customer_id, feature_key, self.periods[customer_id]),
                alert_base(allowance),
                allowance is not None and allowance.billable_overage,
                [lot for lot in self.open_lots.get(customer_id, ()) if lot.pool_key in pools],
            )
        return found
