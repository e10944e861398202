"""`flask stripe import`: adopt an existing Stripe account through the one sync path.

Each object type is read page by page (100 a page, Stripe's most), newest first as Stripe lists
them, and each page is written in one short transaction with the cursor of the page: stopped
anywhere (Ctrl-C, a network error, a key without permission), a re-run goes on from the last
page written, and nothing half of a page is kept. Every object goes through the same upserts a
webhook uses, so a second run finds everything unchanged, and webhooks arriving meanwhile meet
the same rows. Stripe is only read: a restricted key with read permissions is enough.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import stripe
from sqlalchemy import delete, select

from app.accounts.models import Customer
from app.billing.drift import CREATED, watching_changes
from app.billing.fetch import WITH_SCHEDULE, FetchedInvoice, fetched_subscription, plan_item
from app.billing.gateway import GatewayError, StripeGateway, configured_key, stripe_id
from app.billing.listing import page_with_backoff, with_backoff
from app.billing.models import ImportCursor
from app.billing.payments import sync_charge, sync_dispute, sync_refund
from app.billing.revenue import history_from_invoices, rebuild_imported
from app.billing.sync import sync_customer, sync_invoice, sync_subscription
from app.catalog import current_catalog
from app.catalog.stripe_names import catalog_lookup_keys
from app.clock import now
from app.extensions import db
from app.money import format_money

log = logging.getLogger(__name__)

CREATED_OUTCOME, UPDATED, UNCHANGED, SKIPPED = "created", "updated", "unchanged", "skipped"


@dataclass
class TypeReport:
    """What the import did with one object type."""

    object_type: str
    counts: Counter[str] = field(default_factory=Counter)
    # Why objects were skipped, with how many each reason skipped and an example.
    skipped: dict[str, list[str]] = field(default_factory=dict)
    # Where an interrupted import had got to: the last object written, or done altogether.
    resumed_after: str | None = None
    done_before: bool = False

    @property
    def read(self) -> int:
        """Objects read from Stripe in this run."""
        return sum(self.counts.values())

    def skip(self, reason: str, object_id: str) -> str:
        self.skipped.setdefault(reason, []).append(object_id)
        return SKIPPED


@dataclass
class ImportReport:
    """The whole import: one report per object type, in the order they were read."""

    dry_run: bool
    types: list[TypeReport] = field(default_factory=list)


class ImportStopped(Exception):
    """Stripe refused a list, or could not be reached for long: the message says which type,
    how far the import got, and that a re-run goes on from there."""


@dataclass(frozen=True)
class Step:
    """One object type: how to list it, what to read besides for a page, and how to write one.

    ``prepare`` reads from Stripe what a page's objects need beyond the list (outside any
    transaction); ``apply`` writes one object in the page's transaction and says what became
    of it.
    """

    object_type: str
    resource: str
    params: dict[str, Any]
    apply: Callable[[Importer, Any], str]
    prepare: Callable[[Importer, list[Any]], None] = lambda _importer, _page: None


Progress = Callable[[str, int], None]


class Importer:
    """One run of the import."""

    def __init__(
        self,
        stripe_gateway: StripeGateway,
        *,
        dry_run: bool = False,
        sleep: Callable[[float], None] = time.sleep,
        progress: Progress | None = None,
    ) -> None:
        self.gateway = stripe_gateway
        self.dry_run = dry_run
        self.sleep = sleep
        self.progress = progress or (lambda _type, _count: None)
        self.report = ImportReport(dry_run)
        self.current: TypeReport = TypeReport("")
        # A dry run writes nothing, so the customers it would create are remembered here: what
        # belongs to them would be created too.
        self.would_adopt: set[str] = set()
        # The page's subscriptions that have a schedule, read again with it (prepare).
        self.scheduled: dict[str, stripe.Subscription] = {}
        # Products by id, to name the prices the report lists.
        self.product_names: dict[str, str] = {}

    def run(self) -> ImportReport:
        """Read every step's objects and write them; on success, forget the cursors."""
        cursors = {} if self.dry_run else self._cursors()
        with history_from_invoices():
            for step in STEPS:
                self.current = TypeReport(step.object_type)
                self.report.types.append(self.current)
                cursor = cursors.get(step.object_type)
                if cursor is not None and cursor.done:
                    self.current.done_before = True
                    continue
                self.current.resumed_after = cursor.last_id if cursor is not None else None
                self._import(step, self.current.resumed_after)
        if not self.dry_run:
            # Imported customers' revenue history, dated by their invoices.
            rebuild_imported()
            db.session.execute(delete(ImportCursor))
            db.session.commit()
        return self.report

    def _cursors(self) -> dict[str, ImportCursor]:
        cursors = {row.object_type: row for row in db.session.scalars(select(ImportCursor))}
        db.session.rollback()
        return cursors

    def _import(self, step: Step, starting_after: str | None) -> None:
        while True:
            page = self._page(step, starting_after)
            objects = list(page.data)
            try:
                step.prepare(self, objects)
            except GatewayError as exc:
                raise ImportStopped(self._stopped(step, exc)) from exc
            outcomes = self._write(step, objects)
            self.current.counts.update(outcomes)
            self.progress(step.object_type, len(objects))
            if objects:
                starting_after = objects[-1].id
            if not page.has_more:
                self._save_cursor(step.object_type, starting_after, done=True)
                return

    def _page(self, step: Step, starting_after: str | None) -> stripe.ListObject[Any]:
        params = dict(step.params)
        if starting_after is not None:
            params["starting_after"] = starting_after
        try:
            return page_with_backoff(self.gateway, step.resource, params, self.sleep)
        except GatewayError as exc:
            raise ImportStopped(self._stopped(step, exc)) from exc

    def _stopped(self, step: Step, exc: GatewayError) -> str:
        what = {
            403: "the key has no permission to read them",
            401: "Stripe did not accept the key",
        }.get(exc.http_status or 0, "Stripe did not answer")
        done = ", ".join(
            f"{report.object_type} {report.read:,}" for report in self.report.types if report.read
        )
        return (
            f"Reading {step.object_type} failed: {what} ({exc.detail}). "
            f"Imported so far: {done or 'nothing'}. "
            + (
                "A dry run wrote nothing."
                if self.dry_run
                else "Run the import again to go on from there."
            )
        )

    def _write(self, step: Step, objects: list[Any]) -> list[str]:
        """Apply one page in one transaction with its cursor; a dry run rolls it back."""
        try:
            outcomes = [step.apply(self, obj) for obj in objects]
            if objects:
                self._save_cursor(step.object_type, objects[-1].id, done=False, commit=False)
            if self.dry_run:
                db.session.rollback()
            else:
                db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
        return outcomes

    def _save_cursor(
        self, object_type: str, last_id: str | None, *, done: bool, commit: bool = True
    ) -> None:
        if self.dry_run:
            return
        cursor = db.session.scalar(
            select(ImportCursor).where(ImportCursor.object_type == object_type)
        )
        if cursor is None:
            cursor = ImportCursor(object_type=object_type)
            db.session.add(cursor)
        cursor.last_id, cursor.done, cursor.updated_at = last_id, done, now()
        if commit:
            db.session.commit()

    # What became of one object

    def synced(self, sync: Callable[[], object], object_id: str) -> str:
        """Run a sync and say whether it created, updated or left its object as it was."""
        with watching_changes() as changes:
            result = sync()
            db.session.flush()
        if result is None:
            return self.current.skip("not one of the imported customers'", object_id)
        if any(
            change.field == CREATED and change.object_type != "credit_lots" for change in changes
        ):
            return CREATED_OUTCOME
        return UPDATED if changes else UNCHANGED

    def customer_known(self, stripe_customer_id: str | None) -> bool | None:
        """Whether the customer is mirrored (True), would be by this dry run (None), or not."""
        if stripe_customer_id is None:
            return False
        if stripe_customer_id in self.would_adopt:
            return None
        mirrored = db.session.scalar(
            select(Customer.id).where(Customer.stripe_customer_id == stripe_customer_id)
        )
        return mirrored is not None


