"""Helpers for the usage engine's tests: customers, usage recorded as the API does, and ledger
checks (customers on real subscriptions come from tests.factories)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from flask import Flask
from sqlalchemy import func, make_url, select

from app.accounts.models import Customer
from app.entitlements.models import CreditLedgerEntry, CreditLot, CreditPool
from app.entitlements.usage import UsageResult, record_event
from app.extensions import db

DAY = 86_400


def reference_of(app: Flask, customer_id: int) -> str:
    """The customer's customerReferenceId, as the operator's product knows it."""
    with app.app_context():
        return db.session.get_one(Customer, customer_id).reference_id


def new_customer(app: Flask, reference_id: str = "cus-ref-1") -> int:
    """A customer with no subscription, as the API creates them."""
    with app.app_context():
        customer = Customer(reference_id=reference_id, email=f"{reference_id}@example.com")
        db.session.add(customer)
        db.session.commit()
        return customer.id


def record(
    app: Flask, customer_id: int, key: str, feature: str, units: int, **body: Any
) -> UsageResult:
    """Record one event in its own transaction, as an API request would."""
    with app.app_context():
        result = record_event(
            db.session.get_one(Customer, customer_id),
            idempotency_key=key,
            event_name=body.pop("event_name", "chat.completion"),
            feature_key=feature,
            units=units,
            **body,
        )
        db.session.commit()
        return result


def balance(app: Flask, customer_id: int, pool_key: str = "ai_tokens") -> int:
    """A pool's balance, after checking it is the sum of its ledger and of its lots."""
    with app.app_context():
        pool = db.session.scalars(
            select(CreditPool).where(
                CreditPool.customer_id == customer_id, CreditPool.key == pool_key
            )
        ).one()
        ledger = db.session.scalar(
            select(func.coalesce(func.sum(CreditLedgerEntry.amount), 0)).where(
                CreditLedgerEntry.pool_id == pool.id
            )
        )
        lots = db.session.scalars(select(CreditLot).where(CreditLot.pool_id == pool.id)).all()
        assert pool.balance == ledger == sum(lot.remaining for lot in lots)
        assert all(lot.remaining >= 0 for lot in lots)
        return pool.balance


def count(app: Flask, model: type[Any]) -> int:
    """How many rows a table holds."""
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


@contextmanager
def locked_by_another_writer(database_url: str, reference_id: str) -> Iterator[None]:
    """Another writer holding the customer: its row on PostgreSQL, the database on SQLite."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        other = sqlite3.connect(str(url.database), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            other.rollback()
            other.close()
        return
    with psycopg.connect(url.set(drivername="postgresql").render_as_string(False)) as other:
        other.execute("SELECT id FROM customers WHERE reference_id = %s FOR UPDATE", [reference_id])
        yield
        other.rollback()


def run_at_once(target: Callable[[int], None], count: int) -> None:
    """``target(0)`` .. ``target(count - 1)``, each on a thread of its own, all started before
    any is waited for."""
    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
