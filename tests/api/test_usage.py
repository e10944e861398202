"""Entitlement checks, usage events, batches, CSV imports and credit pools over the API."""

from __future__ import annotations

import gc

import httpx
import pytest
from flask import Flask

from tests.entitlements.helpers import locked_by_another_writer


def _event(reference: str, key: str, units: int, feature: str = "api_calls") -> dict:
    return {
        "eventIdempotencyKey": key,
        "eventName": f"{feature}.used",
        "customerReferenceId": reference,
        "featureKey": feature,
        "usageUnits": units,
    }


def test_check_allows_within_limit_and_explains_refusals(
    api: httpx.Client, free_customer: str
) -> None:
    allowed = api.get(f"/entitlements/{free_customer}/api_calls").json()["data"]
    assert allowed["isAllowed"] is True
    assert allowed["usage"]["limit"] == 1000
    assert allowed["usage"]["remaining"] == 1000

    too_many = api.get(f"/entitlements/{free_customer}/api_calls", params={"units": 1001}).json()[
        "data"
    ]
    assert too_many["isAllowed"] is False
    assert too_many["reason"] == "limit_exceeded"

    sso = api.get(f"/entitlements/{free_customer}/sso").json()["data"]
    assert sso["isAllowed"] is False
    assert sso["reason"] == "feature_not_in_plan"

    unknown = api.get(f"/entitlements/{free_customer}/teleport")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_feature"
    assert api.get("/entitlements/nobody/api_calls").status_code == 404
    assert (
        api.get(f"/entitlements/{free_customer}/api_calls", params={"units": "-3"}).status_code
        == 400
    )


def test_check_without_subscription_says_so(api: httpx.Client) -> None:
    api.post("/customers", json={"customerReferenceId": "new-1", "email": "n@example.com"})
    data = api.get("/entitlements/new-1/api_calls").json()["data"]
    assert data["isAllowed"] is False
    assert data["reason"] == "no_subscription"


def test_event_is_recorded_once_per_idempotency_key(api: httpx.Client, free_customer: str) -> None:
    first = api.post("/events", json=_event(free_customer, "evt-1", 10))
    assert first.status_code == 201
    assert first.json()["data"]["usage"]["used"] == 10
    again = api.post("/events", json=_event(free_customer, "evt-1", 10))
    assert again.status_code == 200
    assert again.json()["data"]["replayed"] is True
    assert again.json()["data"]["usage"] == first.json()["data"]["usage"]
    conflict = api.post("/events", json=_event(free_customer, "evt-1", 11))
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_key_reused"
    assert api.get(f"/entitlements/{free_customer}/api_calls").json()["data"]["usage"]["used"] == 10


def test_event_behind_a_writer_that_holds_on_is_a_503_and_its_retry_records_once(
    api: httpx.Client, free_customer: str, synced: Flask
) -> None:
    with locked_by_another_writer(synced.config["SQLALCHEMY_DATABASE_URI"], free_customer):
        refused = api.post("/events", json=_event(free_customer, "evt-held", 5))
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["error"]["code"] == "database_busy"
    assert api.get(f"/entitlements/{free_customer}/api_calls").json()["data"]["usage"]["used"] == 0
    retried = api.post("/events", json=_event(free_customer, "evt-held", 5))
    assert retried.status_code == 201
    assert retried.json()["data"]["usage"]["used"] == 5


def test_event_for_customer_without_plan_is_refused_and_not_written(api: httpx.Client) -> None:
    api.post("/customers", json={"customerReferenceId": "new-1", "email": "n@example.com"})
    response = api.post("/events", json=_event("new-1", "evt-1", 5))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_entitled"


