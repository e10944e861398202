"""Route a Stripe v1 request to its handler: keys, parameters, idempotency, expansion, errors."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import keys
from .context import API_VERSION, Ctx, public
from .errors import StripeError
from .params import parse_form, validate
from .shapes import complete
from .store import Store, new_id

Handler = Callable[..., dict[str, Any]]
# Fields that are not ids but that Stripe still lets you expand, e.g. a session's line_items.
Expansion = Callable[[Ctx, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Route:
    """One API operation: `pattern` uses `{}` for each id in the path."""

    method: str
    pattern: str
    params: type
    handler: Handler

    def match(self, method: str, path: str) -> tuple[str, ...] | None:
        """The path ids if this route serves the request."""
        if method != self.method:
            return None
        regex = "^" + re.escape(self.pattern).replace(r"\{\}", "([^/]+)") + "$"
        found = re.match(regex, path)
        return found.groups() if found else None


class Router:
    """Dispatches parsed requests; one instance serves a Sandbox."""

    def __init__(self, routes: list[Route], expansions: Mapping[tuple[str, str], Expansion]):
        self.routes = routes
        self.expansions = expansions

    def dispatch(
        self,
        store: Store,
        base_url: str,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: str,
    ) -> tuple[int, dict[str, str], bytes]:
        """Run one API call and return (status, headers, JSON body)."""
        lowered = {k.lower(): v for k, v in headers.items()}
        request_id = new_id("req", 14)
        key = lowered.get("idempotency-key") if method == "POST" else None
        response_headers = {
            "Content-Type": "application/json",
            "Request-Id": request_id,
            "Stripe-Version": lowered.get("stripe-version", API_VERSION),
        }
        if key:
            response_headers["Idempotency-Key"] = key
        try:
            api_key = keys.authenticate(store, lowered.get("authorization", ""))
            route, ids, raw = self._resolve(method, path, body)
            api_key.require(method, route.pattern)
            params = validate(route.params, raw)
            fingerprint = hashlib.sha256(f"{method} {path} {body}".encode()).hexdigest()
            if key and (saved := store.idempotent_result(key)):
                return self._replay(saved, fingerprint, key, response_headers)
        except StripeError as exc:
            return exc.status, response_headers, json.dumps(exc.body()).encode()
        ctx = Ctx(store, base_url, request_id, key)
        try:
            with store.transaction():
                result = route.handler(ctx, params, *ids)
                self._expand_all(ctx, result, params.get("expand", []))
            status, payload = 200, complete(public(result))
        except StripeError as exc:
            status, payload = exc.status, exc.body()
        encoded = json.dumps(payload).encode()
        if key:
            # Stripe saves the outcome once the endpoint started executing, errors included.
            with store.transaction():
                store.save_idempotent_result(key, fingerprint, status, encoded)
        return status, response_headers, encoded

    def _resolve(
        self, method: str, path: str, body: str
    ) -> tuple[Route, tuple[str, ...], dict[str, Any]]:
        """The route, its path ids and the parameters sent (not yet checked)."""
        path, _, query = path.partition("?")
        known_path = False
        for route in self.routes:
            ids = route.match(method, path)
            known_path = known_path or route.match(route.method, path) is not None
            if ids is not None:
                return route, ids, parse_form(query) | parse_form(body)
        raise StripeError(
            f"Unrecognized request URL ({method}: {path}).",
            status=405 if known_path else 404,
        )

    @staticmethod
    def _replay(
        saved: tuple[str, int, bytes], fingerprint: str, key: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        first_fingerprint, status, body = saved
        if first_fingerprint != fingerprint:
            error = StripeError(
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request.",
                type="idempotency_error",
            )
            return 400, headers, json.dumps(error.body()).encode()
        return status, {**headers, "Idempotent-Replayed": "true"}, body

    def _expand_all(self, ctx: Ctx, result: dict[str, Any], paths: list[str]) -> None:
        for path in paths:
            self._expand(ctx, result, path.split("."), path)

    def _expand(self, ctx: Ctx, obj: dict[str, Any], parts: list[str], path: str) -> None:
        if not parts:
            return
        key, rest = parts[0], parts[1:]
        if obj.get("object") == "list" and key == "data":
            for item in obj["data"]:
                self._expand(ctx, item, rest, path)
            return
        value = obj.get(key)
        if isinstance(value, list):
            # An array of ids (a subscription's discounts) becomes its objects; in an array of
            # objects (a schedule's phases, a phase's items) the rest of the path is expanded.
            obj[key] = value = [
                complete(public(found))
                if isinstance(item, str) and (found := ctx.store.get(item)) is not None
                else item
                for item in value
            ]
            for item in value:
                if isinstance(item, dict):
                    self._expand(ctx, item, rest, path)
            return
        if isinstance(value, str) and (found := ctx.store.get(value)) is not None:
            value = obj[key] = complete(public(found))
        elif value is None and (obj.get("object"), key) in self.expansions:
            value = obj[key] = self.expansions[(obj["object"], key)](ctx, obj)
        elif not isinstance(value, dict) and value is not None:
            raise StripeError(f"This property cannot be expanded ({path}).", param="expand")
        if isinstance(value, dict):
            self._expand(ctx, value, rest, path)
