"""What each usage event cost to serve, from its costInput, with hand-worked prices."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from flask import Flask
from sqlalchemy import select

from app.entitlements.models import UsageCost, UsageEvent
from app.extensions import db


def _event(reference: str, key: str, cost: Any, units: int = 100) -> dict[str, Any]:
    return {
        "eventIdempotencyKey": key,
        "eventName": "chat.completion",
        "customerReferenceId": reference,
        "featureKey": "ai_chat",
        "usageUnits": units,
        "costInput": cost,
    }


def test_bundled_prices_cost_input_cached_and_output_tokens(
    api: httpx.Client, free_customer: str
) -> None:
    # gpt-4o's list price: $2.50 per million input tokens, $1.25 per million read from the
    # cache, $10 per million output tokens. 800 plain input, 200 cached, 500 output:
    # (800 x 2.50 + 200 x 1.25 + 500 x 10) / 1,000,000 = $0.00725, that is 0.725 cents.
    cost = {
        "model": "gpt-4o",
        "modelProvider": "openai",
        "inputTokens": 1_000,
        "cachedInputTokens": 200,
        "outputTokens": 500,
    }
    answer = api.post("/events", json=_event(free_customer, "e1", cost))
    assert answer.status_code == 201
    assert answer.json()["data"]["cost"] == {
        "amountDecimal": "0.725",
        "currency": "usd",
        "priced": True,
        "source": "genai-prices",
        "model": "openai/gpt-4o",
    }


def test_the_operators_rate_beats_the_bundled_price(api: httpx.Client, free_customer: str) -> None:
    # plans.toml: openai/gpt-4o-mini at 12 cents per million input tokens, 6 cached, 48 output
    # (the list price is 15 cents input). 800,000 plain input, 200,000 cached, 100,000 output:
    # 800,000 x 12 + 200,000 x 6 + 100,000 x 48 = 15,600,000 per million: 15.6 cents.
    cost = {
        "model": "gpt-4o-mini",
        "modelProvider": "openai",
        "inputTokens": 1_000_000,
        "cachedInputTokens": 200_000,
        "outputTokens": 100_000,
    }
    data = api.post("/events", json=_event(free_customer, "e1", cost)).json()["data"]
    assert data["cost"]["amountDecimal"] == "15.6"
    assert data["cost"]["source"] == "operator"


def test_a_stated_cost_wins_and_a_replay_answers_the_first_cost(
    api: httpx.Client, free_customer: str
) -> None:
    cost = {"model": "gpt-4o", "inputTokens": 10, "costAmount": "0.0123", "currency": "USD"}
    first = api.post("/events", json=_event(free_customer, "e1", cost))
    assert first.json()["data"]["cost"]["amountDecimal"] == "1.23"
    assert first.json()["data"]["cost"]["source"] == "stated"
    again = api.post("/events", json=_event(free_customer, "e1", cost))
    assert again.status_code == 200
    assert again.json()["data"]["replayed"] is True
    assert again.json()["data"]["cost"] == first.json()["data"]["cost"]


def test_an_unknown_model_is_recorded_as_usage_and_counted_unpriced(
    api: httpx.Client, free_customer: str, synced: Flask
) -> None:
    cost = {"model": "house-llm-9000", "inputTokens": 5_000, "outputTokens": 10}
    answer = api.post("/events", json=_event(free_customer, "e1", cost, units=300))
    assert answer.status_code == 201
    data = answer.json()["data"]
    assert data["usage"]["used"] == 300
    assert data["cost"] == {
        "amountDecimal": None,
        "currency": "usd",
        "priced": False,
        "source": "unpriced",
        "model": "house-llm-9000",
    }
    with synced.app_context():
        totals = db.session.execute(select(UsageCost.events, UsageCost.unpriced)).one()
    assert tuple(totals) == (1, 1)


def test_period_totals_add_up_by_model_as_events_arrive(
    api: httpx.Client, free_customer: str, synced: Flask
) -> None:
    stated = {"costAmount": "0.01", "currency": "usd", "model": "acme/house-model"}
    batch = [_event(free_customer, f"b{n}", stated) for n in range(3)]
    batch.append(_event(free_customer, "plain", None))
    results = api.post("/events/batch", json={"events": batch}).json()["data"]
    assert [result["status"] for result in results] == ["recorded"] * 4
    assert results[3]["result"]["cost"] is None
    # The whole batch again changes nothing.
    api.post("/events/batch", json={"events": batch})
    with synced.app_context():
        rows = db.session.execute(
            select(UsageCost.feature_key, UsageCost.model, UsageCost.nanos, UsageCost.events)
        ).all()
        costs = db.session.scalars(select(UsageEvent.cost_nanos).order_by(UsageEvent.id)).all()
    # Three cents, in billionths of a cent.
    assert [tuple(row) for row in rows] == [("ai_chat", "acme/house-model", 3 * 10**9, 3)]
    assert costs == [10**9, 10**9, 10**9, None]


@pytest.mark.parametrize(
    ("cost", "field"),
    [
        ([1, 2], "costInput must be an object"),
        ({"model": "gpt-4o", "inputTokens": -1}, "costInput.inputTokens"),
        ({"model": "gpt-4o", "outputTokens": 2.5}, "costInput.outputTokens"),
        ({"model": "gpt-4o", "outputTokens": 10**15}, "costInput.outputTokens"),
        ({"costAmount": "0.5", "currency": "eur"}, "costInput.currency"),
        ({"costAmount": "1e30", "currency": "usd"}, "costInput.costAmount"),
        ({"costAmount": "NaN", "currency": "usd"}, "costInput.costAmount"),
        ({"model": "gpt-4o", "inputTokens": 10, "cachedInputTokens": 11}, "cachedInputTokens"),
        ({"model": "gpt-4o", "prompt_tokens": 10}, "costInput.prompt_tokens"),
        ({"inputTokens": 10}, "costInput.model"),
        ({"model": "m" * 121, "modelProvider": "p" * 120}, "costInput.model"),
        ({"model": "gpt-4o", "modelProvider": " "}, "costInput.modelProvider"),
    ],
)
def test_a_bad_cost_input_is_refused_naming_the_field_and_records_nothing(
    api: httpx.Client, free_customer: str, cost: Any, field: str
) -> None:
    answer = api.post("/events", json=_event(free_customer, "bad", cost))
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_cost_input"
    assert field in answer.json()["error"]["message"]
    in_batch = api.post("/events/batch", json={"events": [_event(free_customer, "bad", cost)]})
    assert in_batch.json()["data"][0]["error"]["code"] == "invalid_cost_input"
    usage = api.get(f"/entitlements/{free_customer}/ai_chat").json()["data"]["usage"]
    assert usage["used"] == 0


def test_the_longest_model_and_provider_names_are_recorded(
    api: httpx.Client, free_customer: str
) -> None:
    cost = {"model": "m" * 120, "modelProvider": "p" * 120, "inputTokens": 10}
    answer = api.post("/events", json=_event(free_customer, "long", cost))
    assert answer.status_code == 201
    assert answer.json()["data"]["cost"]["model"] == f"{'p' * 120}/{'m' * 120}"
