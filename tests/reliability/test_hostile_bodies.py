"""Hostile input, made by hand, on every route that takes a body: each gets a 4xx with a JSON
error code that the OpenAPI document lists for the operation (never a 5xx), and none writes
anything.

The JSON routes each get a body that would write if it were accepted (a customer, a
subscription, a plan change, usage), made hostile one way at a time: nested 100,000 deep, past
the 6 MB limit (with a Content-Length, and chunked without one), not UTF-8, UTF-16 with a byte
order mark, NaN and Infinity, a 5,000-digit number, a superscript digit, a null byte or a lone
surrogate in any text. The CSV import gets the same, a 200 KB field and a 30-digit timestamp: a
file it cannot read is a 4xx, and a row it cannot record is reported rejected with its code
(docs/api.md) in a 200 that records nothing. The entitlement check gets hostile ``?units=``,
and the ids in paths get null bytes and bytes that are not UTF-8.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest

from tests.journeys import GOOD_CARD, pay_on_checkout_page
from tests.reliability.conftest import Figures
from tests.web import WebClient

MB = 1024 * 1024
# Past the 6 MB limit of any body (and the 5 MB of a CSV file).
OVER_LIMIT = 6 * MB + 1024
# Stands for the value a variant puts in the body's hostile field, in the JSON text.
SLOT = "__hostile__"


@dataclass(frozen=True)
class Route:
    """A route that takes a JSON body, with a body it would write something for, and the
    field a variant makes hostile (a number where the body has one)."""

    operation_id: str
    path: str
    body: dict[str, Any]
    field: tuple[str | int, ...]
    # Any JSON value is fine in the field: only what is not JSON, or not storable, is hostile.
    free_form: bool = False


def _routes(pro_subscription: str) -> list[Route]:
    event = {
        "eventIdempotencyKey": "hostile-1",
        "eventName": "api.call",
        "customerReferenceId": "free-1",
        "featureKey": "api_calls",
        "usageUnits": 3,
    }
    return [
        Route(
            "createCustomer",
            "/customers",
            {"customerReferenceId": "hostile-customer", "email": "h@example.com"},
            ("customerReferenceId",),
        ),
        Route(
            "createSubscription",
            "/subscriptions",
            {"customerReferenceId": "bare-1", "planId": "free"},
            ("customerReferenceId",),
        ),
        Route(
            "changePlan",
            f"/subscriptions/{pro_subscription}/plan-change",
            {"changeToPlanId": "starter_monthly", "changeType": "DOWNGRADE"},
            ("changeToPlanId",),
        ),
        Route(
            "simulateEntitlement",
            "/entitlements",
            {
                "customerReferenceId": "free-1",
                "featureKey": "api_calls",
                "track": {"eventName": "api.call", "usageUnits": 3},
            },
            ("track", "usageUnits"),
        ),
        Route("recordEvent", "/events", event, ("usageUnits",)),
        Route(
            "recordEvent",
            "/events",
            {**event, "costInput": {"tokens": 12}},
            ("costInput", "tokens"),
            free_form=True,
        ),
        Route("recordEvents", "/events/batch", {"events": [event]}, ("events", 0, "usageUnits")),
    ]


def _keyed(route: Route, number: int) -> Route:
    """The route with its events' idempotency keys numbered."""
    text = json.dumps(route.body).replace('"hostile-1"', f'"hostile-{number}"')
    return replace(route, body=json.loads(text))


def _value_at(body: Any, field: tuple[str | int, ...]) -> Any:
    for key in field:
        body = body[key]
    return body


