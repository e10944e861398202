"""Every back-office page makes as many SQL queries with a lot of data as with a little: no page
queries once per row. Pages are found in the URL map, so a page added later is covered too."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

import pytest
from flask import Flask

from app import register_blueprints
from bench.admin_pages import backoffice_rules, page_path, sample_values
from bench.volume_data import Volume, fill
from tests.conftest import MigratedDatabase
from tests.query_counting import counting_queries, request_key
from tests.web import WebClient

# A little: the seven kinds of customer (paying, past due, churned, trialing, reactivated,
# unpaid, free), three months. Then ten times as much again, over a year, added to it.
SMALL = Volume(customers=7, months=3, usage_events=300, usage_days=30, audit_entries=5, seed=1)
LARGE = Volume(customers=70, months=12, usage_events=3_000, audit_entries=120, seed=2)

# Pages whose query count grows with the data today, each named with what grows; the test
# fails the day one is fixed (strict), so it leaves this list.
GROWING: dict[str, str] = {}
CSV_LINK = re.compile(r'href="([^"]*format=csv[^"]*)"')


def _rules() -> list[str]:
    probe = Flask("probe")
    register_blueprints(probe)
    return [rule.rule for rule in backoffice_rules(probe)]


RULES = _rules()


@dataclass(frozen=True)
class Counts:
    """Queries of one page (and of its CSV download, when it offers one) at both sizes."""

    small: dict[str, tuple[int, int]]  # page or CSV download n -> (status, queries)
    large: dict[str, tuple[int, int]]
    paths: tuple[str, str]


def _measure(app: Flask, client: WebClient) -> dict[str, tuple[str, dict[str, tuple[int, int]]]]:
    """Per rule: the path asked, and the status and queries of the page and of its CSV
    download (when the page links to one)."""
    with app.app_context():
        values = sample_values()
        paths = {rule.rule: page_path(app, rule, values) for rule in backoffice_rules(app)}
    measured = {}
    with counting_queries(app) as counts:
        for rule, path in paths.items():
            variants = {"page": path}
            first = client.get(path)  # the first answer may warm a cache: not counted
            for number, link in enumerate(dict.fromkeys(CSV_LINK.findall(first.text)), 1):
                variants[f"CSV download {number}"] = html.unescape(link)
                client.get(variants[f"CSV download {number}"])
            answers = {}
            for variant, url in variants.items():
                counts.clear()
                response = client.get(url)
                answers[variant] = (response.status_code, counts[request_key(url)])
            measured[rule] = (path, answers)
    return measured


_MEASURED: dict[str, dict[str, Counts]] = {}


@pytest.fixture
def query_counts(
    app: Flask, operator: WebClient, migrated_database: MigratedDatabase
) -> dict[str, Counts]:
    """Every page measured with the small data, then again with ten times more: once per
    database for the whole module, as filling and asking every page takes a while."""
    backend = migrated_database.backend
    if backend not in _MEASURED:
        with app.app_context():
            fill(SMALL)
        small = _measure(app, operator)
        with app.app_context():
            fill(LARGE)
        large = _measure(app, operator)
        _MEASURED[backend] = {
            rule: Counts(small[rule][1], large[rule][1], (small[rule][0], large[rule][0]))
            for rule in small
        }
    return _MEASURED[backend]


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param(rule, marks=pytest.mark.xfail(strict=True, reason=GROWING[rule]))
        if rule in GROWING
        else rule
        for rule in RULES
    ],
)
def test_a_back_office_page_makes_as_many_queries_with_ten_times_the_data(
    query_counts: dict[str, Counts], rule: str
) -> None:
    assert rule in query_counts, f"{rule} is in the URL map but was not measured"
    counts = query_counts[rule]
    small_path, large_path = counts.paths
    for variant, (status, small) in counts.small.items():
        assert status in (200, 302), f"{small_path} ({variant}) answered {status}"
        status, large = counts.large[variant]
        assert status in (200, 302), f"{large_path} ({variant}) answered {status}"
        assert large == small, (
            f"{rule} ({variant}): {small} queries for {small_path} with "
            f"{SMALL.customers} customers, {large} for {large_path} with "
            f"{SMALL.customers + LARGE.customers}: a query per row"
        )


def test_every_page_of_the_served_app_is_measured(
    query_counts: dict[str, Counts], app: Flask
) -> None:
    assert sorted(query_counts) == sorted(RULES)
    assert {rule.rule for rule in backoffice_rules(app)} == set(RULES)
