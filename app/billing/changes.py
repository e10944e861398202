"""Plan changes: the services the account page and the JSON API share (cancellation.py beside
this module has the cancellations).

Upgrades apply at once, prorated and invoiced now; downgrades (and a yearly plan going monthly)
wait for the end of the period through a Stripe subscription schedule, so the customer keeps what
it paid for. A change between a plan billed in advance and one billed in arrears is made in place
on the same subscription, so access never lapses (docs/plan-changes.md has the rules and their
hand-worked numbers). Each change re-reads the subscription from Stripe first and syncs the
answer back through the one sync path. Before its Stripe calls a change only reads the mirror:
the sync path writes and commits what Stripe answered, so no transaction is open while Stripe
works.

Every write to Stripe carries an idempotency key that names one intended operation: the
``intent`` of the customer's click (a value the form carries, so a double submit of the same
form is one change) or of the API call (its ``Idempotency-Key``, else a fresh one). Never a time
bucket: two different clicks in the same minute are two changes. Stripe answers a repeated key
with the first answer, which can be stale by then, so after every write the subscription is
read back from Stripe and that is what the mirror keeps.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import stripe

from app.accounts.mirror import Subscription, SubscriptionStatus
from app.billing.checkout import subscription_items
from app.billing.fetch import fetch_invoice, fetch_subscription, plan_item
from app.billing.gateway import GatewayError, gateway, stripe_id
from app.billing.sync import mirror, mirror_subscription, sync_invoice, sync_subscription
from app.catalog import Plan, current_catalog
from app.clock import timestamp


class ChangeKind(StrEnum):
    """How a plan change is carried out."""

    UPGRADE = "upgrade"  # at once, prorated, invoiced now
    DOWNGRADE = "downgrade"  # at the end of the period


class ChangeError(Exception):
    """A change that cannot be made; the message is for the customer, the code for the API."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class PreviewLine:
    """One line of the invoice Stripe previews: a proration credit, a charge, usage."""

    description: str
    amount: int
    proration: bool


@dataclass(frozen=True)
class UpgradePreview:
    """What an upgrade costs now, priced at ``proration_date`` so the charge matches.

    ``invoiced_now``: the lines are invoiced (and ``amount_due`` charged) at once; otherwise
    they wait for the next invoice, at the end of the period (a move to a plan billed in
    arrears: nothing is due now, the unused time is credited on that invoice).
    """

    plan: Plan
    amount_due: int
    currency: str
    proration_date: int
    # During a trial nothing is charged now: the new price applies when the trial ends.
    during_trial: bool = False
    lines: tuple[PreviewLine, ...] = ()
    invoiced_now: bool = True
    total: int = 0


_INTENT = re.compile(r"[A-Za-z0-9_-]{8,64}")


def intent_or_new(value: str | None) -> str:
    """The caller's name for this operation if it gave a usable one, else a new one."""
    if value and _INTENT.fullmatch(value):
        return value
    return uuid.uuid4().hex


def change_kind(current: Plan, target: Plan) -> ChangeKind:
    """A higher tier, or the same tier billed yearly instead of monthly, is an upgrade.

    Leaving a plan billed in arrears for one billed in advance always waits for the end of the
    period: the in-arrears fee of the running period is already counted in full (it is metered
    when the period opens), so switching earlier would bill part of a period twice.
    """
    if current.billing == "in_arrears" and target.billing == "in_advance":
        return ChangeKind.DOWNGRADE
    upgrade = current_catalog().is_upgrade(current, target)
    return ChangeKind.UPGRADE if upgrade else ChangeKind.DOWNGRADE


def plan_of(subscription: Subscription) -> Plan:
    """The catalog plan a subscription is on."""
    plan = current_catalog().plan(subscription.plan_key)
    if plan is None:
        raise ChangeError("Your plan is no longer offered; contact support.", "unknown_plan")
    return plan


def check_change(subscription: Subscription, target: Plan) -> Plan:
    """The plan the subscription is on, if moving it to ``target`` can be done at all."""
    if not subscription.is_live:
        raise ChangeError("This subscription has ended.", "subscription_ended")
    current = plan_of(subscription)
    if current.key == target.key:
        raise ChangeError(f"You are already on the {target.name} plan.", "same_plan")
    if current.is_free:
        # A free subscription has no card to charge: a paid plan starts as a new subscription
        # (through Checkout when billed in advance), and the free one ends when it starts.
        raise ChangeError(f"Start the {target.name} plan through checkout.", "use_checkout")
    if (
        subscription.status is SubscriptionStatus.TRIALING
        and target.billing == "in_arrears"
        and change_kind(current, target) is ChangeKind.UPGRADE
    ):
        # A trial goes on through a price change (Stripe keeps trial_end), and an in-arrears
        # plan counts its fee from the start of each period: the trial would be billed.
        raise ChangeError(
            f"The {target.name} plan has no trial: choose it when your trial ends, or cancel "
            "the trial first.",
            "in_trial",
        )
    return current


