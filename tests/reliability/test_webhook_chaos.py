"""Webhook chaos at scale: many subscription lifecycles, every event delivered three times in a
shuffled order and the whole log again backwards, end where Stripe and an in-order run end.

Stripe promises neither order nor single delivery. The lifecycles (trials that convert or fail,
upgrades, downgrades through a schedule, cancellations undone or at once, dunning through the
retries) run over HTTP on one sandbox clock, their webhooks delivered three times each, shuffled,
after every step, and the whole event log again in reverse at the end. Then the same log is
replayed into a Tollgate that knows only the customers, once in Stripe's order and once in
chaos, and the two are compared row by row and field by field, mirror and credits alike; both,
and the live run, are compared with Stripe's own objects, read with the SDK. The live run's
credits, which depend on when each webhook arrived (late news grants nothing), are compared with
what each lifecycle leaves when its webhooks arrive in order, worked out by hand.
"""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest
from flask import Flask
from sqlalchemy import select

from app.accounts.models import Customer
from app.extensions import db
from app.stripe_sandbox import Sandbox
from tests.journeys import advance_days, form_value, press, subscribe
from tests.reliability.conftest import Figures, at_scale
from tests.reliability.lifecycles import (
    EVERYTHING,
    KINDS,
    MIRROR,
    Poster,
    Snapshot,
    books_that_do_not_balance,
    differences,
    event_log,
    forget_all_but_the_customers,
    make_lifecycles,
    rows,
    run_lifecycles,
    snapshot,
    stripe_customers,
    stripe_truth,
    summary,
)
from tests.web import WebClient

TIMES = 3  # each event is delivered this many times, in a shuffled order


def deliver_shuffled(sandbox: Sandbox, poster: Poster, rng: random.Random) -> None:
    """Post what Stripe queued, each event ``TIMES`` times in a shuffled order, then let the
    sandbox count them delivered."""
    while deliveries := sandbox.pending_deliveries():
        bodies = [delivery.payload for delivery in deliveries for _ in range(TIMES)]
        rng.shuffle(bodies)
        poster.post_all(bodies)
        posted = {delivery.payload for delivery in deliveries}

        def acknowledge(
            _url: str, body: bytes, _headers: dict[str, str], sent: set[str] = posted
        ) -> int:
            return 200 if body.decode() in sent else 500

        # Counted delivered without posting again: only what was posted above.
        sandbox.deliver_pending(post=acknowledge)


def references(app: Flask) -> dict[str, str]:
    """Each customer's reference id by its email."""
    with app.app_context():
        found = dict(db.session.execute(select(Customer.email, Customer.reference_id)).all())
        db.session.rollback()
    return found


def final_states(truth: Snapshot, reference_of: dict[str, str], kinds: dict[str, str]) -> None:
    """Each lifecycle's one subscription, in Stripe, as its kind ends."""
    for email, kind in kinds.items():
        subscriptions = [
            row for row in truth["subscriptions"].values() if row["customer"] == reference_of[email]
        ]
        assert len(subscriptions) == 1, (email, subscriptions)
        (subscription,) = subscriptions
        expected = KINDS[kind]
        assert (
            subscription["status"],
            subscription["plan_key"],
            subscription["cancel_at_period_end"],
            subscription["scheduled_plan_key"],
        ) == (
            expected.status,
            expected.final_plan_key,
            expected.cancel_at_period_end,
            expected.scheduled_plan_key,
        ), (kind, subscription)


def wrong_credits(
    taken: Snapshot, reference_of: dict[str, str], expected: dict[str, int]
) -> list[str]:
    """Customers whose AI tokens are not what their lifecycle leaves (by email)."""
    held: Counter[str] = Counter()
    for (reference_id, pool), row in taken["credit_pools"].items():
        assert pool == "ai_tokens"
        held[reference_id] += row["balance"]
    return [
        f"{email}: {held[reference_of[email]]:,} tokens, not {tokens:,}"
        for email, tokens in expected.items()
        if held[reference_of[email]] != tokens
    ]


