"""Subscription lifecycles driven through the app's pages and Stripe's hosted pages, many at once
on one sandbox clock, and what the reliability tests compare afterwards: Tollgate's rows, keyed
by what names them in Stripe, and Stripe's own objects read with the SDK.

Every customer takes one lifecycle of ``KINDS``. They all start on day 0, and the clock moves
by ``STEPS``: a day past the trials' end (day 15), where most plan changes and cancellations
are made; through the failed charges' retries (3, 5 and 7 days after the first failure); a
day past the first renewal (day 46), where the changes still pending at the end are made; and
through that renewal's retries. They end a few days into a paid period, once Stripe has
finalized and charged every invoice that fell due.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import stripe
from flask import Flask
from sqlalchemy import delete, select

from app.accounts.models import Customer
from app.billing.event_handlers import HANDLERS
from app.extensions import db
from app.models import CreditLedgerEntry, CreditLot, CreditPool, Invoice, StripeEvent, Subscription
from app.stripe_sandbox import Sandbox
from tests.journeys import (
    DAY,
    FAILING_CARD,
    GOOD_CARD,
    click,
    form_value,
    pay_on_checkout_page,
    press,
    start_plan_as_new_buyer,
)
from tests.web import WebClient

NO_CARD = ""


Action = Callable[[WebClient], None]


@dataclass(frozen=True)
class Kind:
    """One lifecycle: the plan and card it starts with, what the customer does and when (by the
    index of the step in ``STEPS`` after which it acts), how its subscription ends up, and the
    AI tokens its customer then holds, worked out by hand: after the run (``credits``), and
    after a replay of the whole event log into a Tollgate that knows only the customer
    (``replayed_credits``: only the running paid period of a live subscription grants then, so
    there is no rollover and no top-up)."""

    plan_key: str
    card: str
    status: str
    final_plan_key: str
    credits: int
    replayed_credits: int
    actions: dict[int, Action] = field(default_factory=dict)
    cancel_at_period_end: bool = False
    scheduled_plan_key: str | None = None


def upgrade_to_pro(client: WebClient) -> None:
    """Preview the upgrade to Pro, then confirm it at the previewed price."""
    preview = client.get("/account/plan/pro_monthly")
    assert preview.status_code == 200, preview.text
    proration_date = form_value(preview.text, "proration_date")
    done = press(
        client, preview.text, "/account/plan/pro_monthly", {"proration_date": proration_date}
    )
    assert done.status_code == 302, done.text


def downgrade_to_starter(client: WebClient) -> None:
    """Down to Starter at the end of the period: a Stripe subscription schedule."""
    done = click(client, "/account/plan/starter_monthly")
    assert done.status_code == 302, done.text


def cancel_then_resume(client: WebClient) -> None:
    """Cancel at the end of the period, then take it back."""
    assert click(client, "/account/cancel", {"mode": "period_end"}).status_code == 302
    assert click(client, "/account/resume").status_code == 302


def cancel_at_period_end(client: WebClient) -> None:
    """Cancel at the end of the period."""
    assert click(client, "/account/cancel", {"mode": "period_end"}).status_code == 302


def cancel_now(client: WebClient) -> None:
    """Cancel at once, through the confirmation step."""
    confirm = client.get("/account/cancel").text
    done = press(client, confirm, "/account/cancel", {"mode": "now", "confirm": "yes"})
    assert done.status_code == 302, done.text


def switch_to_failing_card(client: WebClient) -> None:
    """In Stripe's billing portal, replace the card with one that fails every charge."""
    portal = click(client, "/account/billing-portal")
    assert portal.status_code == 303, portal.text
    changed = client.post(
        portal.headers["location"],
        data={"action": "card", "card_number": FAILING_CARD, "expiry": "12 / 34"},
    )
    assert changed.status_code == 200, changed.text


# Days the clock moves after the start, in order: a day past the trials' end, the failed
# charges' retries (3, 5 and 7 days after the first failure), a day past the first renewal,
# and its retries.
STEPS = (15, 3, 2, 2, 24, 3, 2, 3)
AFTER_TRIAL, AFTER_RENEWAL = 0, 4

