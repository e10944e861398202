"""What a usage event cost to serve, from its ``costInput``: the model it called and its tokens,
priced by the operator's own rates (plans.toml's ``[costs]``) or else by the bundled price
database of ``genai-prices``, at the event's time; or a cost the caller states itself.

Costs are exact: integers in billionths of a minor unit of the catalog's currency ("nanos"), so
sums are exact on SQLite and PostgreSQL alike. An event whose model no one prices is still
recorded as usage, marked unpriced: usage is never refused for a cost that cannot be priced.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from enum import StrEnum
from functools import lru_cache
from typing import Any

from babel.numbers import get_currency_precision
from genai_prices import Usage, calc_price
from genai_prices.types import TieredPrices

from app.catalog import Catalog
from app.catalog.schema import ModelRate
from app.entitlements.errors import InvalidUsage

NANOS = 10**9  # nanos in a minor unit
MAX_TOKENS = 10**12  # per event; beyond it the caller has a bug, not a bill
MAX_STATED = Decimal(10**6)  # major units per event, likewise
# A model's and a provider's names: "provider/model" fits usage_costs.model (255 characters).
MAX_TEXT = 120
MILLION = Decimal(10**6)

# The wire's names (camelCase, as Tanso's client guide) of the token counts, and what each is
# called in genai-prices. Input tokens include the cached ones, as the providers count them.
TOKEN_FIELDS = {
    "inputTokens": "input_tokens",
    "outputTokens": "output_tokens",
    "cachedInputTokens": "cache_read_tokens",
    "cacheWriteTokens": "cache_write_tokens",
}
TEXT_FIELDS = ("model", "modelProvider")
STATED_FIELDS = ("costAmount", "currency")
KNOWN_FIELDS = (*TEXT_FIELDS, *TOKEN_FIELDS, *STATED_FIELDS)


class CostSource(StrEnum):
    """Where an event's cost came from."""

    STATED = "stated"  # the event's own costAmount
    OPERATOR = "operator"  # the catalog's [costs] rates
    BUNDLED = "genai-prices"  # the bundled price database
    UNPRICED = "unpriced"  # a model no one prices: counted, not costed


@dataclass(frozen=True, slots=True)
class CostInput:
    """A validated costInput."""

    model: str | None = None
    provider: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    stated_amount: Decimal | None = None  # major units of the catalog's currency

    @property
    def model_label(self) -> str:
        """How costs are grouped by model: "provider/model", or the model alone."""
        if self.model is None:
            return ""
        return f"{self.provider}/{self.model}" if self.provider else self.model


def model_label(raw: Any) -> str:
    """The model label of a costInput already recorded (so valid when it was), "" for none."""
    if not isinstance(raw, dict) or not isinstance(raw.get("model"), str):
        return ""
    provider = raw.get("modelProvider")
    return CostInput(
        model=raw["model"].strip().lower(),
        provider=provider.strip().lower() if isinstance(provider, str) else None,
    ).model_label


@dataclass(frozen=True, slots=True)
class EventCost:
    """What one event cost, in nanos of a minor unit (None when unpriced), and from where."""

    nanos: int | None
    source: CostSource
    model: str  # the model label, "" for none

    @property
    def priced(self) -> bool:
        return self.nanos is not None


def _invalid(field: str, message: str) -> InvalidUsage:
    return InvalidUsage(f"costInput.{field} {message}", code="invalid_cost_input")


