"""One thing a demo customer, the operator or a card's bank does, done the way it is done for
real: through the services behind Tollgate's API and account page, and on Stripe's hosted pages
(Checkout, the billing portal), which the served application shows in sandbox mode.

A few calls are made on the gateway's Stripe client directly: what Tollgate itself never asks
Stripe, but the people around it do (the customer's address, the operator's refund and dispute
evidence, given in Stripe's dashboard). Every call is made with no transaction open, as
Tollgate's own are; what it changes reaches Tollgate as webhooks.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from flask.testing import FlaskClient
from sqlalchemy import select

from app.accounts.mirror import Charge, Subscription
from app.accounts.models import Customer, User
from app.accounts.services import upsert_api_customer
from app.billing.cancellation import cancel_at_period_end, cancel_now
from app.billing.changes import ChangeError, apply_upgrade, schedule_downgrade
from app.billing.checkout import (
    AlreadySubscribed,
    CheckoutUrls,
    ensure_stripe_customer,
    live_subscription,
    start_plan,
)
from app.billing.gateway import gateway
from app.catalog import Plan, current_catalog
from app.clock import now, timestamp
from app.demo.people import DECLINING_CARD
from app.demo.story import Act, Persona
from app.extensions import db


class NothingToDo(Exception):
    """The act does not apply any more (the subscription ended, there is nothing to refund)."""


@dataclass(frozen=True)
class Links:
    """Where Stripe's pages send the customer back to."""

    checkout: CheckoutUrls
    account: str


@dataclass
class Stage:
    """What the acts share: the served app (for Stripe's hosted pages), the links, the one
    password hash of every demo login, and the customers made so far."""

    web: FlaskClient
    links: Links
    password_hash: str
    customers: dict[int, int] = field(default_factory=dict)  # persona index -> customer id
    joined: dict[int, int] = field(default_factory=dict)  # persona index -> day of the story
    done: Counter[str] = field(default_factory=Counter)

    def customer(self, persona: Persona) -> Customer:
        """The persona's Tollgate customer."""
        customer = db.session.get(Customer, self.customers[persona.index])
        assert customer is not None
        return customer


def perform(stage: Stage, persona: Persona, act: Act, day: int) -> None:
    """Do the act, counting it (or, when it no longer applies, that it was skipped)."""
    if act.kind != "join" and persona.index not in stage.customers:
        return
    try:
        ACTS[act.kind](stage, persona, act, day)
    except (NothingToDo, ChangeError, AlreadySubscribed):
        db.session.rollback()
        stage.done["skipped"] += 1
        return
    stage.done[act.kind] += 1


def join(stage: Stage, persona: Persona, act: Act, day: int) -> None:
    """Become a customer, as the operator's product does through POST /customers, with an
    address in the country of the card; most also get a login; then start the plan."""
    customer, _ = upsert_api_customer(
        persona.reference_id, persona.email, persona.first_name, persona.last_name
    )
    db.session.commit()
    stripe_customer_id = ensure_stripe_customer(customer)
    gateway().client.v1.customers.update(
        stripe_customer_id,
        {"address": {"country": persona.country}},
        {"idempotency_key": f"demo-address-{persona.reference_id}"},
    )
    if persona.has_login:
        db.session.add(
            User(email=customer.email, password_hash=stage.password_hash, customer=customer)
        )
        db.session.commit()
    stage.customers[persona.index] = customer.id
    stage.joined[persona.index] = day
    assert act.plan is not None
    _start(stage, customer, act.plan, persona.checkout_card, persona)


def subscribe(stage: Stage, persona: Persona, act: Act, day: int) -> None:
    """Buy a plan (again, or instead of the free one) through Checkout, with the usual card."""
    assert act.plan is not None
    _start(stage, stage.customer(persona), act.plan, persona.card, persona)


def add_card(stage: Stage, persona: Persona, act: Act, day: int) -> None:
    """Give the usual card in Stripe's billing portal (which retries an unpaid invoice)."""
    change_card(stage, persona, persona.card)


def card_fails(stage: Stage, persona: Persona, act: Act, day: int) -> None:
    """The card on file starts to be declined (a new card the bank will not honour)."""
    change_card(stage, persona, DECLINING_CARD)


def upgrade(stage: Stage, persona: Persona, act: Act, day: int) -> None:
    """Move up now; Stripe prorates and invoices the difference."""
    apply_upgrade(_live(stage, persona), _plan(act), timestamp(), uuid.uuid4().hex)
    db.session.commit()


