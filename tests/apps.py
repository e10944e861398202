"""Test applications: the explicit configuration they start from, and their schema."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import flask_migrate
from flask import Flask

from app import create_app
from app.config import REPO_ROOT
from app.extensions import db


def app_config(database_url: str, **overrides: Any) -> dict[str, Any]:
    """The explicit configuration every test app starts from."""
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "TOLLGATE_PLANS": str(REPO_ROOT / "plans.toml"),
        # Every path the tests drive is checked: Stripe is never called inside a write transaction.
        "STRIPE_CALL_GUARD": True,
        **overrides,
    }


def sandboxed_app(database_url: str, workdir: Path, **overrides: Any) -> Callable[[str], Flask]:
    """A factory of the app on ``database_url`` with a fresh sandbox, given its own base URL."""

    def make_app(base_url: str) -> Flask:
        return create_app(
            app_config(
                database_url,
                TOLLGATE_BASE_URL=base_url,
                STRIPE_SANDBOX_PATH=str(workdir / "stripe_sandbox.sqlite3"),
                **overrides,
            )
        )

    return make_app


def migrate_to_head(database_url: str) -> None:
    """Build the schema the way a deployment does: by running the Alembic migrations."""
    app = create_app(app_config(database_url))
    with app.app_context():
        flask_migrate.upgrade()
        db.engine.dispose()
