"""The OpenAPI document describes exactly the routes the API serves."""

from __future__ import annotations

import re

import httpx
from flask import Flask

from app.api.openapi import BASE


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
    response = httpx.get(f"{server}/api/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    documented = {
        (method, re.sub(r"\{[A-Za-z]+\}", "{}", path))
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert documented == _flask_routes(app)


def test_openapi_request_bodies_resolve_to_schemas(server: str) -> None:
    document = httpx.get(f"{server}/api/v1/openapi.json").json()
    schemas = document["components"]["schemas"]
    for operations in document["paths"].values():
        for operation in operations.values():
            content = operation.get("requestBody", {}).get("content", {})
            for media in content.values():
                reference = media["schema"].get("$ref")
                if reference:
                    assert reference.rsplit("/", 1)[1] in schemas
    assert "eventIdempotencyKey" in schemas["EventIn"]["required"]
