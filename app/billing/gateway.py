"""The one door to Stripe: every Stripe call of the application goes through this module.

It builds the application's ``stripe.StripeClient``s: one with the short time limits of pages
and API calls, one with the longer ones of commands and background work (``gateway()`` picks by
whether a request is being served). Without ``STRIPE_SECRET_KEY`` their HTTP client is the
sandbox's, which answers in process; nothing else in the application knows the difference.

No call is made while the database session holds a write transaction (transaction_guard.py).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import stripe
from flask import Flask, current_app, has_request_context

from app.billing.key_permissions import CUSTOMER_MESSAGE, operator_message
from app.billing.transaction_guard import refuse_inside_write_transaction

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

SANDBOX_API_KEY = "sk_test_tollgate_sandbox"


class GatewayError(Exception):
    """Stripe refused or could not be reached; ``str()`` is fit to show the customer.

    ``http_status`` is Stripe's answer (401: the key is not accepted, 403: it lacks a
    permission, None: no answer) and ``detail`` Stripe's own message for the operator's
    commands and logs (for a 403, with the missing permission named: key_permissions.py).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status
        self.detail = detail or message


def _translate_errors(call: Callable[P, T]) -> Callable[P, T]:
    """Turn the SDK's errors into GatewayError with a message a customer can read."""

    @wraps(call)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        if current_app.config["STRIPE_CALL_GUARD"]:
            refuse_inside_write_transaction(call.__name__)
        try:
            result = call(*args, **kwargs)
        except stripe.CardError as exc:
            raise GatewayError(
                exc.user_message or "Your card was declined.", code=exc.code
            ) from exc
        except stripe.PermissionError as exc:
            # A restricted key without the permission (403): the customer can do nothing about
            # it, the operator must grant it, so the log says which at error level.
            detail = operator_message(call.__name__, exc.user_message or str(exc))
            log.error("%s", detail, extra={"stripe_request_id": exc.request_id})
            raise GatewayError(CUSTOMER_MESSAGE, http_status=403, detail=detail) from exc
        except stripe.StripeError as exc:
            log.warning(
                "Stripe call %s failed: %s",
                call.__name__,
                exc.user_message or exc,
                extra={"stripe_request_id": exc.request_id},
            )
            error = exc.error
            raise GatewayError(
                "Our payment provider did not confirm this. Please try again in a moment.",
                # The SDK leaves `code` unset on a RateLimitError; the error body has it.
                code=exc.code or (error.code if error is not None else None),
                http_status=exc.http_status,
                detail=exc.user_message or str(exc),
            ) from exc
        # Stripe's id of the call, which its support and dashboard find it by.
        answer = getattr(result, "last_response", None)
        log.debug(
            "Stripe call %s answered",
            call.__name__,
            extra={"stripe_request_id": getattr(answer, "request_id", None)},
        )
        return result

    return wrapper


