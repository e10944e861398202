"""Schemathesis against the served API, over real HTTP with a valid key: the requests the OpenAPI
document allows (and, per operation, requests it forbids) never get a 5xx, and every answer is
one the document describes: its status, content type, headers and body.

Two phases, as schemathesis' own runner has them, driven from its Python API so that they run
on the project's fixtures:

- per operation: each operation on its own, with valid and invalid parameters and bodies; about
  half the calls name a customer or subscription made beforehand, so that they reach past 404;
- stateful: sequences of calls that follow the document's links (a customer to its
  subscriptions, entitlement checks and events; a subscription to its plan changes and
  cancellation).

A failing answer does not stop the run: each distinct failure (operation, status, failed checks)
is kept with the request that caused it as a curl command, and the test reports them all.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Flaky
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.journeys import GOOD_CARD, pay_on_checkout_page
from tests.reliability.conftest import Figures, at_scale
from tests.web import WebClient

# No 5xx; every status, content type, documented header and body as the document says.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Examples per operation (valid and invalid) in the per-operation phase.
EXAMPLES = at_scale(20, 250)
# Scenarios, and calls at most in each, in the stateful phase.
SCENARIOS = at_scale(40, 400)
STEPS = at_scale(10, 20)
# How often a stateful run may start again after the server's state made a scenario's replay
# differ (Hypothesis calls that flaky; schemathesis' own runner starts again too).
RESTARTS = 20


def _settings(max_examples: int, **extra: Any) -> settings:
    return settings(
        max_examples=max_examples,
        # Calls go over HTTP to a server that calls the Stripe sandbox: no deadline per example.
        deadline=None,
        # A fresh app and database each run: examples saved from another run mean nothing.
        database=None,
        # Failures are collected, not raised, so there is nothing to shrink.
        phases=[Phase.explicit, Phase.generate],
        # Building bodies from the document takes longer than Hypothesis' default budget.
        suppress_health_check=[HealthCheck.too_slow],
        **extra,
    )


@dataclass
class Run:
    """What one phase sent, what it got, and what failed."""

    cases: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failing_cases: int = 0
    seconds: float = 0.0
    # One report per operation, status and the checks that failed, with its first request.
    failures: dict[tuple[str, int, str], str] = field(default_factory=dict)

    def check(self, case: Case, response: Any, **transport: Any) -> None:
        """Count the answer and run the checks on it; keep each distinct failure once."""
        self.cases += 1
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        try:
            case.validate_response(response, checks=CHECKS, transport_kwargs=transport or None)
        except FailureGroup as group:
            self.failing_cases += 1
            kinds = ", ".join(sorted({type(failure).__name__ for failure in group.exceptions}))
            key = (case.operation.label, response.status_code, kinds)
            self.failures.setdefault(key, group.message)

    def report(self, figures: Figures, phase: str) -> None:
        figures.add(f"{phase}: cases run", self.cases)
        figures.add(f"{phase}: seconds", round(self.seconds, 1))
        figures.add(
            f"{phase}: statuses",
            ", ".join(f"{status}: {count:,}" for status, count in sorted(self.statuses.items())),
        )
        figures.add(f"{phase}: cases that failed a check", self.failing_cases)
        figures.add(f"{phase}: failures found", len(self.failures))


@pytest.fixture
def session(api_key: str) -> Iterator[requests.Session]:
    """The HTTP session schemathesis sends with, carrying the key."""
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {api_key}"
        yield http


@pytest.fixture
def known(
    api: httpx.Client, server: str, free_customer: str, enterprise_customer: str
) -> dict[str, list[str]]:
    """Customers on Free, Enterprise, Pro's trial (paid on the Checkout page) and none, their
    subscriptions, the plans and the features: values for generated calls to name."""
    for reference in ("pro-1", "bare-1"):
        body = {"customerReferenceId": reference, "email": f"{reference}@example.com"}
        assert api.post("/customers", json=body).status_code == 201
    started = api.post(
        "/subscriptions", json={"customerReferenceId": "pro-1", "planId": "pro_monthly"}
    )
    with WebClient(base_url=server) as buyer:
        buyer.get(pay_on_checkout_page(buyer, started.json()["data"]["checkoutUrl"], GOOD_CARD))
    customers = [free_customer, enterprise_customer, "pro-1", "bare-1"]
    subscriptions = [
        subscription["id"]
        for reference in customers
        for subscription in api.get(f"/customers/{reference}").json()["data"]["subscriptions"]
    ]
    assert len(subscriptions) == 3
    catalog = [entry["plan"] for entry in api.get("/plans").json()["data"]]
    plans = [plan["id"] for plan in catalog]
    return {
        "customerReferenceId": customers,
        "subscriptionId": subscriptions,
        "planId": plans,
        "changeToPlanId": plans,
        "featureKey": sorted({feature["key"] for plan in catalog for feature in plan["features"]}),
    }


@pytest.fixture
def schema(server: str, api_key: str) -> schemathesis.BaseSchema:
    """The document the app serves, as schemathesis reads it, aimed at the app with the key."""
    config = schemathesis.Config.from_dict(
        {
            "base-url": f"{server}/api/v1/client",
            "headers": {"Authorization": f"Bearer {api_key}"},
            # Reports hide the key, and nothing else: the default hides any field named *key*,
            # featureKey and eventIdempotencyKey included.
            "output": {
                "sanitization": {
                    "keys-to-sanitize": ["authorization"],
                    "sensitive-markers": ["authorization"],
                }
            },
        }
    )
    return schemathesis.openapi.from_url(f"{server}/api/v1/openapi.json", config=config)


def _steer(schema: schemathesis.BaseSchema, known: dict[str, list[str]]) -> None:
    """About half the time, name a known customer, subscription, plan or feature where a path
    parameter or a body field asks for one: generated ids almost never exist, and a call about
    nothing stops at 404. Schemathesis applies these hooks in both phases."""

    def naming_known(values: Any) -> Any:
        names = [name for name in values if name in known] if isinstance(values, dict) else []
        if not names:
            return st.just(values)
        picks = st.fixed_dictionaries({name: st.sampled_from(known[name]) for name in names})
        return st.one_of(st.just(values), picks.map(lambda picked: {**values, **picked}))

    @schema.hook("flatmap_path_parameters")
    def known_ids(context: Any, parameters: Any) -> Any:
        return naming_known(parameters)

    @schema.hook("flatmap_body")
    def known_values(context: Any, body: Any) -> Any:
        return naming_known(body)


def _per_operation(schema: schemathesis.BaseSchema, session: requests.Session) -> Run:
    run = Run()
    for result in schema.get_all_operations():
        operation = result.ok()
        cases = st.one_of(
            operation.as_strategy(generation_mode=mode)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        )

        @_settings(EXAMPLES)
        @given(case=cases)
        def call(case: Case) -> None:
            run.check(case, case.call(session=session), session=session)

        call()
    return run


@dataclass
class Links:
    """The links the stateful phase followed: the document's, and those schemathesis inferred."""

    scenarios: int = 0
    followed: dict[str, int] = field(default_factory=dict)
    inferred: set[str] = field(default_factory=set)

    def follow(self, transition: Any) -> None:
        self.followed[transition.id] = self.followed.get(transition.id, 0) + 1
        if transition.is_inferred:
            self.inferred.add(transition.id)

    def report(self, figures: Figures, documented: int) -> None:
        figures.add("stateful: scenarios", self.scenarios)
        figures.add("stateful: calls that followed a link", sum(self.followed.values()))
        figures.add(
            "stateful: links followed",
            f"{len(self.followed) - len(self.inferred)} of the document's {documented},"
            f" and {len(self.inferred)} schemathesis inferred",
        )


