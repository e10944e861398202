"""Tollgate: a self-serve billing portal in front of Stripe."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg
from flask import Flask, redirect, url_for
from psycopg.types.array import ListBinaryDumper
from sqlalchemy import event, make_url
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from app.accounts.login_limits import init_login_limits
from app.config import REPO_ROOT, Config
from app.entitlements.fastpath import init_check_cache
from app.extensions import csrf, db, login_manager, migrate
from app.json_provider import OrjsonProvider
from app.logs import init_logging
from app.metrics import init_metrics
from app.security import init_security

__all__ = ["create_app"]

# Vendored front-end files; the version is in the file name so an upgrade is a visible change.
STATIC_ASSETS = {"htmx": "htmx-2.0.11.min.js", "pico": "pico-2.1.1.min.css"}


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application; ``config`` replaces the environment (tests pass their own)."""
    app = Flask(
        __name__,
        template_folder=str(REPO_ROOT / "templates"),
        static_folder=str(REPO_ROOT / "static"),
        instance_path=os.environ.get("TOLLGATE_INSTANCE_PATH") or str(REPO_ROOT / "instance"),
    )
    app.json = OrjsonProvider(app)
    app.config.from_object(Config)
    if config is None:
        app.config.update(Config.from_environ(Path(app.instance_path), os.environ))
    else:
        app.config.update(config)
    init_logging(app)
    make_local_folders(app)
    app.config["STRIPE_SANDBOX"] = not app.config["STRIPE_SECRET_KEY"]
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")

    trust_proxies(app)
    load_plan_catalog(app)
    register_extensions(app)
    init_security(app)
    init_check_cache(app)
    register_blueprints(app)
    init_metrics(app)
    register_stripe(app)
    register_commands(app)
    register_error_handlers(app)
    register_template_helpers(app)
    return app


def make_local_folders(app: Flask) -> None:
    """The instance folder, and the folder of a SQLite database file, in every mode: a fresh
    clone started against real Stripe has no sandbox to make them."""
    folders = [Path(app.instance_path)]
    database = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    path = database.database or ""
    if database.get_backend_name() == "sqlite" and path != ":memory:" and path[:5] != "file:":
        folders.append(Path(path).parent)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)


def trust_proxies(app: Flask) -> None:
    """Behind TOLLGATE_PROXIES proxies, take the client's address, scheme and host from their
    X-Forwarded-* headers (only theirs: a client can send such headers too)."""
    proxies = app.config["TOLLGATE_PROXIES"]
    if proxies:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_port=proxies
        )


def load_plan_catalog(app: Flask) -> None:
    """Load plans.toml once; a mistake in it stops start-up with the plan and field named."""
    from app.catalog import load_catalog

    app.extensions["tollgate.catalog"] = load_catalog(app.config["TOLLGATE_PLANS"])


def register_extensions(app: Flask) -> None:
    """Bind the extensions created in app/extensions.py."""
    from app.accounts.services import user_of_session
    from app.models import User
    from app.queue import init_queue

    db.init_app(app)
    init_queue(app)
    migrate.init_app(app, db, directory=str(REPO_ROOT / "migrations"))
    csrf.init_app(app)
    init_login_limits(app)
    login_manager.init_app(app)
    login_manager.login_view = "accounts.login"
    login_manager.login_message = "Log in to see that page."
    login_manager.login_message_category = "info"

    @login_manager.user_loader
    def load_user(session_id: str) -> User | None:
        return user_of_session(session_id)


