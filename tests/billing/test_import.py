"""`flask stripe import`: a Stripe account Tollgate did not create, adopted page by page through
the one sync path; idempotent, resumable, and clear about whatever stops it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import stripe
from flask import Flask
from sqlalchemy import func, select

from app.accounts.mirror import Charge, Dispute, Invoice, Refund, Subscription
from app.accounts.models import Customer
from app.billing.gateway import gateway
from app.billing.models import ImportCursor, RevenueChange, RevenueMovement
from app.billing.revenue import EARNING
from app.billing.stripe_import import Importer, ImportReport
from app.catalog import load_catalog
from app.entitlements.models import CreditLot
from app.extensions import db
from app.stripe_sandbox import Sandbox, SandboxHTTPClient
from app.stripe_sandbox.faults import Faults
from app.stripe_sandbox.fill import FillOptions, FillSummary, fill
from tests.apps import REPO_ROOT
from tests.web import WebClient

MIRRORED = {
    "customer": Customer,
    "subscription": Subscription,
    "invoice": Invoice,
    "charge": Charge,
    "refund": Refund,
    "dispute": Dispute,
}


def _fill(sandbox: Sandbox, customers: int) -> FillSummary:
    summary = fill(sandbox, FillOptions(customers=customers, invoices=1, seed=7))
    sandbox.deliver_pending()
    return summary


def _map_legacy_prices(app: Flask, summary: FillSummary, tmp_path: Path) -> None:
    """The operator lists each legacy price under its plan in plans.toml and restarts."""
    text = (REPO_ROOT / "plans.toml").read_text()
    by_plan: dict[str, list[str]] = {}
    for price_id, plan_key in summary.legacy_prices.items():
        if plan_key is not None:
            by_plan.setdefault(plan_key, []).append(price_id)
    for plan_key, price_ids in by_plan.items():
        header = f"[plans.{plan_key}]\n"
        text = text.replace(header, f"{header}stripe_prices = {price_ids!r}\n".replace("'", '"'))
    edited = tmp_path / "plans.toml"
    edited.write_text(text)
    app.extensions["tollgate.catalog"] = load_catalog(edited)


def _import(app: Flask, **options: object) -> ImportReport:
    with app.app_context():
        return Importer(gateway(), **options).run()  # type: ignore[arg-type]


def _mirrored(app: Flask) -> dict[str, int]:
    with app.app_context():
        return {
            name: db.session.scalar(select(func.count()).select_from(model)) or 0
            for name, model in MIRRORED.items()
        }


def _stripe_counts(sandbox: Sandbox) -> dict[str, int]:
    return sandbox.run(lambda ctx: {name: len(ctx.store.all(name)) for name in MIRRORED})


def _outcomes(report: ImportReport) -> dict[str, Counter[str]]:
    return {part.object_type: part.counts for part in report.types}


@pytest.fixture
def account(synced: Flask, sandbox: Sandbox, tmp_path: Path) -> FillSummary:
    summary = _fill(sandbox, customers=400)
    _map_legacy_prices(synced, summary, tmp_path)
    return summary


def test_a_dry_run_reports_what_would_change_and_prices_of_no_plan_and_writes_nothing(
    synced: Flask, sandbox: Sandbox
) -> None:
    summary = _fill(sandbox, customers=150)
    result = synced.test_cli_runner().invoke(args=["stripe", "import", "--dry-run"])

    assert result.exit_code == 0, result.output
    assert "Dry run: nothing was written" in result.output
    legacy = [price_id for price_id, plan in summary.legacy_prices.items() if plan]
    assert legacy
    assert all(price_id in result.output for price_id in legacy[:1])
    assert "maps to no plan: add its id to the plan's stripe_prices in plans.toml" in result.output
    assert "its price price_" in result.output  # subscriptions on those prices are skipped
    assert _mirrored(synced) == dict.fromkeys(MIRRORED, 0)


def test_an_account_of_many_pages_is_adopted_whole_and_a_second_run_changes_nothing(
    synced: Flask, sandbox: Sandbox, tmp_path: Path
) -> None:
    summary = _fill(sandbox, customers=2_500)
    _map_legacy_prices(synced, summary, tmp_path)
    stripe_has = _stripe_counts(sandbox)
    assert stripe_has["customer"] == 2_500

    first = _import(synced)

    assert _mirrored(synced) == stripe_has
    outcomes = _outcomes(first)
    assert outcomes["customers"]["created"] == 2_500
    assert outcomes["subscriptions"]["created"] == stripe_has["subscription"]
    assert outcomes["charges"]["created"] == stripe_has["charge"]
    with synced.app_context():
        live = db.session.scalar(
            select(func.count())
            .select_from(Subscription)
            .where(Subscription.status.in_(["active", "trialing"]))
        )
        granted = db.session.scalar(
            select(func.count(func.distinct(CreditLot.stripe_subscription_id)))
        )
        assert live
        assert granted
        assert db.session.scalars(select(ImportCursor)).all() == []

    second = _import(synced)

    assert _mirrored(synced) == stripe_has
    for object_type, counts in _outcomes(second).items():
        assert counts["created"] == counts["updated"] == 0, (object_type, counts)


def test_an_interrupted_import_goes_on_from_its_last_page_to_the_same_result(
    synced: Flask, sandbox: Sandbox, account: FillSummary
) -> None:
    pages = Counter[str]()

    def interrupt_after_two_pages_of_customers(object_type: str, _count: int) -> None:
        pages[object_type] += 1
        if object_type == "customers" and pages[object_type] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _import(synced, progress=interrupt_after_two_pages_of_customers)
    assert _mirrored(synced)["customer"] == 200
    with synced.app_context():
        cursor = db.session.scalars(select(ImportCursor).filter_by(object_type="customers")).one()
        assert cursor.last_id is not None
        assert not cursor.done

    resumed = _import(synced)

    customers = next(part for part in resumed.types if part.object_type == "customers")
    assert customers.resumed_after == cursor.last_id
    assert customers.counts["created"] == 200
    assert _mirrored(synced) == _stripe_counts(sandbox)


def test_a_storm_of_rate_limits_is_waited_out(
    synced: Flask, sandbox: Sandbox, account: FillSummary
) -> None:
    sandbox.faults = Faults(
        share=0.3, seed=11, kinds={"rate_limit": 1.0}, only=lambda method, _path: method == "GET"
    )
    waits: list[float] = []

    _import(synced, sleep=waits.append)

    sandbox.faults = None
    assert len(waits) >= 10
    assert all(0.5 <= wait <= 30 for wait in waits)
    assert _mirrored(synced) == _stripe_counts(sandbox)


def test_a_key_that_cannot_read_a_type_or_a_network_failure_stops_clearly_and_a_rerun_goes_on(
    synced: Flask, sandbox: Sandbox, account: FillSummary
) -> None:
    readable = ("products", "prices", "customers", "subscriptions", "invoices", "events")
    no_charges = sandbox.create_restricted_key(dict.fromkeys(readable, "read"))
    runner = synced.test_cli_runner()

    refused = runner.invoke(args=["stripe", "import", "--api-key", no_charges])

    assert refused.exit_code == 1
    assert "Reading charges failed: the key has no permission to read them" in refused.output
    assert "rak_charge_read" in refused.output
    assert "Imported so far: products" in refused.output
    assert "Run the import again to go on from there." in refused.output
    stripe_has = _stripe_counts(sandbox)
    assert _mirrored(synced)["invoice"] == stripe_has["invoice"]
    assert _mirrored(synced)["charge"] == 0

    sandbox.faults = Faults(share=1.0, kinds={"dropped": 1.0}, only=_lists("refunds"))
    dropped = runner.invoke(args=["stripe", "import"])
    sandbox.faults = None
    assert dropped.exit_code == 1
    assert "Reading refunds failed: Stripe did not answer" in dropped.output

    everything = sandbox.create_restricted_key(
        dict.fromkeys((*readable, "charges", "refunds", "disputes"), "read")
    )
    finished = runner.invoke(args=["stripe", "import", "--api-key", everything])
    assert finished.exit_code == 0, finished.output
    assert "customers (done before)" in finished.output
    assert _mirrored(synced) == stripe_has


def _lists(resource: str) -> Callable[[str, str], bool]:
    return lambda method, path: method == "GET" and path == f"/v1/{resource}"


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("sk_live_123456789", "--api-key is a live key, but Tollgate runs with a test key"),
        ("pk_test_123", "--api-key takes a Stripe secret key (sk_...) or restricted key"),
        ("rk_test_unknown", "Reading products failed: Stripe did not accept the key"),
    ],
)
def test_a_wrong_key_is_refused_before_anything_is_written(
    synced: Flask, sandbox: Sandbox, key: str, message: str
) -> None:
    _fill(sandbox, customers=5)
    result = synced.test_cli_runner().invoke(args=["stripe", "import", "--api-key", key])

    assert result.exit_code == 1
    assert message in result.output
    assert _mirrored(synced) == dict.fromkeys(MIRRORED, 0)


def test_customers_tollgate_knows_are_matched_by_reference_id_then_email_not_duplicated(
    synced: Flask, sandbox: Sandbox, client: WebClient
) -> None:
    assert client.sign_up("Ada@Example.com").status_code == 302
    assert WebClient(base_url=str(client.base_url)).sign_up("bob@example.com").status_code == 302
    with synced.app_context():
        bob = db.session.scalars(select(Customer).filter_by(email="bob@example.com")).one()
        bob_reference = bob.reference_id
    operator = stripe.StripeClient("sk_test_operator", http_client=SandboxHTTPClient(sandbox))
    ada_in_stripe = operator.v1.customers.create({"email": "ada@example.com", "name": "Ada L"})
    bob_in_stripe = operator.v1.customers.create(
        {"email": "robert@example.com", "metadata": {"tollgate_customer": bob_reference}}
    )
    operator.v1.customers.create({"name": "No Email Ltd", "address": {"country": "FR"}})

    report = _import(synced)

    assert _outcomes(report)["customers"] == Counter({"updated": 2, "created": 1})
    with synced.app_context():
        by_stripe = {c.stripe_customer_id: c for c in db.session.scalars(select(Customer)).all()}
        assert by_stripe[ada_in_stripe.id].user is not None  # Ada's own account, now linked
        assert by_stripe[ada_in_stripe.id].first_name == "Ada"
        assert by_stripe[bob_in_stripe.id].reference_id == bob_reference
        assert by_stripe[bob_in_stripe.id].email == "robert@example.com"
        [adopted] = [c for c in by_stripe.values() if c.imported_at is not None]
        assert (adopted.email, adopted.country, adopted.user) == (None, "FR", None)
        assert len(by_stripe) == 3


def test_an_imported_accounts_revenue_history_comes_from_its_invoices_and_meets_todays_mrr(
    synced: Flask, sandbox: Sandbox, tmp_path: Path
) -> None:
    summary = fill(sandbox, FillOptions(customers=60, invoices=4, seed=11))
    sandbox.deliver_pending()
    _map_legacy_prices(synced, summary, tmp_path)
    _import(synced)

    with synced.app_context():
        changes = db.session.scalars(
            select(RevenueChange).order_by(RevenueChange.customer_id, RevenueChange.at)
        ).all()
        earning = dict(
            db.session.execute(
                select(Subscription.customer_id, func.sum(Subscription.monthly_amount))
                .where(Subscription.status.in_(EARNING))
                .group_by(Subscription.customer_id)
            ).all()
        )
    assert changes
    assert {change.source for change in changes} == {"invoices"}
    # Dated when it happened, over months, not on the day of the import.
    assert (max(c.at for c in changes) - min(c.at for c in changes)).days > 60
    last: dict[int, RevenueChange] = {}
    for change in changes:
        previous = last.get(change.customer_id)
        assert change.mrr_before == (previous.mrr_after if previous else 0)
        last[change.customer_id] = change
    paying = {customer: change.mrr_after for customer, change in last.items() if change.mrr_after}
    assert paying == {customer: amount for customer, amount in earning.items() if amount}
    assert {change.movement for change in changes} >= {RevenueMovement.NEW, RevenueMovement.CHURN}