class StripeGateway:
    """A narrow, typed interface over the Stripe API calls Tollgate makes."""

    def __init__(self, client: stripe.StripeClient) -> None:
        self.client = client

    # Customers

    @_translate_errors
    def create_customer(
        self, *, email: str | None, name: str | None, reference_id: str
    ) -> stripe.Customer:
        """Create the Stripe customer of a Tollgate customer, once: the key makes retries safe."""
        params: dict[str, Any] = {"metadata": {"tollgate_customer": reference_id}}
        if email:
            params["email"] = email
        if name:
            params["name"] = name
        return self.client.v1.customers.create(
            params,  # type: ignore[arg-type]
            {"idempotency_key": f"tollgate-customer-{reference_id}"},
        )

    # Catalog

    @_translate_errors
    def prices_by_lookup_key(self, lookup_keys: list[str]) -> dict[str, stripe.Price]:
        """The active prices with these lookup keys, by lookup key."""
        found: dict[str, stripe.Price] = {}
        for start in range(0, len(lookup_keys), 10):  # Stripe takes at most 10 lookup keys
            page = self.client.v1.prices.list(
                {"lookup_keys": lookup_keys[start : start + 10], "active": True, "limit": 100}
            )
            found.update({price.lookup_key: price for price in page.data if price.lookup_key})
        return found

    @_translate_errors
    def retrieve_product(self, product_id: str) -> stripe.Product | None:
        """The product with this id, or None when Stripe has none."""
        try:
            return self.client.v1.products.retrieve(product_id)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return None
            raise

    @_translate_errors
    def create_product(self, params: dict[str, Any]) -> stripe.Product:
        """Create a product."""
        return self.client.v1.products.create(params)  # type: ignore[arg-type]

    @_translate_errors
    def update_product(self, product_id: str, params: dict[str, Any]) -> stripe.Product:
        """Change a product's name, description or metadata."""
        return self.client.v1.products.update(product_id, params)  # type: ignore[arg-type]

    @_translate_errors
    def create_price(self, params: dict[str, Any]) -> stripe.Price:
        """Create a price (prices are immutable: a new amount is a new price)."""
        return self.client.v1.prices.create(params)  # type: ignore[arg-type]

    @_translate_errors
    def archive_price(self, price_id: str) -> stripe.Price:
        """Stop offering a price; existing subscriptions keep it."""
        return self.client.v1.prices.update(price_id, {"active": False})

    @_translate_errors
    def meters(self) -> Iterator[stripe.billing.Meter]:
        """Every billing meter of the account."""
        return self.client.v1.billing.meters.list({"limit": 100}).auto_paging_iter()

    @_translate_errors
    def create_meter(self, params: dict[str, Any]) -> stripe.billing.Meter:
        """Create a billing meter."""
        return self.client.v1.billing.meters.create(params)  # type: ignore[arg-type]

    @_translate_errors
    def report_usage(
        self, *, event_name: str, stripe_customer_id: str, value: int, identifier: str, at: int
    ) -> None:
        """Send one meter event; Stripe counts an ``identifier`` once, so a retry is harmless."""
        self.client.v1.billing.meter_events.create(
            {
                "event_name": event_name,
                "payload": {"stripe_customer_id": stripe_customer_id, "value": str(value)},
                "identifier": identifier,
                "timestamp": at,
            }
        )

    # Checkout and subscriptions

    @_translate_errors
    def create_checkout_session(
        self, params: dict[str, Any], idempotency_key: str
    ) -> stripe.checkout.Session:
        """Open a Checkout Session; the buyer pays on Stripe's page at ``session.url``."""
        return self.client.v1.checkout.sessions.create(
            params,  # type: ignore[arg-type]
            {"idempotency_key": idempotency_key},
        )

    @_translate_errors
    def retrieve_checkout_session(self, session_id: str) -> stripe.checkout.Session:
        """A Checkout Session as Stripe has it now."""
        return self.client.v1.checkout.sessions.retrieve(session_id)

    @_translate_errors
    def create_subscription(
        self, params: dict[str, Any], idempotency_key: str
    ) -> stripe.Subscription:
        """Subscribe a customer directly, without Checkout (free and in-arrears plans)."""
        return self.client.v1.subscriptions.create(
            params,  # type: ignore[arg-type]
            {"idempotency_key": idempotency_key},
        )

    @_translate_errors
    def retrieve_subscription(
        self, subscription_id: str, expand: list[str] | None = None
    ) -> stripe.Subscription:
        """A subscription as Stripe has it now (a cancelled one too)."""
        return self.client.v1.subscriptions.retrieve(
            subscription_id, {"expand": expand} if expand else None
        )

    @_translate_errors
    def update_subscription(
        self, subscription_id: str, params: dict[str, Any], idempotency_key: str
    ) -> stripe.Subscription:
        """Change a subscription (price, cancel_at_period_end, ...)."""
        return self.client.v1.subscriptions.update(
            subscription_id,
            params,  # type: ignore[arg-type]
            {"idempotency_key": idempotency_key},
        )

    @_translate_errors
    def cancel_subscription(self, subscription_id: str) -> stripe.Subscription:
        """End a subscription at once; one that has ended already is answered as it is.

        The DELETE takes no idempotency key: retried after its answer was lost, Stripe refuses
        it, since the subscription is cancelled. That refusal is read as done.
        """
        try:
            return self.client.v1.subscriptions.cancel(subscription_id)
        except stripe.InvalidRequestError:
            current = self.client.v1.subscriptions.retrieve(subscription_id)
            if current.status != "canceled":
                raise
            return current

    @_translate_errors
    def preview_invoice(self, params: dict[str, Any]) -> stripe.Invoice:
        """What Stripe would invoice for a subscription change, without changing anything."""
        return self.client.v1.invoices.create_preview(params)  # type: ignore[arg-type]

    @_translate_errors
    def schedule_for(self, subscription_id: str) -> stripe.SubscriptionSchedule:
        """A schedule that starts as the subscription is now, to add a later phase to."""
        return self.client.v1.subscription_schedules.create(
            {"from_subscription": subscription_id},
            {"idempotency_key": f"tollgate-schedule-{subscription_id}-{uuid.uuid4()}"},
        )

    @_translate_errors
    def retrieve_schedule(self, schedule_id: str) -> stripe.SubscriptionSchedule:
        """A subscription schedule with its phases."""
        return self.client.v1.subscription_schedules.retrieve(schedule_id)

    @_translate_errors
    def update_schedule(
        self, schedule_id: str, params: dict[str, Any], idempotency_key: str
    ) -> stripe.SubscriptionSchedule:
        """Replace a schedule's phases."""
        return self.client.v1.subscription_schedules.update(
            schedule_id,
            params,  # type: ignore[arg-type]
            {"idempotency_key": idempotency_key},
        )

    @_translate_errors
    def release_schedule(self, schedule_id: str) -> stripe.SubscriptionSchedule:
        """Drop a schedule's future phases; the subscription goes on as it is now."""
        return self.client.v1.subscription_schedules.release(schedule_id)

    @_translate_errors
    def open_portal(
        self, stripe_customer_id: str, return_url: str, configuration_id: str | None
    ) -> stripe.billing_portal.Session:
        """A billing-portal session on Tollgate's portal configuration (None: the account's
        default one)."""
        params: dict[str, Any] = {"customer": stripe_customer_id, "return_url": return_url}
        if configuration_id is not None:
            params["configuration"] = configuration_id
        return self.client.v1.billing_portal.sessions.create(params)  # type: ignore[arg-type]

    @_translate_errors
    def portal_configurations(self) -> list[stripe.billing_portal.Configuration]:
        """Every active billing-portal configuration of the account."""
        found = self.client.v1.billing_portal.configurations.list({"active": True, "limit": 100})
        return list(found.auto_paging_iter())

    @_translate_errors
    def create_portal_configuration(
        self, params: dict[str, Any], idempotency_key: str
    ) -> stripe.billing_portal.Configuration:
        """Create a billing-portal configuration."""
        return self.client.v1.billing_portal.configurations.create(
            params,  # type: ignore[arg-type]
            {"idempotency_key": idempotency_key},
        )

    @_translate_errors
    def update_portal_configuration(
        self, configuration_id: str, params: dict[str, Any]
    ) -> stripe.billing_portal.Configuration:
        """Change a billing-portal configuration (what is sent replaces what it names)."""
        return self.client.v1.billing_portal.configurations.update(
            configuration_id,
            params,  # type: ignore[arg-type]
        )

    @_translate_errors
    def tax_id_owner(self, tax_id: str) -> str | None:
        """The Stripe customer a tax ID belongs to; None when Stripe has no such tax ID (any
        more: a deleted one is gone)."""
        try:
            found = self.client.v1.tax_ids.retrieve(tax_id)
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                return None
            raise
        return optional_id(found.customer)

    @_translate_errors
    def retrieve_invoice(self, invoice_id: str) -> stripe.Invoice:
        """An invoice as Stripe has it now, with its payments (which name its PaymentIntent)."""
        return self.client.v1.invoices.retrieve(invoice_id, {"expand": ["payments"]})

    @_translate_errors
    def retrieve_customer(self, customer_id: str) -> stripe.Customer:
        """A customer as Stripe has it now (a deleted one answers ``deleted: true``), with its
        default card for invoices and its tax IDs (which Stripe sends only when asked)."""
        return self.client.v1.customers.retrieve(
            customer_id, {"expand": ["invoice_settings.default_payment_method", "tax_ids"]}
        )

    @_translate_errors
    def retrieve_charge(self, charge_id: str) -> stripe.Charge:
        """A charge as Stripe has it now."""
        return self.client.v1.charges.retrieve(charge_id)

    @_translate_errors
    def retrieve_refund(self, refund_id: str) -> stripe.Refund:
        """A refund as Stripe has it now, with its charge."""
        return self.client.v1.refunds.retrieve(refund_id, {"expand": ["charge"]})

    @_translate_errors
    def retrieve_dispute(self, dispute_id: str) -> stripe.Dispute:
        """A dispute as Stripe has it now, with its charge."""
        return self.client.v1.disputes.retrieve(dispute_id, {"expand": ["charge"]})

    # Reading a whole account (import and reconciliation)

    @_translate_errors
    def list_page(self, resource: str, params: dict[str, Any]) -> stripe.ListObject[Any]:
        """One page of a list endpoint, ``resource`` named as the client names its service
        (``customers``, ``subscription_schedules``, ...)."""
        service = getattr(self.client.v1, resource)
        page: stripe.ListObject[Any] = service.list(params)
        return page

    @_translate_errors
    def meter_event_totals(
        self, meter_id: str, stripe_customer_id: str, start: int, end: int
    ) -> dict[int, int]:
        """What Stripe counted on a meter for a customer, by UTC day in [start, end)."""
        summaries = self.client.v1.billing.meters.event_summaries.list(
            meter_id,
            {
                "customer": stripe_customer_id,
                "start_time": start,
                "end_time": end,
                "value_grouping_window": "day",
                "limit": 100,
            },
        )
        return {
            summary.start_time: round(summary.aggregated_value)
            for summary in summaries.auto_paging_iter()
        }

    # Webhook endpoints

    @_translate_errors
    def webhook_endpoints(self) -> list[stripe.WebhookEndpoint]:
        """Every webhook endpoint of the account."""
        return list(self.client.v1.webhook_endpoints.list({"limit": 100}).auto_paging_iter())

    @_translate_errors
    def delete_webhook_endpoint(self, endpoint_id: str) -> None:
        """Stop sending events to an endpoint."""
        self.client.v1.webhook_endpoints.delete(endpoint_id)

    @_translate_errors
    def update_webhook_endpoint(self, endpoint_id: str, events: list[str]) -> None:
        """Send an endpoint these event types (its signing secret stays as it is)."""
        self.client.v1.webhook_endpoints.update(
            endpoint_id,
            {"enabled_events": events},  # type: ignore[arg-type]
        )

    @_translate_errors
    def create_webhook_endpoint(self, url: str, events: list[str]) -> stripe.WebhookEndpoint:
        """Register ``url`` for ``events``; the answer carries the signing secret, only once."""
        return self.client.v1.webhook_endpoints.create(
            {"url": url, "enabled_events": events}  # type: ignore[typeddict-item]
        )