@pytest.mark.parametrize("units", [0, -5, 10_000_000_000, 2**70 + 1, "5", 2.5, None])
def test_event_with_bad_units_is_400(api: httpx.Client, free_customer: str, units: object) -> None:
    response = api.post(
        "/events", json={**_event(free_customer, "evt-bad", 1), "usageUnits": units}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert "usageUnits" in response.json()["error"]["message"]
    assert api.get(f"/entitlements/{free_customer}/api_calls").json()["data"]["usage"]["used"] == 0


def test_simulation_shows_credits_and_overage_without_recording(
    api: httpx.Client, enterprise_customer: str
) -> None:
    body = {
        "customerReferenceId": enterprise_customer,
        "featureKey": "ai_chat",
        "track": {"eventName": "chat", "usageUnits": 5000},
    }
    simulation = api.post("/entitlements", json=body).json()["data"]["simulation"]
    assert simulation["wouldExceedLimit"] is False
    assert simulation["fromCredits"] == [
        {"pool": "ai_tokens", "denomination": "tokens", "amount": 5000}
    ]
    assert simulation["overageUnits"] == 0
    pools = api.get(f"/credits/{enterprise_customer}/pools").json()["data"]
    assert pools[0]["balance"] == 10_000_000


def test_batch_answers_each_event_and_is_safe_to_retry(
    api: httpx.Client, enterprise_customer: str, free_customer: str
) -> None:
    events = [
        _event(enterprise_customer, "b-1", 1000, "ai_chat"),
        _event(free_customer, "b-2", 5),
        _event("nobody", "b-3", 5),
        {**_event(free_customer, "b-4", 5), "featureKey": "teleport"},
        {"eventIdempotencyKey": "b-5"},
    ]
    first = api.post("/events/batch", json={"events": events})
    assert first.status_code == 200
    statuses = [item["status"] for item in first.json()["data"]]
    assert statuses == ["recorded", "recorded", "rejected", "rejected", "rejected"]
    codes = [item.get("error", {}).get("code") for item in first.json()["data"]]
    assert codes[2:] == ["unknown_customer", "unknown_feature", "invalid_request"]
    # The malformed one is named by its place in the batch and its missing fields.
    malformed = first.json()["data"][4]["error"]["message"]
    assert malformed.startswith("events[4]: ")
    assert "customerReferenceId" in malformed

    retry = api.post("/events/batch", json={"events": events})
    assert [item["status"] for item in retry.json()["data"]][:2] == ["replayed", "replayed"]
    assert api.get(f"/entitlements/{free_customer}/api_calls").json()["data"]["usage"]["used"] == 5
    pools = api.get(f"/credits/{enterprise_customer}/pools").json()["data"]
    assert pools[0]["balance"] == 10_000_000 - 1000


def test_batch_over_1000_events_is_refused_whole(api: httpx.Client, free_customer: str) -> None:
    events = [_event(free_customer, f"k-{n}", 1) for n in range(1001)]
    response = api.post("/events/batch", json={"events": events})
    assert response.status_code == 400
    assert api.get(f"/entitlements/{free_customer}/api_calls").json()["data"]["usage"]["used"] == 0


def test_batches_and_csv_imports_pause_the_collector_only_while_they_are_recorded(
    api: httpx.Client, enterprise_customer: str
) -> None:
    # The server runs in this process: what its calls do to the collector shows here.
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    rows = [f"{enterprise_customer},api_calls,1,csv-{n},api.call" for n in range(5000)]
    csv = "customer_reference_id,feature_key,units,idempotency_key,event_name\n" + "\n".join(rows)
    gc.callbacks.append(count)
    try:
        for batch in range(5):
            events = [_event(enterprise_customer, f"gc-{batch}-{n}", 1) for n in range(1000)]
            assert api.post("/events/batch", json={"events": events}).status_code == 200
        imported = api.post(
            "/usage/import", content=csv, headers={"Content-Type": "text/csv"}, timeout=60
        )
    finally:
        gc.callbacks.remove(count)
    assert imported.json()["data"] == {"recorded": 5000, "rejected": []}
    # Unpaused, these 10,000 events set off about two hundred collections.
    assert len(collections) < 20
    assert gc.isenabled()
    refused = api.post("/events/batch", json={"events": [{"eventIdempotencyKey": "x"}] * 1001})
    assert refused.status_code == 400
    assert gc.isenabled()


def test_csv_upload_reports_each_rejected_row(api: httpx.Client, free_customer: str) -> None:
    csv_text = (
        "customer_reference_id,feature_key,units,idempotency_key,event_name\n"
        f"{free_customer},api_calls,7,csv-1,api.call\n"
        f"{free_customer},api_calls,-1,csv-2,api.call\n"
        f"nobody,api_calls,1,csv-3,api.call\n"
    )
    response = api.post("/usage/import", content=csv_text, headers={"Content-Type": "text/csv"})
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["recorded"] == 1
    assert [row["line"] for row in data["rejected"]] == [3, 4]
    assert api.get(f"/entitlements/{free_customer}/api_calls").json()["data"]["usage"]["used"] == 7


def test_oversized_body_is_413_in_json(api: httpx.Client) -> None:
    response = api.post(
        "/customers",
        content=b"{" + b" " * (7 * 1024 * 1024) + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


def test_api_call_neither_reads_nor_sets_a_session_cookie(
    api: httpx.Client, free_customer: str
) -> None:
    response = api.get(
        f"/entitlements/{free_customer}/api_calls", headers={"Cookie": "session=not-a-session"}
    )
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert "Cookie" not in response.headers.get("Vary", "")
