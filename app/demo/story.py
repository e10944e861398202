"""The demo's story: who the customers are and what each does over a year, drawn from a seed.

Pure: plans are taken by their part in the catalog (``app.demo.lineup``), days are days of the
story, and the same seed tells the same story. ``app.demo.run`` makes it happen; what depends
on Stripe (when a trial ends, when a charge is declined or disputed) is met there as it comes.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import TypeVar

from app.demo.lineup import Lineup
from app.demo.people import DECLINING_CARD, DISPUTED_CARD, draw_person
from app.demo.workloads import AGENT, Workload, draw_workload

DAYS = 365
# The demo's customers have reference ids demo-0001, demo-0002, ...
REFERENCE_PREFIX = "demo-"
T = TypeVar("T")
# How the customers use the product, month over month.
USAGE_PATTERNS = {"steady": 62, "growing": 15, "fading": 10, "burning": 13}
# What the operator does about a dispute: win it with evidence, lose it, or let it expire.
DISPUTE_ANSWERS = ("win", "lose", "win", "ignore")
# The customer whose AI usage costs more to serve than its plan's margin floor allows uses this
# much a month, as a share of the plan's allowance (Pro: 3.5 million tokens of its million),
# and the story ends this many days into one of its paid periods: far enough for the period's
# cost to be past the floor, not so far that a short month starts the next one.
HEAVY_USER_INTENSITY = 3.5
HEAVY_USER_DAYS_INTO_PERIOD = 21
DAYS_A_MONTH = 365.25 / 12


@dataclass(frozen=True)
class Persona:
    """One customer of the story and how it behaves when Stripe tells it something."""

    index: int
    reference_id: str
    first_name: str
    last_name: str
    email: str
    country: str
    card: str  # the card it normally pays with: its country's
    checkout_card: str | None  # the card it gives at Checkout (None: a trial without a card)
    has_login: bool
    plan: str
    usage: str  # one of USAGE_PATTERNS
    intensity: float  # its usage a month at the start, as a share of its plan's allowance
    workload: Workload  # the model its product calls for the AI feature, and how
    recovers_after: int | None = None  # days of dunning before it gives a working card
    dispute_answer: str | None = None  # one of DISPUTE_ANSWERS


@dataclass(frozen=True)
class Act:
    """Something a customer (or the operator for it) does on a day of the story."""

    day: int
    customer: int  # a Persona's index
    kind: str  # join, add_card, card_fails, upgrade, downgrade, cancel_at_period_end,
    #            cancel_now, refund, subscribe
    plan: str | None = None
    share: float = 1.0  # of a charge, for a refund


@dataclass
class Story:
    """The customers and what they do, day by day."""

    personas: list[Persona]
    acts: dict[int, list[Act]] = field(default_factory=lambda: defaultdict(list))

    def on(self, day: int) -> list[Act]:
        """The acts of a day, in the order they happen."""
        return self.acts.get(day, [])


def write_story(
    count: int,
    seed: int,
    lineup: Lineup,
    days: int = DAYS,
    *,
    taken: Collection[str] = (),
    first_number: int = 1,
) -> Story:
    """``count`` customers joining over ``days`` days, and what each of them does; their
    reference ids are numbered from ``first_number`` and their emails avoid ``taken``."""
    rng = random.Random(seed)  # noqa: S311 - a story, not a secret
    # The models the products call come from a stream of their own: the mix of models can
    # change without changing what the customers do.
    models = random.Random(f"{seed}-models")  # noqa: S311
    story = Story(personas=[])
    # The last few customers sign up near the end with a card whose first charge, when their
    # trial ends, is declined: when the story ends, Stripe is still retrying it.
    late_decliners = range(count - max(1, count // 50), count)
    # The one before them is the heavy AI user, when a monthly plan has a margin floor.
    heavy_user = late_decliners.start - 1 if lineup.margin_floors else None
    emails = set(taken)
    # Disputes are answered in turns, so that a few of them show each outcome.
    answers = itertools.cycle(DISPUTE_ANSWERS)
    for index in range(count):
        reference_id = f"{REFERENCE_PREFIX}{first_number + index:04d}"
        workload = draw_workload(models)
        if index in late_decliners and lineup.trial_days:
            persona, acts = _late_decliner(rng, index, reference_id, lineup, days, emails, workload)
        elif index == heavy_user:
            persona, acts = _heavy_ai_user(rng, index, reference_id, lineup, days, emails)
        else:
            persona, acts = _life(rng, index, reference_id, lineup, days, emails, answers, workload)
        story.personas.append(persona)
        for act in acts:
            if act.day < days:
                story.acts[act.day].append(act)
    return story


def _weighted(rng: random.Random, choices: Mapping[T, float]) -> T:
    keys = list(choices)
    return rng.choices(keys, weights=[choices[key] for key in keys])[0]


def _joining_plan(rng: random.Random, lineup: Lineup) -> str:
    choices: dict[str, float] = {}
    if lineup.free:
        choices[lineup.free] = 8
    for rank, key in enumerate(lineup.monthly):
        choices[key] = 32 if rank == 0 else 28 / (len(lineup.monthly) - 1)
    for key in lineup.yearly.values():
        choices[key] = 18 / len(lineup.yearly)
    for key in lineup.in_arrears:
        choices[key] = 12 / len(lineup.in_arrears)
    return _weighted(rng, choices)


def _join_day(rng: random.Random, days: int) -> int:
    # A few founding customers, then more each month than the month before: the business grows
    # (the share joining by day d of the story grows as d squared).
    if rng.random() < 0.08:
        return rng.randint(0, 14)
    return int((days - 25) * rng.random() ** 0.5)


def _life(
    rng: random.Random,
    index: int,
    reference_id: str,
    lineup: Lineup,
    days: int,
    emails: set[str],
    answers: Iterator[str],
    workload: Workload,
) -> tuple[Persona, list[Act]]:
    who = draw_person(rng, emails)
    plan = _joining_plan(rng, lineup)
    join = _join_day(rng, days)
    usage = _weighted(rng, USAGE_PATTERNS)
    intensity = rng.uniform(1.6, 3.0) if usage == "burning" else rng.uniform(0.25, 0.85)
    paid_in_advance = plan in lineup.monthly or plan in lineup.yearly.values()
    acts = [Act(join, index, "join", plan)]
    checkout_card: str | None = who.card
    recovers_after = dispute_answer = None
    draw = rng.random()
    if paid_in_advance and draw < 0.06:
        checkout_card = DECLINING_CARD  # the trial starts; its first charge is declined
        recovers_after = rng.randint(1, 5) if rng.random() < 0.5 else None
    elif paid_in_advance and draw < 0.1:
        checkout_card = DISPUTED_CARD
        dispute_answer = next(answers)
    elif plan in lineup.trial_without_card and draw < 0.45:
        checkout_card = None
        if rng.random() < 0.5:  # adds a card before the trial ends; the others lapse
            acts.append(Act(join + rng.randint(4, 12), index, "add_card"))
    if plan in lineup.in_arrears:
        acts.append(Act(join, index, "add_card"))  # billed later: gives its card in the portal
    acts += _later_acts(rng, index, plan, join, usage, lineup)
    if recovers_after is None and any(act.kind == "card_fails" for act in acts):
        recovers_after = rng.randint(1, 5) if rng.random() < 0.5 else None
    persona = Persona(
        index=index,
        reference_id=reference_id,
        **asdict(who),  # name, email, country and card
        checkout_card=checkout_card,
        has_login=rng.random() < 0.92,
        plan=plan,
        usage=usage,
        intensity=intensity,
        workload=workload,
        recovers_after=recovers_after,
        dispute_answer=dispute_answer,
    )
    return persona, acts


def _late_decliner(
    rng: random.Random,
    index: int,
    reference_id: str,
    lineup: Lineup,
    days: int,
    emails: set[str],
    workload: Workload,
) -> tuple[Persona, list[Act]]:
    """A customer whose trial ends in the story's last week and whose card declines then:
    Stripe retries it 3, 5 and 7 days after the first decline, so it is past due at the end."""
    plan, trial = rng.choice(sorted(lineup.trial_days.items()))
    who = draw_person(rng, emails)
    persona = Persona(
        index=index,
        reference_id=reference_id,
        **asdict(who),  # name, email, country and card
        checkout_card=DECLINING_CARD,
        has_login=True,
        plan=plan,
        usage="steady",
        intensity=rng.uniform(0.25, 0.85),
        workload=workload,
    )
    return persona, [Act(days - trial - rng.randint(2, 6), index, "join", plan)]


def _heavy_ai_user(
    rng: random.Random,
    index: int,
    reference_id: str,
    lineup: Lineup,
    days: int,
    emails: set[str],
) -> tuple[Persona, list[Act]]:
    """A customer of the highest monthly plan with a margin floor who runs a coding agent on an
    expensive model all day, far past the plan's credits: serving it costs more than the floor
    allows. It has paid for a few months when the story ends, three weeks into a period."""
    plan = lineup.margin_floors[-1]
    who = draw_person(rng, emails)
    paid_months = round(rng.randint(2, 8) * DAYS_A_MONTH)
    join = max(0, days - lineup.trial_days.get(plan, 0) - HEAVY_USER_DAYS_INTO_PERIOD - paid_months)
    persona = Persona(
        index=index,
        reference_id=reference_id,
        **asdict(who),  # name, email, country and card
        checkout_card=who.card,
        has_login=True,
        plan=plan,
        usage="burning",
        intensity=HEAVY_USER_INTENSITY,
        workload=AGENT,
    )
    return persona, [Act(join, index, "join", plan)]


def _later_acts(
    rng: random.Random, index: int, plan: str, join: int, usage: str, lineup: Lineup
) -> list[Act]:
    """A plan change, an ending (perhaps followed by a return), a refund, a failing card."""
    acts: list[Act] = []
    if plan == lineup.free:
        if rng.random() < 0.3 and lineup.monthly:
            acts.append(Act(join + rng.randint(15, 120), index, "subscribe", lineup.monthly[0]))
        return acts
    change_day = join + rng.randint(25, 200)
    rank = lineup.monthly.index(plan) if plan in lineup.monthly else None
    draw = rng.random()
    if rank is not None and rank + 1 < len(lineup.monthly) and draw < 0.16:
        acts.append(Act(change_day, index, "upgrade", lineup.monthly[rank + 1]))
    elif rank is not None and rank > 0 and draw < 0.28:
        acts.append(Act(change_day, index, "downgrade", lineup.monthly[rank - 1]))
    elif plan in lineup.yearly and draw < 0.36:
        acts.append(Act(change_day, index, "upgrade", lineup.yearly[plan]))
    else:
        change_day = join
    end_day = max(change_day, join) + rng.randint(30, 240)
    draw = rng.random()
    if draw < (0.45 if usage == "fading" else 0.14):
        acts.append(Act(end_day, index, "cancel_at_period_end"))
    elif draw < (0.5 if usage == "fading" else 0.19):
        if rng.random() < 0.7:  # the operator gives the last payment back
            acts.append(Act(end_day, index, "refund"))
        acts.append(Act(end_day, index, "cancel_now"))
    else:
        end_day = 0
    if end_day and rng.random() < 0.25:
        acts.append(Act(end_day + rng.randint(50, 110), index, "subscribe", plan))
    if rng.random() < 0.05:
        acts.append(Act(join + rng.randint(35, 300), index, "refund", share=0.5))
    if rng.random() < 0.05:
        acts.append(Act(join + rng.randint(60, 320), index, "card_fails"))
    return acts