def _stateful(schema: schemathesis.BaseSchema, session: requests.Session) -> tuple[Run, Links]:
    run = Run()
    links = Links()

    class Scenario(schema.as_state_machine()):  # type: ignore[misc]
        def __init__(self) -> None:
            links.scenarios += 1
            super().__init__()

        def step(self, input: Any) -> Any:
            if input.transition is not None and input.is_applied:
                links.follow(input.transition)
            return super().step(input)

        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"session": session}

        def validate_response(
            self, response: Any, case: Case, additional_checks: Any = None, **kwargs: Any
        ) -> None:
            run.check(case, response, **kwargs)

    for _ in range(RESTARTS):
        left = SCENARIOS - links.scenarios
        if left <= 0:
            break
        try:
            Scenario.run(settings=_settings(left, stateful_step_count=STEPS))
        except Flaky:
            # The server's state changed what a scenario could do when it was drawn again.
            continue
        break
    return run, links


def test_fuzzing_finds_no_5xx_and_no_undocumented_answer(
    schema: schemathesis.BaseSchema,
    session: requests.Session,
    known: dict[str, list[str]],
    figures: Figures,
) -> None:
    # Counted before schemathesis adds the links it infers to the document it holds.
    documented = sum(
        len(answer.get("links", {}))
        for operations in schema.raw_schema["paths"].values()
        for operation in operations.values()
        for answer in operation["responses"].values()
    )
    _steer(schema, known)
    started = time.monotonic()
    per_operation = _per_operation(schema, session)
    per_operation.seconds = time.monotonic() - started
    started = time.monotonic()
    stateful, links = _stateful(schema, session)
    stateful.seconds = time.monotonic() - started
    per_operation.report(figures, "per operation")
    stateful.report(figures, "stateful")
    links.report(figures, documented)
    failures = {**per_operation.failures, **stateful.failures}
    assert not failures, "\n\n".join(
        f"{operation} answered {status} ({kinds}):\n{message}"
        for (operation, status, kinds), message in failures.items()
    )