PRO, STARTER = 1_000_000, 200_000
PRO_ROLLOVER = 500_000  # Pro's cap; Starter's credits do not roll over
# A Pro subscription a few days past a renewal: the running period's 1M, and 500k rolled over.
PRO_AFTER_RENEWAL = PRO + PRO_ROLLOVER

KINDS: dict[str, Kind] = {
    "trial-converts": Kind(
        "pro_monthly", GOOD_CARD, "active", "pro_monthly", PRO_AFTER_RENEWAL, PRO
    ),
    # The card attaches, then fails the trial's first charge and its three retries: cancelled
    # before its period ends, the trial's credits are clawed back.
    "trial-fails-card": Kind("pro_monthly", FAILING_CARD, "canceled", "pro_monthly", 0, 0),
    # Starter's trial needs no card; without one it ends with the trial, its credits expired.
    "trial-without-card-ends": Kind(
        "starter_monthly", NO_CARD, "canceled", "starter_monthly", 0, 0
    ),
    # The upgrade tops Starter's 200k up to Pro's 1M; 500k of it rolls over into the renewal.
    "upgrade": Kind(
        "starter_monthly",
        GOOD_CARD,
        "active",
        "pro_monthly",
        PRO_AFTER_RENEWAL,
        PRO,
        {AFTER_TRIAL: upgrade_to_pro},
    ),
    # Starter from the renewal on: its 200k; Pro's leftovers expire.
    "downgrade": Kind(
        "pro_monthly",
        GOOD_CARD,
        "active",
        "starter_monthly",
        STARTER,
        STARTER,
        {AFTER_TRIAL: downgrade_to_starter},
    ),
    "cancel-and-resume": Kind(
        "pro_monthly",
        GOOD_CARD,
        "active",
        "pro_monthly",
        PRO_AFTER_RENEWAL,
        PRO,
        {AFTER_TRIAL: cancel_then_resume},
    ),
    # Cancelled a day into its first paid period: its credits are clawed back.
    "cancel-now": Kind(
        "pro_monthly", GOOD_CARD, "canceled", "pro_monthly", 0, 0, {AFTER_TRIAL: cancel_now}
    ),
    # Paid for a period, then the first renewal and its three retries fail: cancelled before
    # the unpaid period ends, its credits are clawed back.
    "dunning": Kind(
        "pro_monthly",
        GOOD_CARD,
        "canceled",
        "pro_monthly",
        0,
        0,
        {AFTER_TRIAL: switch_to_failing_card},
    ),
    # Still to come when the run ends: a downgrade, and a cancellation at period end.
    "downgrade-pending": Kind(
        "pro_monthly",
        GOOD_CARD,
        "active",
        "pro_monthly",
        PRO_AFTER_RENEWAL,
        PRO,
        {AFTER_RENEWAL: downgrade_to_starter},
        scheduled_plan_key="starter_monthly",
    ),
    "cancel-at-period-end-pending": Kind(
        "pro_monthly",
        GOOD_CARD,
        "active",
        "pro_monthly",
        PRO_AFTER_RENEWAL,
        PRO,
        {AFTER_RENEWAL: cancel_at_period_end},
        cancel_at_period_end=True,
    ),
}


@dataclass
class Lifecycle:
    """One customer taking one lifecycle, with the browser it uses throughout."""

    kind: str
    email: str
    client: WebClient


def make_lifecycles(server: str, count: int) -> list[Lifecycle]:
    """``count`` customers, taking the kinds in turn."""
    names = list(KINDS)
    return [
        Lifecycle(
            names[n % len(names)],
            f"{names[n % len(names)]}-{n}@example.com",
            WebClient(base_url=server, follow_redirects=False, timeout=30),
        )
        for n in range(count)
    ]


def start(lifecycle: Lifecycle) -> None:
    """Sign up from the pricing page's button and pay (or not) on the Checkout page."""
    kind = KINDS[lifecycle.kind]
    checkout_url = start_plan_as_new_buyer(lifecycle.client, lifecycle.email, kind.plan_key)
    success_url = pay_on_checkout_page(lifecycle.client, checkout_url, kind.card)
    assert lifecycle.client.get(success_url).status_code == 200


