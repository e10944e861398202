"""`flask sandbox fill`: the Stripe account of an operator who billed with Stripe before Tollgate.

It has products and prices (some with no lookup key, some on the prices Tollgate's catalog sync
made), customers with and without an email, an address or metadata of their own, and one
subscription each in every state Stripe has, with an invoice per past period, its
PaymentIntent and charges, a few refunds and disputes. Everything is back-dated from the
sandbox's clock, made by the sandbox's own builders and written straight into its store in one
transaction, without webhooks: the account predates Tollgate's endpoint. A seed gives the same
counts and statuses each time (not the same ids).
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

from ..context import DAY, Ctx
from ..sandbox import Sandbox
from .catalog import make_catalog
from .history import history
from .quiet import Quiet
from .stories import draw_stories


@dataclass(frozen=True)
class FillOptions:
    """How big an account: customers, invoices per monthly subscription, and the seed."""

    customers: int = 1000
    invoices: int = 3
    seed: int = 0


@dataclass(frozen=True)
class FillSummary:
    """What the fill made."""

    objects: dict[str, int]
    subscriptions: dict[str, int]  # by status
    # Each legacy price, and the plan (lookup key) it bills, if Tollgate's catalog has it.
    legacy_prices: dict[str, str | None]


def fill(sandbox: Sandbox, options: FillOptions) -> FillSummary:
    """Fill the sandbox with a pre-existing account, in one transaction."""
    if options.customers < 0 or options.invoices < 1:
        raise ValueError("a fill needs at least no customers and one invoice each")
    return sandbox.run(_fill, options)


def _fill(ctx: Ctx, options: FillOptions) -> FillSummary:
    quiet = Quiet(ctx.store, ctx.base_url)
    now = ctx.now()
    # The account opened before its oldest subscription: a yearly one (a year per twelve
    # invoices) ended half a year ago.
    quiet.pinned[None] = now - ((options.invoices // 12 + 2) * 366 + 200) * DAY
    catalog = make_catalog(quiet)
    rng = random.Random(options.seed)  # noqa: S311 - a reproducible account
    stories = draw_stories(
        rng, options.customers, options.invoices, catalog, now, f"s{options.seed}"
    )
    # Every customer's history at once, step by step in time order: each step runs when the
    # merge asks its history for the next moment, at the moment just taken.
    for moment, _ in heapq.merge(*(history(quiet, story, now) for story in stories)):
        quiet.pinned[None] = moment
    return FillSummary(dict(quiet.made), dict(quiet.statuses), catalog.legacy)


def report(summary: FillSummary) -> list[str]:
    """The summary as `flask sandbox fill` prints it."""
    lines = ["Objects made:"]
    lines += [f"  {kind:<24}{count:>10,}" for kind, count in sorted(summary.objects.items())]
    lines.append("Subscriptions by status:")
    statuses = sorted(summary.subscriptions.items())
    lines += [f"  {status:<24}{count:>10,}" for status, count in statuses]
    lines.append("Legacy prices (put each in its plan's `stripe_prices` in plans.toml to map it):")
    lines += [
        f"  {price}  {plan or '(no plan of the catalog)'}"
        for price, plan in summary.legacy_prices.items()
    ]
    return lines
