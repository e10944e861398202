"""Accounts at risk: why each account may be lost soon, and which to look at first.

Pure functions over plain rows and "now"; risk_routes.py queries the rows and renders.

Ranking: each reason has a severity weight (``WEIGHTS``); an account's score is the sum of its
reasons' weights times its MRR at stake (``Account.mrr_at_stake``, in minor units of its
currency; currencies are not converted). Higher scores come first; ties go to the soonest
deadline among the account's reasons (a retry, an evidence due date, a trial's or a period's
end), then to the reference id. An account with nothing at stake (a free plan) scores 0 and
is listed after every paying one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from functools import cached_property

from app.accounts.mirror import SubscriptionStatus
from app.backoffice.margin import FloorBreach
from app.money import format_count, format_fine_money, format_money, format_percent

DAY = timedelta(days=1)
FAILED_PAYMENT_WINDOW = 14 * DAY
TRIAL_WARNING = 7 * DAY
OPEN_DISPUTE_STATUSES = frozenset(
    {"warning_needs_response", "needs_response", "under_review", "warning_under_review"}
)
# A burn rate needs a day of history; a usage trend needs a fifth of the period behind it (on
# a period's first days every account would look as if it had stopped), a fall of at least
# half, and a last period with enough usage to mean something.
MIN_BURN_HISTORY = DAY
MIN_ELAPSED_FRACTION = 0.2
SHARP_FALL = 0.5
MIN_PREVIOUS_USAGE = 100


class Kind(StrEnum):
    """The kinds of reason, in the order the page lists them."""

    PAST_DUE = "past due"
    DISPUTE = "open dispute"
    TRIAL_WITHOUT_CARD = "trial ends without a card"
    CANCELS = "cancels at period end"
    FAILED_PAYMENT = "failed payment"
    CARD_EXPIRES = "card expires"
    USAGE_FALLS = "usage falling"
    BELOW_MARGIN_FLOOR = "below margin floor"
    CREDITS_RUN_OUT = "credits run out"


# Severity: money already slipping (past due, a chargeback) over a decision already made
# (cancelling, a trial that cannot convert), over warning signs.
WEIGHTS = {
    Kind.PAST_DUE: 5,
    Kind.DISPUTE: 5,
    Kind.TRIAL_WITHOUT_CARD: 4,
    Kind.CANCELS: 4,
    Kind.FAILED_PAYMENT: 3,
    Kind.CARD_EXPIRES: 2,
    Kind.USAGE_FALLS: 2,
    # Not a sign of leaving but of costing more than the plan allows: the operator is told.
    Kind.BELOW_MARGIN_FLOOR: 1,
    Kind.CREDITS_RUN_OUT: 1,
}
AT_STAKE = frozenset(
    {SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE, SubscriptionStatus.TRIALING}
)


@dataclass(frozen=True)
class Account:
    """A customer and its current subscription (none for a customer without one)."""

    customer_id: int
    reference_id: str
    email: str | None
    plan_key: str | None = None
    status: SubscriptionStatus | None = None
    monthly_amount: int = 0
    currency: str | None = None
    current_period_start: datetime | None = None
    current_period_end: datetime | None = None
    trial_end: datetime | None = None
    cancel_at_period_end: bool = False
    card_brand: str | None = None
    card_last4: str | None = None
    card_expires_on: date | None = None

    @property
    def mrr_at_stake(self) -> int:
        """What the subscription brings a month, or would once its trial converts."""
        return self.monthly_amount if self.status in AT_STAKE else 0


@dataclass(frozen=True, eq=False)
class Reason:
    """One reason an account is at risk, as a short sentence with its figures. The sentence may
    come as a function that writes it when first read: ranking thousands of accounts needs only
    kinds and deadlines, and a page shows fifty of them (formatting figures is most of the
    cost of judging a reason)."""

    kind: Kind
    sentence: str | Callable[[], str]
    deadline: datetime | None = None

    @cached_property
    def text(self) -> str:
        """The sentence, written."""
        return self.sentence if isinstance(self.sentence, str) else self.sentence()

    def _compared(self) -> tuple[Kind, str, datetime | None]:
        return self.kind, self.text, self.deadline

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Reason):
            return NotImplemented
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash(self._compared())


@dataclass(frozen=True)
class OpenInvoice:
    amount_due: int
    amount_paid: int
    currency: str
    attempt_count: int
    next_payment_attempt: datetime | None
    created: datetime


@dataclass(frozen=True)
class FailedCharge:
    amount: int
    currency: str
    created: datetime
    failure_message: str | None


@dataclass(frozen=True)
class OpenDispute:
    amount: int
    currency: str
    reason: str
    evidence_due_by: datetime | None


@dataclass(frozen=True)
class PoolBurn:
    """A credit pool's balance, and what usage has drawn from it since the period started."""

    pool_key: str
    denomination: str
    balance: int
    deducted: int


