"""What an operator does to a customer, each written to the audit log in the same transaction."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from app.accounts.models import Customer, User
from app.backoffice.models import AuditEntry
from app.entitlements.credits import balances, grant_credits
from app.entitlements.models import LotOrigin
from app.extensions import db


def record(
    operator: User,
    action: str,
    customer: Customer | None,
    subject: str,
    before: Any,
    after: Any,
    reason: str,
) -> None:
    """Append one entry to the audit log (in the caller's transaction)."""
    db.session.add(
        AuditEntry(
            operator_id=operator.id,
            operator_email=operator.email,
            action=action,
            customer_id=customer.id if customer is not None else None,
            subject=subject,
            before=json.dumps(before, default=str),
            after=json.dumps(after, default=str),
            reason=reason,
        )
    )


def grant_promotional_credits(
    operator: User,
    customer: Customer,
    *,
    pool_key: str,
    denomination: str,
    amount: int,
    reason: str,
    expires_at: datetime | None,
) -> None:
    """Grant credits on the operator's word, with the balance before and after in the audit
    log; the caller commits both together."""
    before = _balance(customer.id, pool_key)
    grant_credits(
        customer.id,
        pool_key=pool_key,
        denomination=denomination,
        amount=amount,
        origin=LotOrigin.PROMOTIONAL,
        source=f"operator:{uuid.uuid4().hex}",
        expires_at=expires_at,
    )
    db.session.flush()
    record(
        operator,
        "grant_credits",
        customer,
        f"pool {pool_key}",
        {"balance": before},
        {"balance": _balance(customer.id, pool_key), "granted": amount, "expires": expires_at},
        reason,
    )


def _balance(customer_id: int, pool_key: str) -> int:
    return next((pool.balance for pool in balances(customer_id) if pool.key == pool_key), 0)
