"""The OpenAPI document describes exactly the routes the API serves, every status each can send,
the answers it sends, and links a client can follow from one call to the next."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
import schemathesis
from flask import Flask

from app.api.openapi import BASE
from tests.journeys import GOOD_CARD, pay_on_checkout_page
from tests.web import WebClient

# The refusals each operation can send, as docs/api.md's error table has them: every call 401
# and 503; every JSON body 400, 413 and 415; 402 where Stripe may charge a card, 502 wherever
# Stripe is called; 403 on every call that needs the write scope.
REFUSALS = {
    "listPlans": {"401", "503"},
    "createCustomer": {"400", "401", "403", "413", "415", "502", "503"},
    "getCustomer": {"401", "404", "503"},
    "createSubscription": {"400", "401", "402", "403", "404", "409", "413", "415", "502", "503"},
    "changePlan": {"400", "401", "402", "403", "404", "409", "413", "415", "502", "503"},
    "cancelSubscription": {"400", "401", "403", "404", "409", "502", "503"},
    "undoCancellation": {"401", "403", "404", "409", "502", "503"},
    "checkEntitlement": {"400", "401", "404", "422", "503"},
    "simulateEntitlement": {"400", "401", "404", "413", "415", "422", "503"},
    "recordEvent": {"400", "401", "403", "404", "409", "413", "415", "422", "503"},
    "recordEvents": {"400", "401", "403", "413", "415", "422", "503"},
    "importUsage": {"400", "401", "403", "413", "422", "503"},
    "listCreditPools": {"401", "404", "503"},
}
# The successes that are not a plain 200.
SUCCESSES = {
    "createCustomer": {"200", "201"},
    "createSubscription": {"200", "201"},
    "recordEvent": {"200", "201"},
}


def _document(server: str) -> dict[str, Any]:
    response = httpx.get(f"{server}/api/v1/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _operations(document: dict[str, Any]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Each operation by its id: (path, method, operation)."""
    return {
        operation["operationId"]: (path, method, operation)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _at_pointer(document: dict[str, Any], schema: dict[str, Any], pointer: str) -> dict[str, Any]:
    """The schema of what a JSON pointer picks out of an answer that ``schema`` describes."""
    for part in filter(None, pointer.split("/")):
        schema = _resolve(document, schema)
        if part.isdigit():
            schema = schema["items"]
            continue
        branches = [schema, *schema.get("anyOf", []), *schema.get("oneOf", [])]
        owners = [
            branch
            for branch in (_resolve(document, branch) for branch in branches)
            if part in branch.get("properties", {})
        ]
        assert owners, f"{pointer}: nothing has {part!r}"
        schema = owners[0]["properties"][part]
    return _resolve(document, schema)


def _body_schema(document: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    return _resolve(document, operation["requestBody"]["content"]["application/json"]["schema"])


def _flask_routes(app: Flask) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(BASE + "/"):
            continue
        path = re.sub(r"<(?:[a-z]+:)?[a-z_]+>", "{}", rule.rule[len(BASE) :])
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                routes.add((method.lower(), path))
    return routes


def test_openapi_document_matches_the_routes(app: Flask, server: str) -> None:
    document = _document(server)
    assert document["openapi"] == "3.1.0"
    documented = {
        (method, re.sub(r"\{[A-Za-z]+\}", "{}", path))
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert documented == _flask_routes(app)


def test_openapi_document_is_valid_openapi_3_1(server: str) -> None:
    schemathesis.openapi.from_dict(_document(server)).validate()


def test_openapi_request_bodies_resolve_to_schemas(server: str) -> None:
    document = _document(server)
    schemas = document["components"]["schemas"]
    for operations in document["paths"].values():
        for operation in operations.values():
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                reference = media["schema"].get("$ref")
                if reference:
                    assert reference.rsplit("/", 1)[1] in schemas
    assert "eventIdempotencyKey" in schemas["EventIn"]["required"]


def test_every_operation_lists_every_status_it_can_send(server: str) -> None:
    document = _document(server)
    operations = _operations(document)
    assert set(operations) == set(REFUSALS)
    for operation_id, (_, _, operation) in operations.items():
        responses = operation["responses"]
        successes = {status for status in responses if status < "400"}
        assert successes == SUCCESSES.get(operation_id, {"200"}), operation_id
        assert set(responses) - successes == REFUSALS[operation_id], operation_id
        for status in REFUSALS[operation_id]:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, (operation_id, status)
        assert "Retry-After" in responses["503"]["headers"]
    error = document["components"]["schemas"]["ErrorDetail"]
    assert error["required"] == ["code", "message"]


def test_answers_are_described_field_by_field(server: str) -> None:
    """Closed schemas: an answer with a field the document does not name fails the fuzzing."""
    document = _document(server)
    customer = _at_pointer(
        document, {"$ref": "#/components/schemas/CustomerAnswer"}, "/data/subscriptions/0"
    )
    assert customer["additionalProperties"] is False
    assert {"id", "planId", "status", "cancelAtPeriodEnd"} <= set(customer["required"])
    checks = _at_pointer(document, {"$ref": "#/components/schemas/EntitlementAnswer"}, "/data")
    assert set(checks["properties"]["reason"]["anyOf"][0]["enum"]) == {
        "no_subscription",
        "not_entitled",
        "feature_not_in_plan",
        "limit_exceeded",
        "insufficient_credits",
    }


def test_request_fields_that_name_the_catalog_give_its_ids_as_examples(server: str) -> None:
    schemas = _document(server)["components"]["schemas"]
    assert "free" in schemas["SubscriptionIn"]["properties"]["planId"]["examples"]
    assert "pro_monthly" in schemas["PlanChangeIn"]["properties"]["changeToPlanId"]["examples"]
    assert "api_calls" in schemas["EventIn"]["properties"]["featureKey"]["examples"]


# Links: OpenAPI 3 `links` from one operation's answer to the operations it leads to.


def _links(document: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """Every link: (source operation id, status, name, link)."""
    return [
        (operation_id, status, name, link)
        for operation_id, (_, _, operation) in _operations(document).items()
        for status, answer in operation["responses"].items()
        for name, link in answer.get("links", {}).items()
    ]


def test_links_follow_a_customer_and_its_subscription(server: str) -> None:
    document = _document(server)
    targets: dict[tuple[str, str], set[str]] = {}
    for source, status, _, link in _links(document):
        targets.setdefault((source, status), set()).add(link["operationId"])
    for status in ("201", "200"):
        assert {"getCustomer", "createSubscription", "checkEntitlement", "recordEvent"} <= targets[
            "createCustomer", status
        ]
    assert {"changePlan", "cancelSubscription", "undoCancellation"} <= targets[
        "createSubscription", "201"
    ]
    # A checkout URL is not a subscription yet: nothing to follow.
    assert ("createSubscription", "200") not in targets


def test_links_name_operations_and_fields_that_exist(server: str) -> None:
    document = _document(server)
    operations = _operations(document)
    for source_id, status, name, link in _links(document):
        where = f"{source_id} {status} {name}"
        _, _, source = operations[source_id]
        _, _, target = operations[link["operationId"]]
        target_parameters = {parameter["name"] for parameter in target.get("parameters", [])}
        expressions = list(link.get("parameters", {}).values())
        assert set(link.get("parameters", {})) <= target_parameters, where
        body = link.get("requestBody")
        if isinstance(body, dict):
            assert set(body) <= set(_body_schema(document, target)["properties"]), where
            expressions += body.values()
        elif body is not None:
            assert body == "$request.body", where
        # Every required path parameter of the target comes from the link.
        required = {
            parameter["name"]
            for parameter in target.get("parameters", [])
            if parameter["in"] == "path" and parameter["name"] != "featureKey"
        }
        assert required <= set(link.get("parameters", {})), where
        answer = source["responses"][status]["content"]["application/json"]["schema"]
        for expression in expressions:
            kind, _, pointer = expression.partition("#")
            if kind == "$response.body":
                assert _at_pointer(document, answer, pointer)["type"] == "string", where
            else:
                assert kind == "$request.body", where
                field = pointer.strip("/")
                assert field in _body_schema(document, source)["properties"], where


def _evaluate(expression: Any, request: dict[str, Any], answer: dict[str, Any]) -> Any:
    """A link's runtime expression (or an object of them) on a call's request and answer."""
    if isinstance(expression, dict):
        return {key: _evaluate(value, request, answer) for key, value in expression.items()}
    kind, _, pointer = expression.partition("#")
    value: Any = {"$request.body": request, "$response.body": answer}[kind]
    for part in filter(None, pointer.split("/")):
        value = value[int(part) if part.isdigit() else part]
    return value


def _follow(
    api: httpx.Client,
    document: dict[str, Any],
    link: dict[str, Any],
    request: dict[str, Any],
    answer: dict[str, Any],
    body: dict[str, Any],
) -> httpx.Response:
    """Make the call a link leads to: its parameters from the link, the rest from ``body`` and
    a few plain values."""
    path, method, target = _operations(document)[link["operationId"]]
    parameters = {"featureKey": "api_calls", "cancelMode": "END_OF_PERIOD"}
    parameters.update(_evaluate(link.get("parameters", {}), request, answer))
    url = re.sub(r"\{(\w+)\}", lambda match: str(parameters.pop(match[1])), path)
    query = {
        parameter["name"]: parameters[parameter["name"]]
        for parameter in target.get("parameters", [])
        if parameter["in"] == "query" and parameter["name"] in parameters
    }
    json = None
    if "requestBody" in target:
        linked = link.get("requestBody")
        json = {**body, **(_evaluate(linked, request, answer) if linked else {})}
    return api.request(method.upper(), url, params=query, json=json)


@pytest.mark.parametrize("plan", ["free", "enterprise_monthly"])
def test_following_the_links_reaches_the_customer_and_its_subscription(
    api: httpx.Client, server: str, plan: str
) -> None:
    document = _document(server)
    links = {(source, status, name): link for source, status, name, link in _links(document)}
    # Plain values for the fields the links leave to the caller.
    bodies: dict[str, dict[str, Any]] = {
        "createSubscription": {"planId": plan},
        "checkEntitlement": {},
        "simulateEntitlement": {
            "featureKey": "api_calls",
            "track": {"eventName": "api.call", "usageUnits": 1},
        },
        "recordEvent": {
            "eventIdempotencyKey": "e-1",
            "eventName": "api.call",
            "featureKey": "api_calls",
            "usageUnits": 1,
        },
        "changePlan": {
            "changeToPlanId": "starter_monthly",
            "changeType": "UPGRADE" if plan == "free" else "DOWNGRADE",
        },
    }
    request = {"customerReferenceId": "linked-1", "email": "l@example.com"}
    created = api.post("/customers", json=request)
    assert created.status_code == 201
    started = None
    # In this order, so that the customer has a plan before it records usage.
    for name in [
        "GetCustomer",
        "StartSubscription",
        "CheckEntitlement",
        "SimulateEntitlement",
        "RecordEvent",
        "ListCreditPools",
    ]:
        link = links["createCustomer", "201", name]
        body = bodies.get(link["operationId"], {})
        response = _follow(api, document, link, request, created.json(), body)
        assert response.status_code in (200, 201), (name, response.text)
        if name == "StartSubscription":
            started = (body | {"customerReferenceId": "linked-1"}, response)
    assert started is not None
    subscribed, response = started
    assert response.status_code == 201
    for name in ["GetCustomer", "CheckEntitlement", "RecordEvent", "ChangePlan"]:
        link = links["createSubscription", "201", name]
        body = bodies.get(link["operationId"], {})
        answer = _follow(api, document, link, subscribed, response.json(), body)
        if name == "ChangePlan" and plan == "free":
            # It reached the subscription; a plan paid in advance starts through Checkout.
            assert answer.status_code == 409, answer.text
            assert answer.json()["error"]["code"] == "use_checkout"
        elif name == "ChangePlan":
            # In arrears to in advance: scheduled for the end of the period.
            assert answer.status_code == 200, answer.text
            assert answer.json()["data"]["scheduledChange"]["planId"] == "starter_monthly"
        else:
            assert answer.status_code in (200, 201), (name, answer.text)
    cancelled = _follow(
        api,
        document,
        links["createSubscription", "201", "CancelSubscription"],
        subscribed,
        response.json(),
        {},
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["data"]["cancelAtPeriodEnd"] is True
    undone = _follow(
        api,
        document,
        links["cancelSubscription", "200", "UndoCancellation"],
        {},
        cancelled.json(),
        {},
    )
    assert undone.status_code == 200, undone.text
    assert undone.json()["data"]["cancelAtPeriodEnd"] is False


def _trialing_pro(api: httpx.Client, server: str) -> str:
    """A customer on Pro's trial, paid for on the sandbox's Checkout page; its subscription."""
    api.post("/customers", json={"customerReferenceId": "pro-1", "email": "p@example.com"})
    started = api.post(
        "/subscriptions", json={"customerReferenceId": "pro-1", "planId": "pro_monthly"}
    )
    with WebClient(base_url=server) as buyer:
        buyer.get(pay_on_checkout_page(buyer, started.json()["data"]["checkoutUrl"], GOOD_CARD))
    subscription: str = api.get("/customers/pro-1").json()["data"]["subscriptions"][0]["id"]
    return subscription


def test_answers_match_the_documented_schemas(
    api: httpx.Client, server: str, free_customer: str, enterprise_customer: str
) -> None:
    """A walk through every operation with real data: each answer has a documented status and
    fits its documented schema (the reliability suite's fuzzing checks thousands more)."""
    pro = _trialing_pro(api, server)
    enterprise = api.get(f"/customers/{enterprise_customer}").json()["data"]["subscriptions"][0]
    document = _document(server)
    schema = schemathesis.openapi.from_dict(document)
    event = {
        "eventIdempotencyKey": "e-1",
        "eventName": "ai.chat",
        "customerReferenceId": enterprise_customer,
        "featureKey": "ai_chat",
        "usageUnits": 20_000_000,
    }
    csv = (
        "customer_reference_id,feature_key,units,idempotency_key,event_name\n"
        f"{free_customer},api_calls,2,row-1,api.call\n"
        f"{free_customer},sso,1,row-2,api.call\n"
    )
    simulation = {
        "customerReferenceId": enterprise_customer,
        "featureKey": "ai_chat",
        "track": {"eventName": "ai.chat", "usageUnits": 20_000_000},
    }
    calls: list[tuple[str, str, dict[str, Any], int]] = [
        ("GET", "/plans", {}, 200),
        ("POST", "/customers", {"json": {"customerReferenceId": "c-1", "email": "c@x.io"}}, 201),
        ("POST", "/customers", {"json": {"customerReferenceId": "c-1", "email": "c@x.io"}}, 200),
        ("GET", f"/customers/{enterprise_customer}", {}, 200),
        ("GET", f"/entitlements/{enterprise_customer}/ai_chat", {"params": {"units": 5}}, 200),
        ("GET", f"/entitlements/{free_customer}/sso", {}, 200),
        ("GET", "/entitlements/c-1/api_calls", {}, 200),
        ("GET", "/entitlements/nobody/api_calls", {}, 404),
        ("POST", "/entitlements", {"json": simulation}, 200),
        ("POST", "/events", {"json": event}, 201),
        ("POST", "/events", {"json": event}, 200),
        ("POST", "/events", {"json": {**event, "usageUnits": 1}}, 409),
        ("POST", "/events/batch", {"json": {"events": [event, {"usageUnits": "x"}]}}, 200),
        ("POST", "/usage/import", {"content": csv, "headers": {"Content-Type": "text/csv"}}, 200),
        ("GET", f"/credits/{enterprise_customer}/pools", {}, 200),
        ("POST", "/subscriptions", {"json": {"customerReferenceId": "c-1", "planId": "free"}}, 201),
        (
            "POST",
            "/subscriptions",
            {"json": {"customerReferenceId": free_customer, "planId": "pro_monthly"}},
            200,
        ),
        (
            "POST",
            f"/subscriptions/{pro}/plan-change",
            {"json": {"changeToPlanId": "starter_monthly", "changeType": "DOWNGRADE"}},
            200,
        ),
        ("GET", "/customers/pro-1", {}, 200),
        (
            "POST",
            f"/subscriptions/{enterprise['id']}/plan-change",
            {"json": {"changeToPlanId": "enterprise_monthly", "changeType": "DOWNGRADE"}},
            409,
        ),
        (
            "POST",
            f"/subscriptions/cancellation/{pro}",
            {"params": {"cancelMode": "END_OF_PERIOD"}},
            200,
        ),
        ("DELETE", f"/subscriptions/cancellation/{pro}/scheduled", {}, 200),
        (
            "POST",
            f"/subscriptions/cancellation/{pro}",
            {"params": {"cancelMode": "IMMEDIATE"}},
            200,
        ),
        ("GET", "/customers/pro-1", {}, 200),
    ]
    for method, path, kwargs, status in calls:
        response = api.request(method, path, **kwargs)
        assert response.status_code == status, (method, path, response.text)
        template = next(
            template
            for template in document["paths"]
            if re.fullmatch(re.sub(r"\{\w+\}", "[^/]+", template), path)
        )
        assert str(status) in document["paths"][template][method.lower()]["responses"]
        schema[template][method].validate_response(response)
