"""Disputes from Stripe's dispute test card: opened, answered with test evidence, won or lost."""

from __future__ import annotations

import datetime as dt

import pytest
import stripe

from app.stripe_sandbox import Sandbox

from .conftest import Catalog, Server, buy, charges_of

DAY = 86400
DISPUTED = "4000 0000 0000 0259"


@pytest.fixture
def disputed(client: stripe.StripeClient, server: Server, catalog: Catalog) -> stripe.Dispute:
    """The dispute the bank opens on the first invoice paid with the dispute test card."""
    done = buy(client, server, catalog.monthly.id, DISPUTED)
    [charge] = charges_of(client, str(done.customer))
    return client.v1.disputes.list(params={"charge": charge.id}).data[0]


def _types(client: stripe.StripeClient) -> list[str]:
    return [e.type for e in client.v1.events.list(params={"limit": 100}).data][::-1]


def test_dispute_card_pays_then_its_charge_is_disputed_as_fraudulent(
    client: stripe.StripeClient, sandbox: Sandbox, disputed: stripe.Dispute
) -> None:
    charge = client.v1.charges.retrieve(str(disputed.charge))
    assert (charge.status, charge.disputed, charge.amount_refunded) == ("succeeded", True, 0)
    invoice = client.v1.invoices.list(params={"customer": str(charge.customer)}).data[0]
    assert invoice.status == "paid"
    assert (disputed.status, disputed.reason, disputed.amount, disputed.currency) == (
        "needs_response",
        "fraudulent",
        1500,
        "usd",
    )
    assert (disputed.payment_intent, disputed.is_charge_refundable) == (
        charge.payment_intent,
        False,
    )
    due = dt.datetime.fromtimestamp(disputed.evidence_details.due_by, dt.UTC)
    opened = dt.datetime.fromtimestamp(disputed.created, dt.UTC)
    assert ((due.date() - opened.date()).days, due.time()) == (7, dt.time(23, 59, 59))
    assert [t.amount for t in disputed.balance_transactions] == [-1500]
    assert _types(client)[-2:] == ["charge.dispute.created", "charge.dispute.funds_withdrawn"]


def test_winning_evidence_wins_once_the_bank_decides(
    client: stripe.StripeClient, sandbox: Sandbox, disputed: stripe.Dispute
) -> None:
    staged = client.v1.disputes.update(
        disputed.id,
        params={"evidence": {"uncategorized_text": "winning_evidence"}, "submit": False},
    )
    assert (staged.status, staged.evidence_details.has_evidence) == ("needs_response", True)
    submitted = client.v1.disputes.update(disputed.id, params={"submit": True})
    assert (submitted.status, submitted.evidence_details.submission_count) == ("under_review", 1)
    sandbox.advance(0)
    won = client.v1.disputes.retrieve(disputed.id)
    assert won.status == "won"
    assert [t.amount for t in won.balance_transactions] == [-1500, 1500]
    assert _types(client)[-4:] == [
        "charge.dispute.updated",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_reinstated",
    ]


def test_losing_evidence_loses(
    client: stripe.StripeClient, sandbox: Sandbox, disputed: stripe.Dispute
) -> None:
    client.v1.disputes.update(
        disputed.id, params={"evidence": {"uncategorized_text": "losing_evidence"}}
    )
    sandbox.advance(0)
    lost = client.v1.disputes.retrieve(disputed.id)
    assert (lost.status, len(lost.balance_transactions)) == ("lost", 1)
    assert _types(client)[-1] == "charge.dispute.closed"


def test_closing_accepts_the_dispute_as_lost_and_ends_its_answers(
    client: stripe.StripeClient, disputed: stripe.Dispute
) -> None:
    closed = client.v1.disputes.close(disputed.id)
    assert closed.status == "lost"
    assert _types(client)[-1] == "charge.dispute.closed"
    with pytest.raises(stripe.InvalidRequestError, match="takes no more evidence"):
        client.v1.disputes.update(
            disputed.id, params={"evidence": {"uncategorized_text": "winning_evidence"}}
        )
    with pytest.raises(stripe.InvalidRequestError, match="can no longer be closed"):
        client.v1.disputes.close(disputed.id)
    tagged = client.v1.disputes.update(disputed.id, params={"metadata": {"case": "lost"}})
    assert tagged.metadata.to_dict() == {"case": "lost"}


def test_a_dispute_left_unanswered_past_its_due_date_is_lost(
    client: stripe.StripeClient, sandbox: Sandbox, disputed: stripe.Dispute
) -> None:
    sandbox.advance(6 * DAY)
    assert client.v1.disputes.retrieve(disputed.id).status == "needs_response"
    sandbox.advance(2 * DAY)
    lost = client.v1.disputes.retrieve(disputed.id)
    assert (lost.status, lost.evidence_details.past_due) == ("lost", True)


def test_disputes_list_by_charge_and_payment_intent(
    client: stripe.StripeClient, server: Server, catalog: Catalog, disputed: stripe.Dispute
) -> None:
    done = buy(client, server, catalog.monthly.id, DISPUTED)
    [charge] = charges_of(client, str(done.customer))
    assert [d.charge for d in client.v1.disputes.list().data] == [charge.id, disputed.charge]
    by_intent = client.v1.disputes.list(params={"payment_intent": str(charge.payment_intent)})
    assert [d.charge for d in by_intent.data] == [charge.id]
