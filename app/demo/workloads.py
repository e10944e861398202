"""The models the demo customers' products call for their AI feature, and the ``costInput`` each
usage event carries, for Tollgate to price (app/entitlements/costs.py).

Each customer's product calls one model, drawn from a mix of cheap and expensive ones, with a
split of its tokens of its own: how much of them is output, and how much of its input the
provider reads from its cache.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# An event stands for a batch of the product's calls, never more tokens than this: a model's
# price may depend on how many input tokens one call takes (Claude Sonnet 4.5 costs twice as
# much past 200,000), and a batch priced as one call must be priced as its calls would be.
MAX_EVENT_TOKENS = 200_000
CostInput = dict[str, str | int]  # as the API takes it


@dataclass(frozen=True)
class Workload:
    """How a customer's product uses its model."""

    provider: str
    model: str
    output_share: float  # of its tokens, the output
    cached_share: float  # of its input tokens, those read from the provider's cache


# Provider, model, and how many products in a hundred call it: mostly the cheap ones.
MODEL_MIX: tuple[tuple[str, str, int], ...] = (
    ("openai", "gpt-4o-mini", 40),
    ("google", "gemini-2.5-flash", 25),
    ("openai", "gpt-4o", 22),
    ("anthropic", "claude-sonnet-4-5", 13),
)
# An agent that writes code all day on an expensive model: long answers, little cached.
AGENT = Workload("anthropic", "claude-sonnet-4-5", output_share=0.45, cached_share=0.1)


def draw_workload(rng: random.Random) -> Workload:
    """A product's model and its split of tokens: chat, whose history is sent again and again
    (much input, much of it cached), and answers of a paragraph or two."""
    provider, model, _ = rng.choices(MODEL_MIX, weights=[share for *_, share in MODEL_MIX])[0]
    return Workload(provider, model, rng.uniform(0.15, 0.35), rng.uniform(0.2, 0.6))


def cost_inputs(
    workload: Workload, units: int, noise: random.Random
) -> list[tuple[int, CostInput]]:
    """The events a few days' ``units`` tokens are reported in: each one's units (its input and
    output tokens) and its costInput, the split a little different each time."""
    parts = -(-units // MAX_EVENT_TOKENS)
    events: list[tuple[int, CostInput]] = []
    for part in range(parts):
        tokens = units // parts + (part < units % parts)
        output = min(tokens, round(tokens * workload.output_share * noise.uniform(0.85, 1.15)))
        inputs = tokens - output
        cached = min(inputs, round(inputs * workload.cached_share * noise.uniform(0.8, 1.2)))
        cost_input: CostInput = {
            "model": workload.model,
            "modelProvider": workload.provider,
            "inputTokens": inputs,
            "outputTokens": output,
            "cachedInputTokens": cached,
        }
        events.append((tokens, cost_input))
    return events