def _product(importer: Importer, product: stripe.Product) -> str:
    """Products are read for the names the report gives prices; the catalog stays plans.toml."""
    importer.product_names[product.id] = product.name
    return UNCHANGED


def _price(importer: Importer, price: stripe.Price) -> str:
    """A price maps to a plan by its lookup key or by its id in a plan's ``stripe_prices``;
    one that maps to none is reported, never guessed."""
    catalog = current_catalog()
    if catalog.plan_key_of_price(price.id, price.lookup_key) is not None:
        return UNCHANGED
    if price.lookup_key in catalog_lookup_keys(catalog.plans.values()):
        return UNCHANGED  # a plan's overage price, which `flask catalog sync` made
    if price.recurring is None:
        return importer.current.skip("not a recurring price", price.id)
    if not price.active:
        return importer.current.skip("archived, and maps to no plan", price.id)
    product = importer.product_names.get(stripe_id(price.product), stripe_id(price.product))
    amount = (
        format_money(price.unit_amount, price.currency)
        if price.unit_amount is not None
        else "metered"
    )
    described = f"{price.id} ({product}, {amount} per {price.recurring.interval})"
    return importer.current.skip(
        "maps to no plan: add its id to the plan's stripe_prices in plans.toml", described
    )


def _customer(importer: Importer, customer: stripe.Customer) -> str:
    outcome = importer.synced(lambda: sync_customer(customer, adopt=True), customer.id)
    if importer.dry_run and outcome == CREATED_OUTCOME:
        importer.would_adopt.add(customer.id)
    return outcome


