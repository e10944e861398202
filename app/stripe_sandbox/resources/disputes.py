"""Disputes: a cardholder's bank takes a card payment back, and the merchant answers.

Stripe's test card 4000 0000 0000 0259 is disputed as fraudulent once charged. Evidence works
as in Stripe's test mode (docs.stripe.com/testing, "Evidence"): submitted with an
`uncategorized_text` of `winning_evidence` the dispute is won, of `losing_evidence` lost. The
bank decides at the clock's next step after the submission (it is asynchronous on Stripe too),
and a dispute left unanswered past `evidence_details.due_by` is lost.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import stripe.params as sp

from ..context import DAY, Ctx
from ..errors import StripeError
from ..router import Route
from ..shapes import SHAPES, complete, skeleton
from ..store import new_id
from .common import change, lister, merged_metadata, refuse_unsupported, retrieve
from .intents import payment_of
from .payments import DISPUTED

# The sandbox gives a week to answer; Stripe's deadlines vary by network and reason.
RESPONSE_DAYS = 7
_DECISIONS = {"winning_evidence": "won", "losing_evidence": "lost"}
# Visa's reason code for fraud on a card that was not present.
_NETWORK_REASON_CODES = {("visa", "fraudulent"): "10.4"}


def dispute_object(charge: dict[str, Any], dispute_id: str, now: int) -> dict[str, Any]:
    """A chargeback of the whole charge as fraudulent; its amount is withdrawn at once."""
    card = charge["payment_method_details"]["card"]
    dispute = skeleton("dispute", dispute_id, now)
    due = dt.datetime.fromtimestamp(now + RESPONSE_DAYS * DAY, dt.UTC)
    dispute.update(
        amount=charge["amount"],
        charge=charge["id"],
        currency=charge["currency"],
        # Evidence is due by the end of the day, UTC, as in Stripe's own sample.
        evidence_details={
            **dispute["evidence_details"],
            "due_by": int(due.replace(hour=23, minute=59, second=59).timestamp()),
        },
        payment_intent=charge["payment_intent"],
        payment_method_details={
            "type": "card",
            "card": {
                "brand": card["brand"],
                "network": card["network"],
                "network_reason_code": _NETWORK_REASON_CODES.get((card["network"], "fraudulent")),
            },
        },
        reason="fraudulent",
        status="needs_response",
    )
    dispute["balance_transactions"] = [_funds(dispute, -dispute["amount"], now)]
    return complete(dispute)


def evidence_fields(
    dispute: dict[str, Any], sent: dict[str, Any], submit: bool, now: int
) -> dict[str, Any]:
    """What answering with evidence changes; submitting it puts the dispute under review."""
    evidence = dispute["evidence"] | {k: (v or None) for k, v in sent.items()}
    details = dispute["evidence_details"]
    fields: dict[str, Any] = {
        "evidence": evidence,
        "evidence_details": {
            **details,
            "has_evidence": any(v for k, v in evidence.items() if k != "enhanced_evidence"),
        },
    }
    if submit:
        fields["status"] = "under_review"
        fields["evidence_details"]["submission_count"] = details["submission_count"] + 1
        if evidence["uncategorized_text"] in _DECISIONS:
            fields["_decides_at"] = now
    return fields


def closing_fields(dispute: dict[str, Any], status: str, now: int) -> dict[str, Any]:
    """Closing as won or lost; a won dispute gives the withdrawn amount back."""
    fields: dict[str, Any] = {"status": status, "_decides_at": None}
    if status == "won":
        fields["balance_transactions"] = [
            *dispute["balance_transactions"],
            _funds(dispute, dispute["amount"], now),
        ]
    return fields


def _funds(dispute: dict[str, Any], amount: int, now: int) -> dict[str, Any]:
    # The sandbox keeps no balance and charges no fees: the balance transaction only shows
    # the amount the dispute moved, as the Dispute object lists it.
    movement = "withdrawal" if amount < 0 else "reversal"
    return complete(
        {
            "id": new_id("txn", 24),
            "object": "balance_transaction",
            "amount": amount,
            "available_on": now,
            "created": now,
            "currency": dispute["currency"],
            "description": f"Chargeback {movement} for {dispute['charge']}",
            "net": amount,
            "reporting_category": "dispute" if amount < 0 else "dispute_reversal",
            "source": dispute["id"],
            "type": "adjustment",
        }
    )


def dispute_if_test_card(ctx: Ctx, invoice: dict[str, Any]) -> None:
    """Once an invoice is paid with Stripe's dispute test card, the bank disputes its charge."""
    found = payment_of(ctx, invoice)
    charge = ctx.fetch("charge", found[0]["latest_charge"]) if found else None
    method = ctx.store.get(charge["payment_method"]) if charge else None
    if charge and method and method["_behaviour"] == DISPUTED:
        _open(ctx, charge, invoice["test_clock"])