def _proration_behavior(target: Plan) -> str:
    """``always_invoice`` charges an upgrade's difference now (Stripe's recommendation for
    charging an upgrade at once: the update's API reference). A plan billed in arrears has
    nothing to charge now: ``create_prorations`` puts the credit for the unused time on the
    next invoice, the first of the new plan (a credit invoiced now would only become a
    customer balance that the same invoice consumes)."""
    return "create_prorations" if target.billing == "in_arrears" else "always_invoice"


def _item_changes(
    stripe_subscription: stripe.Subscription,
    new_items: list[dict[str, Any]],
    current: Plan,
    target: Plan,
) -> list[dict[str, Any]]:
    """Swap the plan price and replace the metered overage items with the target plan's
    (``new_items``, as ``subscription_items`` gives them).

    Between a plan billed in advance (a licensed price) and one billed in arrears (a metered
    fee) the plan item itself is replaced: an item keeps its usage type, so the licensed item
    is deleted (credited for its unused time) and the metered one added, counting from now.
    No ``clear_usage``: it has no effect on prices with a billing meter (all of Tollgate's),
    and the usage reported so far this period must be billed anyway.
    """
    if current.billing != target.billing:
        removed = [{"id": item.id, "deleted": True} for item in stripe_subscription.items.data]
        return removed + [{"price": item["price"]} for item in new_items]
    plan_item_id = plan_item(stripe_subscription).id
    changes: list[dict[str, Any]] = [{"id": plan_item_id, "price": new_items[0]["price"]}]
    changes += [
        {"id": item.id, "deleted": True}
        for item in stripe_subscription.items.data
        if item.id != plan_item_id
    ]
    return changes + [{"price": item["price"]} for item in new_items[1:]]


def preview_upgrade(subscription: Subscription, target: Plan) -> UpgradePreview:
    """Ask Stripe what moving to ``target`` now would invoice."""
    current = check_change(subscription, target)
    if change_kind(current, target) is not ChangeKind.UPGRADE:
        raise ChangeError(f"{target.name} is not an upgrade from {current.name}.", "not_upgrade")
    proration_date = timestamp()
    if subscription.status is SubscriptionStatus.TRIALING:
        return UpgradePreview(target, 0, target.currency, proration_date, during_trial=True)
    stripe_subscription = gateway().retrieve_subscription(subscription.stripe_subscription_id)
    invoice = gateway().preview_invoice(
        {
            "subscription": subscription.stripe_subscription_id,
            "subscription_details": {
                "items": _item_changes(
                    stripe_subscription, subscription_items(target), current, target
                ),
                "proration_behavior": _proration_behavior(target),
                "proration_date": proration_date,
            },
        }
    )
    # An update that invoices at once previews that invoice; otherwise Stripe previews the
    # next one, which carries the prorations created now.
    invoiced_now = invoice.billing_reason == "subscription_update"
    return UpgradePreview(
        target,
        invoice.amount_due if invoiced_now else 0,
        invoice.currency,
        proration_date,
        lines=tuple(_preview_lines(invoice)),
        invoiced_now=invoiced_now,
        total=invoice.total,
    )


def _preview_lines(invoice: stripe.Invoice) -> list[PreviewLine]:
    """The previewed invoice's lines that move money (metered lines with no usage yet aside)."""
    lines = []
    for line in invoice.lines.data:
        details = line.parent.subscription_item_details if line.parent else None
        proration = bool(details and details.proration)
        if line.amount or proration:
            lines.append(PreviewLine(line.description or "", line.amount, proration))
    return lines