def _text_fields(body: Any, field: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Where the body has text."""
    if isinstance(body, str):
        yield field
    elif isinstance(body, dict):
        for key, value in body.items():
            yield from _text_fields(value, (*field, key))
    elif isinstance(body, list):
        for index, value in enumerate(body):
            yield from _text_fields(value, (*field, index))


def _with_slot(body: dict[str, Any], field: tuple[str | int, ...], slot: Any = SLOT) -> str:
    """The body as JSON text, with ``slot`` in place of ``field``'s value."""
    copy = json.loads(json.dumps(body))
    _value_at(copy, field[:-1])[field[-1]] = slot
    return json.dumps(copy)


def _in_slot(route: Route, value: str) -> bytes:
    """The body with ``value``, raw JSON text, as the hostile field's value."""
    return _with_slot(route.body, route.field).replace(json.dumps(SLOT), value).encode()


def _padded(route: Route) -> bytes:
    """The body, valid but for its size: past the limit."""
    return json.dumps({**route.body, "padding": "x" * OVER_LIMIT}).encode()


def _chunked(data: bytes) -> Iterator[bytes]:
    """``data`` in 64 kB pieces: httpx sends a generator chunked, without a Content-Length."""
    for start in range(0, len(data), 64 * 1024):
        yield data[start : start + 64 * 1024]


def _invalid_utf8(route: Route) -> bytes:
    """The body with bytes that are not UTF-8 in the hostile field's string."""
    text = _with_slot(route.body, route.field).encode()
    return text.replace(json.dumps(SLOT).encode(), b'"\xc3\x28\xff"')


@dataclass(frozen=True)
class Variant:
    """One way to make a body hostile, and the statuses that may refuse it."""

    name: str
    make: Callable[[Route], Any]
    statuses: frozenset[int] = frozenset({400})
    # Only where the field is a number: in a text field, "²" is just text.
    numbers_only: bool = False
    # A JSON value, only of the wrong kind: fine where any value is (costInput).
    still_json: bool = False


JSON_VARIANTS = [
    Variant("nested 100,000 deep", lambda route: b"[" * 100_000),
    Variant("nested 100,000 deep, closed", lambda route: b"[" * 100_000 + b"]" * 100_000),
    Variant("over 6 MB with Content-Length", _padded, frozenset({413})),
    Variant("over 6 MB chunked", lambda route: _chunked(_padded(route)), frozenset({413})),
    Variant("invalid UTF-8", _invalid_utf8),
    Variant("a lone surrogate", lambda route: _in_slot(route, '"\\ud800"')),
    # JSON between systems is UTF-8 (RFC 8259); 415 would say so as well as 400.
    Variant(
        "UTF-16 with a BOM",
        lambda route: json.dumps(route.body).encode("utf-16"),
        frozenset({400, 415}),
    ),
    Variant("NaN", lambda route: _in_slot(route, "NaN")),
    Variant("Infinity", lambda route: _in_slot(route, "-Infinity")),
    Variant("a 5,000-digit number", lambda route: _in_slot(route, "9" * 5000)),
    Variant(
        "a 5,000-digit number as text",
        lambda route: _in_slot(route, json.dumps("9" * 5000)),
        still_json=True,
    ),
    Variant("1e400", lambda route: _in_slot(route, "1e400")),
    Variant(
        "a superscript two",
        lambda route: _in_slot(route, '"\u00b2"'),
        numbers_only=True,
        still_json=True,
    ),
    Variant(
        "nested 100,000 deep inside", lambda route: _in_slot(route, "[" * 100_000 + "]" * 100_000)
    ),
    Variant("a bare superscript two", lambda route: _in_slot(route, "\u00b2")),
    # An id with a null byte names nothing: 404 is as good a refusal as 400.
    Variant(
        "a null byte, escaped",
        lambda route: _in_slot(route, '"free-1\\u0000"'),
        frozenset({400, 404}),
    ),
    Variant("a null byte, raw", lambda route: _in_slot(route, '"free-1\x00"')),
]


@pytest.fixture
def pro_subscription(api: httpx.Client, server: str) -> str:
    """Pro's trial, paid on the Checkout page: a subscription a plan change would change."""
    assert api.post(
        "/customers", json={"customerReferenceId": "pro-1", "email": "p@x.io"}
    ).is_success
    started = api.post(
        "/subscriptions", json={"customerReferenceId": "pro-1", "planId": "pro_monthly"}
    )
    with WebClient(base_url=server) as buyer:
        buyer.get(pay_on_checkout_page(buyer, started.json()["data"]["checkoutUrl"], GOOD_CARD))
    subscription: str = api.get("/customers/pro-1").json()["data"]["subscriptions"][0]["id"]
    return subscription


@pytest.fixture
def state(
    api: httpx.Client, free_customer: str, enterprise_customer: str, pro_subscription: str
) -> Callable[[], dict[str, Any]]:
    """What any of the hostile bodies would change if it were accepted."""
    assert api.post(
        "/customers", json={"customerReferenceId": "bare-1", "email": "b@x.io"}
    ).is_success

    def read() -> dict[str, Any]:
        return {
            "customers": [
                api.get(f"/customers/{reference}").json()
                for reference in (free_customer, enterprise_customer, "pro-1", "bare-1")
            ],
            "hostile customer": api.get("/customers/hostile-customer").status_code,
            "usage": [
                api.get(f"/entitlements/{reference}/{feature}").json()["data"]["usage"]
                for reference in (free_customer, enterprise_customer)
                for feature in ("api_calls", "ai_chat")
            ],
        }

    return read


@pytest.fixture
def documented(server: str) -> dict[str, set[int]]:
    """The statuses the OpenAPI document lists for each operation."""
    document = httpx.get(f"{server}/api/v1/openapi.json").json()
    return {
        operation["operationId"]: {int(status) for status in operation["responses"]}
        for operations in document["paths"].values()
        for operation in operations.values()
    }


def _refused(
    response: httpx.Response,
    statuses: int | frozenset[int],
    operation_id: str,
    documented: dict[str, set[int]],
) -> str:
    """Assert a refusal with one of ``statuses``, documented for the operation, with a JSON
    error code; the code."""
    expected = {statuses} if isinstance(statuses, int) else statuses
    if operation_id == "recordEvents" and response.status_code == 200:
        # A batch refuses an event it cannot record on its own, and goes on with the others.
        results = response.json()["data"]
        assert all(result["status"] == "rejected" for result in results), response.text[:300]
        code: str = results[0]["error"]["code"]
        assert code
        return code
    assert response.status_code in expected, f"{response.status_code} {response.text[:300]}"
    assert response.status_code in documented[operation_id], "undocumented"
    assert response.headers["Content-Type"] == "application/json"
    code = response.json()["error"]["code"]
    assert code
    return code


def _send(api: httpx.Client, path: str, content: Any, content_type: str) -> httpx.Response:
    return api.post(path, content=content, headers={"Content-Type": content_type}, timeout=60)


def test_hostile_json_bodies_are_refused_and_write_nothing(
    api: httpx.Client,
    pro_subscription: str,
    state: Callable[[], dict[str, Any]],
    documented: dict[str, set[int]],
    figures: Figures,
) -> None:
    before = state()
    failures, sent = [], 0
    for route in _routes(pro_subscription):
        numeric = isinstance(_value_at(route.body, route.field), int)
        for variant in JSON_VARIANTS:
            if (variant.numbers_only and not numeric) or (variant.still_json and route.free_form):
                continue
            sent += 1
            # An event key of its own, so that one event accepted does not hide the next.
            body = variant.make(_keyed(route, sent))
            response = _send(api, route.path, body, "application/json")
            try:
                _refused(response, variant.statuses, route.operation_id, documented)
            except AssertionError as exc:
                failures.append(f"{route.operation_id}, {variant.name}: {exc}")
    after = state()
    figures.add("hostile JSON bodies sent", sent)
    figures.add("answered other than the expected 4xx", len(failures))
    assert not failures, "\n".join(failures)
    assert after == before


def test_json_routes_want_json(
    api: httpx.Client,
    pro_subscription: str,
    state: Callable[[], dict[str, Any]],
    documented: dict[str, set[int]],
) -> None:
    before = state()
    for route in _routes(pro_subscription):
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "text/csv"):
            response = _send(api, route.path, json.dumps(route.body), content_type)
            code = _refused(response, 415, route.operation_id, documented)
            assert code == "unsupported_media_type"
    assert state() == before