def parse_cost_input(raw: Any, currency: str) -> CostInput | None:
    """A costInput as the API or a file gives it, checked field by field; InvalidUsage names the
    first field that is wrong. None (no costInput) gives None."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidUsage("costInput must be an object.", code="invalid_cost_input")
    unknown = sorted(set(raw).difference(KNOWN_FIELDS))
    if unknown:
        raise _invalid(unknown[0], f"is not a field of costInput ({', '.join(KNOWN_FIELDS)}).")
    texts: dict[str, str | None] = {}
    for name in TEXT_FIELDS:
        value = raw.get(name)
        if value is not None and (
            not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT
        ):
            raise _invalid(name, f"must be text of 1 to {MAX_TEXT} characters.")
        texts[name] = value.strip().lower() if isinstance(value, str) else None
    tokens: dict[str, int] = {}
    for name in TOKEN_FIELDS:
        value = raw.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS:
            raise _invalid(name, f"must be a whole number from 0 to {MAX_TOKENS:,}.")
        tokens[name] = value
    if tokens["cachedInputTokens"] + tokens["cacheWriteTokens"] > tokens["inputTokens"]:
        raise _invalid(
            "cachedInputTokens", "and cacheWriteTokens are part of inputTokens: not more."
        )
    stated = _stated_amount(raw, currency)
    if stated is None and texts["model"] is None:
        raise _invalid("model", "is needed to price tokens (or state costAmount and currency).")
    return CostInput(
        model=texts["model"],
        provider=texts["modelProvider"],
        input_tokens=tokens["inputTokens"],
        output_tokens=tokens["outputTokens"],
        cached_input_tokens=tokens["cachedInputTokens"],
        cache_write_tokens=tokens["cacheWriteTokens"],
        stated_amount=stated,
    )


def _stated_amount(raw: dict[str, Any], currency: str) -> Decimal | None:
    amount, stated_currency = raw.get("costAmount"), raw.get("currency")
    if amount is None and stated_currency is None:
        return None
    if amount is None:
        raise _invalid("costAmount", "is needed with currency.")
    if stated_currency is None:
        raise _invalid("currency", "is needed with costAmount.")
    if not isinstance(stated_currency, str) or stated_currency.lower() != currency:
        raise _invalid("currency", f"must be the catalog's currency, {currency}.")
    try:
        # A JSON number arrives as int or float (its shortest repr is what was sent), or text.
        value = Decimal(str(amount)) if not isinstance(amount, bool) else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or not 0 <= value <= MAX_STATED:
        raise _invalid("costAmount", f"must be a number from 0 to {MAX_STATED:,} {currency}.")
    return value


def minor_units_to_nanos(amount: Decimal) -> int:
    """An exact amount of minor units as whole nanos (half to even)."""
    return int((amount * NANOS).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def nanos_as_decimal(nanos: int) -> Decimal:
    """Nanos as the exact decimal amount of minor units they are, without trailing zeros."""
    amount = Decimal(nanos).scaleb(-9)
    return (
        amount.quantize(Decimal(1)) if amount == amount.to_integral_value() else amount.normalize()
    )


@lru_cache(maxsize=16)
def _major_to_minor(currency: str) -> int:
    return int(10 ** get_currency_precision(currency.upper()))


def price_event(
    cost_input: CostInput | None, feature_key: str, units: int, at: datetime, catalog: Catalog
) -> EventCost | None:
    """What the event cost: its model call (stated, the operator's rate, or the bundled price
    at ``at``) plus its feature's cost per unit. None when nothing about it has a cost."""
    feature_rate = catalog.costs.features.get(feature_key)
    if cost_input is None and feature_rate is None:
        return None
    per_major = _major_to_minor(catalog.currency)
    minor = Decimal(0)
    source = CostSource.OPERATOR
    label = ""
    if cost_input is not None:
        label = cost_input.model_label
        model_cost = _model_cost(cost_input, at, catalog, per_major)
        if model_cost is None:
            return EventCost(None, CostSource.UNPRICED, label)
        minor, source = model_cost
    if feature_rate is not None:
        minor += feature_rate.per_unit * units
    return EventCost(minor_units_to_nanos(minor), source, label)


def _model_cost(
    cost_input: CostInput, at: datetime, catalog: Catalog, per_major: int
) -> tuple[Decimal, CostSource] | None:
    if cost_input.stated_amount is not None:
        return cost_input.stated_amount * per_major, CostSource.STATED
    rate = _operator_rate(cost_input, catalog)
    if rate is not None:
        return _at_rate(cost_input, rate), CostSource.OPERATOR
    usd_rate = catalog.costs.usd_rate
    if usd_rate is None:
        if catalog.currency != "usd":
            return None
        usd_rate = Decimal(1)
    dollars = _bundled_price(cost_input, at)
    if dollars is None:
        return None
    return dollars * usd_rate * per_major, CostSource.BUNDLED


def _operator_rate(cost_input: CostInput, catalog: Catalog) -> ModelRate | None:
    models = catalog.costs.models
    return models.get(cost_input.model_label) or models.get(cost_input.model or "")


def _at_rate(cost_input: CostInput, rate: ModelRate) -> Decimal:
    cached, written = cost_input.cached_input_tokens, cost_input.cache_write_tokens
    plain_input = cost_input.input_tokens - cached - written
    per_million = (
        plain_input * rate.input
        + cached * (rate.input if rate.cached_input is None else rate.cached_input)
        + written * (rate.input if rate.cache_write is None else rate.cache_write)
        + cost_input.output_tokens * rate.output
    )
    return per_million / MILLION + rate.per_call


def _bundled_price(cost_input: CostInput, at: datetime) -> Decimal | None:
    """The call's price in US dollars from genai-prices' bundled data, or None for a model it
    does not know."""
    assert cost_input.model is not None
    model = _bundled_model(cost_input.provider, cost_input.model, at.astimezone(UTC).date())
    if model is None:
        return None
    rates = model.rates(cost_input.input_tokens)
    if rates is not None:
        return rates.price(cost_input)
    priced = _calc(cost_input, at)
    return None if priced is None else priced[0]


