"""Test applications: the explicit configuration they start from, and their schema."""

from __future__ import annotations

from typing import Any

import flask_migrate

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
        **overrides,
    }


def migrate_to_head(database_url: str) -> None:
    """Build the schema the way a deployment does: by running the Alembic migrations."""
    app = create_app(app_config(database_url))
    with app.app_context():
        flask_migrate.upgrade()
        db.engine.dispose()
