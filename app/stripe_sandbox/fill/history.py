"""Writing one customer's story as the sandbox's API and clock would have made it.

Every object is made by the sandbox's own builders (those its API and clock use), in its final
state, and written once, at the moment it was made: the fill walks all customers' histories
together in time order, so every list comes newest first as on Stripe. Only the customer and
the subscription, made first and changed by what follows, are written again at the end. Where
the API's own handlers do the work (a cancellation, a schedule), they do it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from ..clock import TRIAL_WILL_END_NOTICE, next_period
from ..context import DAY
from ..resources import schedules
from ..resources.catalog import create_customer
from ..resources.changes import period_end
from ..resources.charges import charge_object
from ..resources.disputes import closing_fields, dispute_object, evidence_fields
from ..resources.intents import (
    intent_object,
    invoice_payment_object,
    record_failure,
    record_success,
)
from ..resources.lifecycle import (
    FINALIZE_DELAY,
    cancel_subscription,
    failed_attempt,
    finalization,
    invoice_object,
    next_number,
    paid,
)
from ..resources.payments import attach_card, decline_of
from ..resources.periods import period_boundary
from ..resources.refunds import record_refund, refund_object
from ..resources.start import new_subscription
from ..resources.subscriptions import update as update_subscription
from .quiet import Quiet
from .stories import HOUR, TRIAL_DAYS, Story

# The card a failing customer moved to before the renewal that failed: it attaches, then
# every charge is declined (docs.stripe.com/testing).
_FAILING_CARD = "4000000000000341"
# When the histories are merged, each step is known by its moment and its story.
Moment = tuple[int, int]


def history(ctx: Quiet, story: Story, now: int) -> Iterator[Moment]:
    """Write one customer's story; yields the moment of each step before taking it."""
    return _History(ctx, story, now).steps()


