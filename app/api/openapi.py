"""The OpenAPI 3.1 document of the client API, served at /api/v1/openapi.json.

Request bodies come from the same pydantic models that validate them, so the document cannot
drift from what the API accepts; a test checks that it lists exactly the API's routes.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from pydantic import BaseModel
from werkzeug.wrappers import Response

from app.api import schemas

docs_bp = Blueprint("api_docs", __name__)

BASE = "/api/v1/client"
ERRORS = {"400", "401", "404", "409"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _operation(
    summary: str,
    operation_id: str,
    *,
    body: type[BaseModel] | None = None,
    params: list[dict[str, Any]] | None = None,
    ok: str = "200",
    errors: set[str] | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        ok: {
            "description": "Success: the result is under `data`.",
            "content": {"application/json": {"schema": _ref("Data")}},
        }
    }
    for status in sorted(errors if errors is not None else ERRORS):
        responses[status] = {
            "description": "Refused: nothing was written.",
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    # Any call may find the database held by other writers past the wait (LOCK_WAIT_MS).
    responses["503"] = {
        "description": (
            "The database was busy; retry after Retry-After. Nothing was written, but a batch"
            " may have recorded some of its events: sent again, they answer their first results."
        ),
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        "content": {"application/json": {"schema": _ref("Error")}},
    }
    operation: dict[str, Any] = {
        "summary": summary,
        "operationId": operation_id,
        "responses": responses,
    }
    if params:
        operation["parameters"] = params
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body.__name__)}},
        }
    return operation


CUSTOMER = _path_param("customerReferenceId", "The operator's own id for the customer.")
SUBSCRIPTION = _path_param("subscriptionId", "The subscription's id (Stripe's).")
FEATURE = _path_param("featureKey", "A feature key of the catalog.")
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

PATHS: dict[str, dict[str, Any]] = {
    "/plans": {"get": _operation("List the plans of the catalog", "listPlans", errors={"401"})},
    "/customers": {
        "post": _operation(
            "Create a customer (safe to repeat with the same reference id)",
            "createCustomer",
            body=schemas.CustomerIn,
            ok="201",
        )
    },
    "/customers/{customerReferenceId}": {
        "get": _operation("A customer with its subscriptions", "getCustomer", params=[CUSTOMER])
    },
    "/subscriptions": {
        "post": _operation(
            "Start a plan: a checkoutUrl for paid in-advance plans, else active at once",
            "createSubscription",
            body=schemas.SubscriptionIn,
        )
    },
    "/subscriptions/{subscriptionId}/plan-change": {
        "post": _operation(
            "Upgrade now (prorated) or downgrade at the end of the period",
            "changePlan",
            body=schemas.PlanChangeIn,
            params=[SUBSCRIPTION, IDEMPOTENCY_KEY],
        )
    },
    "/subscriptions/cancellation/{subscriptionId}": {
        "post": _operation(
            "Cancel at the end of the period or at once",
            "cancelSubscription",
            params=[
                SUBSCRIPTION,
                {
                    "name": "cancelMode",
                    "in": "query",
                    "required": True,
                    "schema": {"type": "string", "enum": ["END_OF_PERIOD", "IMMEDIATE"]},
                },
                IDEMPOTENCY_KEY,
            ],
        )
    },
    "/subscriptions/cancellation/{subscriptionId}/scheduled": {
        "delete": _operation(
            "Undo a cancellation at the end of the period",
            "undoCancellation",
            params=[SUBSCRIPTION, IDEMPOTENCY_KEY],
        )
    },
    "/entitlements/{customerReferenceId}/{featureKey}": {
        "get": _operation(
            "May the customer use the feature now? With usage, limit and credit balance",
            "checkEntitlement",
            params=[
                CUSTOMER,
                FEATURE,
                {
                    "name": "units",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "default": 1},
                },
            ],
        )
    },
    "/entitlements": {
        "post": _operation(
            "Pre-flight: what recording an event would do, without recording it",
            "simulateEntitlement",
            body=schemas.SimulationIn,
        )
    },
    "/events": {
        "post": _operation(
            "Record usage (idempotent on eventIdempotencyKey per customer)",
            "recordEvent",
            body=schemas.EventIn,
            ok="201",
            errors={"400", "401", "403", "404", "409"},
        )
    },
    "/events/batch": {
        "post": _operation(
            "Record up to 1,000 events; one result per event; safe to retry whole",
            "recordEvents",
            body=schemas.BatchIn,
        )
    },
    "/usage/import": {
        "post": {
            **_operation("Import usage from a CSV file", "importUsage"),
            "requestBody": {
                "required": True,
                "content": {"text/csv": {"schema": {"type": "string"}}},
            },
        }
    },
    "/credits/{customerReferenceId}/pools": {
        "get": _operation(
            "The customer's credit pools and balances", "listCreditPools", params=[CUSTOMER]
        )
    },
}


def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    models: list[type[BaseModel]] = [
        schemas.CustomerIn,
        schemas.SubscriptionIn,
        schemas.PlanChangeIn,
        schemas.SimulationIn,
        schemas.EventIn,
        schemas.BatchIn,
    ]
    components: dict[str, Any] = {
        "Data": {"type": "object", "required": ["data"], "properties": {"data": {}}},
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                }
            },
        },
    }
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tollgate client API",
            "version": "1.0.0",
            "description": "Entitlements, usage, credits and subscriptions for the operator.",
        },
        "servers": [{"url": BASE}],
        "security": [{"apiKey": []}],
        "paths": PATHS,
        "components": {
            "schemas": components,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
    }


@docs_bp.get("/api/v1/openapi.json")
def openapi_json() -> Response:
    """The document, public like any API reference."""
    return jsonify(document())
