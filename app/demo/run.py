"""Playing the story: the sandbox's clock moves a day at a time, and Tollgate hears of it all.

Each day the customers of the day join and act, people react to what Stripe did (a dispute
to answer, a declined card to replace), the products report usage to Tollgate's usage engine,
the worker's jobs run (overage to Stripe Meters, the daily revenue snapshot), and the clock
moves on a day. Every webhook the sandbox queues is delivered to Tollgate's own endpoint, in
process and in the order the sandbox sent them, before anything else happens: Tollgate learns
of trials ending, renewals, declines, disputes and refunds through its one sync path, at the
time they happen on the clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import select

from app.accounts.mirror import NEWEST_FIRST, Dispute, Subscription, SubscriptionStatus
from app.billing.overage_forwarding import forward_overage
from app.billing.revenue import take_snapshot
from app.catalog import current_catalog
from app.clock import now
from app.demo import usage
from app.demo.acts import Stage, answer_dispute, perform
from app.demo.story import Act, Persona, Story
from app.extensions import db
from app.stripe_sandbox import Sandbox
from app.webhooks.endpoint import endpoint_url

DAY = 86_400
# How long the operator takes to answer a dispute.
ANSWER_AFTER = timedelta(days=2)


class Play:
    """The story being played on the sandbox, a day at a time."""

    def __init__(self, story: Story, sandbox: Sandbox, stage: Stage, days: int) -> None:
        self.story, self.sandbox, self.stage, self.days = story, sandbox, stage, days
        self.webhooks = self.usage_events = 0
        self.usage_refused: Counter[str] = Counter()
        self._endpoint = endpoint_url()
        self._past_due_since: dict[int, int] = {}
        self._answered: set[str] = set()

    def run(self, after_each_day: Callable[[int], None]) -> None:
        """Play every day of the story."""
        for day in range(self.days):
            self.play_day(day)
            after_each_day(day)
        db.session.commit()
        # A delivery that failed waits for its retry: the last chance is now.
        self.webhooks += self.sandbox.deliver_pending(self._post)

    def play_day(self, day: int) -> None:
        """One day: the acts, the reactions, usage, the worker's jobs, then the clock."""
        for act in self.story.on(day):
            perform(self.stage, self.story.personas[act.customer], act, day)
        self._deliver()
        self._react(day)
        self._report_usage(day)
        forward_overage()
        self._deliver()
        self.sandbox.advance(DAY)
        self._deliver()
        take_snapshot(now().date())
        db.session.commit()

    def current_subscriptions(self) -> dict[int, Subscription]:
        """Each demo customer's newest subscription, by customer id, in one query."""
        current: dict[int, Subscription] = {}
        for subscription in db.session.scalars(
            select(Subscription)
            .where(Subscription.customer_id.in_(self.stage.customers.values()))
            .order_by(*NEWEST_FIRST)
        ):
            current.setdefault(subscription.customer_id, subscription)
        return current

    def _deliver(self) -> None:
        db.session.commit()  # the endpoint writes in a session of its own
        self.webhooks += self.sandbox.deliver_pending(self._post, due_only=True)

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        if url != self._endpoint:
            return 503  # another server's endpoint: that server's own tick delivers it later
        return self.stage.web.post(urlsplit(url).path, data=body, headers=headers).status_code

    def _personas_by_customer(self) -> dict[int, Persona]:
        personas = self.story.personas
        return {customer: personas[index] for index, customer in self.stage.customers.items()}

    def _react(self, day: int) -> None:
        """What people do about what Stripe did: answer disputes, replace a declined card."""
        personas = self._personas_by_customer()
        self._answer_disputes(day, personas)
        current = self.current_subscriptions()
        for customer_id, subscription in current.items():
            persona = personas[customer_id]
            if subscription.status is not SubscriptionStatus.PAST_DUE:
                self._past_due_since.pop(persona.index, None)
                continue
            since = self._past_due_since.setdefault(persona.index, day)
            if day - since == persona.recovers_after:
                self._act(persona, "add_card", day)

    def _answer_disputes(self, day: int, personas: dict[int, Persona]) -> None:
        """The operator answers each dispute (or lets it expire) after a couple of days; a
        customer whose dispute is won gives another card, a lost one's account is closed."""
        disputes = db.session.scalars(
            select(Dispute).where(
                Dispute.status == "needs_response", Dispute.customer_id.in_(list(personas))
            )
        ).all()
        for dispute in disputes:
            persona = personas[dispute.customer_id]
            if (
                persona.dispute_answer is None
                or dispute.stripe_dispute_id in self._answered
                or now() - dispute.created < ANSWER_AFTER
            ):
                continue
            self._answered.add(dispute.stripe_dispute_id)
            dispute_id = dispute.stripe_dispute_id
            db.session.commit()
            if persona.dispute_answer in ("win", "lose"):
                answer_dispute(dispute_id, win=persona.dispute_answer == "win")
            self._act(persona, "add_card" if persona.dispute_answer == "win" else "cancel_now", day)

    def _act(self, persona: Persona, kind: str, day: int) -> None:
        perform(self.stage, persona, Act(day, persona.index, kind), day)

    def _report_usage(self, day: int) -> None:
        catalog = current_catalog()
        personas = self._personas_by_customer()
        reporters = []
        for customer_id, subscription in self.current_subscriptions().items():
            persona, plan = personas[customer_id], catalog.plan(subscription.plan_key)
            if plan is None or not subscription.is_live:
                continue
            if (day + persona.index) % usage.REPORT_EVERY_DAYS == 0:
                months = (day - self.stage.joined[persona.index]) // 30
                reporters.append(usage.Reporter(persona, plan, months))
        db.session.commit()
        self.usage_events += usage.record(usage.usage_events(day, reporters), self.usage_refused)
