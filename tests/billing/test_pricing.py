"""The pricing page: tiers side by side, in words, and the monthly/yearly toggle."""

from __future__ import annotations

import re

from tests.web import WebClient, visible_text


def _cards(html: str) -> list[str]:
    return re.findall(r'data-plan="([a-z_]+)"', html)


def test_pricing_shows_each_tier_in_words(client: WebClient) -> None:
    page = client.get("/pricing")
    assert page.status_code == 200
    assert _cards(page.text) == ["free", "starter_monthly", "pro_monthly", "enterprise_monthly"]
    text = visible_text(page.text)
    for words in (
        "Free",
        "$19 / month",
        "$49 / month",
        "$499 / month",
        "14-day free trial, no card needed",
        "Most popular",
        "Single sign-on (SSO)",
        "API calls: 100,000 calls included a month, then $1 per 1,000 calls",
        "1,000,000 tokens of credit every month; up to 500,000 unused tokens roll over",
        "Starts at once; invoiced at the end of each month",
        "Start trial",
        "Start for free",
    ):
        assert words in text, words
    # Pro bills usage cost past its 0.80 margin floor; the card says so, once (no other plan does):
    # past 20% of the bill, each unit of cost is billed at 1 / (1 - 0.8) = 5 times itself.
    floor = (
        "If your usage costs more than 20% of your bill to serve, the excess cost is billed 5 "
        "times over"
    )
    assert text.count(floor) == 1


def test_home_page_leads_to_pricing(client: WebClient) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["location"] == "/pricing"


def test_yearly_toggle_without_javascript_reloads_the_page(client: WebClient) -> None:
    page = client.get("/pricing", params={"interval": "year"})
    assert page.status_code == 200
    assert "<html" in page.text
    assert _cards(page.text) == ["free", "starter_yearly", "pro_yearly", "enterprise_monthly"]
    text = visible_text(page.text)
    assert "$490 / year" in text
    assert "save 17%" in text
    assert re.search(r'href="/pricing\?interval=month"[^>]*\n?[^>]*class="outline"', page.text)


def test_yearly_toggle_with_htmx_swaps_only_the_cards(client: WebClient) -> None:
    fragment = client.get("/pricing", params={"interval": "year"}, headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert "<html" not in fragment.text
    assert 'id="pricing-table"' in fragment.text
    assert _cards(fragment.text) == ["free", "starter_yearly", "pro_yearly", "enterprise_monthly"]
    assert "HX-Request" in fragment.headers["vary"]

    back = client.get("/pricing", params={"interval": "month"}, headers={"HX-Request": "true"})
    assert _cards(back.text) == ["free", "starter_monthly", "pro_monthly", "enterprise_monthly"]


def test_htmx_history_restore_gets_the_whole_page(client: WebClient) -> None:
    page = client.get(
        "/pricing",
        params={"interval": "year"},
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert "<html" in page.text


def test_unknown_interval_is_a_clear_400(client: WebClient) -> None:
    page = client.get("/pricing", params={"interval": "weekly"})
    assert page.status_code == 400
    assert "Unknown billing interval “weekly”: choose month or year." in visible_text(page.text)


def test_start_buttons_lead_to_signup_with_the_plan(client: WebClient) -> None:
    page = client.get("/pricing")
    assert 'href="/signup?plan=pro_monthly"' in page.text
    assert 'href="/signup?plan=free"' in page.text
