"""Amounts in minor units written as Stripe writes them on its pages and in its messages."""

from __future__ import annotations

from decimal import Decimal

_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}


def money(amount: int | str, currency: str) -> str:
    """Minor units as a price label, e.g. 1500 usd → $15.00; sub-cent unit prices
    ("0.002") keep their digits → $0.00002."""
    symbol = _SYMBOLS.get(currency, currency.upper() + " ")
    value = Decimal(amount) / 100
    sign = "-" if value < 0 else ""
    digits = max(2, -value.normalize().as_tuple().exponent)  # type: ignore[operator]
    return f"{sign}{symbol}{abs(value):,.{digits}f}"