def _open(ctx: Ctx, charge: dict[str, Any], test_clock: str | None) -> None:
    dispute = dispute_object(charge, new_id("dp", 24), ctx.now(test_clock))
    # Objects on a test clock move only with that clock (clock.py).
    dispute["_test_clock"] = test_clock
    ctx.save(dispute)
    charge.update(disputed=True, _dispute=dispute["id"])
    ctx.save(charge)
    ctx.emit("charge.dispute.created", dispute)
    ctx.emit("charge.dispute.funds_withdrawn", dispute)


def update(ctx: Ctx, params: dict[str, Any], dispute_id: str) -> dict[str, Any]:
    """POST /v1/disputes/{id}: stage or submit evidence (`submit` defaults to true), metadata."""
    refuse_unsupported(params, ("evidence", "metadata", "submit"))
    # Enhanced evidence (Visa Compelling Evidence 3.0) is for disputes the sandbox never opens.
    refuse_unsupported(
        params.get("evidence", {}), set(SHAPES["dispute"]["evidence"]) - {"enhanced_evidence"}
    )
    dispute = ctx.fetch("dispute", dispute_id)
    fields: dict[str, Any] = {}
    if "metadata" in params:
        fields["metadata"] = merged_metadata(dispute["metadata"], params["metadata"])
    if "evidence" in params or params.get("submit"):
        if dispute["status"] != "needs_response":
            raise StripeError(
                f"The dispute {dispute_id} is {dispute['status']}: it takes no more evidence.",
                param="evidence",
            )
        now = ctx.now(dispute.get("_test_clock"))
        submit = params.get("submit", True)
        fields |= evidence_fields(dispute, params.get("evidence", {}), submit, now)
    return change(ctx, dispute, "charge.dispute.updated", **fields)


def close(ctx: Ctx, params: dict[str, Any], dispute_id: str) -> dict[str, Any]:
    """POST /v1/disputes/{id}/close: accept the dispute, which is then lost."""
    dispute = ctx.fetch("dispute", dispute_id)
    if dispute["status"] != "needs_response":
        raise StripeError(
            f"The dispute {dispute_id} is {dispute['status']}: it can no longer be closed."
        )
    now = ctx.now(dispute.get("_test_clock"))
    return change(ctx, dispute, "charge.dispute.closed", **closing_fields(dispute, "lost", now))


def next_step(dispute: dict[str, Any]) -> tuple[int, Callable[[Ctx, dict[str, Any]], Any]] | None:
    """When the clock next moves a dispute, and how: the bank's decision on submitted
    evidence, or the loss of a dispute left unanswered past its due date."""
    if dispute.get("_decides_at") is not None:
        return dispute["_decides_at"], _decide
    if dispute["status"] == "needs_response":
        return dispute["evidence_details"]["due_by"] + 1, _expire
    return None


def _decide(ctx: Ctx, dispute: dict[str, Any]) -> None:
    status = _DECISIONS[dispute["evidence"]["uncategorized_text"]]
    _close(ctx, dispute, status)


def _expire(ctx: Ctx, dispute: dict[str, Any]) -> None:
    past_due = {**dispute["evidence_details"], "past_due": True}
    _close(ctx, dispute, "lost", evidence_details=past_due)


def _close(ctx: Ctx, dispute: dict[str, Any], status: str, **extra: Any) -> None:
    now = ctx.now(dispute.get("_test_clock"))
    fields = closing_fields(dispute, status, now) | extra
    change(ctx, dispute, "charge.dispute.closed", **fields)
    if status == "won":
        ctx.emit("charge.dispute.funds_reinstated", dispute)


ROUTES = [
    Route(
        "GET",
        "/v1/disputes",
        sp.DisputeListParams,
        lister("dispute", "/v1/disputes", "charge", "payment_intent"),
    ),
    Route("GET", "/v1/disputes/{}", sp.DisputeRetrieveParams, retrieve("dispute")),
    Route("POST", "/v1/disputes/{}", sp.DisputeUpdateParams, update),
    Route("POST", "/v1/disputes/{}/close", sp.DisputeCloseParams, close),
]
