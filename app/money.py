"""Amounts in minor units, shown the way a buyer reads them."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from babel.numbers import format_currency, format_decimal, get_currency_precision

LOCALE = "en_US"


def to_major(amount: int, currency: str) -> Decimal:
    """Minor units (cents, or yen which have none) as a decimal amount of the currency."""
    return Decimal(amount).scaleb(-get_currency_precision(currency.upper()))


def format_money(amount: int, currency: str) -> str:
    """``4900, "usd"`` gives ``$49``; cents are shown only when there are some."""
    major = to_major(amount, currency)
    whole = major == major.to_integral_value()
    pattern = "¤#,##0" if whole else None
    return str(
        format_currency(
            major, currency.upper(), format=pattern, locale=LOCALE, currency_digits=not whole
        )
    )


def format_percent(value: Fraction | float | None, digits: int = 1) -> str:
    """``Fraction(1, 8)`` gives ``12.5%``; nothing to divide by (None) gives a dash."""
    return "—" if value is None else f"{float(value) * 100:.{digits}f}%"


def format_count(count: int) -> str:
    """``1000000`` gives ``1,000,000``."""
    return str(format_decimal(count, locale=LOCALE))


# Digits shown past the currency's own for amounts with fractions of a minor unit (costs are
# kept in billionths of one): a hundredth of a cent shows, a calculation's dust does not.
EXTRA_DIGITS = 4


def format_fine_money(amount: Decimal | int, currency: str) -> str:
    """Minor units that may hold fractions of one: ``Decimal("18.75"), "usd"`` gives ``$0.1875``
    and ``4900`` gives ``$49.00``: the currency's digits, and below one major unit (the cost of
    a few calls) at most four more."""
    digits = get_currency_precision(currency.upper())
    major = Decimal(amount).scaleb(-digits)
    extra = EXTRA_DIGITS if abs(major) < 1 else 0
    pattern = "¤#,##0." + "0" * digits + "#" * extra if digits or extra else "¤#,##0"
    return str(
        format_currency(
            major, currency.upper(), format=pattern, locale=LOCALE, currency_digits=False
        )
    )
