"""The billing side of a volume fill: customers and their logins, subscriptions, invoices,
charges, refunds, disputes, revenue changes and snapshots, webhook events, the audit log."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from app.accounts.passwords import hash_password
from bench.volume_history import (
    CARD_BRANDS,
    COUNTRIES,
    DECLINES,
    History,
    Simulator,
    add_months,
    monthly_value,
    weighted,
)
from bench.volume_writer import Writer, table

if TYPE_CHECKING:
    from bench.volume_data import Volume

FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Frances", "Donald", "Radia")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Allen", "Knuth")
DISPUTE_REASONS = ("fraudulent", "product_not_received", "subscription_canceled", "duplicate")
REFUND_REASONS = ("requested_by_customer", "duplicate", "fraudulent")
# (type, object id, Stripe customer id, when)
Event = tuple[str, str, str, datetime]


@dataclass(frozen=True)
class CustomerRow:
    """What the later parts need of a written customer."""

    id: int
    created: datetime
    country: str
    card_brand: str
    stripe_id: str


def write_customers(
    writer: Writer, volume: Volume, simulator: Simulator, now: datetime
) -> list[CustomerRow]:
    """Customers with a country and a default card; four in ten log in (self-serve)."""
    rng, oldest = simulator.rng, add_months(now, -volume.months)
    # One hash every self-serve customer shares: hashing 4,000 would take minutes.
    password_hash = hash_password("volume customer password")
    customers: list[CustomerRow] = []
    rows: list[tuple[Any, ...]] = []
    users: list[tuple[Any, ...]] = []
    for index in range(volume.customers):
        cid = simulator.next_serial("customers")
        # The first few take the shapes of Simulator.customer, with two years to live them.
        created = (
            oldest + timedelta(days=10)
            if index < 7
            else oldest
            + (now - oldest)
            * (
                rng.random() ** 0.7  # more of them recent: the business grew
            )
        )
        created = created.replace(day=min(created.day, 28))
        country, brand = weighted(rng, COUNTRIES), weighted(rng, CARD_BRANDS)
        expires = add_months(now, rng.randint(-1, 48)).date().replace(day=28)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = f"{first.lower()}.{last.lower()}.{cid}@volume.example"
        customers.append(CustomerRow(cid, created, country, brand, f"cus_vol{cid}"))
        rows.append(
            (
                cid,
                f"vol-{cid:07d}",
                email,
                first,
                last,
                f"cus_vol{cid}",
                country,
                None,
                brand,
                f"{rng.randint(0, 9999):04d}",
                expires,
                created,
            )
        )
        if rng.random() < 0.4:
            token = uuid.UUID(int=rng.getrandbits(128)).hex
            users.append(
                (
                    simulator.next_serial("users"),
                    email,
                    password_hash,
                    cid,
                    created,
                    token,
                    "customer",
                )
            )
    writer.write(
        table("customers"),
        [
            "id",
            "reference_id",
            "email",
            "first_name",
            "last_name",
            "stripe_customer_id",
            "country",
            "imported_at",
            "card_brand",
            "card_last4",
            "card_expires_on",
            "created_at",
        ],
        rows,
    )
    writer.write(
        table("users"),
        ["id", "email", "password_hash", "customer_id", "created_at", "session_token", "role"],
        users,
    )
    return customers


def write_billing(
    writer: Writer,
    volume: Volume,
    simulator: Simulator,
    customers: list[CustomerRow],
    currency: str,
    now: datetime,
) -> tuple[list[tuple[int, History]], list[Event]]:
    """Each customer's simulated history, as the mirror keeps it; with the webhook events
    Stripe would have sent for it."""
    rng = simulator.rng
    histories: list[tuple[int, History]] = []
    events: list[Event] = []
    subs: list[tuple[Any, ...]] = []
    invoices: list[tuple[Any, ...]] = []
    charges: list[list[Any]] = []
    changes: list[tuple[Any, ...]] = []
    for index, customer in enumerate(customers):
        history = simulator.customer(customer.created, index)
        histories.append((customer.id, history))
        cus = customer.stripe_id
        events.append(("customer.created", cus, cus, customer.created))
        for sub in history.subs:
            period = sub.current
            subs.append(
                (
                    sub.serial,
                    f"sub_vol{sub.serial}",
                    customer.id,
                    period.plan.key,
                    f"price_vol_{period.plan.key}",
                    sub.status,
                    period.start,
                    period.end,
                    sub.trial_end,
                    sub.cancel_at_period_end,
                    monthly_value(period.plan, period.quantity),
                    period.quantity,
                    currency,
                    sub.scheduled_plan_key,
                    period.end if sub.scheduled_plan_key else None,
                    sub.canceled_at,
                    sub.ended_at,
                    sub.created,
                    sub.created,
                    sub.ended_at or now,
                )
            )
            events.append(
                ("customer.subscription.created", f"sub_vol{sub.serial}", cus, sub.created)
            )
            if sub.ended_at:
                events.append(
                    ("customer.subscription.deleted", f"sub_vol{sub.serial}", cus, sub.ended_at)
                )
        for invoice in history.invoices:
            paid = invoice.status == "paid"
            intent = f"pi_vol{invoice.serial}" if invoice.attempts else None
            billed = invoice.period
            invoices.append(
                (
                    invoice.serial,
                    f"in_vol{invoice.serial}",
                    customer.id,
                    f"sub_vol{invoice.sub.serial}",
                    invoice.status,
                    invoice.billing_reason,
                    currency,
                    invoice.amount_due,
                    invoice.amount_due if paid else 0,
                    f"https://invoice.stripe.com/i/vol{invoice.serial}",
                    f"https://pay.stripe.com/invoice/vol{invoice.serial}/pdf",
                    billed.start if billed else invoice.created,
                    billed.end if billed else invoice.created,
                    invoice.created,
                    intent,
                    len(invoice.attempts),
                    invoice.next_payment_attempt,
                    invoice.monthly_amount,
                )
            )
            for attempt, succeeded in enumerate(invoice.attempts):
                at = min(invoice.created + timedelta(days=3 * attempt, minutes=1), now)
                serial = simulator.next_serial("charges")
                decline = None if succeeded else rng.choice(DECLINES)
                country = customer.country if rng.random() < 0.95 else weighted(rng, COUNTRIES)
                charges.append(
                    [
                        serial,
                        f"ch_vol{serial}",
                        customer.id,
                        intent,
                        invoice.amount_due,
                        0,
                        currency,
                        "succeeded" if succeeded else "failed",
                        False,
                        "card",
                        customer.card_brand,
                        country,
                        customer.country,
                        decline,
                        decline and f"Your card was declined ({decline}).",
                        at,
                    ]
                )
                kind = "invoice.paid" if succeeded else "invoice.payment_failed"
                events.append((kind, f"in_vol{invoice.serial}", cus, at))
        for at, before, after, movement in history.changes:
            serial = simulator.next_serial("revenue_changes")
            changes.append((serial, customer.id, at, currency, before, after, movement, "sync"))
    refunds, disputes = _refunds_and_disputes(volume, simulator, charges, events, now)
    writer.write(
        table("subscriptions"),
        [
            "id",
            "stripe_subscription_id",
            "customer_id",
            "plan_key",
            "stripe_price_id",
            "status",
            "current_period_start",
            "current_period_end",
            "trial_end",
            "cancel_at_period_end",
            "monthly_amount",
            "quantity",
            "currency",
            "scheduled_plan_key",
            "scheduled_change_at",
            "canceled_at",
            "ended_at",
            "stripe_created",
            "created_at",
            "updated_at",
        ],
        subs,
    )
    writer.write(
        table("invoices"),
        [
            "id",
            "stripe_invoice_id",
            "customer_id",
            "stripe_subscription_id",
            "status",
            "billing_reason",
            "currency",
            "amount_due",
            "amount_paid",
            "hosted_invoice_url",
            "invoice_pdf",
            "period_start",
            "period_end",
            "created",
            "stripe_payment_intent_id",
            "attempt_count",
            "next_payment_attempt",
            "monthly_amount",
        ],
        invoices,
    )
    writer.write(
        table("charges"),
        [
            "id",
            "stripe_charge_id",
            "customer_id",
            "stripe_payment_intent_id",
            "amount",
            "amount_refunded",
            "currency",
            "status",
            "disputed",
            "payment_method_type",
            "card_brand",
            "card_country",
            "billing_country",
            "failure_code",
            "failure_message",
            "created",
        ],
        (tuple(charge) for charge in charges),
    )
    writer.write(
        table("refunds"),
        [
            "id",
            "stripe_refund_id",
            "customer_id",
            "stripe_charge_id",
            "amount",
            "currency",
            "status",
            "reason",
            "created",
        ],
        refunds,
    )
    writer.write(
        table("disputes"),
        [
            "id",
            "stripe_dispute_id",
            "customer_id",
            "stripe_charge_id",
            "amount",
            "currency",
            "status",
            "reason",
            "evidence_due_by",
            "created",
        ],
        disputes,
    )
    writer.write(
        table("revenue_changes"),
        ["id", "customer_id", "at", "currency", "mrr_before", "mrr_after", "movement", "source"],
        changes,
    )
    return histories, events


def _refunds_and_disputes(
    volume: Volume,
    simulator: Simulator,
    charges: list[list[Any]],
    events: list[Event],
    now: datetime,
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Refund a share of the paid charges, and dispute a share of the rest (at least one each);
    the charges are marked as refunded or disputed."""
    rng = simulator.rng
    paid = [charge for charge in charges if charge[7] == "succeeded" and charge[4] > 0]
    if not paid:
        return [], []
    refunded = rng.sample(paid, min(len(paid), max(1, round(volume.refund_rate * len(paid)))))
    rest = [charge for charge in paid if charge not in refunded] or paid
    disputed = rng.sample(rest, min(len(rest), max(1, round(volume.dispute_rate * len(paid)))))
    refunds, disputes = [], []
    for charge in refunded:
        amount = charge[4] if rng.random() < 0.6 else rng.randint(1, charge[4])
        charge[5] = amount
        serial = simulator.next_serial("refunds")
        at = min(charge[15] + timedelta(days=rng.randint(1, 20)), now)
        refunds.append(
            (
                serial,
                f"re_vol{serial}",
                charge[2],
                charge[1],
                amount,
                charge[6],
                "succeeded",
                rng.choice(REFUND_REASONS),
                at,
            )
        )
        events.append(("charge.refunded", charge[1], f"cus_vol{charge[2]}", at))
    for number, charge in enumerate(disputed):
        charge[8] = True
        serial = simulator.next_serial("disputes")
        at = min(charge[15] + timedelta(days=rng.randint(5, 60)), now)
        status = (
            "needs_response"
            if number == 0
            else rng.choice(("needs_response", "under_review", "won", "lost", "lost"))
        )
        due = at + timedelta(days=7) if status == "needs_response" else None
        disputes.append(
            (
                serial,
                f"dp_vol{serial}",
                charge[2],
                charge[1],
                charge[4],
                charge[6],
                status,
                rng.choice(DISPUTE_REASONS),
                due,
                at,
            )
        )
        events.append(("charge.dispute.created", f"dp_vol{serial}", f"cus_vol{charge[2]}", at))
    return refunds, disputes