def run_lifecycles(
    sandbox: Sandbox, lifecycles: list[Lifecycle], deliver: Callable[[], object]
) -> None:
    """Take every lifecycle from sign-up to its end; ``deliver`` sends what Stripe queued after
    each step."""
    for lifecycle in lifecycles:
        start(lifecycle)
    deliver()
    for number, days in enumerate(STEPS):
        sandbox.advance(days * DAY)
        deliver()
        acting = [lc for lc in lifecycles if number in KINDS[lc.kind].actions]
        for lifecycle in acting:
            KINDS[lifecycle.kind].actions[number](lifecycle.client)
        if acting:
            deliver()


# Stripe's events, and posting them to the webhook endpoint as Stripe signs them.


def sandbox_client(server: str) -> stripe.StripeClient:
    """The stripe SDK, talking to the app's sandbox over HTTP as it would to Stripe."""
    return stripe.StripeClient("sk_test_reliability", base_addresses={"api": f"{server}/sandbox"})


def event_log(server: str) -> list[str]:
    """Every event Stripe made of a type the endpoint takes, oldest first, as the JSON bodies
    Stripe posts."""
    bodies: list[str] = []
    params: dict[str, Any] = {"limit": 100}
    with httpx.Client(base_url=f"{server}/sandbox", auth=("sk_test_reliability", "")) as http:
        while True:
            page = http.get("/v1/events", params=params).json()
            bodies += [json.dumps(e) for e in page["data"] if e["type"] in HANDLERS]
            if not page["has_more"]:
                break
            params["starting_after"] = page["data"][-1]["id"]
    # Stripe lists the newest first.
    return bodies[::-1]


