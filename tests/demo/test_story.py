"""The demo's story and its customers' usage: pure, checked against hand-worked examples."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from app.catalog import Catalog, load_catalog
from app.config import REPO_ROOT
from app.demo.lineup import Lineup
from app.demo.people import COUNTRIES, DECLINING_CARD, DISPUTED_CARD, email_address
from app.demo.story import DAYS_A_MONTH, Persona, write_story
from app.demo.usage import Reporter, monthly_use, usage_events
from app.demo.workloads import AGENT, MAX_EVENT_TOKENS, Workload, cost_inputs
from app.stripe_sandbox.resources.payments import DISPUTED, FAILS_CHARGES, TEST_CARDS


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(str(REPO_ROOT / "plans.toml"))


def _persona(usage: str = "steady", intensity: float = 0.5, workload: Workload = AGENT) -> Persona:
    return Persona(
        index=0,
        reference_id="demo-0001",
        first_name="Ada",
        last_name="Lovelace",
        email="ada@example.com",
        country="GB",
        card="4000008260000000",
        checkout_card="4000008260000000",
        has_login=True,
        plan="pro_monthly",
        usage=usage,
        intensity=intensity,
        workload=workload,
    )


def test_lineup_of_the_example_catalog_gives_each_plan_its_part(catalog: Catalog) -> None:
    assert Lineup.of(catalog) == Lineup(
        free="free",
        monthly=("starter_monthly", "pro_monthly"),
        yearly={"starter_monthly": "starter_yearly", "pro_monthly": "pro_yearly"},
        in_arrears=("enterprise_monthly",),
        trial_without_card=frozenset({"starter_monthly", "starter_yearly"}),
        trial_days={
            "starter_monthly": 14,
            "starter_yearly": 14,
            "pro_monthly": 14,
            "pro_yearly": 14,
        },
        margin_floors=("pro_monthly",),
    )


def test_write_story_same_seed_tells_the_same_story(catalog: Catalog) -> None:
    lineup = Lineup.of(catalog)
    first, again = write_story(50, 7, lineup), write_story(50, 7, lineup)
    other = write_story(50, 8, lineup)
    assert first == again
    assert first.personas != other.personas


def test_write_story_customers_join_over_the_year_in_many_ways(catalog: Catalog) -> None:
    story = write_story(300, 0, Lineup.of(catalog))
    personas = story.personas
    joins_of = {
        act.customer: act.day for acts in story.acts.values() for act in acts if act.kind == "join"
    }
    joins = sorted(joins_of.values())
    kinds = Counter(act.kind for acts in story.acts.values() for act in acts)

    assert len({p.email for p in personas}) == 300
    assert len({p.country for p in personas}) >= 15
    assert len({p.plan for p in personas}) == len(catalog.plans)
    assert joins[0] <= 14
    assert joins[-1] < 365
    assert sum(day < 182 for day in joins) < sum(day >= 182 for day in joins)  # it grows
    assert {"upgrade", "downgrade", "cancel_at_period_end", "cancel_now", "refund"} <= set(kinds)
    assert {p.checkout_card for p in personas} >= {None, DECLINING_CARD, DISPUTED_CARD}
    assert set(Counter(p.usage for p in personas)) == {"steady", "growing", "fading", "burning"}
    assert {p.dispute_answer for p in personas if p.checkout_card == DISPUTED_CARD} == {
        "win",
        "lose",
        "ignore",
    }
    # The last six sign up in the last three weeks, with a card that will be declined.
    assert [p.checkout_card for p in personas[-6:]] == [DECLINING_CARD] * 6
    assert all(365 - 20 <= joins_of[p.index] <= 365 - 16 for p in personas[-6:])


def test_write_story_products_call_mostly_cheap_models(catalog: Catalog) -> None:
    personas = write_story(300, 0, Lineup.of(catalog)).personas
    models = Counter(p.workload.model for p in personas if p.workload != AGENT)

    assert [model for model, _ in models.most_common()] == [
        "gpt-4o-mini",
        "gemini-2.5-flash",
        "gpt-4o",
        "claude-sonnet-4-5",
    ]
    assert all(0.15 <= p.workload.output_share <= 0.35 for p in personas if p.workload != AGENT)


@pytest.mark.parametrize("count", [30, 300])
def test_write_story_one_pro_customer_runs_an_agent_three_weeks_into_a_period(
    catalog: Catalog, count: int
) -> None:
    story = write_story(count, 4, Lineup.of(catalog))
    (heavy,) = [p for p in story.personas if p.workload == AGENT]
    acts = [act for acts in story.acts.values() for act in acts if act.customer == heavy.index]

    assert (heavy.plan, heavy.usage, heavy.checkout_card) == ("pro_monthly", "burning", heavy.card)
    assert [act.kind for act in acts] == ["join"]
    # Its 14 days of trial, then two to eight whole months, then 21 days of the next.
    paid_months = (365 - 14 - 21 - acts[0].day) / DAYS_A_MONTH
    assert 2 <= round(paid_months) <= 8
    assert abs(paid_months - round(paid_months)) < 0.02


def test_write_story_avoids_taken_emails_and_numbers_on(catalog: Catalog) -> None:
    first = write_story(20, 3, Lineup.of(catalog))
    taken = {p.email for p in first.personas}
    more = write_story(20, 3, Lineup.of(catalog), taken=taken, first_number=21)

    assert not taken & {p.email for p in more.personas}
    assert [p.reference_id for p in more.personas][:2] == ["demo-0021", "demo-0022"]


def test_countries_pay_with_their_own_test_cards() -> None:
    for country, _, number in COUNTRIES:
        assert TEST_CARDS[number].country == country
    assert TEST_CARDS[DECLINING_CARD].behaviour == FAILS_CHARGES
    assert TEST_CARDS[DISPUTED_CARD].behaviour == DISPUTED


def test_email_address_at_a_company_or_an_example_domain() -> None:
    assert email_address("Hugo", "Müller", "northwind", 1) == "hugo.mueller@northwind.example"
    assert email_address("Ada", "O'Brien", None, 3) == "ada.obrien@example.com"


@pytest.mark.parametrize(
    ("plan", "feature", "usage", "intensity", "months", "expected"),
    [
        # Half of Pro's million AI tokens of credit a month.
        ("pro_monthly", "ai_chat", "steady", 0.5, 6, 500_000),
        # Fading: three fifths of the month before, twice: 0.5 x 0.36 of a million.
        ("pro_monthly", "ai_chat", "fading", 0.5, 2, 180_000),
        # Growing 12% a month: 0.5 x 1.2544 of a million.
        ("pro_monthly", "ai_chat", "growing", 0.5, 2, 627_200),
        # Burning credits: twice the credits a month.
        ("pro_monthly", "ai_chat", "burning", 2.0, 0, 2_000_000),
        # ...but API calls, which no credits cover, at 0.6 of the 100,000 included.
        ("pro_monthly", "api_calls", "burning", 2.0, 0, 60_000),
        # A yearly plan's allowance is twelve months' worth: 2.4M tokens / 12 x 0.5.
        ("starter_yearly", "ai_chat", "steady", 0.5, 0, 100_000),
        # Unlimited API calls: measured against 400,000 a month.
        ("enterprise_monthly", "api_calls", "steady", 0.5, 0, 200_000),
        # Free: its hard limit of 1,000 calls.
        ("free", "api_calls", "steady", 0.5, 0, 500),
        # A boolean feature is not used by units.
        ("pro_monthly", "sso", "steady", 0.5, 0, 0),
    ],
)
def test_monthly_use_is_a_share_of_what_the_plan_gives(
    catalog: Catalog,
    plan: str,
    feature: str,
    usage: str,
    intensity: float,
    months: int,
    expected: int,
) -> None:
    persona = _persona(usage, intensity)
    assert monthly_use(catalog.plans[plan], feature, persona, months) == expected


def test_usage_events_report_a_few_days_of_each_metered_feature(catalog: Catalog) -> None:
    reporter = Reporter(_persona(), catalog.plans["pro_monthly"], months=0)
    events = usage_events(40, [reporter])

    assert [(e.feature_key, e.event_name, e.idempotency_key) for e in events] == [
        ("api_calls", "api.request", "demo-40-api_calls"),
        ("ai_chat", "chat.completion", "demo-40-ai_chat"),
    ]
    # Four days of 50,000 calls a month, give or take 30%.
    assert 4667 <= events[0].units <= 8667
    assert usage_events(40, [reporter]) == events


def test_usage_events_give_ai_tokens_with_the_model_that_took_them(catalog: Catalog) -> None:
    chat = Workload("openai", "gpt-4o", output_share=0.25, cached_share=0.4)
    reporter = Reporter(_persona(workload=chat), catalog.plans["pro_monthly"], months=0)
    (event,) = [e for e in usage_events(40, [reporter]) if e.feature_key == "ai_chat"]

    assert event.cost_input["model"] == "gpt-4o"
    assert event.cost_input["modelProvider"] == "openai"
    assert event.cost_input["inputTokens"] + event.cost_input["outputTokens"] == event.units


def test_cost_inputs_split_a_report_into_batches_priced_as_their_calls() -> None:
    events = cost_inputs(AGENT, 450_001, random.Random(1))

    # Three batches, none past 200,000 tokens, as even as whole tokens allow.
    assert [units for units, _ in events] == [150_001, 150_000, 150_000]
    assert max(units for units, _ in events) <= MAX_EVENT_TOKENS
    for units, cost_input in events:
        assert cost_input["inputTokens"] + cost_input["outputTokens"] == units
        # About 45% output, give or take 15% of it; about a tenth of the input cached.
        assert 0.38 * units <= int(cost_input["outputTokens"]) <= 0.52 * units
        assert 0.08 * int(cost_input["inputTokens"]) <= int(cost_input["cachedInputTokens"])
        assert int(cost_input["cachedInputTokens"]) <= 0.12 * int(cost_input["inputTokens"])
    assert cost_inputs(AGENT, 450_001, random.Random(1)) == events