@dataclass(frozen=True)
class Running:
    """A live subscription's current period."""

    stripe_subscription_id: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class PeriodUsage:
    """Units of a feature used in the period named ``period_key`` (see name_period)."""

    feature_key: str
    period_key: str
    used: int


@dataclass(frozen=True)
class AtRisk:
    """An account, every reason that applies to it, and its place in the ranking."""

    account: Account
    reasons: tuple[Reason, ...]
    score: int
    deadline: datetime | None


def _day(moment: datetime | date) -> str:
    return moment.strftime("%-d %B %Y")


def _days(span: timedelta) -> str:
    days = max(int(span / DAY), 0)
    return f"{days} day{'' if days == 1 else 's'}"


def past_due(account: Account, invoices: Sequence[OpenInvoice], now: datetime) -> Reason | None:
    """Past due: for how long, what is owed, how often Stripe tried and when it tries next."""
    if account.status is not SubscriptionStatus.PAST_DUE:
        return None
    if not invoices:
        return Reason(Kind.PAST_DUE, "Past due; no open invoice is mirrored.", now)
    oldest = min(invoices, key=lambda invoice: invoice.created)
    owed = sum(invoice.amount_due - invoice.amount_paid for invoice in invoices)
    attempts = max(invoice.attempt_count for invoice in invoices)
    retries = [inv.next_payment_attempt for inv in invoices if inv.next_payment_attempt]
    retry = min(retries) if retries else None

    def text() -> str:
        when = f"Stripe retries on {_day(retry)}" if retry else "Stripe has stopped retrying"
        return (
            f"Past due for {_days(now - oldest.created)}: "
            f"{format_money(owed, oldest.currency)} owed; "
            f"{attempts} attempt{'' if attempts == 1 else 's'}, {when}."
        )

    return Reason(Kind.PAST_DUE, text, retry or now)


def cancels(account: Account) -> Reason | None:
    """Cancels at the end of its period."""
    if not account.cancel_at_period_end or account.status not in AT_STAKE:
        return None
    end = account.current_period_end
    text = f"Cancels at period end, on {_day(end)}." if end else "Cancels at period end."
    return Reason(Kind.CANCELS, text, end)


def failed_payments(charges: Sequence[FailedCharge], now: datetime) -> Reason | None:
    """Payments that failed in the last 14 days, the latest with the bank's message."""
    recent = [charge for charge in charges if charge.created >= now - FAILED_PAYMENT_WINDOW]
    if not recent:
        return None
    latest = max(recent, key=lambda charge: charge.created)

    def text() -> str:
        count = "A payment" if len(recent) == 1 else f"{len(recent)} payments"
        why = f": {latest.failure_message}" if latest.failure_message else ""
        said = (
            f"{count} failed in the last 14 days, the latest of "
            f"{format_money(latest.amount, latest.currency)} on {_day(latest.created)}{why}"
        )
        return said if said.endswith(".") else f"{said}."

    return Reason(Kind.FAILED_PAYMENT, text)


def dispute(found: OpenDispute) -> Reason:
    """An open chargeback, with its amount and when the evidence is due."""
    due = f", evidence due {_day(found.evidence_due_by)}" if found.evidence_due_by else ""
    text = f"Open dispute of {format_money(found.amount, found.currency)} ({found.reason}){due}."
    return Reason(Kind.DISPUTE, text, found.evidence_due_by)


def card_expires(account: Account, now: datetime) -> Reason | None:
    """The card on file stops working before the next renewal charges it (or already has)."""
    end, expires = account.current_period_end, account.card_expires_on
    if account.status not in AT_STAKE or account.cancel_at_period_end:
        return None
    if end is None or expires is None or expires >= end.date():
        return None
    card = " ".join(["Card", *(part for part in (account.card_brand, account.card_last4) if part)])
    verb = "expired" if expires < now.date() else "expires"
    text = f"{card} {verb} {_day(expires)}, before the renewal on {_day(end)}."
    return Reason(Kind.CARD_EXPIRES, text, end)