def test_a_null_byte_or_a_lone_surrogate_in_any_text_field_is_refused_and_writes_nothing(
    api: httpx.Client,
    pro_subscription: str,
    state: Callable[[], dict[str, Any]],
    documented: dict[str, set[int]],
    figures: Figures,
) -> None:
    """Neither is text that PostgreSQL can store (nor UTF-8, for a lone surrogate): a body with
    one is invalid, and an id with one names nothing anywhere."""
    before = state()
    failures, sent = [], 0
    for route in _routes(pro_subscription):
        for field in _text_fields(route.body):
            text = _value_at(route.body, field)
            for value in ("\x00", f"{text}\x00", f"{text}\ud800"):
                sent += 1
                body = _with_slot(_keyed(route, sent).body, field, value).encode()
                response = _send(api, route.path, body, "application/json")
                try:
                    _refused(response, frozenset({400, 404, 422}), route.operation_id, documented)
                except AssertionError as exc:
                    failures.append(f"{route.operation_id}, {'.'.join(map(str, field))}: {exc}")
    figures.add("bodies with a null byte or a lone surrogate sent", sent)
    figures.add("answered other than a 4xx", len(failures))
    assert not failures, "\n".join(failures)
    assert state() == before


HEADER = "customer_reference_id,feature_key,units,idempotency_key,event_name,timestamp\n"


