"""Who the demo's customers are: names, companies, and where they pay from.

The cards are Stripe's published test cards ("Simulate a payment by country" on
docs.stripe.com/testing), which the sandbox takes as Stripe does: each gives its charges the
card's country.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# Stripe's test cards with a behaviour: attaches but every charge is declined, and a payment
# that the cardholder's bank disputes as fraudulent.
DECLINING_CARD = "4000000000000341"
DISPUTED_CARD = "4000000000000259"

# Country, how many customers in a hundred come from it, and its test card.
COUNTRIES: tuple[tuple[str, int, str], ...] = (
    ("US", 38, "4242424242424242"),
    ("GB", 9, "4000008260000000"),
    ("DE", 8, "4000002760000016"),
    ("FR", 5, "4000002500000003"),
    ("CA", 5, "4000001240000000"),
    ("AU", 4, "4000000360000006"),
    ("NL", 3, "4000005280000002"),
    ("ES", 3, "4000007240000007"),
    ("IN", 3, "4000003560000008"),
    ("BR", 3, "4000000760000002"),
    ("SE", 2, "4000007520000008"),
    ("IT", 2, "4000003800000008"),
    ("IE", 2, "4000003720000005"),
    ("PL", 2, "4000006160000005"),
    ("MX", 2, "4000004840008001"),
    ("JP", 2, "4000003920000003"),
    ("CH", 1, "4000007560000009"),
    ("DK", 1, "4000002080000001"),
    ("NO", 1, "4000005780000007"),
    ("AT", 1, "4000000400000008"),
    ("SG", 1, "4000007020000003"),
    ("NZ", 1, "4000005540000008"),
)

FIRST_NAMES = (
    "Ada", "Alan", "Amara", "Ana", "Arjun", "Bea", "Carlos", "Chen", "Chloe", "Dara", "David",
    "Elena", "Emeka", "Emma", "Farah", "Felix", "Grace", "Hana", "Hugo", "Ines", "Isaac", "Ivan",
    "Jonas", "Julia", "Kai", "Kenji", "Lars", "Leila", "Liam", "Lucia", "Maya", "Marta", "Mateo",
    "Mei", "Nadia", "Niko", "Noah", "Olga", "Omar", "Priya", "Rafael", "Rosa", "Sam", "Sara",
    "Sofia", "Tariq", "Tom", "Uma", "Vera", "Yuki", "Zoe",
)  # fmt: skip
LAST_NAMES = (
    "Abe", "Alvarez", "Andersen", "Bauer", "Becker", "Brown", "Costa", "Dubois", "Ferreira",
    "Fischer", "Garcia", "Gupta", "Hansen", "Ito", "Jensen", "Kim", "Kowalski", "Larsen", "Lopez",
    "Martin", "Meyer", "Moreau", "Müller", "Nakamura", "Nguyen", "Novak", "O'Brien", "Okafor",
    "Patel", "Rossi", "Santos", "Schmidt", "Silva", "Singh", "Smith", "Tanaka", "Taylor",
    "Walker", "Weber", "Wong", "Yilmaz", "Zhang",
)  # fmt: skip
# Made-up companies, under the .example domain that RFC 2606 keeps for examples.
COMPANIES = (
    "acme", "brightline", "cobaltworks", "driftwood", "emberlabs", "fieldnote", "gridmetrics",
    "harbourai", "inkwell", "juniperhq", "kestrel", "lumenstack", "meridian", "northwind",
    "orbitly", "pinecone-studio", "quillsoft", "redwoodapps", "saltmarsh", "tidewater",
    "umbra-analytics", "vantage", "wavelength", "yellowfin", "zenith-ops",
)  # fmt: skip
PERSONAL_DOMAINS = ("example.com", "example.org", "example.net")


def email_address(first: str, last: str, company: str | None, style: int) -> str:
    """An address for a person, at a company of theirs or at one of the example domains."""
    first_part = first.lower()
    last_part = "".join(c for c in last.lower().replace("ü", "ue") if c.isalnum())
    if company is not None:
        local = (first_part, f"{first_part}.{last_part}", f"{first_part[0]}{last_part}")[style % 3]
        return f"{local}@{company}.example"
    personal = (
        f"{first_part}.{last_part}",
        f"{first_part}{last_part[0]}",
        f"{last_part}{first_part}",
    )
    return f"{personal[style % 3]}@{PERSONAL_DOMAINS[style % len(PERSONAL_DOMAINS)]}"


@dataclass(frozen=True)
class Person:
    """Someone who becomes a customer, and the card of their country."""

    first_name: str
    last_name: str
    email: str
    country: str
    card: str


def draw_person(rng: random.Random, emails: set[str]) -> Person:
    """Someone from one of the countries (as many in a hundred as its share), whose email is
    not one of ``emails``, which it joins."""
    country, _, card = rng.choices(COUNTRIES, weights=[share for _, share, _ in COUNTRIES])[0]
    while True:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        company = rng.choice(COMPANIES) if rng.random() < 0.6 else None
        email = email_address(first, last, company, rng.randrange(6))
        if email not in emails:
            emails.add(email)
            return Person(first, last, email, country, card)