def credits_run_out(pool: PoolBurn, period: Running, now: datetime) -> Reason | None:
    """At this period's burn rate, the pool is empty before the period ends."""
    start, end = period.start, period.end
    if pool.deducted <= 0 or now - start < MIN_BURN_HISTORY:
        return None
    per_day = pool.deducted / ((now - start) / DAY)
    days_left = max(pool.balance, 0) / per_day
    # Compared in days before any date is made: a slow burn lasts past any date there is.
    if days_left >= (end - now) / DAY:
        return None
    runs_out = now + days_left * DAY

    def text() -> str:
        burn = f"{format_count(round(per_day))} {pool.denomination} a day"
        if pool.balance <= 0:
            head = f"Credits {pool.pool_key} have run out at {burn}"
        else:
            head = (
                f"Credits {pool.pool_key}: {format_count(pool.balance)} {pool.denomination} "
                f"left at {burn}, out in {_days(runs_out - now)}"
            )
        return f"{head}, {_days(end - runs_out)} before the period ends on {_day(end)}."

    return Reason(Kind.CREDITS_RUN_OUT, text, runs_out)


def _period_start(period_key: str) -> int:
    return int(period_key.rpartition(":")[2])


def usage_falls(
    feature_key: str, periods: Iterable[PeriodUsage], period: Running, now: datetime
) -> Reason | None:
    """This period's usage of a feature, pro-rated to the whole period, against the last
    period's: a fall of half or more, when the last period used enough to mean something."""
    start, end, sub_id = period.start, period.end, period.stripe_subscription_id
    if now <= start:
        return None
    elapsed = min((now - start) / (end - start), 1.0)
    current_start = int(start.timestamp())
    mine = [row for row in periods if row.period_key.rpartition(":")[0] == sub_id]
    current = sum(row.used for row in mine if _period_start(row.period_key) == current_start)
    before = [row for row in mine if _period_start(row.period_key) < current_start]
    if elapsed < MIN_ELAPSED_FRACTION or not before:
        return None
    previous = max(before, key=lambda row: _period_start(row.period_key))
    # The period just before, not an older one with a gap of no usage between.
    if current_start - _period_start(previous.period_key) > 2 * (end - start).total_seconds():
        return None
    projected = current / elapsed
    if previous.used < MIN_PREVIOUS_USAGE or projected > previous.used * (1 - SHARP_FALL):
        return None
    fall = round(100 * (1 - projected / previous.used))

    def text() -> str:
        return (
            f"{feature_key} usage down {fall}%: {format_count(current)} so far, "
            f"{format_count(round(projected))} at this pace, against "
            f"{format_count(previous.used)} last period."
        )

    return Reason(Kind.USAGE_FALLS, text, end)


def trial_without_card(account: Account, now: datetime) -> Reason | None:
    """A trial that ends within 7 days with no card on file, so it cannot convert."""
    trial_end = account.trial_end
    if account.status is not SubscriptionStatus.TRIALING or trial_end is None:
        return None
    if account.card_expires_on is not None or account.card_last4 is not None:
        return None
    if not now <= trial_end <= now + TRIAL_WARNING:
        return None
    text = f"Trial ends in {_days(trial_end - now)}, on {_day(trial_end)}, with no card on file."
    return Reason(Kind.TRIAL_WITHOUT_CARD, text, trial_end)


def below_margin_floor(breach: FloorBreach) -> Reason:
    """The running period's margin (else the last period's) under its plan's floor, with the
    figures: what the period was billed and what serving it cost."""
    period = breach.period
    which = "this period" if breach.running else "last period"
    if period.ends_at is not None:
        which += f" (to {_day(period.ends_at)})"
    revenue = format_fine_money(period.revenue, period.currency)
    cost = format_fine_money(period.cost, period.currency)
    margin = "none" if period.margin_ratio is None else format_percent(period.margin_ratio)
    text = (
        f"Margin {margin} < floor {breach.floor_text} {which}: "
        f"{cost} of cost against {revenue} of revenue."
    )
    return Reason(Kind.BELOW_MARGIN_FLOOR, text, period.ends_at if breach.running else None)


def score(account: Account, reasons: Iterable[Reason]) -> int:
    """The sum of the reasons' weights times the MRR at stake (see the module's docstring)."""
    return sum(WEIGHTS[reason.kind] for reason in reasons) * account.mrr_at_stake


def at_risk(account: Account, reasons: Iterable[Reason | None]) -> AtRisk | None:
    """The account with the reasons that apply, in the page's order; None if none apply."""
    order = list(Kind)
    found = sorted(
        (reason for reason in reasons if reason is not None),
        key=lambda reason: order.index(reason.kind),
    )
    if not found:
        return None
    deadlines = [reason.deadline for reason in found if reason.deadline is not None]
    return AtRisk(account, tuple(found), score(account, found), min(deadlines, default=None))


def rank(accounts: Iterable[AtRisk]) -> list[AtRisk]:
    """Highest score first; ties by the soonest deadline (none comes last), then reference id."""
    return sorted(
        accounts,
        key=lambda found: (
            -found.score,
            found.deadline is None,
            found.deadline.timestamp() if found.deadline else 0,
            found.account.reference_id,
        ),
    )
