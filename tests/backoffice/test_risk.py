"""Accounts at risk: each reason and the ranking on hand-worked figures, then the page itself
through the sandbox (dunning, trials, credits, usage), its CSV and who may see it."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from flask import Flask
from sqlalchemy import select

from app.accounts.mirror import Invoice, Subscription, SubscriptionStatus
from app.backoffice import risk
from app.backoffice.risk import (
    Account,
    FailedCharge,
    Kind,
    OpenDispute,
    OpenInvoice,
    PeriodUsage,
    PoolBurn,
    Reason,
    Running,
)
from app.clock import now
from app.extensions import db
from tests.factories import active_customer, past_due_customer, trialing_customer
from tests.journeys import advance_days
from tests.web import WebClient, visible_text

NOW = datetime(2025, 3, 10, 12, tzinfo=UTC)
DAY = timedelta(days=1)


def account(**fields: object) -> Account:
    defaults: dict[str, object] = {
        "customer_id": 1,
        "reference_id": "cus-1",
        "email": "a@example.com",
        "plan_key": "pro_monthly",
        "status": SubscriptionStatus.ACTIVE,
        "monthly_amount": 4_900,
        "currency": "usd",
        "current_period_start": datetime(2025, 3, 1, tzinfo=UTC),
        "current_period_end": datetime(2025, 4, 1, tzinfo=UTC),
    }
    return Account(**{**defaults, **fields})  # type: ignore[arg-type]


def invoice(due: int = 4_900, paid: int = 0, attempts: int = 1, retry: datetime | None = None):
    return OpenInvoice(due, paid, "usd", attempts, retry, datetime(2025, 3, 3, 12, tzinfo=UTC))


# --- each reason, on figures worked by hand ---------------------------------------------------


def test_past_due_says_for_how_long_what_is_owed_and_when_stripe_retries() -> None:
    late = account(status=SubscriptionStatus.PAST_DUE)
    retry = datetime(2025, 3, 12, 9, tzinfo=UTC)
    # 4,900 + (2,000 - 500) owed; opened 3 March at noon, so 7 days by 10 March at noon.
    reason = risk.past_due(late, [invoice(attempts=2, retry=retry), invoice(2_000, 500)], NOW)
    assert reason == Reason(
        Kind.PAST_DUE,
        "Past due for 7 days: $64 owed; 2 attempts, Stripe retries on 12 March 2025.",
        retry,
    )
    stopped = risk.past_due(late, [invoice(attempts=4)], NOW)
    assert stopped is not None
    assert stopped.text.endswith("$49 owed; 4 attempts, Stripe has stopped retrying.")
    assert risk.past_due(account(), [invoice()], NOW) is None


def test_cancel_at_period_end_gives_the_date_and_an_ended_subscription_none() -> None:
    reason = risk.cancels(account(cancel_at_period_end=True))
    assert reason is not None
    assert reason.text == "Cancels at period end, on 1 April 2025."
    assert risk.cancels(account()) is None
    ended = account(cancel_at_period_end=True, status=SubscriptionStatus.CANCELED)
    assert risk.cancels(ended) is None


def test_failed_payments_count_the_last_14_days_and_quote_the_latest_message() -> None:
    charges = [
        FailedCharge(4_900, "usd", datetime(2025, 3, 8, tzinfo=UTC), "Your card was declined."),
        FailedCharge(4_900, "usd", datetime(2025, 3, 2, tzinfo=UTC), "Insufficient funds."),
        FailedCharge(4_900, "usd", datetime(2025, 2, 20, tzinfo=UTC), "Too old to count."),
    ]
    reason = risk.failed_payments(charges, NOW)
    assert reason is not None
    assert reason.text == (
        "2 payments failed in the last 14 days, the latest of $49 on 8 March 2025: "
        "Your card was declined."
    )
    assert risk.failed_payments(charges[2:], NOW) is None


def test_an_open_dispute_gives_its_amount_and_evidence_due_date() -> None:
    due = datetime(2025, 3, 20, tzinfo=UTC)
    reason = risk.dispute(OpenDispute(4_900, "usd", "fraudulent", due))
    assert reason == Reason(
        Kind.DISPUTE, "Open dispute of $49 (fraudulent), evidence due 20 March 2025.", due
    )


def test_a_card_that_expires_before_the_renewal_is_flagged_unless_it_cancels() -> None:
    card = {"card_brand": "visa", "card_last4": "4242"}
    at = datetime(2025, 3, 11, tzinfo=UTC)
    expiring = account(card_expires_on=date(2025, 3, 31), **card)
    reason = risk.card_expires(expiring, at)
    assert reason is not None
    assert (
        reason.text == "Card visa 4242 expires 31 March 2025, before the renewal on 1 April 2025."
    )
    assert risk.card_expires(account(card_expires_on=date(2025, 4, 30), **card), at) is None
    cancelling = account(card_expires_on=date(2025, 3, 31), cancel_at_period_end=True)
    assert risk.card_expires(cancelling, at) is None
    expired = risk.card_expires(account(card_expires_on=date(2025, 2, 28), **card), at)
    assert expired is not None
    assert expired.text.startswith("Card visa 4242 expired 28 February 2025,")


PERIOD = Running("sub_1", datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC))


def test_credits_that_run_out_before_the_period_ends_at_this_periods_burn() -> None:
    at = datetime(2025, 3, 11, tzinfo=UTC)  # 10 days in, 21 to go
    # 400,000 drawn in 10 days: 40,000 a day, so 200,000 last 5 days, out on 16 March.
    reason = risk.credits_run_out(PoolBurn("ai_tokens", "tokens", 200_000, 400_000), PERIOD, at)
    assert reason == Reason(
        Kind.CREDITS_RUN_OUT,
        "Credits ai_tokens: 200,000 tokens left at 40,000 tokens a day, out in 5 days, "
        "16 days before the period ends on 1 April 2025.",
        datetime(2025, 3, 16, tzinfo=UTC),
    )
    # 1,000,000 at 40,000 a day lasts 25 days: past the period's end.
    lasting = PoolBurn("ai_tokens", "tokens", 1_000_000, 400_000)
    assert risk.credits_run_out(lasting, PERIOD, at) is None
    empty = risk.credits_run_out(PoolBurn("ai_tokens", "tokens", 0, 400_000), PERIOD, at)
    assert empty is not None
    assert empty.text == (
        "Credits ai_tokens have run out at 40,000 tokens a day, "
        "21 days before the period ends on 1 April 2025."
    )
    # A pool barely touched would last longer than there are dates: it simply is not at risk.
    barely = PoolBurn("ai_tokens", "tokens", 10**15, 1)
    assert risk.credits_run_out(barely, PERIOD, at) is None
    # Half a day into the period there is no rate to speak of.
    early = datetime(2025, 3, 1, 12, tzinfo=UTC)
    assert risk.credits_run_out(PoolBurn("ai_tokens", "tokens", 1, 400_000), PERIOD, early) is None


def usage(start: datetime, used: int) -> PeriodUsage:
    return PeriodUsage("api_calls", f"sub_1:{int(start.timestamp())}", used)


LAST = datetime(2025, 2, 1, tzinfo=UTC)


def test_usage_pro_rated_falling_by_half_or_more_against_last_period_is_flagged() -> None:
    halfway = PERIOD.start + (PERIOD.end - PERIOD.start) / 2  # 31 days, 15.5 in
    rows = [usage(LAST, 10_000), usage(PERIOD.start, 2_000)]
    reason = risk.usage_falls("api_calls", rows, PERIOD, halfway)
    # 2,000 in half the period is 4,000 at this pace: 60% below 10,000.
    assert reason == Reason(
        Kind.USAGE_FALLS,
        "api_calls usage down 60%: 2,000 so far, 4,000 at this pace, against 10,000 last period.",
        PERIOD.end,
    )
    steady = [usage(LAST, 10_000), usage(PERIOD.start, 3_000)]  # 6,000 at this pace: -40%
    assert risk.usage_falls("api_calls", steady, PERIOD, halfway) is None
    stopped = risk.usage_falls("api_calls", [usage(LAST, 10_000)], PERIOD, halfway)
    assert stopped is not None
    assert stopped.text.startswith("api_calls usage down 100%: 0 so far")


def test_usage_is_not_judged_early_in_the_period_or_on_little_or_old_usage() -> None:
    halfway = PERIOD.start + (PERIOD.end - PERIOD.start) / 2
    early = PERIOD.start + 3 * DAY  # under a fifth of the period
    assert risk.usage_falls("api_calls", [usage(LAST, 10_000)], PERIOD, early) is None
    assert risk.usage_falls("api_calls", [usage(LAST, 99)], PERIOD, halfway) is None
    long_ago = datetime(2024, 11, 1, tzinfo=UTC)
    assert risk.usage_falls("api_calls", [usage(long_ago, 10_000)], PERIOD, halfway) is None
    other = [PeriodUsage("api_calls", f"sub_2:{int(LAST.timestamp())}", 10_000)]
    assert risk.usage_falls("api_calls", other, PERIOD, halfway) is None


def test_a_trial_ending_within_7_days_without_a_card_is_flagged() -> None:
    trial = {"status": SubscriptionStatus.TRIALING, "trial_end": NOW + 3 * DAY}
    reason = risk.trial_without_card(account(**trial), NOW)
    assert reason is not None
    assert reason.text == "Trial ends in 3 days, on 13 March 2025, with no card on file."
    with_card = account(**trial, card_last4="4242", card_expires_on=date(2030, 1, 31))
    assert risk.trial_without_card(with_card, NOW) is None
    later = account(status=SubscriptionStatus.TRIALING, trial_end=NOW + 8 * DAY)
    assert risk.trial_without_card(later, NOW) is None


def test_ranking_is_weight_times_mrr_at_stake_then_the_soonest_deadline() -> None:
    soon, later = NOW + DAY, NOW + 5 * DAY
    past_due = Reason(Kind.PAST_DUE, "", later)
    found = [
        # 5 x $49 = 24,500
        risk.at_risk(account(reference_id="a"), [past_due]),
        # 2 x $499 = 99,800
        risk.at_risk(
            account(reference_id="b", monthly_amount=49_900), [Reason(Kind.USAGE_FALLS, "")]
        ),
        # 4 x $19 (a trial's would-be amount) = 7,600
        risk.at_risk(
            account(reference_id="c", monthly_amount=1_900, status=SubscriptionStatus.TRIALING),
            [Reason(Kind.TRIAL_WITHOUT_CARD, "", soon)],
        ),
        # Nothing at stake on a cancelled subscription: 0
        risk.at_risk(
            account(reference_id="d", status=SubscriptionStatus.CANCELED),
            [Reason(Kind.DISPUTE, "", soon)],
        ),
        # 24,500 as "a", with a sooner deadline: before it
        risk.at_risk(account(reference_id="e"), [past_due, Reason(Kind.CANCELS, "", soon)][:1])
        and risk.at_risk(account(reference_id="e"), [Reason(Kind.PAST_DUE, "", soon)]),
    ]
    ranked = risk.rank(entry for entry in found if entry is not None)
    assert [(entry.account.reference_id, entry.score) for entry in ranked] == [
        ("b", 99_800),
        ("e", 24_500),
        ("a", 24_500),
        ("c", 7_600),
        ("d", 0),
    ]
    assert risk.at_risk(account(), [None, None]) is None


def test_an_accounts_reasons_are_listed_in_order_of_kind_with_the_soonest_deadline() -> None:
    found = risk.at_risk(
        account(),
        [Reason(Kind.CARD_EXPIRES, "c", NOW + 9 * DAY), Reason(Kind.PAST_DUE, "p", NOW + DAY)],
    )
    assert found is not None
    assert [reason.kind for reason in found.reasons] == [Kind.PAST_DUE, Kind.CARD_EXPIRES]
    assert found.deadline == NOW + DAY
    assert found.score == (5 + 2) * 4_900


def test_a_reasons_sentence_is_written_only_when_read_and_reads_as_if_given() -> None:
    written: list[str] = []

    def sentence() -> str:
        written.append("once")
        return "Cancels at period end."

    reason = Reason(Kind.CANCELS, sentence, NOW)
    found = risk.at_risk(account(), [reason])
    assert found is not None
    assert found.score == 4 * 4_900
    assert written == []  # ranked without writing it
    assert reason == Reason(Kind.CANCELS, "Cancels at period end.", NOW)
    assert reason.text == "Cancels at period end."
    assert written == ["once"]
    assert reason != Reason(Kind.CANCELS, "Cancels at period end.", NOW + DAY)


# --- the page, through the sandbox -----------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "status"), [("anonymous", 302), ("customer", 404), ("operator", 200)]
)
@pytest.mark.parametrize("page", ["/admin/risk", "/admin/risk?page=2", "/admin/risk?format=csv"])
def test_the_risk_page_is_for_operators_only(
    request: pytest.FixtureRequest, client: WebClient, who: str, status: int, page: str
) -> None:
    visitor = (
        client
        if who == "anonymous"
        else request.getfixturevalue("logged_in" if who == "customer" else "operator")
    )
    response = visitor.get(page)
    assert response.status_code == status
    if who == "anonymous":
        assert response.headers["location"].startswith("/login?next=/admin/risk")


def test_the_back_office_opens_on_the_accounts_at_risk(operator: WebClient) -> None:
    response = operator.get("/admin/")
    assert response.status_code == 302
    assert response.headers["location"] == "/admin/risk"
    text = visible_text(operator.get("/admin/risk").text)
    assert "0 accounts at risk" in text
    assert "No account is at risk." in text


def test_a_renewal_that_fails_shows_past_due_with_the_retry_date_and_the_decline(
    synced: Flask, operator: WebClient
) -> None:
    late = past_due_customer(synced, "pro_monthly", email="late@example.com")
    with synced.app_context():
        mirrored = db.session.scalars(select(Invoice).where(Invoice.status == "open")).one()
        retry = mirrored.next_payment_attempt
        assert mirrored.attempt_count == 1
    assert retry is not None
    page = operator.get("/admin/risk")
    text = visible_text(page.text)
    assert "1 account at risk" in text
    assert late.reference_id in text
    assert f"Past due for 1 day: $49 owed; 1 attempt, Stripe retries on {retry:%-d %B %Y}." in text
    assert "Your card was declined." in text
    assert f'href="/admin/customers/{late.reference_id}"' in page.text

    # Stripe's next retry fails too: one more attempt, the retry after that.
    advance_days(synced.extensions["stripe_sandbox"], 3)
    with synced.app_context():
        again = db.session.scalars(select(Invoice).where(Invoice.status == "open")).one()
        assert again.attempt_count == 2
        assert again.next_payment_attempt is not None
        later = again.next_payment_attempt
    assert f"2 attempts, Stripe retries on {later:%-d %B %Y}." in visible_text(
        operator.get("/admin/risk").text
    )


def test_a_trial_without_a_card_shows_in_its_last_week(synced: Flask, operator: WebClient) -> None:
    trial = trialing_customer(synced, "starter_monthly", email="t@example.com", card=None)
    assert trial.reference_id not in visible_text(operator.get("/admin/risk").text)
    advance_days(synced.extensions["stripe_sandbox"], 8)
    with synced.app_context():
        trial_end = db.session.scalars(select(Subscription.trial_end)).one()
        assert trial_end is not None
        left = (trial_end - now()).days
    text = visible_text(operator.get("/admin/risk").text)
    assert trial.reference_id in text
    assert f"Trial ends in {left} days, on {trial_end:%-d %B %Y}, with no card on file." in text
    assert "$19" in text  # what the trial would bring once paid


def test_credits_burning_too_fast_show_with_the_pool_and_its_balance(
    synced: Flask, operator: WebClient, api: httpx.Client, enterprise_customer: str
) -> None:
    recorded = api.post(
        "/events",
        json={
            "eventIdempotencyKey": "burn-1",
            "eventName": "chat",
            "customerReferenceId": enterprise_customer,
            "featureKey": "ai_chat",
            "usageUnits": 9_000_000,
        },
    )
    assert recorded.status_code in (200, 201), recorded.text
    advance_days(synced.extensions["stripe_sandbox"], 3)
    text = visible_text(operator.get("/admin/risk").text)
    assert enterprise_customer in text
    assert "Credits ai_tokens: 1,000,000 tokens left at" in text
    assert "before the period ends" in text


def test_usage_falling_against_the_last_period_shows_with_its_figures(
    synced: Flask, operator: WebClient, api: httpx.Client
) -> None:
    customer = trialing_customer(synced, "pro_monthly", email="u@example.com")

    def record(key: str, units: int) -> None:
        response = api.post(
            "/events",
            json={
                "eventIdempotencyKey": key,
                "eventName": "call",
                "customerReferenceId": customer.reference_id,
                "featureKey": "api_calls",
                "usageUnits": units,
            },
        )
        assert response.status_code in (200, 201), response.text

    record("trial", 10_000)
    sandbox = synced.extensions["stripe_sandbox"]
    advance_days(sandbox, 15)  # the trial ends, the first paid period starts
    record("paid", 200)
    advance_days(sandbox, 10)
    text = visible_text(operator.get("/admin/risk").text)
    assert customer.reference_id in text
    assert "api_calls usage down" in text
    assert "200 so far" in text
    assert "against 10,000 last period." in text


def test_the_list_downloads_as_csv_ranked_with_every_reason(
    synced: Flask, operator: WebClient
) -> None:
    active_customer(synced, "starter_monthly", email="fine@example.com")
    late = past_due_customer(synced, "pro_monthly", email="late@example.com")
    page = operator.get("/admin/risk")
    assert 'href="/admin/risk?format=csv"' in page.text
    response = operator.get("/admin/risk?format=csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="accounts-at-risk.csv"' in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == risk_header()
    assert len(rows) == 2  # the customer who pays on time is not at risk
    place, reference, email, plan, status, mrr, currency, score, _, reasons = rows[1]
    assert (place, reference, email, plan, status) == (
        "1",
        late.reference_id,
        "late@example.com",
        "pro_monthly",
        "past_due",
    )
    assert (mrr, currency) == ("4900", "usd")
    assert score == str((5 + 3) * 4_900)  # past due, and a failed payment
    assert "Past due for 1 day: $49 owed" in reasons
    assert "Your card was declined." in reasons


def risk_header() -> list[str]:
    from app.backoffice.risk_routes import CSV_HEADER

    return CSV_HEADER
