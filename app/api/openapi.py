"""The OpenAPI 3.1 document of the client API, served at /api/v1/openapi.json.

Request bodies come from the same pydantic models that validate them, so the document cannot
drift from what the API accepts; a test checks that it lists exactly the API's routes. Answers
are described by openapi_answers.py, and every operation lists every status it can send: the
reliability suite's fuzzing (tests/reliability/test_api_fuzzing.py) sends the API what this
document allows and fails on any status or answer it does not describe.

Links (OpenAPI 3 ``links``) say how the answer of one call feeds the next: from a customer to its
subscriptions, entitlement checks and events; from a subscription to its changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flask import Blueprint, jsonify
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from werkzeug.wrappers import Response

from app.accounts.api_keys import READ, WRITE
from app.api import schemas
from app.api.openapi_answers import ANSWERS
from app.catalog import Catalog, current_catalog

docs_bp = Blueprint("api_docs", __name__)

BASE = "/api/v1/client"

# What each refusal means; every refusal is an Error and writes nothing.
REFUSALS = {
    "400": (
        "An invalid body or parameter: `invalid_request` names the field; `invalid_json`,"
        " `invalid_units`, `invalid_cancel_mode`, `change_type_mismatch`, `invalid_csv`."
    ),
    "401": "`unauthorized`: no API key, or a key that is not valid.",
    "402": "`payment_failed`: Stripe declined the card; nothing was changed.",
    "403": "`not_entitled` or `limit_exceeded` (past a hard limit); nothing was recorded.",
    "404": (
        "`customer_not_found`, `plan_not_found`, `subscription_not_found`, `unknown_feature`,"
        " `unknown_plan`."
    ),
    "409": (
        "The state does not allow it: `already_subscribed`, `idempotency_key_reused`, or a plan"
        " change or cancellation the subscription's state does not allow (`same_plan`,"
        " `use_checkout`, `in_trial`, `cancelling`, `subscription_ended`, `not_cancelling`, ...)."
    ),
    "413": "`too_large`: a body over 6 MB, or a CSV file over 5 MB.",
    "415": "`unsupported_media_type`: send the body with `Content-Type: application/json`.",
    "422": (
        "Usage that cannot be recorded as sent: `invalid_units`, `not_metered` (a feature that"
        " is on or off), `missing_columns` or `invalid_csv` (a CSV file)."
    ),
    "502": (
        "`stripe_error`: Stripe refused, failed or did not answer in time; retry the call. What"
        " was committed before Stripe was called stands, and the retry finishes it."
    ),
    "503": (
        "`database_busy`: other writers held the database past the wait; retry after"
        " Retry-After. Nothing was written, but a batch may have recorded some of its events:"
        " sent again, they answer their first results."
    ),
}
# A key with the read scope only, on a call that needs write.
INSUFFICIENT_SCOPE = (
    "`insufficient_scope`: the API key has the read scope only, and this call needs write;"
    " nothing was written."
)
# What each scope lets a key do, as the operations say it.
SCOPE_TEXT = {
    READ: "Needs an API key with the `read` scope (every key has it).",
    WRITE: "Needs an API key with the `write` scope; a key with only `read` gets 403"
    " `insufficient_scope`.",
}
# Every call needs a key, and any call may find the database busy.
ALWAYS = ("401", "503")
# A JSON body may be unreadable, too large, or not JSON at all.
JSON_BODY = ("400", "413", "415")
# Calls that call Stripe; those that may charge a card can also be declined.
STRIPE = ("502",)
CHARGES = ("402", "502")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _path_param(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        # A path segment: the router splits paths at "/", so no id holds one.
        "schema": {"type": "string", "minLength": 1, "pattern": "^[^/]+$", **schema},
    }


def _link(
    operation_id: str,
    description: str,
    *,
    parameters: dict[str, str] | None = None,
    body: Any = None,
) -> dict[str, Any]:
    """An OpenAPI link to ``operation_id``, filled in from this call's request and answer."""
    link: dict[str, Any] = {"operationId": operation_id, "description": description}
    if parameters:
        link["parameters"] = parameters
    if body is not None:
        link["requestBody"] = body
    return link


