"""Tollgate on a restricted Stripe key: the permissions docs/stripe-keys.md lists are enough,
and a missing one is named to the operator, politely hidden from the customer, and changes
nothing. Stripe is the sandbox, served on its own over HTTP as another Stripe server."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
import stripe
from flask import Flask
from sqlalchemy import select

from app import create_app
from app.accounts.mirror import Subscription
from app.config import REPO_ROOT
from app.extensions import db
from app.stripe_sandbox import Sandbox, SandboxHTTPClient, create_blueprint
from app.stripe_sandbox.keys import RESOURCE_GROUPS
from app.webhooks.models import StripeEvent
from tests.apps import app_config
from tests.conftest import MigratedDatabase
from tests.journeys import click, form_value, press, subscribe
from tests.web import WebClient, serve, visible_text

DOCS = (REPO_ROOT / "docs" / "stripe-keys.md").read_text()
SECRET_KEY = "sk_test_operator"
CUSTOMER_MESSAGE = (
    "Billing is not set up correctly on our side, so nothing was changed. "
    "The operator has been told; please try again later."
)
# rak_<name>_<level> -> the sandbox's resource group of <name>.
GROUP_OF = {name: group for group, name in RESOURCE_GROUPS.values()}

MakeTollgate = Callable[[dict[str, str]], AbstractContextManager[Flask]]


def documented(section: str) -> dict[str, str]:
    """The permissions docs/stripe-keys.md lists under ``### <section>``, as the sandbox's
    resource groups and levels."""
    found = re.search(rf"^### {re.escape(section)}.*?$(.*?)(?=^##)", DOCS, re.M | re.S)
    assert found, f"no section {section!r} in docs/stripe-keys.md"
    permissions = re.findall(r"`rak_([a-z_]+)_(read|write)`", found.group(1))
    return {GROUP_OF[name]: level for name, level in permissions}


@pytest.fixture
def stripe_server(tmp_path: Path) -> Iterator[Sandbox]:
    """The sandbox alone, served over HTTP: the Stripe that Tollgate is pointed at."""
    sandbox = Sandbox(str(tmp_path / "stripe.sqlite3"))

    def make(base_url: str) -> Flask:
        stripe_app = Flask(__name__)
        stripe_app.register_blueprint(create_blueprint(sandbox))
        sandbox.base_url = base_url
        return stripe_app

    with serve(make):
        yield sandbox


@pytest.fixture
def tollgate(
    migrated_database: MigratedDatabase,
    stripe_server: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[MakeTollgate]:
    """Tollgate with the catalog synced and its webhook endpoint set up by the operator's
    commands on the documented setup key, serving on a restricted key of the permissions
    given (none of the sandbox's own: it is configured as for real Stripe)."""
    monkeypatch.setenv("TOLLGATE_INSTANCE_PATH", str(tmp_path / "instance"))
    database_url = migrated_database.fresh_url(tmp_path)
    made: list[Flask] = []

    def configured(key: str, base_url: str, **extra: str) -> Flask:
        return create_app(
            app_config(
                database_url,
                TOLLGATE_BASE_URL=base_url,
                STRIPE_SECRET_KEY=key,
                STRIPE_API_BASE=f"{stripe_server.base_url}/sandbox",
                **extra,
            )
        )

    @contextmanager
    def serving(permissions: dict[str, str]) -> Iterator[Flask]:
        def make(base_url: str) -> Flask:
            setup_key = stripe_server.create_restricted_key(documented("Setting up Stripe"))
            runner = configured(setup_key, base_url).test_cli_runner()
            synced = runner.invoke(args=["catalog", "sync"])
            assert synced.exit_code == 0, synced.output
            url = f"{base_url}/stripe/webhook"
            setup = runner.invoke(args=["stripe", "setup", "--url", url])
            assert setup.exit_code == 0, setup.output
            secret = re.search(r"STRIPE_WEBHOOK_SECRET=(\S+)", setup.output)
            assert secret, setup.output
            key = stripe_server.create_restricted_key(permissions)
            return configured(key, base_url, STRIPE_WEBHOOK_SECRET=secret.group(1))

        with serve(make) as app:
            made.append(app)
            yield app

    yield serving
    for app in made:
        migrated_database.clean(app)


def _plan_in_stripe(sandbox: Sandbox, subscription_id: str) -> str | None:
    client = stripe.StripeClient(api_key=SECRET_KEY, http_client=SandboxHTTPClient(sandbox))
    subscription = client.v1.subscriptions.retrieve(subscription_id)
    return subscription.items.data[0].price.lookup_key


def _only_subscription(app: Flask) -> Subscription:
    with app.app_context():
        subscription = db.session.scalars(select(Subscription)).one()
        db.session.expunge(subscription)
        return subscription


def _deliver_all(sandbox: Sandbox, app: Flask) -> None:
    """Deliver Stripe's webhooks; each one must be applied."""
    sandbox.deliver_pending()
    assert sandbox.pending_deliveries() == []
    with app.app_context():
        events = db.session.scalars(select(StripeEvent)).all()
        assert events
        assert [(e.type, e.last_error) for e in events if e.processed_at is None] == []


def _upgrade(client: WebClient, plan_key: str) -> str:
    """Confirm an upgrade from its preview; the account page shown after it."""
    preview = client.get(f"/account/plan/{plan_key}")
    assert preview.status_code == 200, preview.text
    proration_date = form_value(preview.text, "proration_date")
    pressed = press(
        client, preview.text, f"/account/plan/{plan_key}", {"proration_date": proration_date}
    )
    assert pressed.status_code == 302, pressed.text
    return visible_text(client.get("/account").text)


def test_billing_path_works_on_a_key_with_only_the_documented_permissions(
    tollgate: MakeTollgate, stripe_server: Sandbox
) -> None:
    with tollgate(documented("The billing path")) as app:
        with WebClient(base_url=app.config["TOLLGATE_BASE_URL"], timeout=10) as client:
            subscribe(client, "ada@example.com", "starter_monthly")
            _deliver_all(stripe_server, app)
            assert "Starter" in visible_text(client.get("/account").text)

            assert "You are now on the Pro plan." in _upgrade(client, "pro_monthly")
            _deliver_all(stripe_server, app)
            downgraded = click(client, "/account/plan/starter_monthly")
            assert downgraded.status_code == 302
            assert "Your plan changes to Starter" in visible_text(client.get("/account").text)
            portal = click(client, "/account/billing-portal")
            assert portal.status_code == 303
            assert "/sandbox/portal/" in portal.headers["location"]
        subscription = _only_subscription(app)
    assert _plan_in_stripe(stripe_server, subscription.stripe_subscription_id) == "pro_monthly"
    assert subscription.scheduled_plan_key == "starter_monthly"


def test_upgrade_on_a_key_without_subscription_write_tells_the_customer_and_changes_nothing(
    tollgate: MakeTollgate, stripe_server: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    permissions = documented("The billing path") | {"subscriptions": "read"}
    with tollgate(permissions) as app:
        with WebClient(base_url=app.config["TOLLGATE_BASE_URL"], timeout=10) as client:
            subscribe(client, "ada@example.com", "starter_monthly")
            _deliver_all(stripe_server, app)

            page = _upgrade(client, "pro_monthly")

        subscription = _only_subscription(app)
    assert CUSTOMER_MESSAGE in page
    assert "You are now on the Pro plan." not in page
    assert "rak_" not in page
    assert subscription.plan_key == "starter_monthly"
    assert _plan_in_stripe(stripe_server, subscription.stripe_subscription_id) == "starter_monthly"
    told = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(
        "Stripe refused update_subscription because the Stripe key lacks the "
        "'rak_subscription_write' permission, so nothing changed." in message
        for message in told
    ), told


@pytest.fixture
def operator_app(
    migrated_database: MigratedDatabase,
    stripe_server: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[dict[str, str]], Flask]]:
    """Tollgate, not serving, for the operator's commands on a restricted key."""
    monkeypatch.setenv("TOLLGATE_INSTANCE_PATH", str(tmp_path / "instance"))
    database_url = migrated_database.fresh_url(tmp_path)
    made: list[Flask] = []

    def make(permissions: dict[str, str]) -> Flask:
        app = create_app(
            app_config(
                database_url,
                STRIPE_SECRET_KEY=stripe_server.create_restricted_key(permissions),
                STRIPE_API_BASE=f"{stripe_server.base_url}/sandbox",
            )
        )
        made.append(app)
        return app

    yield make
    for app in made:
        migrated_database.clean(app)


@pytest.mark.parametrize(
    ("command", "withheld", "permission"),
    [
        (["catalog", "sync"], {"prices": "read"}, "rak_plan_write"),
        (["catalog", "sync"], {"billing.meters": "read"}, "rak_billing_meter_write"),
        (
            ["stripe", "setup", "--url", "https://billing.example/stripe/webhook"],
            {"webhook_endpoints": "read"},
            "rak_webhook_write",
        ),
    ],
)
def test_operator_command_on_a_key_without_a_permission_names_it(
    operator_app: Callable[[dict[str, str]], Flask],
    stripe_server: Sandbox,
    command: list[str],
    withheld: dict[str, str],
    permission: str,
) -> None:
    app = operator_app(documented("Setting up Stripe") | withheld)
    result = app.test_cli_runner().invoke(args=command)
    assert result.exit_code == 1
    said = " ".join(result.output.split())
    assert f"because the Stripe key lacks the '{permission}' permission, so nothing changed" in said
    assert "Grant it to the restricted key in Stripe's Dashboard" in said
    assert "Traceback" not in result.output
    # Nothing of what the key may not write is made.
    client = stripe.StripeClient(api_key=SECRET_KEY, http_client=SandboxHTTPClient(stripe_server))
    made = {
        "rak_plan_write": client.v1.prices.list().data,
        "rak_billing_meter_write": client.v1.billing.meters.list().data,
        "rak_webhook_write": client.v1.webhook_endpoints.list().data,
    }
    assert made[permission] == []
