"""Refunds: in full or in part, by charge or PaymentIntent, never more than is left."""

from __future__ import annotations

import pytest
import stripe

from app.stripe_sandbox import Sandbox

from .conftest import Catalog, Server, buy, charges_of

DAY = 86400


@pytest.fixture
def paid(client: stripe.StripeClient, server: Server, catalog: Catalog) -> stripe.Charge:
    """The $15.00 charge of a first invoice."""
    done = buy(client, server, catalog.monthly.id, "4242 4242 4242 4242")
    return charges_of(client, str(done.customer))[0]


def test_partial_refund_then_the_rest_when_no_amount_is_given(
    client: stripe.StripeClient, paid: stripe.Charge
) -> None:
    part = client.v1.refunds.create(params={"charge": paid.id, "amount": 500})
    after_part = client.v1.charges.retrieve(paid.id)
    assert (after_part.amount_refunded, after_part.refunded) == (500, False)
    rest = client.v1.refunds.create(params={"charge": paid.id})
    charge = client.v1.charges.retrieve(paid.id)
    assert (rest.amount, charge.amount_refunded, charge.refunded) == (1000, 1500, True)
    assert [r.id for r in charge.refunds.data] == [rest.id, part.id]


def test_refund_says_what_it_gave_back_and_whose(
    client: stripe.StripeClient, paid: stripe.Charge
) -> None:
    refund = client.v1.refunds.create(
        params={
            "payment_intent": str(paid.payment_intent),
            "amount": 300,
            "reason": "requested_by_customer",
            "metadata": {"ticket": "T-9"},
        }
    )
    assert (refund.status, refund.amount, refund.currency, refund.charge) == (
        "succeeded",
        300,
        "usd",
        paid.id,
    )
    assert (refund.payment_intent, refund.customer, refund.payment_method) == (
        paid.payment_intent,
        paid.customer,
        paid.payment_method,
    )
    assert (refund.reason, refund.metadata.to_dict()) == (
        "requested_by_customer",
        {"ticket": "T-9"},
    )
    assert client.v1.refunds.retrieve(refund.id).amount == 300


def test_refund_beyond_what_is_left_is_refused_as_stripe_words_it(
    client: stripe.StripeClient, paid: stripe.Charge
) -> None:
    client.v1.refunds.create(params={"charge": paid.id, "amount": 1000})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"charge": paid.id, "amount": 600})
    assert (caught.value.param, caught.value.code) == ("amount", None)
    assert caught.value.user_message == (
        "Refund amount ($6.00) is greater than unrefunded amount on charge ($5.00)"
    )
    client.v1.refunds.create(params={"charge": paid.id})
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"charge": paid.id})
    assert caught.value.code == "charge_already_refunded"
    assert client.v1.charges.retrieve(paid.id).amount_refunded == 1500


def test_refund_sends_refund_created_and_charge_refunded(
    client: stripe.StripeClient, paid: stripe.Charge
) -> None:
    refund = client.v1.refunds.create(params={"charge": paid.id, "amount": 700})
    created, refunded = (
        client.v1.events.list(params={"type": kind}).data[0]
        for kind in ("refund.created", "charge.refunded")
    )
    assert created.data.object.id == refund.id
    assert (refunded.data.object.id, refunded.data.object.amount_refunded) == (paid.id, 700)


def test_refunds_list_by_charge_and_payment_intent(
    client: stripe.StripeClient, server: Server, catalog: Catalog, paid: stripe.Charge
) -> None:
    other = charges_of(
        client, str(buy(client, server, catalog.monthly.id, "4242424242424242").customer)
    )[0]
    mine = client.v1.refunds.create(params={"charge": paid.id, "amount": 100})
    theirs = client.v1.refunds.create(params={"charge": other.id, "amount": 200})
    assert [r.id for r in client.v1.refunds.list().data] == [theirs.id, mine.id]
    assert [r.id for r in client.v1.refunds.list(params={"charge": paid.id}).data] == [mine.id]
    by_intent = client.v1.refunds.list(params={"payment_intent": str(other.payment_intent)})
    assert [r.id for r in by_intent.data] == [theirs.id]


def test_refund_needs_a_charge_or_payment_intent(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"amount": 100})
    assert (caught.value.code, caught.value.param) == ("parameter_missing", "charge")


def test_failed_and_charged_back_charges_are_not_refunded(
    client: stripe.StripeClient, server: Server, catalog: Catalog, sandbox: Sandbox
) -> None:
    failing = buy(client, server, catalog.monthly.id, "4000000000000341", trial_days=1)
    sandbox.advance(2 * DAY)
    [failed] = charges_of(client, str(failing.customer))
    with pytest.raises(stripe.InvalidRequestError, match="did not succeed"):
        client.v1.refunds.create(params={"charge": failed.id})
    with pytest.raises(stripe.InvalidRequestError, match="does not have a successful charge"):
        client.v1.refunds.create(params={"payment_intent": str(failed.payment_intent)})
    disputed = buy(client, server, catalog.monthly.id, "4000000000000259")
    [charge] = charges_of(client, str(disputed.customer))
    with pytest.raises(stripe.InvalidRequestError) as caught:
        client.v1.refunds.create(params={"charge": charge.id})
    assert caught.value.code == "charge_disputed"