def _operation(
    summary: str,
    operation_id: str,
    *,
    scope: str,
    answers: dict[str, tuple[str, str]],
    errors: Iterable[str] = (),
    body: type[BaseModel] | None = None,
    params: list[dict[str, Any]] | None = None,
    links: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An operation that needs an API key with ``scope``: ``answers`` maps each success status
    to (description, answer schema), ``errors`` the refusals it can send besides ALWAYS (and
    JSON_BODY, with a ``body``; and 403, with the write scope)."""
    responses: dict[str, Any] = {}
    for status, (description, schema) in answers.items():
        responses[status] = {"description": description, "content": _json(_ref(schema))}
        if links and status in links:
            responses[status]["links"] = links[status]
    refusals = {*errors, *ALWAYS, *(JSON_BODY if body is not None else ())}
    if scope == WRITE:
        refusals.add("403")
    for status in sorted(refusals):
        description = REFUSALS[status]
        if status == "403" and scope == WRITE:
            description = INSUFFICIENT_SCOPE + (f" Or {description}" if "403" in errors else "")
        responses[status] = {"description": description, "content": _json(_ref("Error"))}
    responses["503"]["headers"] = {
        "Retry-After": {
            "description": "Seconds to wait before retrying.",
            "schema": {"type": "integer"},
        }
    }
    operation: dict[str, Any] = {
        "summary": summary,
        "operationId": operation_id,
        "description": SCOPE_TEXT[scope],
        # OpenAPI 3.1 lets a security requirement of a scheme other than OAuth list the roles
        # it needs: here, the scope.
        "security": [{"apiKey": [scope]}],
        "x-required-scope": scope,
        "responses": responses,
    }
    if params:
        operation["parameters"] = params
    if body is not None:
        operation["requestBody"] = {"required": True, "content": _json(_ref(body.__name__))}
    return operation


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Names this change (8 to 64 letters, digits, - or _): a retry with the same key is the"
        " same change, applied once. Without one, every call is a change of its own."
    ),
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$"},
}

# Where the links find a customer's reference id and a subscription's id.
CUSTOMER_ANSWERED = "$response.body#/data/customerReferenceId"
CUSTOMER_ASKED = "$request.body#/customerReferenceId"
SUBSCRIPTION_STARTED = "$response.body#/data/subscription/id"
SUBSCRIPTION_ANSWERED = "$response.body#/data/id"


def _customer_links(customer: str) -> dict[str, Any]:
    """From a customer (its reference id at ``customer``) to what can be done for it."""
    return {
        "GetCustomer": _link(
            "getCustomer",
            "The customer with its subscriptions.",
            parameters={"customerReferenceId": customer},
        ),
        "StartSubscription": _link(
            "createSubscription",
            "Start a plan for the customer.",
            body={"customerReferenceId": customer},
        ),
        "CheckEntitlement": _link(
            "checkEntitlement",
            "May the customer use a feature now?",
            parameters={"customerReferenceId": customer},
        ),
        "SimulateEntitlement": _link(
            "simulateEntitlement",
            "What recording an event for the customer would do.",
            body={"customerReferenceId": customer},
        ),
        "RecordEvent": _link(
            "recordEvent",
            "Record the customer's usage.",
            body={"customerReferenceId": customer},
        ),
        "ListCreditPools": _link(
            "listCreditPools",
            "The customer's credit pools.",
            parameters={"customerReferenceId": customer},
        ),
    }


def _subscription_links(subscription: str) -> dict[str, Any]:
    """From a subscription (its id at ``subscription``) to its changes."""
    return {
        "ChangePlan": _link(
            "changePlan",
            "Upgrade or downgrade the subscription.",
            parameters={"subscriptionId": subscription},
        ),
        "CancelSubscription": _link(
            "cancelSubscription",
            "Cancel the subscription.",
            parameters={"subscriptionId": subscription},
        ),
        "UndoCancellation": _link(
            "undoCancellation",
            "Undo the subscription's cancellation at the end of the period.",
            parameters={"subscriptionId": subscription},
        ),
    }


def _paths(catalog: Catalog) -> dict[str, dict[str, Any]]:
    customer = _path_param("customerReferenceId", "The operator's own id for the customer.")
    subscription = _path_param("subscriptionId", "The subscription's id (Stripe's).")
    feature = _path_param(
        "featureKey", "A feature key of the catalog.", examples=sorted(catalog.features)
    )
    started = {
        **_subscription_links(SUBSCRIPTION_STARTED),
        "GetCustomer": _link(
            "getCustomer",
            "The customer with its new subscription.",
            parameters={"customerReferenceId": CUSTOMER_ASKED},
        ),
        "RecordEvent": _link(
            "recordEvent",
            "Record the customer's usage under its new plan.",
            body={"customerReferenceId": CUSTOMER_ASKED},
        ),
        "CheckEntitlement": _link(
            "checkEntitlement",
            "May the customer use a feature of its new plan?",
            parameters={"customerReferenceId": CUSTOMER_ASKED},
        ),
    }
    recorded = {
        "CheckEntitlement": _link(
            "checkEntitlement",
            "Where the feature's usage stands after the event.",
            parameters={
                "customerReferenceId": CUSTOMER_ASKED,
                "featureKey": "$response.body#/data/featureKey",
            },
        ),
        "ReplayEvent": _link(
            "recordEvent",
            "The same event again: it answers the first result, replayed.",
            body="$request.body",
        ),
    }
    changed = _subscription_links(SUBSCRIPTION_ANSWERED)
    customer_answer = ("The customer.", "CustomerAnswer")
    subscription_answer = ("The subscription, changed.", "SubscriptionAnswer")
    event_answer = "EventAnswer"
    return {
        "/plans": {
            "get": _operation(
                "List the plans of the catalog",
                "listPlans",
                scope=READ,
                answers={"200": ("The catalog.", "Plans")},
            )
        },
        "/customers": {
            "post": _operation(
                "Create a customer (safe to repeat with the same reference id)",
                "createCustomer",
                scope=WRITE,
                body=schemas.CustomerIn,
                answers={
                    "201": ("Created, with its Stripe customer.", "CustomerAnswer"),
                    "200": ("The reference id was known: the customer as it is.", "CustomerAnswer"),
                },
                errors=STRIPE,
                links={
                    "201": _customer_links(CUSTOMER_ANSWERED),
                    "200": _customer_links(CUSTOMER_ANSWERED),
                },
            )
        },
        "/customers/{customerReferenceId}": {
            "get": _operation(
                "A customer with its subscriptions",
                "getCustomer",
                scope=READ,
                params=[customer],
                answers={"200": customer_answer},
                errors=("404",),
            )
        },
        "/subscriptions": {
            "post": _operation(
                "Start a plan: a checkoutUrl for paid in-advance plans, else active at once",
                "createSubscription",
                scope=WRITE,
                body=schemas.SubscriptionIn,
                answers={
                    "200": (
                        "A paid in-advance plan: the buyer pays on checkoutUrl, and the"
                        " subscription exists once Stripe confirms.",
                        "CheckoutAnswer",
                    ),
                    "201": (
                        "A free or in-arrears plan, active at once.",
                        "SubscriptionStartedAnswer",
                    ),
                },
                errors=("404", "409", *CHARGES),
                links={"201": started},
            )
        },
        "/subscriptions/{subscriptionId}/plan-change": {
            "post": _operation(
                "Upgrade now (prorated) or downgrade at the end of the period, between any"
                " kinds of plan (docs/plan-changes.md)",
                "changePlan",
                scope=WRITE,
                body=schemas.PlanChangeIn,
                params=[subscription, IDEMPOTENCY_KEY],
                answers={"200": subscription_answer},
                errors=("404", "409", *CHARGES),
                links={"200": changed},
            )
        },
        "/subscriptions/cancellation/{subscriptionId}": {
            "post": _operation(
                "Cancel at the end of the period or at once",
                "cancelSubscription",
                scope=WRITE,
                params=[
                    subscription,
                    {
                        "name": "cancelMode",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "enum": ["END_OF_PERIOD", "IMMEDIATE"]},
                    },
                    IDEMPOTENCY_KEY,
                ],
                answers={"200": subscription_answer},
                errors=("400", "404", "409", *STRIPE),
                links={"200": changed},
            )
        },
        "/subscriptions/cancellation/{subscriptionId}/scheduled": {
            "delete": _operation(
                "Undo a cancellation at the end of the period",
                "undoCancellation",
                scope=WRITE,
                params=[subscription, IDEMPOTENCY_KEY],
                answers={"200": subscription_answer},
                errors=("404", "409", *STRIPE),
                links={"200": changed},
            )
        },
        "/entitlements/{customerReferenceId}/{featureKey}": {
            "get": _operation(
                "May the customer use the feature now? With usage, limit and credit balance",
                "checkEntitlement",
                scope=READ,
                params=[
                    customer,
                    feature,
                    {
                        "name": "units",
                        "in": "query",
                        "required": False,
                        "description": "How many units the customer would use (1 to a billion).",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": 1_000_000_000,
                            "default": 1,
                        },
                    },
                ],
                answers={"200": ("The check.", "EntitlementAnswer")},
                # 400: units that are not a whole number; 422: one out of range.
                errors=("400", "404", "422"),
            )
        },
        "/entitlements": {
            "post": _operation(
                "Pre-flight: what recording an event would do, without recording it",
                "simulateEntitlement",
                scope=READ,
                body=schemas.SimulationIn,
                answers={"200": ("What the event would do.", "SimulationAnswer")},
                errors=("404", "422"),
            )
        },
        "/events": {
            "post": _operation(
                "Record usage (idempotent on eventIdempotencyKey per customer)",
                "recordEvent",
                scope=WRITE,
                body=schemas.EventIn,
                answers={
                    "201": ("Recorded.", event_answer),
                    "200": (
                        "The key was used before for the same event: its first result,"
                        " replayed; nothing was written.",
                        event_answer,
                    ),
                },
                errors=("403", "404", "409", "422"),
                links={"201": recorded, "200": recorded},
            )
        },
        "/events/batch": {
            "post": _operation(
                "Record up to 1,000 events; one result per event; safe to retry whole",
                "recordEvents",
                scope=WRITE,
                body=schemas.BatchIn,
                answers={"200": ("One result per event, in order.", "BatchAnswer")},
                errors=("422",),
            )
        },
        "/usage/import": {
            "post": {
                **_operation(
                    "Import usage from a CSV file",
                    "importUsage",
                    scope=WRITE,
                    answers={"200": ("What was recorded, and every rejected row.", "ImportAnswer")},
                    # 400: not UTF-8; 413: over 5 MB; 422: not CSV, or without its columns.
                    errors=("400", "413", "422"),
                ),
                "requestBody": {
                    "required": True,
                    "description": (
                        "UTF-8 CSV with the columns customer_reference_id, feature_key, units,"
                        " idempotency_key, event_name and optionally timestamp."
                    ),
                    "content": {"text/csv": {"schema": {"type": "string"}}},
                },
            }
        },
        "/credits/{customerReferenceId}/pools": {
            "get": _operation(
                "The customer's credit pools and balances",
                "listCreditPools",
                scope=READ,
                params=[customer],
                answers={"200": ("The pools.", "CreditPools")},
                errors=("404",),
            )
        },
    }


REQUESTS: list[type[BaseModel]] = [
    schemas.CustomerIn,
    schemas.SubscriptionIn,
    schemas.PlanChangeIn,
    schemas.SimulationIn,
    schemas.EventIn,
    schemas.CostInput,
    schemas.BatchIn,
]


def _components(catalog: Catalog) -> dict[str, Any]:
    """Request bodies as they are validated, answers as they are sent; the catalog's plan ids
    and feature keys as examples of the fields that name them."""
    _, definitions = models_json_schema(
        [(model, "validation") for model in REQUESTS]
        + [(model, "serialization") for model in ANSWERS],
        ref_template="#/components/schemas/{model}",
    )
    components: dict[str, Any] = definitions["$defs"]
    plans, features = sorted(catalog.plans), sorted(catalog.features)
    for model, field, examples in (
        ("SubscriptionIn", "planId", plans),
        ("PlanChangeIn", "changeToPlanId", plans),
        ("SimulationIn", "featureKey", features),
        ("EventIn", "featureKey", features),
    ):
        components[model]["properties"][field]["examples"] = examples
    return components


def document() -> dict[str, Any]:
    """The whole OpenAPI document (in an application context: it names the catalog's plans)."""
    catalog = current_catalog()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tollgate client API",
            "version": "1.0.0",
            "description": "Entitlements, usage, credits and subscriptions for the operator.",
        },
        "servers": [{"url": BASE}],
        "security": [{"apiKey": []}],
        "paths": _paths(catalog),
        "components": {
            "schemas": _components(catalog),
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "An API key from `flask api-keys create --name NAME --scope"
                        " read|write`. Each operation lists the scope it needs: `read` (plans,"
                        " customers, entitlement checks and simulations, credit balances) or"
                        " `write` (usage events, new customers, subscriptions), which includes"
                        " read. Keys created without --scope have write."
                    ),
                }
            },
        },
    }


@docs_bp.get("/api/v1/openapi.json")
def openapi_json() -> Response:
    """The document, public like any API reference."""
    return jsonify(document())
