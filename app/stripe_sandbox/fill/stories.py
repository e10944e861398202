"""What happened to each customer of the filled account, drawn from the seed.

A story says who the customer is, what they bought and when, how their subscription went
(its fate) and whether a payment was refunded or disputed. Every choice comes from the seed, so
a seed gives the same counts and statuses each time; the history module then writes it.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass
from typing import Any

from ..context import DAY
from ..resources.payments import SUCCEEDS, TEST_CARDS
from ..resources.periods import period_boundary
from .catalog import Catalog

HOUR = 3600
TRIAL_DAYS = 14
# Fates and their weights; `scheduled` is active with a price change at the period's end.
_FATES = {
    "active": 66,
    "canceled": 12,
    "scheduled": 5,
    "trialing": 6,
    "past_due": 6,
    "unpaid": 3,
}
_FAILING = ("past_due", "unpaid")
# Where the customers are: ISO country and weight (each has a test card of that country).
_COUNTRIES = {
    "US": 34,
    "GB": 10,
    "DE": 8,
    "FR": 7,
    "CA": 6,
    "AU": 5,
    "NL": 4,
    "ES": 4,
    "IT": 3,
    "SE": 3,
    "BR": 3,
    "MX": 3,
    "JP": 3,
    "IN": 2,
    "IE": 2,
    "CH": 2,
    "AT": 1,
    "BE": 1,
    "DK": 1,
    "NO": 1,
    "PL": 1,
    "PT": 1,
    "FI": 1,
    "NZ": 1,
    "SG": 1,
}
_FIRST = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia")
_LAST = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson")


def _cards_by_country() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for number, card in TEST_CARDS.items():
        if card.behaviour == SUCCEEDS:
            found.setdefault(card.country, []).append(number)
    return found


_CARDS_BY_COUNTRY = _cards_by_country()


@dataclass(frozen=True)
class Story:
    """One customer's history: what the history module writes for them."""

    index: int
    fate: str
    customer: dict[str, Any]  # the parameters of POST /v1/customers
    card: str | None  # the test card of its first payment method
    price: dict[str, Any]
    next_price: dict[str, Any] | None  # where a `scheduled` fate's schedule moves to
    periods: int  # invoices (a trial has its one $0 invoice)
    start: int  # the first period's start: the billing cycle anchor (a trial's start)
    refund_period: int | None  # the paid period whose charge is refunded
    dispute: str | None  # "open", "won" or "lost": the dispute of a paid charge
    seed: int  # the story's own draws (amounts and moments) come from it


def draw_stories(
    rng: random.Random, count: int, invoices: int, catalog: Catalog, now: int, tag: str
) -> list[Story]:
    """`count` customers' stories, each subscription with `invoices` invoices (a yearly one
    with one per twelve of them)."""
    return [_story(rng, index, invoices, catalog, now, tag) for index in range(count)]


def _story(
    rng: random.Random, index: int, invoices: int, catalog: Catalog, now: int, tag: str
) -> Story:
    fate = rng.choices(list(_FATES), weights=list(_FATES.values()))[0]
    price = _price(rng, catalog, monthly=fate != "active" or rng.random() < 0.9)
    yearly = price["recurring"]["interval"] == "year"
    periods = math.ceil(invoices / 12) if yearly else invoices
    others = [
        p for p in catalog.monthly if p["id"] != price["id"] and p["currency"] == price["currency"]
    ]
    if (fate in _FAILING and periods < 2) or (fate == "scheduled" and not others):
        fate = "active"
    country = rng.choices(list(_COUNTRIES), weights=list(_COUNTRIES.values()))[0]
    paid = 0 if fate == "trialing" else periods - (fate in _FAILING)
    dispute = _dispute(rng, fate, paid)
    return Story(
        index=index,
        fate=fate,
        customer=_customer(rng, index, country, tag),
        card=_card(rng, fate, country),
        price=price,
        next_price=rng.choice(others) if fate == "scheduled" else None,
        periods=1 if fate == "trialing" else periods,
        start=_start(rng, fate, price["recurring"]["interval"], periods, now),
        refund_period=rng.randrange(paid) if paid and rng.random() < 0.03 else None,
        dispute=dispute,
        seed=rng.getrandbits(32),
    )


def _card(rng: random.Random, fate: str, country: str) -> str | None:
    # A card of the customer's country; some trials start without one.
    if fate == "trialing" and rng.random() < 0.3:
        return None
    return rng.choice(_CARDS_BY_COUNTRY[country])


def _price(rng: random.Random, catalog: Catalog, monthly: bool) -> dict[str, Any]:
    pool = catalog.monthly if monthly or not catalog.yearly else catalog.yearly
    synced = [p for p in pool if p in catalog.synced]
    legacy = [p for p in pool if p not in catalog.synced]
    # A quarter of the account is already on the prices Tollgate's catalog sync made.
    return rng.choice(synced if synced and (rng.random() < 0.25 or not legacy) else legacy)


def _dispute(rng: random.Random, fate: str, paid: int) -> str | None:
    if not paid or rng.random() >= 0.015:
        return None
    # An open dispute is of a recent payment: an active subscription's current period's.
    if fate == "active" and rng.random() < 0.5:
        return "open"
    return rng.choice(("won", "lost"))


def _customer(rng: random.Random, index: int, country: str, tag: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if rng.random() < 0.9:
        params["email"] = f"customer{index}.{tag}@legacy.example"
    if rng.random() < 0.7:
        params["name"] = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    if rng.random() < 0.6:
        params["address"] = {
            "line1": f"{rng.randint(1, 400)} Market Street",
            "city": "Springfield",
            "postal_code": f"{rng.randint(10000, 99999)}",
            "country": country,
        }
    if rng.random() < 0.05:
        params["metadata"] = {
            "legacy_account": f"L-{index:06d}",
            "segment": rng.choice(("smb", "edu")),
        }
    return params


def _start(rng: random.Random, fate: str, interval: str, periods: int, now: int) -> int:
    """The billing cycle anchor putting the story's periods where its fate needs them."""
    if fate == "trialing":
        return now - rng.randint(HOUR, 13 * DAY)
    if fate == "canceled":
        # It ended at a period's end, up to half a year ago.
        return _anchor(now - rng.randint(DAY, 180 * DAY), interval, -periods)
    # How far into its last period the subscription is: a failed renewal still being retried
    # (3, 5 and 7 days after it first failed) is days old, one given up on over a week.
    longest = 24 * DAY if interval == "month" else 300 * DAY
    into = {"past_due": (2 * HOUR, 4 * DAY), "unpaid": (8 * DAY, 20 * DAY)}.get(
        fate, (2 * HOUR, longest)
    )
    return _anchor(now - rng.randint(*into), interval, 1 - periods)


def _anchor(moment: int, interval: str, periods_back: int) -> int:
    # The anchor `periods_back` periods before `moment`, moved back to day 28 at most so every
    # period starts on the same day of the month (by at most three days).
    anchor = period_boundary(moment, interval, 1, periods_back)
    day = dt.datetime.fromtimestamp(anchor, dt.UTC).day
    return anchor - max(0, day - 28) * DAY
