"""API keys: any test secret key, the restricted keys made on the sandbox, and nothing live.

The sandbox is one test-mode account. A secret key `sk_test_...` may do anything, as on Stripe;
a restricted key `rk_test_...` made by `create_restricted_key` may only read or write the
resource groups it was given; a live key, an unknown restricted key or anything else is refused
as Stripe refuses a key it does not know.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .errors import StripeError
from .store import Store, new_id

ACCOUNT_ID = "acct_1SandboxTollgate"
READ, WRITE = "read", "write"
# Each API path's resource group, as a restricted key is granted it, and the name Stripe gives
# its permission in a 403, `rak_<name>_read` or `_write` (docs: "API permissions reference";
# prices keep their legacy name, `plan`). A path is in the group of the entry that is it or one
# of its folders.
RESOURCE_GROUPS: dict[str, tuple[str, str]] = {
    "/v1/customers": ("customers", "customer"),
    "/v1/products": ("products", "product"),
    "/v1/prices": ("prices", "plan"),
    "/v1/subscriptions": ("subscriptions", "subscription"),
    "/v1/subscription_items": ("subscriptions", "subscription"),
    "/v1/subscription_schedules": ("subscription_schedules", "subscription_schedule"),
    "/v1/invoices": ("invoices", "invoice"),
    "/v1/invoice_payments": ("invoices", "invoice"),
    "/v1/charges": ("charges", "charge"),
    "/v1/refunds": ("refunds", "refund"),
    "/v1/disputes": ("disputes", "dispute"),
    "/v1/payment_intents": ("payment_intents", "payment_intent"),
    "/v1/payment_methods": ("payment_methods", "payment_method"),
    "/v1/checkout/sessions": ("checkout.sessions", "checkout_session"),
    "/v1/billing/meters": ("billing.meters", "billing_meter"),
    "/v1/billing/meter_events": ("billing.meter_events", "billing_meter_event"),
    "/v1/billing_portal/sessions": ("billing_portal.sessions", "billing_portal_session"),
    "/v1/billing_portal/configurations": (
        "billing_portal.configurations",
        "billing_portal_configuration",
    ),
    # Stripe grants a customer's tax IDs with the customer (the Customers row of a key).
    "/v1/tax_ids": ("customers", "customer"),
    "/v1/events": ("events", "event"),
    "/v1/webhook_endpoints": ("webhook_endpoints", "webhook"),
    "/v1/test_helpers/test_clocks": ("test_clocks", "test_clock"),
}
_MODE_PREFIX = re.compile(r"^[a-z]{2}_(test|live)_")


@dataclass(frozen=True)
class ApiKey:
    """The key a request was made with; `permissions` is None for a secret key (everything)."""

    value: str
    permissions: Mapping[str, str] | None

    def require(self, method: str, route_pattern: str) -> None:
        """Stripe's 403 unless this key may make the request: GET reads, POST and DELETE write
        (and a key that may write a group may read it)."""
        if self.permissions is None:
            return
        group, name = resource_group(route_pattern)
        needed = READ if method == "GET" else WRITE
        if self.permissions.get(group) in (needed, WRITE):
            return
        # The wording of Stripe's answer to a restricted key (its 403 names one permission).
        raise StripeError(
            f"The provided key '{_masked(self.value, 6)}' does not have the required "
            f"permissions for this endpoint on account '{ACCOUNT_ID}'. Having the "
            f"'rak_{name}_{needed}' permission would allow this request to continue.",
            status=403,
        )


def resource_group(route_pattern: str) -> tuple[str, str]:
    """(resource group, permission name) of an API path such as `/v1/customers/{}`."""
    for prefix, group in RESOURCE_GROUPS.items():
        if route_pattern == prefix or route_pattern.startswith(prefix + "/"):
            return group
    raise LookupError(f"{route_pattern} is in no resource group of keys.RESOURCE_GROUPS")


def authenticate(store: Store, authorization: str) -> ApiKey:
    """The key of an `Authorization` header (Bearer, or Basic as `curl -u` sends it), or
    Stripe's 401: the sandbox knows every test secret key and its own restricted keys."""
    key = _key_of(authorization)
    if not key:
        raise StripeError("You did not provide an API key.", status=401)
    if key.startswith("sk_test_"):
        return ApiKey(key, None)
    permissions = store.restricted_key(key) if key.startswith("rk_test_") else None
    if permissions is None:
        # Live keys too: the sandbox is a test-mode account.
        raise StripeError(f"Invalid API Key provided: {_masked(key, 4)}", status=401)
    return ApiKey(key, permissions)


def create_restricted_key(store: Store, permissions: Mapping[str, str]) -> str:
    """A new `rk_test_` key that may read or write the given resource groups, kept in the
    sandbox's file (so every process that shares it accepts the key)."""
    groups = {group for group, _ in RESOURCE_GROUPS.values()}
    for group, level in permissions.items():
        if group not in groups:
            raise ValueError(f"no resource group {group!r}; there are {sorted(groups)}")
        if level not in (READ, WRITE):
            raise ValueError(f"{group}: {level!r} is neither {READ!r} nor {WRITE!r}")
    key = new_id("rk_test", 32)
    store.save_restricted_key(key, permissions)
    return key


def _key_of(authorization: str) -> str:
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return credentials.strip() if scheme.lower() == "bearer" else ""
    try:
        # `curl -u sk_test_...:` sends the key as the user name of Basic auth.
        return base64.b64decode(credentials.strip()).decode().partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return ""


def _masked(key: str, visible: int) -> str:
    """A key as Stripe quotes it in an error: its kind and mode, then stars, then its tail."""
    found = _MODE_PREFIX.match(key)
    prefix = found.group(0) if found else ""
    hidden = len(key) - len(prefix) - visible
    if hidden <= 0:
        return prefix + "*" * (len(key) - len(prefix))
    return prefix + "*" * hidden + key[-visible:]