class Poster:
    """Posts bodies to /stripe/webhook, each signed as Stripe signs it; counts them."""

    def __init__(self, server: str, secret: str) -> None:
        self.http = httpx.Client(base_url=server, timeout=30)
        self.secret = secret
        self.posted = 0

    def post(self, body: str) -> None:
        signature = stripe.WebhookSignature.generate_signature_header(body, self.secret)
        response = self.http.post(
            "/stripe/webhook",
            content=body,
            headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text
        self.posted += 1

    def post_all(self, bodies: Iterable[str]) -> None:
        for body in bodies:
            self.post(body)

    def close(self) -> None:
        self.http.close()


def forget_all_but_the_customers(app: Flask) -> None:
    """Make the app a fresh Tollgate that has only signed its customers up (and made its key)."""
    kept = {"users", "customers", "api_keys", "alembic_version"}
    with app.app_context():
        for table in reversed(db.metadata.sorted_tables):
            if table.name not in kept:
                db.session.execute(delete(table))
        db.session.commit()


# What is compared: Tollgate's rows, keyed by what names them outside this database.

Row = dict[str, Any]
Snapshot = dict[str, dict[Any, Row]]


def seconds(value: datetime | None) -> int | None:
    """A time as Stripe gives it: whole Unix seconds."""
    return None if value is None else int(value.timestamp())


def snapshot(app: Flask) -> Snapshot:
    """The mirror, the credits and the event log, each row keyed by Stripe ids, customer
    reference ids, pool keys and the sources that name each grant and movement: never by local
    ids, which differ between two databases that agree."""
    with app.app_context():
        reference = dict(db.session.execute(select(Customer.id, Customer.reference_id)).all())
        pools = {pool.id: pool for pool in db.session.scalars(select(CreditPool))}
        lots = {lot.id: lot for lot in db.session.scalars(select(CreditLot))}
        taken: Snapshot = {
            "subscriptions": {
                s.stripe_subscription_id: {
                    "customer": reference[s.customer_id],
                    "plan_key": s.plan_key,
                    "stripe_price_id": s.stripe_price_id,
                    "status": str(s.status),
                    "current_period_start": seconds(s.current_period_start),
                    "current_period_end": seconds(s.current_period_end),
                    "trial_end": seconds(s.trial_end),
                    "cancel_at_period_end": s.cancel_at_period_end,
                    "scheduled_plan_key": s.scheduled_plan_key,
                    "scheduled_change_at": seconds(s.scheduled_change_at),
                    "canceled_at": seconds(s.canceled_at),
                    "ended_at": seconds(s.ended_at),
                    "created": seconds(s.stripe_created),
                }
                for s in db.session.scalars(select(Subscription))
            },
            "invoices": {
                i.stripe_invoice_id: {
                    "customer": reference[i.customer_id],
                    "subscription": i.stripe_subscription_id,
                    "status": i.status,
                    "billing_reason": i.billing_reason,
                    "currency": i.currency,
                    "amount_due": i.amount_due,
                    "amount_paid": i.amount_paid,
                    "period_start": seconds(i.period_start),
                    "period_end": seconds(i.period_end),
                    "created": seconds(i.created),
                }
                for i in db.session.scalars(select(Invoice))
            },
            "credit_pools": {
                (reference[p.customer_id], p.key): {
                    "denomination": p.denomination,
                    "balance": p.balance,
                }
                for p in pools.values()
            },
            "credit_lots": {
                (reference[pools[lot.pool_id].customer_id], pools[lot.pool_id].key, lot.source): {
                    "origin": str(lot.origin),
                    "plan_key": lot.plan_key,
                    "amount": lot.amount,
                    "remaining": lot.remaining,
                    # A top-up is dated when its sync ran, which differs by nature.
                    "granted_at": None
                    if lot.source.startswith("topup:")
                    else seconds(lot.granted_at),
                    "expires_at": seconds(lot.expires_at),
                    "subscription": lot.stripe_subscription_id,
                }
                for lot in lots.values()
            },
            "credit_ledger": {
                _entry_key(entry, pools, lots, reference): {
                    "kind": str(entry.kind),
                    "amount": entry.amount,
                    "plan_key": entry.plan_key,
                }
                for entry in db.session.scalars(select(CreditLedgerEntry))
            },
            "stripe_events": {
                e.event_id: {
                    "type": e.type,
                    "processed": e.processed_at is not None,
                    "last_error": e.last_error,
                }
                for e in db.session.scalars(select(StripeEvent))
            },
        }
        db.session.rollback()
    return taken


def _entry_key(
    entry: CreditLedgerEntry,
    pools: dict[int, CreditPool],
    lots: dict[int, CreditLot],
    reference: dict[int, str],
) -> tuple[str, str, str | None, str]:
    """A ledger entry by its customer, pool, lot (by the lot's source) and own source, with the
    local lot id that ends some sources (``expire:12``) put as the lot's source instead."""
    pool = pools[entry.pool_id]
    lot = lots.get(entry.lot_id) if entry.lot_id is not None else None
    source = entry.source
    if lot is not None and source.endswith(f":{lot.id}"):
        source = source[: -len(str(lot.id))] + "<lot>"
    return (reference[pool.customer_id], pool.key, lot.source if lot else None, source)


def differences(expected: Snapshot, actual: Snapshot, tables: Iterable[str]) -> list[str]:
    """Every row of ``tables`` that is missing from one side or differs in a field, described."""
    found = []
    for table in tables:
        want, got = expected[table], actual[table]
        for key in sorted(want.keys() | got.keys(), key=repr):
            if key not in got:
                found.append(f"{table} {key}: missing, expected {want[key]}")
            elif key not in want:
                found.append(f"{table} {key}: unexpected {got[key]}")
            elif want[key] != got[key]:
                fields = {
                    name: (want[key].get(name), got[key].get(name))
                    for name in want[key].keys() | got[key].keys()
                    if want[key].get(name) != got[key].get(name)
                }
                found.append(f"{table} {key}: (expected, actual) {fields}")
    return found


def rows(taken: Snapshot, tables: Iterable[str]) -> int:
    """How many rows of ``tables`` a snapshot holds."""
    return sum(len(taken[table]) for table in tables)


# Stripe's truth: its subscriptions and invoices of Tollgate's customers, read with the SDK.

MIRROR = ("subscriptions", "invoices")
CREDITS = ("credit_pools", "credit_lots", "credit_ledger")
EVERYTHING = (*MIRROR, *CREDITS, "stripe_events")


def stripe_truth(server: str, customers: dict[str, str], now: int) -> Snapshot:
    """Stripe's subscriptions and invoices of ``customers`` (Stripe customer id -> reference
    id), in the shape of ``snapshot``'s, as of ``now`` (for what a schedule changes next)."""
    client = sandbox_client(server)
    subscriptions: dict[Any, Row] = {}
    invoices: dict[Any, Row] = {}
    for stripe_customer, reference_id in customers.items():
        for sub in client.v1.subscriptions.list(
            {"customer": stripe_customer, "status": "all", "limit": 100}
        ).auto_paging_iter():
            items = sub["items"]["data"]
            # The plan's flat price; an in-arrears plan's is its only, metered, one.
            item = next(
                (
                    i
                    for i in items
                    if i.price.recurring is None or i.price.recurring.usage_type == "licensed"
                ),
                items[0],
            )
            scheduled_plan_key, scheduled_change_at = _scheduled_change(client, sub, item, now)
            subscriptions[sub.id] = {
                "customer": reference_id,
                "plan_key": item.price.lookup_key,
                "stripe_price_id": item.price.id,
                "status": sub.status,
                "current_period_start": item.current_period_start,
                "current_period_end": item.current_period_end,
                "trial_end": sub.trial_end,
                "cancel_at_period_end": sub.cancel_at_period_end,
                "scheduled_plan_key": scheduled_plan_key,
                "scheduled_change_at": scheduled_change_at,
                "canceled_at": sub.canceled_at,
                "ended_at": sub.ended_at,
                "created": sub.created,
            }
        for invoice in client.v1.invoices.list(
            {"customer": stripe_customer, "limit": 100}
        ).auto_paging_iter():
            details = invoice.parent.subscription_details if invoice.parent else None
            invoices[invoice.id] = {
                "customer": reference_id,
                "subscription": details.subscription if details else None,
                "status": invoice.status,
                "billing_reason": invoice.billing_reason,
                "currency": invoice.currency,
                "amount_due": invoice.amount_due,
                "amount_paid": invoice.amount_paid,
                "period_start": invoice.period_start,
                "period_end": invoice.period_end,
                "created": invoice.created,
            }
    return {"subscriptions": subscriptions, "invoices": invoices}


def _scheduled_change(
    client: stripe.StripeClient, sub: stripe.Subscription, item: Any, now: int
) -> tuple[str | None, int | None]:
    """The plan a subscription's schedule moves it to next, and when; none if it keeps its
    price."""
    if not sub.schedule:
        return None, None
    schedule = client.v1.subscription_schedules.retrieve(
        str(sub.schedule), {"expand": ["phases.items.price"]}
    )
    upcoming = [phase for phase in schedule.phases if phase.start_date > now]
    if not upcoming:
        return None, None
    phase = min(upcoming, key=lambda candidate: candidate.start_date)
    prices = [phase_item.price for phase_item in phase["items"]]
    if item.price.id in {price.id for price in prices}:
        return None, None
    return prices[0].lookup_key, phase.start_date


def stripe_customers(app: Flask) -> dict[str, str]:
    """Tollgate's customers that Stripe knows: Stripe customer id -> reference id."""
    with app.app_context():
        known = dict(
            db.session.execute(
                select(Customer.stripe_customer_id, Customer.reference_id).where(
                    Customer.stripe_customer_id.is_not(None)
                )
            ).all()
        )
        db.session.rollback()
    return {str(stripe_id): reference for stripe_id, reference in known.items()}


def summary(found: list[str], limit: int = 20) -> str:
    """The first differences, for an assertion's message."""
    shown = "\n".join(found[:limit])
    more = f"\n... and {len(found) - limit} more" if len(found) > limit else ""
    return shown + more


def books_that_do_not_balance(app: Flask) -> list[str]:
    """What breaks the ledger's rules: a pool's balance that is not the sum of its entries, a
    lot whose remaining is not the sum of its own or is below zero, a pool that burned more
    than it was granted."""
    broken = []
    with app.app_context():
        entries = list(db.session.scalars(select(CreditLedgerEntry)))
        for pool in db.session.scalars(select(CreditPool)):
            own = [entry.amount for entry in entries if entry.pool_id == pool.id]
            if pool.balance != sum(own):
                broken.append(f"pool {pool.id}: balance {pool.balance}, ledger {sum(own)}")
            burned = -sum(amount for amount in own if amount < 0)
            if burned > sum(amount for amount in own if amount > 0):
                broken.append(f"pool {pool.id}: {burned} burned of {sum(own)} granted")
        for lot in db.session.scalars(select(CreditLot)):
            own = [entry.amount for entry in entries if entry.lot_id == lot.id]
            if lot.remaining != sum(own) or lot.remaining < 0:
                broken.append(f"lot {lot.id} ({lot.source}): {lot.remaining}, ledger {sum(own)}")
        db.session.rollback()
    return broken
