"""Every model, imported in one place so Alembic and the app always see the whole schema."""

from app.accounts.api_keys import ApiKey
from app.accounts.mirror import Charge, Dispute, Invoice, Refund, Subscription, SubscriptionStatus
from app.accounts.models import Customer, User
from app.backoffice.models import AuditEntry
from app.billing.models import Difference, ImportCursor, ReconciliationRun
from app.entitlements.models import (  # noqa: F401
    CreditLedgerEntry,
    CreditLot,
    CreditPool,
    LedgerKind,
    OverageBatch,
    OverageOutbox,
    UsageAlert,
    UsageCounter,
    UsageEvent,
)
from app.schedule import PeriodicRun
from app.webhooks.models import StripeEvent

__all__ = [
    "ApiKey",
    "AuditEntry",
    "Charge",
    "CreditLedgerEntry",
    "CreditPool",
    "Customer",
    "Difference",
    "Dispute",
    "ImportCursor",
    "Invoice",
    "LedgerKind",
    "PeriodicRun",
    "ReconciliationRun",
    "Refund",
    "StripeEvent",
    "Subscription",
    "SubscriptionStatus",
    "User",
]
