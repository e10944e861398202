"""`flask sandbox seed-demo`: a year played through the sandbox's clock, which Tollgate heard of
through its webhooks, and the cases where the command refuses to start."""

from __future__ import annotations

import fcntl
import itertools
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from flask import Flask
from sqlalchemy import func, select

from app import create_app
from app.accounts.mirror import NEWEST_FIRST, Dispute, Invoice, Refund, Subscription
from app.accounts.models import Customer, User
from app.billing.margin import PeriodMargin, current_margin, floor_of
from app.billing.models import RevenueChange
from app.catalog import current_catalog
from app.clock import now
from app.demo.cli import DEMO_PASSWORD
from app.entitlements.models import UsageEvent
from app.extensions import db
from app.stripe_sandbox import Sandbox
from tests.apps import app_config
from tests.factories import active_customer
from tests.web import WebClient

# Thirty customers are enough for every part of the story to happen with this seed.
SEED_ARGS = ["sandbox", "seed-demo", "--customers", "30", "--seed", "51"]


def _months(dates: Sequence[datetime]) -> set[tuple[int, int]]:
    return {(at.year, at.month) for at in dates}


def _falls_month_after_month(units_by_month: dict[tuple[int, int], int]) -> bool:
    """Usage that falls from each whole month to the next (the first and last are partial)."""
    whole = [units for _, units in sorted(units_by_month.items())][1:-1]
    return len(whole) >= 3 and all(a > b for a, b in itertools.pairwise(whole))


def test_seed_demo_plays_a_year_that_tollgate_heard_of(
    synced: Flask, sandbox: Sandbox, client: WebClient
) -> None:
    started = sandbox.now()
    result = synced.test_cli_runner().invoke(args=SEED_ARGS)
    assert result.exit_code == 0, result.output
    assert "The demo's year, played in" in result.output
    assert sandbox.now() - started >= 365 * 86_400
    assert sandbox.pending_deliveries() == []

    with synced.app_context():
        customers = db.session.scalars(select(Customer)).all()
        assert len(customers) == 30
        domains = (".example", "@example.com", "@example.org", "@example.net")
        assert all(c.email and c.email.endswith(domains) for c in customers)
        assert len({c.country for c in customers if c.country}) >= 5
        logins = db.session.scalar(select(func.count()).select_from(User)) or 0
        assert 20 <= logins < 30  # most log in, a few do not

        newest: dict[int, Subscription] = {}
        for subscription in db.session.scalars(
            select(Subscription).order_by(Subscription.stripe_created.desc())
        ):
            newest.setdefault(subscription.customer_id, subscription)
        statuses = Counter(s.status.value for s in newest.values())
        assert statuses["active"] >= 15
        assert statuses["canceled"] >= 1
        assert statuses["past_due"] >= 1
        assert len({s.plan_key for s in newest.values() if s.is_live}) >= 4

        story_start = now() - timedelta(days=366)
        invoices = db.session.scalars(select(Invoice.created)).all()
        assert len(_months(invoices)) >= 12
        assert min(invoices) >= story_start  # dated by the sandbox's clock, not the wall's
        assert db.session.scalar(select(func.count()).select_from(Refund)) >= 1
        disputes = Counter(db.session.scalars(select(Dispute.status)).all())
        assert disputes["won"] >= 1
        assert disputes["lost"] >= 1

        usage = db.session.execute(
            select(UsageEvent.customer_id, UsageEvent.occurred_at, UsageEvent.units)
        ).all()
        assert len(usage) > 1000
        monthly: dict[int, dict[tuple[int, int], int]] = defaultdict(lambda: defaultdict(int))
        for customer_id, at, units in usage:
            monthly[customer_id][(at.year, at.month)] += units
        # A fading customer: its usage falls month after month.
        assert any(_falls_month_after_month(by_month) for by_month in monthly.values())

        changes = db.session.scalars(select(RevenueChange.at)).all()
        assert len(changes) >= 20
        assert len(_months(changes)) >= 6
        assert min(changes) >= story_start

        with_login = db.session.scalars(select(User.email).limit(1)).one()
    response = client.log_in(with_login, DEMO_PASSWORD)
    assert response.status_code == 302, response.text