def _csv_row(units: str = "3", timestamp: str = "", reference: str = "free-1") -> str:
    return f"{reference},api_calls,{units},csv-1,api.call,{timestamp}\n"


def _big_csv(size: int) -> bytes:
    """A valid file of ``size`` bytes or a little more."""
    row = _csv_row()
    return (HEADER + row * (size // len(row) + 1)).encode()


# Files the import cannot read at all: (name, the body, the status).
UNREADABLE_CSV: list[tuple[str, Callable[[], Any], int]] = [
    ("nested 100,000 deep", lambda: b"[" * 100_000, 422),
    ("over 6 MB with Content-Length", lambda: _big_csv(OVER_LIMIT), 413),
    ("over 6 MB chunked", lambda: _chunked(_big_csv(OVER_LIMIT)), 413),
    ("over 5 MB (the CSV limit) with Content-Length", lambda: _big_csv(5 * MB + 1024), 413),
    ("over 5 MB (the CSV limit) chunked", lambda: _chunked(_big_csv(5 * MB + 1024)), 413),
    ("invalid UTF-8", lambda: (HEADER + _csv_row()).encode() + b"\xc3\x28\xff\n", 400),
    ("UTF-16 with a BOM", lambda: (HEADER + _csv_row()).encode("utf-16"), 400),
    ("a 200 KB field", lambda: (HEADER + _csv_row(reference="x" * 200_000)).encode(), 422),
    ("a 200 KB header", lambda: ("x" * 200_000 + "\n" + _csv_row()).encode(), 422),
    ("no columns", lambda: b"\n\n\n", 422),
]
# Rows the import reads and rejects, each with its code (None: any code will do).
REJECTED_ROWS: list[tuple[str, str, str | None]] = [
    ("NaN units", _csv_row(units="NaN"), "invalid_units"),
    ("Infinity units", _csv_row(units="Infinity"), "invalid_units"),
    ("5,000-digit units", _csv_row(units="9" * 5000), "invalid_units"),
    ("superscript two units", _csv_row(units="\u00b2"), "invalid_units"),
    ("Arabic-Indic digit units", _csv_row(units="\u0663"), "invalid_units"),
    ("a 30-digit timestamp", _csv_row(timestamp="9" * 30), "invalid_timestamp"),
    ("a 5,000-digit timestamp", _csv_row(timestamp="9" * 5000), "invalid_timestamp"),
    (
        "a year 99999 timestamp",
        _csv_row(timestamp="99999-01-01T00:00:00+00:00"),
        "invalid_timestamp",
    ),
    ("a null byte in the customer", _csv_row(reference="free-1\x00"), None),
    ("a null byte in the units", _csv_row(units="3\x00"), "invalid_units"),
    ("a null byte in the key", _csv_row().replace("csv-1", "csv-\x00"), None),
    ("a null byte in the event name", _csv_row().replace("api.call", "api\x00"), None),
]


def test_hostile_csv_files_are_refused_whole_and_write_nothing(
    api: httpx.Client,
    state: Callable[[], dict[str, Any]],
    documented: dict[str, set[int]],
    figures: Figures,
) -> None:
    before = state()
    failures = []
    for name, body, status in UNREADABLE_CSV:
        response = _send(api, "/usage/import", body(), "text/csv")
        try:
            _refused(response, status, "importUsage", documented)
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
    figures.add("unreadable CSV files sent", len(UNREADABLE_CSV))
    figures.add("answered other than the expected 4xx", len(failures))
    assert not failures, "\n".join(failures)
    assert state() == before


def test_hostile_csv_rows_are_rejected_and_write_nothing(
    api: httpx.Client, state: Callable[[], dict[str, Any]], figures: Figures
) -> None:
    before = state()
    failures = []
    for name, row, code in REJECTED_ROWS:
        response = _send(api, "/usage/import", (HEADER + row).encode(), "text/csv")
        try:
            assert response.status_code == 200, response.text[:500]
            report = response.json()["data"]
            assert report["recorded"] == 0, report
            [rejected] = report["rejected"]
            assert rejected["line"] == 2, report
            assert rejected["code"] == (code or rejected["code"]), report
        except AssertionError as exc:
            failures.append(f"{name}: {response.status_code} {exc}")
    figures.add("hostile CSV rows sent", len(REJECTED_ROWS))
    figures.add("rows not rejected with their code", len(failures))
    assert not failures, "\n".join(failures)
    assert state() == before


HOSTILE_UNITS = [
    *(
        (units, 400)
        for units in (
            "\u00b2",
            "\u0663",
            "9" * 5000,
            "99999999999999999999",
            "NaN",
            "Infinity",
            "-1",
            "1e3",
            "1.5",
            " 1",
            "1\x00",
            "",
        )
    ),
    # Whole numbers, out of range.
    ("0", 422),
    ("1000000001", 422),
]


def test_hostile_units_of_the_entitlement_check_are_refused(
    api: httpx.Client, free_customer: str, documented: dict[str, set[int]]
) -> None:
    failures = []
    for units, status in HOSTILE_UNITS:
        response = api.get(f"/entitlements/{free_customer}/api_calls", params={"units": units})
        try:
            assert _refused(response, status, "checkEntitlement", documented) == "invalid_units"
        except AssertionError as exc:
            failures.append(f"units={units[:20]!r}: {exc}")
    assert not failures, "\n".join(failures)
    usage = api.get(f"/entitlements/{free_customer}/api_calls").json()["data"]["usage"]
    assert usage["used"] == 0


def test_hostile_ids_in_paths_are_refused(
    api: httpx.Client,
    free_customer: str,
    pro_subscription: str,
    documented: dict[str, set[int]],
) -> None:
    """A null byte, a UTF-16 surrogate or bytes that are not UTF-8 in an id of the path names
    nothing: 404 (or 400), never a 5xx."""
    body = {"changeToPlanId": "starter_monthly", "changeType": "DOWNGRADE"}
    failures = []
    for segment in ("free-1%00", "%00", "free-1%ED%A0%80", "%FF%FE", "%C0%AF", "x" * 10_000):
        for operation_id, method, path in [
            ("getCustomer", "GET", f"/customers/{segment}"),
            ("listCreditPools", "GET", f"/credits/{segment}/pools"),
            ("checkEntitlement", "GET", f"/entitlements/{segment}/api_calls"),
            ("checkEntitlement", "GET", f"/entitlements/{free_customer}/{segment}"),
            ("changePlan", "POST", f"/subscriptions/{segment}/plan-change"),
            ("cancelSubscription", "POST", f"/subscriptions/cancellation/{segment}"),
            ("undoCancellation", "DELETE", f"/subscriptions/cancellation/{segment}/scheduled"),
        ]:
            response = api.request(
                method,
                # The segment as it is, escapes and all: httpx would escape its % again.
                httpx.URL(str(api.base_url).rstrip("/") + path),
                params={"cancelMode": "IMMEDIATE"}
                if operation_id == "cancelSubscription"
                else None,
                json=body if operation_id == "changePlan" else None,
            )
            try:
                _refused(response, frozenset({400, 404}), operation_id, documented)
            except AssertionError as exc:
                failures.append(f"{method} {path[:80]}: {exc}")
    assert not failures, "\n".join(failures)
    subscription = api.get("/customers/pro-1").json()["data"]["subscriptions"][0]
    assert (subscription["status"], subscription["scheduledChange"]) == ("trialing", None)