def _prepare_subscriptions(importer: Importer, page: list[stripe.Subscription]) -> None:
    """A subscription with a schedule is read again with the schedule's phases and prices (a
    list cannot expand that deep), to know the plan change it holds."""
    importer.scheduled = {
        subscription.id: with_backoff(
            partial(importer.gateway.retrieve_subscription, subscription.id, WITH_SCHEDULE),
            importer.sleep,
        )
        for subscription in page
        if subscription.schedule and _mapped_plan(subscription) is not None
    }


def _mapped_plan(subscription: stripe.Subscription) -> str | None:
    price = plan_item(subscription).price
    return current_catalog().plan_key_of_price(price.id, price.lookup_key)


def _subscription(importer: Importer, subscription: stripe.Subscription) -> str:
    if _mapped_plan(subscription) is None:
        price = plan_item(subscription).price
        return importer.current.skip(f"its price {price.id} maps to no plan", subscription.id)
    unknown = _unknown_owner(importer, subscription.customer, subscription.id)
    if unknown is not None:
        return unknown
    whole = importer.scheduled.get(subscription.id, subscription)
    return importer.synced(lambda: sync_subscription(fetched_subscription(whole)), subscription.id)


def _unknown_owner(importer: Importer, owner: Any, object_id: str) -> str | None:
    """None when the object's customer is mirrored; else what becomes of the object."""
    known = importer.customer_known(stripe_id(owner) if owner is not None else None)
    if known is None:
        return CREATED_OUTCOME  # a dry run: its customer would be created first
    if not known:
        return importer.current.skip("its customer was not imported", object_id)
    return None


def _invoice(importer: Importer, invoice: stripe.Invoice) -> str:
    """Past invoices are history: mirrored without re-reading their subscription, so they
    grant nothing (the running period's credits came with the subscription)."""
    unknown = _unknown_owner(importer, invoice.customer, invoice.id)
    if unknown is not None:
        return unknown
    return importer.synced(lambda: sync_invoice(FetchedInvoice(invoice, None)), invoice.id)


def _charge(importer: Importer, charge: stripe.Charge) -> str:
    unknown = _unknown_owner(importer, charge.customer, charge.id)
    if unknown is not None:
        return unknown
    return importer.synced(lambda: sync_charge(charge), charge.id)


def _refund(importer: Importer, refund: stripe.Refund) -> str:
    unknown = _unknown_owner(importer, _charge_customer(refund.charge), refund.id)
    if unknown is not None:
        return unknown
    return importer.synced(lambda: sync_refund(refund), refund.id)


def _dispute(importer: Importer, dispute: stripe.Dispute) -> str:
    unknown = _unknown_owner(importer, _charge_customer(dispute.charge), dispute.id)
    if unknown is not None:
        return unknown
    return importer.synced(lambda: sync_dispute(dispute), dispute.id)


def _charge_customer(charge: Any) -> Any:
    """The customer of a refund's or dispute's charge, listed expanded."""
    return charge.customer if isinstance(charge, stripe.Charge) else None


STEPS = (
    Step("products", "products", {}, _product),
    Step("prices", "prices", {}, _price),
    Step(
        "customers",
        "customers",
        {"expand": ["data.invoice_settings.default_payment_method"]},
        _customer,
    ),
    Step(
        "subscriptions",
        "subscriptions",
        {"status": "all", "expand": ["data.discounts", "data.default_payment_method"]},
        _subscription,
        _prepare_subscriptions,
    ),
    Step("invoices", "invoices", {"expand": ["data.payments"]}, _invoice),
    Step("charges", "charges", {}, _charge),
    Step("refunds", "refunds", {"expand": ["data.charge"]}, _refund),
    Step("disputes", "disputes", {"expand": ["data.charge"]}, _dispute),
)
OBJECT_TYPES = tuple(step.object_type for step in STEPS)


def interrupted_at() -> Iterator[tuple[str, str | None, bool]]:
    """(object type, last object written, done) of an import that did not finish."""
    for cursor in db.session.scalars(select(ImportCursor).order_by(ImportCursor.id)):
        yield cursor.object_type, cursor.last_id, cursor.done


def key_problem(api_key: str | None) -> str | None:
    """Why a key given to the import cannot be used, before anything is read with it."""
    if api_key is None:
        return None
    if not api_key.startswith(("sk_test_", "sk_live_", "rk_test_", "rk_live_")):
        return "--api-key takes a Stripe secret key (sk_...) or restricted key (rk_...)."
    mode, running = _mode(api_key), _mode(configured_key())
    if mode != running:
        return (
            f"--api-key is a {mode} key, but Tollgate runs with a {running} key: importing "
            f"{mode} objects into a {running} mirror would mix the two. Use a {running} key."
        )
    return None


def _mode(key: str) -> str:
    return "live" if "_live_" in key else "test"
