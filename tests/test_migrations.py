"""The Alembic migrations build exactly the schema that the models describe."""

from __future__ import annotations

from datetime import UTC, datetime

import flask_migrate
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from app import create_app
from app.extensions import db
from tests.apps import app_config


def test_migrations_on_empty_database_match_the_models(empty_database_url: str) -> None:
    app = create_app(app_config(empty_database_url))
    with app.app_context():
        flask_migrate.upgrade()
        with db.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), db.metadata)
            tables = set(inspect(connection).get_table_names())
        db.engine.dispose()
    assert differences == []
    assert {table.name for table in db.metadata.sorted_tables} <= tables


def test_migrations_downgrade_to_nothing_and_back(empty_database_url: str) -> None:
    app = create_app(app_config(empty_database_url))
    with app.app_context():
        flask_migrate.upgrade()
        flask_migrate.downgrade(revision="base")
        with db.engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) <= {"alembic_version"}
        flask_migrate.upgrade()
        with db.engine.connect() as connection:
            assert "users" in inspect(connection).get_table_names()
        db.engine.dispose()


def test_migration_0008_fills_in_existing_subscriptions_and_plan_lots(
    empty_database_url: str,
) -> None:
    app = create_app(app_config(empty_database_url))
    with app.app_context():
        flask_migrate.upgrade(revision="0007")
        created = datetime(2026, 11, 1, 10, tzinfo=UTC)
        with db.engine.begin() as connection:
            for statement in (
                "INSERT INTO customers (id, reference_id, email, created_at)"
                " VALUES (1, 'c-1', 'c@example.com', :created)",
                "INSERT INTO subscriptions (stripe_subscription_id, customer_id, plan_key,"
                " stripe_price_id, status, cancel_at_period_end, created_at, updated_at)"
                " VALUES ('sub_a', 1, 'pro_monthly', 'price_a', 'active', false, :created,"
                " :created)",
                "INSERT INTO credit_pools (id, customer_id, key, denomination, balance)"
                " VALUES (1, 1, 'ai_tokens', 'tokens', 0)",
                "INSERT INTO credit_lots (pool_id, origin, source, amount, remaining, granted_at)"
                " VALUES (1, 'plan', 'plan:sub_a:1761991200', 5, 5, :created),"
                " (1, 'plan', 'topup:sub_a:1761991200:starter_monthly:pro_monthly', 5, 5,"
                " :created), (1, 'purchased', 'order-1', 5, 5, :created)",
            ):
                connection.execute(text(statement), {"created": created})
        flask_migrate.upgrade()
        with db.engine.connect() as connection:
            owners = connection.execute(
                text("SELECT source, stripe_subscription_id FROM credit_lots ORDER BY id")
            ).all()
            stripe_created = connection.execute(
                text("SELECT stripe_created FROM subscriptions")
            ).scalar_one()
        db.engine.dispose()
    assert [owner for _, owner in owners] == ["sub_a", "sub_a", None]
    assert str(stripe_created).startswith(("2026-11-01 10:00:00", "2026-11-01T10:00:00"))