def downgrade(stage: Stage, persona: Persona, act: Act, day: int) -> None:
    """Move down when the period ends."""
    schedule_downgrade(_live(stage, persona), _plan(act), uuid.uuid4().hex)
    db.session.commit()


def cancel_at_end(stage: Stage, persona: Persona, act: Act, day: int) -> None:
    """Stop renewing; the plan runs to the end of its period."""
    cancel_at_period_end(_live(stage, persona), uuid.uuid4().hex)
    db.session.commit()


def cancel_at_once(stage: Stage, persona: Persona, act: Act, day: int) -> None:
    """End the plan now (the customer, or the operator closing a fraudulent account)."""
    cancel_now(_live(stage, persona))
    db.session.commit()


def refund(stage: Stage, persona: Persona, act: Act, day: int) -> None:
    """The operator gives back a share of the customer's last payment."""
    charge = db.session.scalar(
        select(Charge)
        .where(
            Charge.customer_id == stage.customers[persona.index],
            Charge.status == "succeeded",
            Charge.disputed.is_(False),
            Charge.amount_refunded < Charge.amount,
        )
        .order_by(Charge.created.desc())
        .limit(1)
    )
    if charge is None:
        raise NothingToDo
    left = charge.amount - charge.amount_refunded
    charge_id, amount = charge.stripe_charge_id, min(left, round(charge.amount * act.share))
    db.session.commit()
    gateway().client.v1.refunds.create(
        {"charge": charge_id, "amount": amount, "reason": "requested_by_customer"},
        {"idempotency_key": f"demo-refund-{charge_id}-{amount}"},
    )


def answer_dispute(dispute_id: str, win: bool) -> None:
    """The operator answers a dispute with evidence; Stripe's test mode decides by its text."""
    text = "winning_evidence" if win else "losing_evidence"
    gateway().client.v1.disputes.update(dispute_id, {"evidence": {"uncategorized_text": text}})


def change_card(stage: Stage, persona: Persona, number: str) -> None:
    """Put a card on the customer (and its subscriptions) in Stripe's billing portal."""
    stripe_customer_id = stage.customer(persona).stripe_customer_id
    assert stripe_customer_id is not None
    db.session.commit()
    portal = gateway().open_portal(stripe_customer_id, stage.links.account, None)
    page = stage.web.post(
        urlsplit(portal.url).path,
        data={"action": "card", "card_number": number, "expiry": _expiry(persona)},
    )
    if page.status_code != 200:
        raise RuntimeError(f"the billing portal refused the card: {page.status_code}")


def _start(
    stage: Stage, customer: Customer, plan_key: str, card: str | None, persona: Persona
) -> None:
    plan = current_catalog().plan(plan_key)
    assert plan is not None
    checkout_url = start_plan(customer, plan, stage.links.checkout)
    db.session.commit()
    if checkout_url is None:
        return  # free and in-arrears plans start at once
    page = stage.web.post(
        urlsplit(checkout_url).path,
        data={"email": "", "card_number": card or "", "expiry": _expiry(persona), "cvc": "123"},
    )
    if page.status_code == 402:
        stage.done["declined at checkout"] += 1
    elif page.status_code != 303:
        raise RuntimeError(f"Checkout refused the payment: {page.status_code}")


def _live(stage: Stage, persona: Persona) -> Subscription:
    subscription = live_subscription(stage.customer(persona))
    if subscription is None:
        raise NothingToDo
    return subscription


def _plan(act: Act) -> Plan:
    plan = current_catalog().plan(act.plan or "")
    if plan is None:
        raise NothingToDo
    return plan


def _expiry(persona: Persona) -> str:
    """A card that runs out some months from now; a few run out within the year."""
    at: datetime = now()
    months = at.month + 5 + (persona.index * 7) % 44
    return f"{(months - 1) % 12 + 1:02d} / {(at.year + (months - 1) // 12) % 100:02d}"


ACTS: dict[str, Callable[[Stage, Persona, Act, int], None]] = {
    "join": join,
    "subscribe": subscribe,
    "add_card": add_card,
    "card_fails": card_fails,
    "upgrade": upgrade,
    "downgrade": downgrade,
    "cancel_at_period_end": cancel_at_end,
    "cancel_now": cancel_at_once,
    "refund": refund,
}
