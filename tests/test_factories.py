"""The test factories: each hands over a customer whose page shows the state it promises."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from tests.factories import (
    MadeCustomer,
    active_customer,
    canceled_customer,
    log_in,
    past_due_customer,
    trialing_customer,
)
from tests.web import WebClient, visible_text


@pytest.mark.parametrize(
    ("factory", "plan_key", "shown"),
    [
        (trialing_customer, "pro_monthly", "Trial: 14 days left"),
        (active_customer, "starter_monthly", "Starter Active Price $19 / month"),
        (active_customer, "enterprise_monthly", "Enterprise Active"),
        (past_due_customer, "pro_monthly", "Past due: your last payment failed"),
        (canceled_customer, "pro_monthly", "Your plan has ended."),
    ],
    ids=["trialing", "active-after-trial", "active-in-arrears", "past-due", "canceled"],
)
def test_factory_customer_logged_in_sees_its_state_on_the_account_page(
    client: WebClient,
    synced: Flask,
    factory: Callable[[Flask, str], MadeCustomer],
    plan_key: str,
    shown: str,
) -> None:
    customer = factory(synced, plan_key)
    assert shown in visible_text(log_in(client, customer).get("/account").text)


def test_factory_without_a_trial_to_start_refuses_to_make_a_trialing_customer(
    synced: Flask,
) -> None:
    with pytest.raises(ValueError, match="has no trial"):
        trialing_customer(synced, "enterprise_monthly")
