"""/metrics: only for the holder of the token (or on its own address), and what it shows."""

from __future__ import annotations

import glob
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from flask import Flask
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from app.health import serve_metrics
from app.stripe_sandbox import Sandbox
from tests.apps import migrate_to_head
from tests.processes import free_port, tollgate_environ, web
from tests.waiting import wait_until
from tests.web import WebClient

TOKEN = "a-token-for-prometheus"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
REQUESTS = "tollgate_http_request_duration_seconds_count"


@pytest.fixture
def metrics_token(app: Flask, monkeypatch: pytest.MonkeyPatch) -> str:
    """The served app's METRICS_TOKEN."""
    monkeypatch.setitem(app.config, "METRICS_TOKEN", TOKEN)
    return TOKEN


def total(families: Iterable[Metric], sample: str, **labels: str) -> float:
    """The sum of ``sample``'s values whose labels include ``labels`` (0 when there are none)."""
    return sum(
        found.value
        for family in families
        for found in family.samples
        if found.name == sample and labels.items() <= found.labels.items()
    )


def scrape(client: httpx.Client) -> list[Metric]:
    """What /metrics shows now."""
    response = client.get("/metrics", headers=BEARER)
    assert response.status_code == 200, response.text
    return list(text_string_to_metric_families(response.text))


def scraped(client: httpx.Client, sample: str, **labels: str) -> float:
    """``sample``'s value on a scrape of /metrics now."""
    return total(scrape(client), sample, **labels)


def test_metrics_without_a_token_configured_are_not_found(client: WebClient) -> None:
    assert client.get("/metrics", headers=BEARER).status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-the-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer é"],
)
@pytest.mark.usefixtures("metrics_token")
def test_metrics_without_the_bearer_token_are_refused(
    client: WebClient, authorization: str | None
) -> None:
    # As bytes: a client may send any, not only ASCII.
    headers = {"Authorization": authorization.encode()} if authorization else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "tollgate_" not in response.text


@pytest.mark.usefixtures("metrics_token")
def test_metrics_count_the_request_just_served_by_its_route(client: WebClient) -> None:
    before = scraped(client, REQUESTS, endpoint="/pricing", method="GET", status="2xx")
    assert client.get("/pricing").status_code == 200
    after = scraped(client, REQUESTS, endpoint="/pricing", method="GET", status="2xx")
    assert after == before + 1


@pytest.mark.usefixtures("metrics_token")
def test_metrics_label_requests_by_route_not_by_path(
    client: WebClient, api: httpx.Client, free_customer: str
) -> None:
    route = "/api/v1/client/entitlements/<reference_id>/<feature_key>"
    before = scraped(client, REQUESTS, endpoint=route)
    for feature in ("api_calls", "sso"):
        assert api.get(f"/entitlements/{free_customer}/{feature}").status_code == 200
    shown = scrape(client)
    assert total(shown, REQUESTS, endpoint=route) == before + 2
    assert not any(free_customer in str(family.samples) for family in shown)


@pytest.mark.usefixtures("metrics_token")
def test_metrics_count_delivered_webhooks_by_type_and_outcome(
    client: WebClient, sandbox: Sandbox, enterprise_customer: str
) -> None:
    before = scraped(client, "tollgate_webhook_events_total")
    created_before = scraped(
        client,
        "tollgate_webhook_events_total",
        type="customer.subscription.created",
        outcome="processed",
    )
    delivered = sandbox.deliver_pending()
    assert delivered > 0
    assert scraped(client, "tollgate_webhook_events_total") == before + delivered
    assert (
        scraped(
            client,
            "tollgate_webhook_events_total",
            type="customer.subscription.created",
            outcome="processed",
        )
        == created_before + 1
    )


@pytest.mark.usefixtures("metrics_token")
def test_metrics_show_the_overage_backlog_after_usage_over_the_credits(
    client: WebClient, api: httpx.Client, enterprise_customer: str
) -> None:
    # The plan's fee for its first period waits for the worker (enterprise is billed in arrears).
    assert scraped(client, "tollgate_overage_backlog") == 1
    # enterprise_monthly: 10,000,000 AI tokens of credit a period, then billable overage.
    event = {
        "eventIdempotencyKey": "big-chat",
        "eventName": "ai_chat.used",
        "customerReferenceId": enterprise_customer,
        "featureKey": "ai_chat",
        "usageUnits": 10_500_000,
    }
    assert api.post("/events", json=event).status_code == 201

    shown = scrape(client)
    assert total(shown, "tollgate_overage_backlog") == 2
    # Just recorded: it has waited for moments, not since some other epoch.
    assert 0 <= total(shown, "tollgate_overage_oldest_age_seconds") < 60
    assert {"tollgate_queue_depth", "tollgate_webhook_events_unprocessed"} <= {
        family.name for family in shown
    }


@pytest.mark.usefixtures("metrics_token")
def test_metrics_count_check_cache_hits_of_repeated_checks(
    client: WebClient, api: httpx.Client, free_customer: str
) -> None:
    hits = scraped(client, "tollgate_check_cache_lookups_total", result="hit")

    def answered_from_memory() -> bool:
        # PostgreSQL's listener may still be connecting: until it listens, checks read the
        # database; the second of two identical checks is a hit once it does.
        for _ in range(2):
            assert api.get(f"/entitlements/{free_customer}/api_calls").status_code == 200
        return scraped(client, "tollgate_check_cache_lookups_total", result="hit") > hits

    wait_until(answered_from_memory, failure="no check was answered from the cache")


def test_metrics_on_their_own_address_need_no_token_and_any_worker_answers(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    bind = f"127.0.0.1:{free_port()}"
    monkeypatch.setitem(app.config, "METRICS_BIND", bind)
    # Two workers of one gunicorn: both listen on the one address.
    servers = [serve_metrics(app), serve_metrics(app)]
    try:
        assert all(servers)
        response = httpx.get(f"http://{bind}/metrics")
        assert response.status_code == 200
        assert "tollgate_overage_backlog 0.0" in response.text
        assert httpx.get(f"http://{bind}/").status_code == 404
    finally:
        for server in servers:
            if server is not None:
                server.shutdown()
                server.server_close()


def _served_healthz(prometheus_dir: Path) -> int:
    """How many of the workers' files count requests to /healthz."""
    return sum(
        1
        for path in glob.glob(str(prometheus_dir / "histogram_*.db"))
        if total(MultiProcessCollector.merge([path]), REQUESTS, endpoint="/healthz")
    )


def test_metrics_under_two_gunicorn_workers_count_every_request_once(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'tollgate.sqlite3'}"
    migrate_to_head(database_url)
    prometheus_dir = tmp_path / "prometheus"
    prometheus_dir.mkdir()
    environ = tollgate_environ(
        DATABASE_URL=database_url,
        TOLLGATE_INSTANCE_PATH=str(tmp_path / "instance"),
        PROMETHEUS_MULTIPROC_DIR=str(prometheus_dir),
        METRICS_TOKEN=TOKEN,
    )
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    server = web(environ, port, tmp_path / "web.log", workers=2)
    try:
        sent = 0

        def both_workers_served() -> bool:
            nonlocal sent
            # Fresh connections, several at once, so that each worker accepts some.
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda _: httpx.get(f"{base_url}/healthz"), range(8)))
            assert all(answer.status_code == 200 for answer in answers)
            sent += len(answers)
            return _served_healthz(prometheus_dir) >= 2

        wait_until(both_workers_served, timeout=20, failure="one worker served every request")
        with httpx.Client(base_url=base_url) as client:
            assert scraped(client, REQUESTS, endpoint="/healthz") == sent
    finally:
        server.stop()
