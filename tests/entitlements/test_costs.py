"""Pricing a costInput: bundled prices read as rates equal genai-prices' own, call for call."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from genai_prices import Usage, calc_price

from app.entitlements.costs import CostInput, _bundled_price

AT = datetime(2026, 12, 1, tzinfo=UTC)


def _list_price(cost: CostInput) -> object:
    assert cost.model is not None
    usage = Usage(
        input_tokens=cost.input_tokens,
        output_tokens=cost.output_tokens,
        cache_read_tokens=cost.cached_input_tokens,
        cache_write_tokens=cost.cache_write_tokens,
    )
    return calc_price(usage, cost.model, provider_id=cost.provider, genai_request_timestamp=AT)


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4o"),
        (None, "gpt-4o-mini"),
        ("google", "gemini-2.5-flash"),
        ("anthropic", "claude-opus-4-1"),
        # Tiered: past 200,000 input tokens every token costs more.
        ("anthropic", "claude-sonnet-4-5"),
        ("google", "gemini-2.5-pro"),
    ],
)
def test_every_call_costs_what_genai_prices_says(provider: str | None, model: str) -> None:
    draw = random.Random(f"{provider}/{model}")
    for _ in range(100):
        input_tokens = draw.randint(0, 400_000)
        cached = draw.randint(0, input_tokens // 2)
        cost = CostInput(
            model=model,
            provider=provider,
            input_tokens=input_tokens,
            output_tokens=draw.randint(0, 8_000),
            cached_input_tokens=cached,
            cache_write_tokens=draw.randint(0, (input_tokens - cached) // 2),
        )
        assert _bundled_price(cost, AT) == _list_price(cost).total_price  # type: ignore[attr-defined]


def test_an_unknown_model_has_no_price() -> None:
    assert _bundled_price(CostInput(model="no-such-model-anywhere", input_tokens=5), AT) is None