def test_lifecycles_end_as_stripe_and_an_in_order_run_whatever_the_order_and_repeats(
    synced: Flask, server: str, sandbox: Sandbox, figures: Figures
) -> None:
    app = synced
    started = time.monotonic()
    lifecycles = make_lifecycles(server, at_scale(10, 100))
    poster = Poster(server, app.config["STRIPE_WEBHOOK_SECRET"])
    rng = random.Random(19)
    try:
        run_lifecycles(sandbox, lifecycles, lambda: deliver_shuffled(sandbox, poster, rng))
        assert sandbox.pending_deliveries() == []
        log = event_log(server)
        live = snapshot(app)
        live_unbalanced = books_that_do_not_balance(app)
        # Later: the whole log again, newest first. Every event is a repeat by now.
        poster.post_all(reversed(log))
        live_after_reverse = snapshot(app)
        truth = stripe_truth(server, stripe_customers(app), sandbox.now())

        # The same log into a Tollgate that knows only the customers: once in Stripe's order...
        forget_all_but_the_customers(app)
        poster.post_all(log)
        in_order = snapshot(app)
        # ...and in chaos: each event three times, shuffled, then the whole log backwards.
        forget_all_but_the_customers(app)
        chaos = [body for body in log for _ in range(TIMES)]
        rng.shuffle(chaos)
        poster.post_all(chaos)
        poster.post_all(reversed(log))
        in_chaos = snapshot(app)
        unbalanced = books_that_do_not_balance(app)
    finally:
        poster.close()
        for lifecycle in lifecycles:
            lifecycle.client.close()

    kinds = {lifecycle.email: lifecycle.kind for lifecycle in lifecycles}
    reference_of = references(app)
    final_states(truth, reference_of, kinds)
    live_credits = wrong_credits(
        live, reference_of, {email: KINDS[kind].credits for email, kind in kinds.items()}
    )
    replayed_credits = wrong_credits(
        in_order, reference_of, {email: KINDS[k].replayed_credits for email, k in kinds.items()}
    )
    chaos_vs_in_order = differences(in_order, in_chaos, EVERYTHING)
    repeats_vs_live = differences(live, live_after_reverse, EVERYTHING)
    live_vs_stripe = differences(truth, live, MIRROR)
    replay_vs_stripe = differences(truth, in_chaos, MIRROR)
    live_vs_replay = differences(in_order, live, MIRROR)
    figures.add("lifecycles", len(lifecycles))
    figures.add("lifecycles of each kind", dict(sorted(Counter(kinds.values()).items())))
    figures.add("events in Stripe's log", len(log))
    figures.add("webhook deliveries posted (live run and replays)", poster.posted)
    figures.add("rows compared, chaos vs in-order replay", rows(in_order, EVERYTHING))
    figures.add("rows that differ: chaos replay vs in-order replay", len(chaos_vs_in_order))
    figures.add("rows that differ: live mirror vs in-order replay", len(live_vs_replay))
    figures.add("rows that differ from Stripe: live run", len(live_vs_stripe))
    figures.add("rows that differ from Stripe: chaos replay", len(replay_vs_stripe))
    figures.add("rows the reversed log changed in the live run", len(repeats_vs_live))
    figures.add(
        "customers whose credits differ from their lifecycle's: live / replay",
        f"{len(live_credits)} / {len(replayed_credits)}",
    )
    figures.add("seconds", round(time.monotonic() - started, 1))

    assert chaos_vs_in_order == [], summary(chaos_vs_in_order)
    assert repeats_vs_live == [], summary(repeats_vs_live)
    assert live_vs_stripe == [], summary(live_vs_stripe)
    assert replay_vs_stripe == [], summary(replay_vs_stripe)
    assert live_vs_replay == [], summary(live_vs_replay)
    assert live_credits == [], live_credits
    assert replayed_credits == [], replayed_credits
    assert live_unbalanced == [], live_unbalanced
    assert unbalanced == [], unbalanced


@pytest.mark.parametrize(
    ("plan_key", "upgrade_to", "grant"),
    [("starter_monthly", "pro_monthly", 1_000_000), ("pro_monthly", "pro_yearly", 12_000_000)],
)
def test_an_upgraded_period_replayed_into_a_tollgate_that_knows_only_the_customer_is_granted(
    synced: Flask,
    server: str,
    sandbox: Sandbox,
    client: WebClient,
    plan_key: str,
    upgrade_to: str,
    grant: int,
) -> None:
    """Past the trial, upgraded, a day later: the running period is paid, so a replay of the
    whole log grants it (as for a period opened by a renewal), whatever the order."""
    subscribe(client, "ada@example.com", plan_key)
    advance_days(sandbox, 15)
    preview = client.get(f"/account/plan/{upgrade_to}").text
    proration_date = form_value(preview, "proration_date")
    press(client, preview, f"/account/plan/{upgrade_to}", {"proration_date": proration_date})
    advance_days(sandbox, 1)
    log = event_log(server)
    poster = Poster(server, synced.config["STRIPE_WEBHOOK_SECRET"])
    try:
        forget_all_but_the_customers(synced)
        poster.post_all(log)
    finally:
        poster.close()
    replayed = snapshot(synced)
    assert [row["plan_key"] for row in replayed["subscriptions"].values()] == [upgrade_to]
    assert [row["balance"] for row in replayed["credit_pools"].values()] == [grant]