def register_stripe(app: Flask) -> None:
    """Build the one StripeClient: Stripe's with a secret key, else the in-process sandbox's."""
    from app.billing.gateway import register_gateways
    from app.billing.transaction_guard import track_writes

    if app.config["STRIPE_CALL_GUARD"]:
        with app.app_context():
            track_writes(db.engine)
    if not app.config["STRIPE_SANDBOX"]:
        register_gateways(app, None)
        return
    from app.stripe_sandbox import Sandbox, SandboxHTTPClient, create_blueprint
    from app.stripe_sandbox.faults import Faults

    path = app.config["STRIPE_SANDBOX_PATH"] or str(
        Path(app.instance_path) / "stripe_sandbox.sqlite3"
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sandbox = Sandbox(path, base_url=app.config["TOLLGATE_BASE_URL"])
    app.extensions["stripe_sandbox"] = sandbox
    sandbox_pages = create_blueprint(sandbox)
    # Stripe's hosted pages and API take no CSRF token of ours, in the sandbox as on stripe.com.
    csrf.exempt(sandbox_pages)
    app.register_blueprint(sandbox_pages)
    latency = app.config["STRIPE_SANDBOX_LATENCY_MS"] / 1000
    register_gateways(app, SandboxHTTPClient(sandbox, latency=latency))
    with app.app_context():
        from app.webhooks.endpoint import register_sandbox_endpoint

        app.config["STRIPE_WEBHOOK_SECRET"] = register_sandbox_endpoint()
    # After the endpoint's registration: start-up itself is never faulted.
    sandbox.faults = Faults.parse(app.config["STRIPE_SANDBOX_FAULTS"])
    if app.config["SANDBOX_DELIVER_WEBHOOKS"] and not app.testing:
        sandbox.start_delivery_thread()


# How long a writer waits for another's locks before it gives up; the API then answers 503
# with Retry-After instead of holding the caller indefinitely.
LOCK_WAIT_MS = 5000


@event.listens_for(Engine, "connect")
def _tune_connection(dbapi_connection: Any, _record: Any) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        # Webhooks, pages and API calls write at once even on one dev server: WAL lets readers
        # go on during a write, and the busy timeout makes a writer wait instead of failing.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={LOCK_WAIT_MS}")
        # With WAL, NORMAL syncs at checkpoints rather than on every commit: a power cut may
        # lose the last commits but never corrupts the database (SQLite's own recommendation).
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
    elif isinstance(dbapi_connection, psycopg.Connection):
        # Lists (the sets of one_of() and pair_in(), a batch's columns) go as binary arrays:
        # psycopg's text format runs a regular expression per element to quote it, and took
        # seven times as long for a batch's thousand strings.
        dbapi_connection.adapters.register_dumper(list, ListBinaryDumper)
        dbapi_connection.execute(f"SET lock_timeout = {LOCK_WAIT_MS}")
        # Timestamps come back in the session's zone: in UTC, psycopg gives them with
        # datetime.UTC itself, which UTCDateTime passes through unconverted.
        dbapi_connection.execute("SET TIME ZONE 'UTC'")
        dbapi_connection.commit()


def register_blueprints(app: Flask) -> None:
    """Mount each domain's routes."""
    from app.accounts.routes import bp as accounts_bp
    from app.accounts.routes import continue_plans_with
    from app.api import subscriptions, usage  # noqa: F401  (they add their routes to api_bp)
    from app.api.openapi import docs_bp as api_docs_bp
    from app.api.routes import bp as api_bp
    from app.backoffice import (  # noqa: F401  (they add their routes to backoffice_bp)
        customer_action_routes,
        customer_routes,
        margin_routes,
        money_routes,
        revenue_routes,
        risk_routes,
        webhook_routes,
    )
    from app.backoffice.routes import bp as backoffice_bp
    from app.billing import (  # noqa: F401  (they add their routes to billing_bp)
        account_routes,
        checkout_routes,
    )
    from app.billing.checkout_routes import begin_plan
    from app.billing.routes import bp as billing_bp
    from app.health import bp as health_bp
    from app.webhooks.routes import bp as webhooks_bp

    # Sign-up (accounts) goes on to Checkout (billing, a layer above it) through this hand-over.
    continue_plans_with(app, begin_plan)
    app.register_blueprint(accounts_bp)
    app.register_blueprint(billing_bp)
    app.register_blueprint(webhooks_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(api_docs_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(backoffice_bp)


def register_commands(app: Flask) -> None:
    """Add Tollgate's ``flask ...`` commands."""
    from app.accounts.cli import users_cli
    from app.api.cli import api_keys_cli
    from app.backoffice.cli import costs_cli, revenue_cli
    from app.billing.cli import stripe_cli
    from app.catalog.cli import catalog_cli
    from app.demo.cli import register_demo_command
    from app.entitlements.cli import usage_cli
    from app.tasks import worker_command
    from app.webhooks.cli import webhooks_cli  # (it also adds `stripe setup` to the stripe group)

    app.cli.add_command(catalog_cli)
    app.cli.add_command(stripe_cli)
    app.cli.add_command(api_keys_cli)
    app.cli.add_command(usage_cli)
    app.cli.add_command(users_cli)
    app.cli.add_command(webhooks_cli)
    app.cli.add_command(worker_command)
    register_demo_command(app)  # into the sandbox's `flask sandbox` group
    app.cli.add_command(revenue_cli)
    app.cli.add_command(costs_cli)


def register_error_handlers(app: Flask) -> None:
    """404, 500 and friends in the site's layout, JSON under /api/."""
    from app.errors import register_error_handlers as register

    register(app)


def register_template_helpers(app: Flask) -> None:
    """Values every template may use."""

    from app.money import format_count, format_fine_money, format_money, format_percent

    @app.context_processor
    def inject_layout_values() -> dict[str, Any]:
        return {"sandbox_mode": app.config["STRIPE_SANDBOX"], "assets": STATIC_ASSETS}

    # A fresh name for each rendered action form (billing/_action_form.html).
    app.add_template_global(lambda: uuid.uuid4().hex, "new_intent")

    app.add_template_filter(lambda value: value.strftime("%-d %B %Y"), "date")

    @app.route("/favicon.ico")
    def favicon() -> Response:
        # Browsers ask for /favicon.ico on pages without an icon link (Stripe's hosted pages).
        return redirect(url_for("static", filename="favicon.svg"), code=301)

    app.add_template_filter(format_money, "money")
    app.add_template_filter(format_fine_money, "fine_money")
    app.add_template_filter(format_count, "count")
    app.add_template_filter(format_percent, "percent")