def _current_margins(tier: str) -> list[tuple[PeriodMargin, Decimal]]:
    """The paid periods that the customers of a tier's plans with a margin floor are in now,
    each with its floor (a trial's period has no revenue to keep a share of)."""
    catalog = current_catalog()
    newest: dict[int, Subscription] = {}
    for subscription in db.session.scalars(select(Subscription).order_by(*NEWEST_FIRST)):
        newest.setdefault(subscription.customer_id, subscription)
    margins = []
    for subscription in newest.values():
        plan = floor_of(catalog, subscription.plan_key)
        margin = current_margin(subscription)
        if plan is None or plan.tier != tier or not subscription.is_live or margin is None:
            continue
        assert plan.margin_floor is not None
        if not margin.trialing:
            margins.append((margin, plan.margin_floor))
    return margins


def test_seed_demo_costs_ai_usage_and_one_pro_customer_is_below_its_floor(synced: Flask) -> None:
    result = synced.test_cli_runner().invoke(args=SEED_ARGS)
    assert result.exit_code == 0, result.output

    with synced.app_context():
        ai_chat = db.session.scalars(
            select(UsageEvent).where(UsageEvent.feature_key == "ai_chat")
        ).all()
        assert len(ai_chat) > 500
        # Each event says which model it called and its tokens, and Tollgate priced it.
        assert all(
            event.cost_input["inputTokens"] + event.cost_input["outputTokens"] == event.units
            for event in ai_chat
        )
        assert all(event.cost_nanos and event.cost_source != "unpriced" for event in ai_chat)
        models = {f"{e.cost_input['modelProvider']}/{e.cost_input['model']}" for e in ai_chat}
        assert models == {
            "openai/gpt-4o-mini",
            "openai/gpt-4o",
            "anthropic/claude-sonnet-4-5",
            "google/gemini-2.5-flash",
        }

        margins = _current_margins("pro")
        below = [margin for margin, floor in margins if margin.below(floor)]
        # A heavy user of an expensive model costs more than a fifth of what Pro earns; the
        # others, far less.
        assert len(below) >= 1
        assert len(margins) - len(below) > len(below)
        assert all(margin.cost > 0 for margin, _ in margins)


def test_seed_demo_refuses_a_database_with_customers(synced: Flask) -> None:
    active_customer(synced, "pro_monthly", email="already@example.com")

    result = synced.test_cli_runner().invoke(args=SEED_ARGS)

    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: The database has 1 customer(s) already; --force adds the demo's beside them."
    ]


def test_seed_demo_refuses_while_a_server_delivers_the_webhooks(
    synced: Flask, sandbox: Sandbox
) -> None:
    # What the background tick of a running server's process holds.
    with open(f"{sandbox.path}.delivery.lock", "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = synced.test_cli_runner().invoke(args=SEED_ARGS)

    assert result.exit_code == 1
    assert "Stop the server first" in result.output
    with synced.app_context():
        assert db.session.scalar(select(func.count()).select_from(Customer)) == 0


def test_seed_demo_refuses_real_stripe(tmp_path: Path) -> None:
    app = create_app(
        app_config(
            f"sqlite:///{tmp_path / 'unused.sqlite3'}",
            STRIPE_SECRET_KEY="sk_test_a_real_account",
            STRIPE_WEBHOOK_SECRET="whsec_a_real_endpoint",
        )
    )

    result = app.test_cli_runner().invoke(args=SEED_ARGS)

    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: seed-demo runs against the built-in Stripe sandbox only, and STRIPE_SECRET_KEY "
        "is set."
    ]
