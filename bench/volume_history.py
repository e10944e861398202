"""Two years of a customer's billing, simulated: subscriptions, invoices, charges and the
recurring-revenue changes they make, as plain rows (bench/volume_data.py writes them).

Everything is drawn from one seeded random generator, so a run is repeatable.
"""

from __future__ import annotations

import random
from calendar import monthrange
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from app.catalog.schema import Catalog, Plan

# Countries of the customers (and their cards), weighted roughly as a US SaaS sells.
COUNTRIES = {"US": 40, "GB": 10, "DE": 9, "FR": 7, "CA": 6, "AU": 4, "NL": 4, "IN": 5, "BR": 4}
COUNTRIES |= {"JP": 3, "ES": 3, "SE": 2, "IE": 1, "SG": 1, "MX": 1}
CARD_BRANDS = {"visa": 55, "mastercard": 30, "amex": 10, "discover": 3, "jcb": 1, "unionpay": 1}
TIER_WEIGHTS = (60, 34, 6, 1)
DECLINES = ("card_declined", "insufficient_funds", "expired_card", "processing_error")


def weighted(rng: random.Random, weights: dict[str, int]) -> str:
    """One key of ``weights``, drawn in proportion to its weight."""
    return rng.choices(list(weights), list(weights.values()))[0]


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` ``months`` calendar months later (the 31st becomes a shorter month's last)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, monthrange(year, month)[1]))


def monthly_value(plan: Plan, quantity: int) -> int:
    """What a plan at ``quantity`` is worth a month, in minor units (a yearly price over 12)."""
    return round(plan.price * quantity / (12 if plan.interval == "year" else 1))


@dataclass
class Period:
    """One billing period of a subscription, with the plan and quantity in force."""

    start: datetime
    end: datetime
    plan: Plan
    quantity: int
    state: str  # trialing, active, past_due: what it counted as in the revenue snapshots


@dataclass
class Sub:
    """A simulated Stripe subscription."""

    serial: int
    created: datetime
    plan: Plan
    quantity: int
    periods: list[Period] = field(default_factory=list)
    status: str = "active"
    trial_end: datetime | None = None
    canceled_at: datetime | None = None
    ended_at: datetime | None = None
    cancel_at_period_end: bool = False
    scheduled_plan_key: str | None = None

    @property
    def current(self) -> Period:
        return self.periods[-1]

    def live_until(self, now: datetime) -> datetime:
        """When it stopped counting (or now)."""
        return min(self.ended_at or now, now)


@dataclass
class Invoice:
    """A simulated invoice and the attempts to pay it (True succeeded, False failed)."""

    serial: int
    sub: Sub
    created: datetime
    period: Period | None
    status: str
    billing_reason: str
    amount_due: int
    monthly_amount: int | None
    attempts: list[bool]
    next_payment_attempt: datetime | None = None


@dataclass
class History:
    """One customer's subscriptions, invoices and revenue changes."""

    subs: list[Sub] = field(default_factory=list)
    invoices: list[Invoice] = field(default_factory=list)
    # (at, mrr_before, mrr_after, movement)
    changes: list[tuple[datetime, int, int, str]] = field(default_factory=list)


class Simulator:
    """Simulates customers one at a time on the catalog's plans, handing out serial numbers."""

    def __init__(
        self, catalog: Catalog, now: datetime, rng: random.Random, serials: dict[str, int]
    ) -> None:
        self.now, self.rng, self.serials = now, rng, serials
        tiers = catalog.tiers
        paid = [plan for plan in catalog.plans.values() if plan.price > 0]
        self.free = next((plan for plan in catalog.plans.values() if plan.price == 0), None)
        self.ladder = {
            interval: sorted(
                (plan for plan in paid if plan.interval == interval),
                key=lambda plan: tiers.index(plan.tier),
            )
            for interval in ("month", "year")
        }

    def next_serial(self, kind: str) -> int:
        self.serials[kind] += 1
        return int(self.serials[kind])

    def customer(self, created: datetime, shape: int) -> History:
        """The history of a customer created at ``created``. ``shape`` picks its kind for the
        first few customers, so that a small fill has one of each; later ones are drawn."""
        rng, history = self.rng, History()
        roll = rng.random()
        kinds = ("paid", "past_due", "churned", "trialing", "reactivated", "unpaid", "free")
        kind = kinds[shape] if shape < len(kinds) else ""
        if kind == "free" or (not kind and roll < 0.15 and self.free):
            sub = self._start(history, created, self.free or self.ladder["month"][0], 1)
            self._run(history, sub, churn=0.01, changes=False)
            return history
        if not kind and roll < 0.2:
            return history  # signed up, never subscribed
        interval = "year" if rng.random() < 0.2 and self.ladder["year"] else "month"
        ladder = self.ladder[interval]
        # Most buy the lowest tier, few the highest.
        plan = rng.choices(ladder, TIER_WEIGHTS[: len(ladder)])[0]
        quantity = rng.choice((1, 1, 1, 1, 1, 1, 2, 3, 5)) if rng.random() < 0.9 else 12
        if kind == "trialing":
            created = self.now - timedelta(days=3)
        t = created
        while t < self.now:
            sub = self._start(history, t, plan, quantity, trial=kind == "trialing" or None)
            churn = 1.0 if kind in ("churned", "reactivated") else (0.0 if kind else None)
            self._run(history, sub, churn)
            if sub.ended_at is None:
                self._finish(history, sub, kind)
                break
            if kind == "churned" or not (kind == "reactivated" or rng.random() < 0.3):
                break
            t = sub.ended_at + timedelta(days=rng.randint(20, 120))
            kind = ""
        return history

    def _start(
        self, history: History, at: datetime, plan: Plan, quantity: int, trial: bool | None = False
    ) -> Sub:
        sub = Sub(self.next_serial("subscriptions"), at, plan, quantity)
        history.subs.append(sub)
        wants_trial = trial or (trial is None and self.rng.random() < 0.6)
        if plan.trial_days and wants_trial and len(history.subs) == 1:
            sub.trial_end = at + timedelta(days=plan.trial_days)
            sub.periods.append(Period(at, sub.trial_end, plan, quantity, "trialing"))
        return sub

    def _run(
        self, history: History, sub: Sub, churn: float | None = None, changes: bool = True
    ) -> None:
        """Bill period after period until now or until the customer leaves."""
        rng, now = self.rng, self.now
        if sub.periods:
            if sub.trial_end and sub.trial_end > now:
                sub.status = "trialing"
                return
            if churn is None and rng.random() < 0.15:  # the trial ended without a card
                self._end(history, sub, sub.trial_end or now, revenue=False)
                return
        plan, quantity = sub.plan, sub.quantity
        t = sub.trial_end or sub.created
        mrr = monthly_value(plan, quantity)
        if mrr:
            ever = any(change[3] == "churn" for change in history.changes)
            history.changes.append((t, 0, mrr, "reactivation" if ever else "new"))
        reason = "subscription_cycle" if sub.trial_end else "subscription_create"
        step = 12 if plan.interval == "year" else 1
        while True:
            end = add_months(t, step)
            period = Period(t, end, plan, quantity, "active")
            sub.periods.append(period)
            if plan.price and plan.billing != "in_arrears":
                self._invoice(history, sub, t, period, reason)
            if plan.price and plan.billing == "in_arrears" and end <= now:
                self._invoice(history, sub, end, period, "subscription_cycle")
            reason = "subscription_cycle"
            if end > now:
                return
            leaves = churn if churn is not None else 1 - 0.98**step
            roll = rng.random()
            if roll < leaves:
                churn = None
                if rng.random() < 0.3:  # involuntary: the renewal was never paid
                    failed = Period(end, add_months(end, step), plan, quantity, "past_due")
                    sub.periods.append(failed)
                    self._invoice(history, sub, end, failed, reason, paid=False, final=True)
                    self._end(history, sub, min(end + timedelta(days=21), now), revenue=bool(mrr))
                else:
                    self._end(history, sub, end, revenue=bool(mrr))
                return
            if changes and roll < leaves + 0.05:
                plan, quantity = self._change(
                    history, sub, end, plan, quantity, roll < leaves + 0.03
                )
                mrr = monthly_value(plan, quantity)
            t = end

    def _change(
        self, history: History, sub: Sub, at: datetime, plan: Plan, quantity: int, up: bool
    ) -> tuple[Plan, int]:
        """An upgrade or a downgrade at a renewal: another tier, or seats added or removed."""
        ladder = self.ladder[plan.interval]
        index = ladder.index(plan)
        before = monthly_value(plan, quantity)
        if up:
            if index + 1 < len(ladder) and self.rng.random() < 0.4 / (index + 1):
                plan = ladder[index + 1]
            else:
                quantity += self.rng.randint(1, 3)
        elif index > 0 and self.rng.random() < 0.6:
            plan = ladder[index - 1]
        elif quantity > 1:
            quantity -= 1
        else:
            return plan, quantity
        after = monthly_value(plan, quantity)
        history.changes.append(
            (at, before, after, "expansion" if after > before else "contraction")
        )
        if after > before and plan.billing != "in_arrears":
            self._invoice(history, sub, at, None, "subscription_update", proration=after - before)
        return plan, quantity

    def _invoice(
        self,
        history: History,
        sub: Sub,
        at: datetime,
        period: Period | None,
        reason: str,
        paid: bool = True,
        final: bool = False,
        proration: int = 0,
    ) -> Invoice:
        rng = self.rng
        if period is not None:
            amount = period.plan.price * period.quantity
            monthly: int | None = monthly_value(period.plan, period.quantity)
        else:
            amount, monthly = proration, None
        attempts = [False] if paid and rng.random() < 0.04 else []
        if paid:
            status, attempts = "paid", [*attempts, True]
        else:
            status, attempts = "uncollectible" if final else "open", [False] * rng.randint(1, 3)
            if final:
                attempts = [False] * 4
        invoice = Invoice(
            self.next_serial("invoices"),
            sub,
            at + timedelta(minutes=rng.randint(0, 90)),
            period,
            status,
            reason,
            amount,
            monthly,
            attempts,
        )
        if status == "open":
            invoice.next_payment_attempt = self.now + timedelta(hours=rng.randint(6, 96))
        history.invoices.append(invoice)
        return invoice

    def _end(self, history: History, sub: Sub, at: datetime, revenue: bool) -> None:
        sub.status, sub.canceled_at, sub.ended_at = "canceled", at, at
        if revenue and sub.periods:
            mrr = monthly_value(sub.current.plan, sub.current.quantity)
            history.changes.append((at, mrr, 0, "churn"))

    def _finish(self, history: History, sub: Sub, kind: str) -> None:
        """The live subscription's state today: mostly active, some behind on payment."""
        rng, period = self.rng, sub.current
        if sub.status == "trialing" or not period.plan.price:
            return
        roll = rng.random()
        if not history.invoices or history.invoices[-1].sub is not sub:
            return
        if kind == "past_due" or (not kind and roll < 0.06):
            sub.status, period.state = "past_due", "past_due"
            last = history.invoices[-1]
            last.status, last.attempts = "open", [False] * rng.randint(1, 3)
            last.next_payment_attempt = self.now + timedelta(hours=rng.randint(6, 96))
        elif kind == "unpaid" or (not kind and roll < 0.075):
            # Dunning gave up and left it unpaid: no access, no recurring revenue.
            sub.status, period.state = "unpaid", "unpaid"
            last = history.invoices[-1]
            last.status, last.attempts = "uncollectible", [False] * 4
            mrr = monthly_value(period.plan, period.quantity)
            history.changes.append(
                (max(period.start, self.now - timedelta(days=2)), mrr, 0, "churn")
            )
        elif roll < 0.11:
            sub.cancel_at_period_end = True
            sub.canceled_at = self.now - timedelta(days=rng.randint(1, 10))
        elif roll < 0.13:
            ladder = self.ladder[period.plan.interval]
            index = ladder.index(period.plan)
            if index:
                sub.scheduled_plan_key = ladder[index - 1].key