def apply_upgrade(
    subscription: Subscription, target: Plan, proration_date: int, intent: str
) -> Subscription:
    """Move to ``target`` now, priced at the previewed ``proration_date``.

    ``pending_if_incomplete`` makes Stripe keep the old plan until the proration invoice is
    paid: a declined card leaves the subscription exactly as it was. A move to a plan billed in
    arrears invoices nothing now, so it has no payment to wait for, and it is sent without:
    Stripe's pending updates take new prices and quantities, not the items such a move deletes
    (its pending updates reference).
    """
    current = check_change(subscription, target)
    if change_kind(current, target) is not ChangeKind.UPGRADE:
        raise ChangeError(f"{target.name} is not an upgrade from {current.name}.", "not_upgrade")
    stripe_subscription = gateway().retrieve_subscription(subscription.stripe_subscription_id)
    new_items = subscription_items(target)
    if plan_item(stripe_subscription).price.id == new_items[0]["price"]:
        # Done already (a retry after Stripe's answer was lost, another tab): mirror it. Sending
        # the update again would change its items under the same key, which Stripe refuses.
        return _mirror_upgrade(subscription)
    release_schedule(stripe_subscription)
    change: dict[str, Any] = {
        "items": _item_changes(stripe_subscription, new_items, current, target),
        "proration_behavior": _proration_behavior(target),
        "proration_date": proration_date,
    }
    if target.billing == "in_advance":
        change["payment_behavior"] = "pending_if_incomplete"
    updated = gateway().update_subscription(
        subscription.stripe_subscription_id,
        change,
        idempotency_key=f"tollgate-upgrade-{subscription.stripe_subscription_id}-"
        f"{target.key}-{intent}",
    )
    if updated.pending_update is not None:
        raise ChangeError(
            "Your card was declined, so your plan was not changed. Update your card and try again.",
            "payment_failed",
        )
    return _mirror_upgrade(subscription)


def _mirror_upgrade(subscription: Subscription) -> Subscription:
    """Mirror an upgraded subscription with its proration invoice, in one transaction.

    The upgrade's credits are granted by the sync that first sees the new plan (this one or a
    webhook's), so a crash right after Stripe's answer loses none of them.
    """
    fetched = fetch_subscription(subscription.stripe_subscription_id)
    latest_invoice = fetched.subscription.latest_invoice
    if latest_invoice is None:
        mirror(fetched, sync_subscription)
    else:
        # The proration invoice and the subscription it bills, mirrored in one transaction.
        mirror(fetch_invoice(stripe_id(latest_invoice), fetched), sync_invoice)
    return subscription  # the same row, read again as just mirrored


def schedule_downgrade(subscription: Subscription, target: Plan, intent: str) -> Subscription:
    """Change to ``target`` when the current period ends, through a subscription schedule."""
    current = check_change(subscription, target)
    if change_kind(current, target) is not ChangeKind.DOWNGRADE:
        raise ChangeError(f"{target.name} is not a downgrade from {current.name}.", "not_downgrade")
    if subscription.cancel_at_period_end:
        raise ChangeError("Your plan is set to end; resume it before changing it.", "cancelling")
    stripe_subscription = gateway().retrieve_subscription(subscription.stripe_subscription_id)
    schedule_id = stripe_id(stripe_subscription.schedule) if stripe_subscription.schedule else None
    schedule = (
        gateway().retrieve_schedule(schedule_id)
        if schedule_id
        else gateway().schedule_for(subscription.stripe_subscription_id)
    )
    current_phase = schedule.phases[0]
    keep = [
        {"price": stripe_id(item.price), **({"quantity": item.quantity} if item.quantity else {})}
        for item in current_phase.items
    ]
    gateway().update_schedule(
        schedule.id,
        {
            "end_behavior": "release",
            "phases": [
                {
                    "items": keep,
                    "start_date": current_phase.start_date,
                    "end_date": current_phase.end_date,
                },
                {"items": subscription_items(target)},
            ],
        },
        idempotency_key=f"tollgate-downgrade-{subscription.stripe_subscription_id}-"
        f"{target.key}-{intent}",
    )
    return resync(subscription)


def undo_scheduled_change(subscription: Subscription) -> Subscription:
    """Keep the current plan after all: release the schedule's later phase."""
    was_scheduled = subscription.scheduled_plan_key is not None
    stripe_subscription = gateway().retrieve_subscription(subscription.stripe_subscription_id)
    if release_schedule(stripe_subscription) or was_scheduled:
        # Without a schedule in Stripe, the change the mirror showed was undone already (a
        # retry after Stripe's answer was lost): the mirror catches up.
        return resync(subscription)
    raise ChangeError("There is no scheduled plan change to undo.", "nothing_scheduled")


def release_schedule(stripe_subscription: stripe.Subscription) -> bool:
    """Drop the subscription's schedule, if it has one; whether it had."""
    if not stripe_subscription.schedule:
        return False
    try:
        gateway().release_schedule(stripe_id(stripe_subscription.schedule))
    except GatewayError:
        # Released meanwhile (another tab, the portal): what matters is that it is gone.
        if gateway().retrieve_subscription(stripe_subscription.id).schedule:
            raise
    return True


def resync(subscription: Subscription) -> Subscription:
    """Read the subscription back from Stripe and mirror it; commits."""
    synced = mirror_subscription(subscription.stripe_subscription_id)
    assert synced is not None
    return synced