class _History:
    def __init__(self, ctx: Quiet, story: Story, now: int) -> None:
        self.ctx, self.story, self.now = ctx, story, now
        self.rng = random.Random(story.seed)  # noqa: S311 - a reproducible history
        self.interval = story.price["recurring"]["interval"]
        self.last = story.periods - 1
        self.boundaries: dict[int, int] = {}
        self.failing = story.fate in ("past_due", "unpaid")
        paid_periods = story.periods - self.failing
        self.dispute_period = (
            (self.last if story.dispute == "open" else self.rng.randrange(paid_periods))
            if story.dispute
            else None
        )
        self.ending_at = self._ending_at()

    def steps(self) -> Iterator[Moment]:
        story, ctx = self.story, self.ctx
        yield self._at(story.start)
        self.customer = ctx.count(create_customer(ctx, story.customer))
        self.method = self._card(story.card) if story.card else None
        trial_end = story.start + TRIAL_DAYS * DAY if story.fate == "trialing" else None
        options = {"default_payment_method": self.method and self.method["id"]}
        items = [{"price": story.price["id"]}]
        self.sub, lines, period = new_subscription(
            ctx, self.customer, items, story.start, trial_end, options
        )
        if trial_end is not None and trial_end - TRIAL_WILL_END_NOTICE <= self.now:
            self.sub["_trial_will_end_sent"] = True  # as the clock marks it once sent
        ctx.count(ctx.save(self.sub))
        reason = "subscription_create"
        yield from self._invoice(0, reason, lines, period, story.start, story.start)
        for n in range(1, story.periods):
            boundary = period_end(self.sub)
            if n == self.last and self.failing:
                yield self._at(boundary - DAY)
                self.sub["default_payment_method"] = self._card(_FAILING_CARD)["id"]
            yield self._at(boundary)
            lines, period = next_period(ctx, self.sub)
            reason = "subscription_cycle"
            yield from self._invoice(n, reason, lines, period, boundary, boundary + FINALIZE_DELAY)
        yield from self._ending()
        ctx.save(self.customer)
        ctx.save(self.sub)
        ctx.statuses[self.sub["status"]] += 1

    def _at(self, moment: int) -> Moment:
        return moment, self.story.index

    def _between(self, start: int, end: int) -> int:
        return start + int(self.rng.random() * max(0, end - start))

    def _boundary(self, n: int) -> int:
        if n not in self.boundaries:
            self.boundaries[n] = period_boundary(self.story.start, self.interval, 1, n)
        return self.boundaries[n]

    def _collected_at(self, n: int) -> int:
        return self.story.start if n == 0 else self._boundary(n) + FINALIZE_DELAY

    def _ending_at(self) -> int:
        # When a scheduled subscription gets its schedule, or a canceled one is asked to end.
        after = self._collected_at(self.last)
        if self.story.fate == "scheduled":
            return self._between(after, self.now - HOUR)
        if self.story.fate == "canceled":
            return self._between(after, self._boundary(self.last + 1) - HOUR)
        return self.now

    def _until(self, n: int) -> int:
        # A period's refund or dispute comes before the customer's next step.
        if n == self.last:
            return self.ending_at
        if n + 1 == self.last and self.failing:
            return self._boundary(n + 1) - DAY
        return self._boundary(n + 1) - HOUR

    def _card(self, number: str) -> dict[str, Any]:
        expiry = f"{self.rng.randint(1, 12)}/{self.rng.randint(30, 34)}"
        method = self.ctx.count(attach_card(self.ctx, self.customer, number, expiry))
        self.customer["invoice_settings"]["default_payment_method"] = method["id"]
        self.method = method
        return method

    def _invoice(
        self,
        n: int,
        reason: str,
        lines: list[dict[str, Any]],
        period: tuple[int, int],
        created: int,
        collected: int,
    ) -> Iterator[Moment]:
        """Period n's invoice, made at `created`, finalized and paid (or tried) at
        `collected`: its PaymentIntent, payment and charges, and what befell the charge."""
        ctx, sub = self.ctx, self.sub
        invoice = invoice_object(
            sub, self.customer, reason, lines, period, created, ctx.new_id("in")
        )
        sub["latest_invoice"] = invoice["id"]
        number = next_number(self.customer)
        invoice.update(finalization(invoice, number, collected, ctx.base_url))
        if not invoice["amount_due"]:
            invoice.update(paid(invoice, collected))
            ctx.add(invoice)
            return
        intent = intent_object(invoice, ctx.new_id("pi"), collected)
        payment = invoice_payment_object(invoice, intent, collected)
        charges = self._attempts(invoice, intent, payment, collected)
        later = self._aftermath(n, charges[-1], collected) if charges[-1]["paid"] else []
        ctx.add(invoice)
        if collected != created:
            yield self._at(collected)
        ctx.add(intent, payment, charges[0])
        for moment, obj in [(c["created"], c) for c in charges[1:]] + later:
            yield self._at(moment)
            ctx.add(obj)

    def _attempts(
        self,
        invoice: dict[str, Any],
        intent: dict[str, Any],
        payment: dict[str, Any],
        first: int,
    ) -> list[dict[str, Any]]:
        # Each attempt due by now, as attempt_payment makes it: the first, then the retries.
        charges: list[dict[str, Any]] = []
        moment: int | None = first
        sub, method = self.sub, self.method
        while moment is not None and moment <= self.now and method is not None:
            decline = decline_of(method)
            charge = charge_object(
                intent, method, self.customer, self.ctx.new_id("ch"), moment, decline
            )
            charges.append(charge)
            if decline is None:
                record_success(intent, payment, charge, moment)
                invoice.update(paid(invoice, moment))
                sub["status"] = "active"
                return charges
            record_failure(intent, charge, decline)
            invoice.update(failed_attempt(invoice, moment))
            sub["status"] = "past_due"
            moment = invoice["next_payment_attempt"]
        if invoice["next_payment_attempt"] is None:
            # Retries are over: the account's setting leaves the subscription unpaid (the
            # sandbox's own clock cancels it instead, Stripe's other setting).
            sub["status"] = "unpaid"
        return charges

    def _aftermath(
        self, n: int, charge: dict[str, Any], collected: int
    ) -> list[tuple[int, dict[str, Any]]]:
        # The refund or the dispute of period n's paid charge, each at its moment.
        ctx, until = self.ctx, self._until(n)
        found: list[tuple[int, dict[str, Any]]] = []
        if n == self.story.refund_period and n != self.dispute_period:
            moment = self._between(collected, until)
            amount = charge["amount"] if self.rng.random() < 0.5 else charge["amount"] // 2
            reason = self.rng.choice(("requested_by_customer", "duplicate"))
            refund = refund_object(charge, amount, ctx.new_id("re"), moment, reason)
            record_refund(charge, refund)
            found.append((moment, refund))
        if n == self.dispute_period:
            opened = self._between(collected, until)
            if self.story.dispute == "open":
                opened = self._between(max(collected, self.now - 5 * DAY), until)
            dispute = dispute_object(charge, ctx.new_id("dp"), opened)
            charge.update(disputed=True, _dispute=dispute["id"])
            self._settle(dispute)
            found.append((opened, dispute))
        return sorted(found, key=lambda pair: pair[0])

    def _settle(self, dispute: dict[str, Any]) -> None:
        # A closed dispute: won with Stripe's winning test evidence, or accepted and lost.
        outcome = self.story.dispute
        if outcome == "open":
            return
        due = dispute["evidence_details"]["due_by"]
        closed = self._between(dispute["created"], min(due, self.now))
        if outcome == "won":
            evidence = {"uncategorized_text": "winning_evidence", "product_description": "SaaS"}
            dispute.update(evidence_fields(dispute, evidence, True, closed))
        dispute.update(closing_fields(dispute, str(outcome), closed))

    def _ending(self) -> Iterator[Moment]:
        # A schedule moving to another price at the period's end, or a cancellation at it,
        # asked for through the API's own handlers (which read the subscription stored).
        ctx, sub_id, following = self.ctx, self.sub["id"], self.story.next_price
        if following is not None:  # a `scheduled` story's
            yield self._at(self.ending_at)
            ctx.save(self.sub)
            made = schedules.create(ctx, {"from_subscription": sub_id})
            ctx.count(made)
            start = self.sub["items"]["data"][0]["current_period_start"]
            phases = [
                {"items": [{"price": self.story.price["id"]}], "start_date": start},
                {"items": [{"price": following["id"]}]},
            ]
            schedules.update(ctx, {"phases": phases}, made["id"])
            self.sub = ctx.fetch("subscription", sub_id)
        if self.story.fate == "canceled":
            yield self._at(self.ending_at)
            ctx.save(self.sub)
            update_subscription(ctx, {"cancel_at_period_end": True}, sub_id)
            self.sub = ctx.fetch("subscription", sub_id)
            yield self._at(period_end(self.sub))
            self.sub = cancel_subscription(ctx, self.sub, "cancellation_requested")