def stripe_id(value: Any) -> str:
    """The id in a field that holds either an id or the expanded object (Stripe's ``expand``)."""
    return value if isinstance(value, str) else str(value.id)


def optional_id(value: Any) -> str | None:
    """``stripe_id`` for a field that may also be null."""
    return None if value is None else stripe_id(value)


# How often commands and the worker retry a Stripe call that failed or timed out.
WORKER_RETRIES = 3


def register_gateways(app: Flask, sandbox_client: stripe.HTTPClient | None) -> None:
    """Build the application's gateways: the sandbox's in sandbox mode, else Stripe's."""
    app.extensions["tollgate.stripe.sandbox_client"] = sandbox_client
    for extension, background in (("tollgate.stripe", False), ("tollgate.stripe.worker", True)):
        app.extensions[extension] = StripeGateway(build_client(app, sandbox_client, background))


def build_client(
    app: Flask,
    sandbox_client: stripe.HTTPClient | None,
    background: bool,
    api_key: str | None = None,
) -> stripe.StripeClient:
    """A StripeClient with the time limits of pages and API calls, or of background work;
    with the configured key, or ``api_key`` (a command's restricted key)."""
    # Retries are safe: every write carries an Idempotency-Key. A page retries once, so a
    # customer waits at most about twice the timeout before being told to try again.
    retries = WORKER_RETRIES if background else 1
    if sandbox_client is not None:
        # The sandbox's client retries as Stripe's does, so that the sandbox's faults
        # (STRIPE_SANDBOX_FAULTS) are met as Stripe's would be.
        return stripe.StripeClient(
            api_key or SANDBOX_API_KEY, http_client=sandbox_client, max_network_retries=retries
        )
    base = app.config.get("STRIPE_API_BASE")
    timeout = app.config[
        "STRIPE_WORKER_TIMEOUT_SECONDS" if background else "STRIPE_TIMEOUT_SECONDS"
    ]
    return stripe.StripeClient(
        api_key or app.config["STRIPE_SECRET_KEY"],
        base_addresses={"api": base} if base else None,
        max_network_retries=retries,
        http_client=stripe.RequestsClient(timeout=timeout),
    )


def configured_key() -> str:
    """The secret key Tollgate runs with (the sandbox's, in sandbox mode)."""
    key: str = current_app.config.get("STRIPE_SECRET_KEY") or SANDBOX_API_KEY
    return key


def gateway_with_key(api_key: str) -> StripeGateway:
    """A background gateway that calls Stripe with another key, such as a restricted one."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    sandbox_client = app.extensions["tollgate.stripe.sandbox_client"]
    return StripeGateway(build_client(app, sandbox_client, background=True, api_key=api_key))


def gateway() -> StripeGateway:
    """The gateway of the running application: a page's or API call's while a request is being
    served, else (commands, background work) the one that waits longer."""
    extension = "tollgate.stripe" if has_request_context() else "tollgate.stripe.worker"
    stripe_gateway: StripeGateway = current_app.extensions[extension]
    return stripe_gateway
