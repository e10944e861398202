"""A `stripe.HTTPClient` that hands the SDK's requests to a Sandbox in process, no sockets."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from io import BytesIO
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import stripe

from . import faults

if TYPE_CHECKING:
    from .sandbox import Sandbox


class CaseInsensitiveHeaders(Mapping[str, str]):
    """Response headers looked up without regard to case, as real HTTP clients do."""

    def __init__(self, headers: Mapping[str, str]) -> None:
        self._items = {k.lower(): (k, v) for k, v in headers.items()}

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (original for original, _ in self._items.values())

    def __len__(self) -> int:
        return len(self._items)


class SandboxHTTPClient(stripe.HTTPClient):
    """Use with `stripe.StripeClient(api_key=..., http_client=SandboxHTTPClient(sandbox))`."""

    name = "stripe_sandbox"

    def __init__(self, sandbox: Sandbox, latency: float = 0.0) -> None:
        """``latency``: seconds each answer takes, as a far or slow Stripe would (0: none)."""
        super().__init__()
        self.sandbox = sandbox
        self.latency = latency

    def request(  # type: ignore[override]  # the base declares a private `_usage` kwarg
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
    ) -> tuple[str, int, Mapping[str, str]]:
        """Serve one SDK request from the sandbox, or fail it as the sandbox's faults say."""
        parts = urlsplit(url)
        if self.latency:
            # The wait is the network's: the sandbox holds none of its own locks meanwhile.
            time.sleep(self.latency)
        if isinstance(post_data, bytes):
            post_data = post_data.decode()
        active = self.sandbox.faults
        fault = active.draw(method.upper(), parts.path) if active is not None else None
        if fault is not None and fault in faults.ANSWERED:
            status, response_headers, body = faults.answer(fault)
            return body.decode(), status, CaseInsensitiveHeaders(response_headers)
        if fault == "dropped":
            raise faults.network_error(fault)
        status, response_headers, body = self.sandbox.handle(
            method.upper(), parts.path, headers or {}, post_data, parts.query
        )
        if fault is not None and fault in faults.AFTER_APPLYING:
            # Done and saved (under its Idempotency-Key too), but the answer never arrives.
            raise faults.network_error(fault)
        # The SDK reads headers such as `request-id` case-insensitively.
        return body.decode(), status, CaseInsensitiveHeaders(response_headers)

    def request_stream(  # type: ignore[override]
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
    ) -> tuple[Any, int, Mapping[str, str]]:
        """Streaming variant (used for file downloads): the body as a byte stream."""
        content, status, response_headers = self.request(method, url, headers, post_data)
        return BytesIO(content.encode()), status, response_headers

    def close(self) -> None:
        """Nothing to release: there is no connection."""
