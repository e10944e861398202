"""The demo customers' use of the product, reported to Tollgate's usage engine as the product
reports it (the service behind POST /events/batch): the AI feature's events carry the model
call's tokens as their costInput, for Tollgate to price."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from app.catalog import Plan
from app.catalog.schema import MeteredAllowance
from app.demo.story import Persona
from app.demo.workloads import cost_inputs
from app.entitlements.errors import UsageError
from app.entitlements.usage import MAX_BATCH, UsageEventInput, customer_by_reference, record_batch
from app.extensions import db

# Each customer's product reports its usage every few days, in turns.
REPORT_EVERY_DAYS = 4
# A feature without an allowance to measure against (unlimited) is used about this much a month.
UNLIMITED_MONTHLY_USE = 400_000
# The share of the allowance that a customer who burns credits uses of features without credits.
BURNERS_OTHER_USE = 0.6
EVENT_NAMES = {"api_calls": "api.request", "ai_chat": "chat.completion"}
# The feature whose units are a model's tokens (input and output).
AI_FEATURE = "ai_chat"


def monthly_use(plan: Plan, feature_key: str, persona: Persona, months: int) -> int:
    """How much of a feature the customer uses a month, ``months`` months after joining: a share
    of what the plan gives a month (included units and credits, else its limit), which grows,
    fades (falls by two fifths each month) or burns through the credits."""
    allowance = plan.features.get(feature_key)
    if not isinstance(allowance, MeteredAllowance):
        return 0
    credits = sum(grant.amount for grant in plan.credits if feature_key in grant.features)
    given = allowance.included + credits or allowance.limit or UNLIMITED_MONTHLY_USE
    if plan.interval == "year":
        given //= 12
    share = persona.intensity
    if persona.usage == "burning" and not credits:
        share = BURNERS_OTHER_USE
    trend = {"growing": 1.12**months, "fading": 0.6**months}.get(persona.usage, 1.0)
    return int(given * share * trend)


@dataclass(frozen=True)
class Reporter:
    """A customer whose product reports today, on the plan it is on, this long after joining."""

    persona: Persona
    plan: Plan
    months: int


def usage_events(day: int, reporters: list[Reporter]) -> list[UsageEventInput]:
    """The events the reporters' products send today: a few days' use of each metered feature,
    more or less than usual (the same each time for the same customer and day); the AI
    feature's in events of at most a batch of calls each, with their costInput."""
    events = []
    for reporter in reporters:
        persona = reporter.persona
        noise = random.Random(f"{persona.reference_id}-{day}")  # noqa: S311 - not a secret
        for feature_key in reporter.plan.features:
            average = monthly_use(reporter.plan, feature_key, persona, reporter.months)
            units = int(average * REPORT_EVERY_DAYS / 30 * noise.uniform(0.7, 1.3))
            if units <= 0:
                continue
            key = f"demo-{day}-{feature_key}"
            parts = (
                cost_inputs(persona.workload, units, noise)
                if feature_key == AI_FEATURE
                else [(units, None)]
            )
            events += [
                UsageEventInput(
                    customer_reference_id=persona.reference_id,
                    idempotency_key=f"{key}-{part}" if part else key,
                    event_name=EVENT_NAMES.get(feature_key, f"{feature_key}.used"),
                    feature_key=feature_key,
                    units=part_units,
                    cost_input=cost_input,
                )
                for part, (part_units, cost_input) in enumerate(parts)
            ]
    return events


def record(events: list[UsageEventInput], refused: Counter[str]) -> int:
    """Record the events a batch at a time; the number recorded. Each refusal is counted in
    ``refused`` by its code (limit_exceeded past a hard limit, not_entitled after the grace)."""
    recorded = 0
    for start in range(0, len(events), MAX_BATCH):
        outcomes = record_batch(
            customer_by_reference, events[start : start + MAX_BATCH], db.session.commit
        )
        db.session.commit()
        for outcome in outcomes:
            if isinstance(outcome, UsageError):
                refused[outcome.code] += 1
            else:
                recorded += 1
    return recorded