@dataclass(frozen=True, slots=True)
class _Rates:
    """A model's bundled prices on one day, for calls of one tier, in dollars per million
    tokens, and per call."""

    per_call: Decimal
    input: Decimal
    cached_input: Decimal
    cache_write: Decimal
    output: Decimal

    def price(self, cost_input: CostInput) -> Decimal:
        cached, written = cost_input.cached_input_tokens, cost_input.cache_write_tokens
        plain_input = cost_input.input_tokens - cached - written
        per_million = (
            plain_input * self.input
            + cached * self.cached_input
            + written * self.cache_write
            + cost_input.output_tokens * self.output
        )
        return per_million / MILLION + self.per_call


# The one trick of the event path's pricing, and what it trades: genai-prices takes 60 µs to
# 200 µs to price one call (it decomposes every price into units), which cut the events a batch
# records per second by two fifths. A model's prices on a day are linear in each kind of token
# within a tier (a tier is chosen by the call's input tokens, and then applies to all of them),
# so each tier's rates are read once per model and day, by pricing a round number of tokens of
# each kind in that tier, and every event after is four multiplications. A tier with no round
# number in it (none seen so far) is priced by genai-prices in full, each time.
# tests/entitlements/test_costs.py holds the two ways equal, call for call.
@dataclass
class _BundledModel:
    provider: str | None
    model: str
    at: datetime
    per_call: Decimal  # the price of a call of no tokens
    tier_starts: tuple[int, ...]  # a call with more input tokens than a start is in its tier
    tiers: dict[int, _Rates | None] = field(default_factory=dict)

    def rates(self, input_tokens: int) -> _Rates | None:
        tier = sum(input_tokens > start for start in self.tier_starts) if self.tier_starts else 0
        if tier not in self.tiers:
            # Two threads may both work a tier out; they find the same rates.
            self.tiers[tier] = self._read_tier(tier)
        return self.tiers[tier]

    def _read_tier(self, tier: int) -> _Rates | None:
        above = self.tier_starts[tier - 1] if tier else 0
        up_to = self.tier_starts[tier] if tier < len(self.tier_starts) else 10**12
        round_sizes = [10**power for power in range(13) if above < 10**power <= up_to]
        if not round_sizes:
            return None
        size = round_sizes[-1] if tier < len(self.tier_starts) else round_sizes[0]

        def per_million(cached: int = 0, written: int = 0, outputs: int = 0) -> Decimal:
            call = CostInput(
                model=self.model,
                provider=self.provider,
                input_tokens=size,
                cached_input_tokens=cached,
                cache_write_tokens=written,
                output_tokens=outputs,
            )
            priced = _calc(call, self.at)
            assert priced is not None
            rate: Decimal = (priced[0] - self.per_call) * MILLION / size
            return rate

        plain = per_million()
        with_output = per_million(outputs=size)
        return _Rates(
            per_call=self.per_call,
            input=plain,
            cached_input=per_million(cached=size),
            cache_write=per_million(written=size),
            output=with_output - plain,
        )


@lru_cache(maxsize=1024)
def _bundled_model(provider: str | None, model: str, day: date) -> _BundledModel | None:
    """The model's bundled prices on ``day``, read as rates tier by tier; None for a model that
    genai-prices does not know."""
    at = datetime.combine(day, time(12), UTC)
    found = _calc(CostInput(model=model, provider=provider), at)
    if found is None:
        return None
    per_call, starts = found
    return _BundledModel(provider, model, at, per_call, starts)


def _calc(cost_input: CostInput, at: datetime) -> tuple[Decimal, tuple[int, ...]] | None:
    """The call's price in dollars by genai-prices, and the input token counts past which the
    model's prices change tier; None for a model it does not know."""
    assert cost_input.model is not None
    usage = Usage(
        input_tokens=cost_input.input_tokens,
        output_tokens=cost_input.output_tokens,
        cache_read_tokens=cost_input.cached_input_tokens,
        cache_write_tokens=cost_input.cache_write_tokens,
    )
    try:
        with warnings.catch_warnings():
            # A price the database marks as outdated is still the best there is.
            warnings.simplefilter("ignore")
            price = calc_price(
                usage,
                cost_input.model,
                provider_id=cost_input.provider,
                genai_request_timestamp=at,
            )
    except (LookupError, ValueError):
        return None
    starts = sorted(
        {
            tier.start
            for value in vars(price.model_price).values()
            if isinstance(value, TieredPrices)
            for tier in value.tiers
        }
    )
    total = price.total_price
    return (total, tuple(starts)) if total.is_finite() else None
