"""The fields Stripe sends for each object type the sandbox serves, with their defaults.

Stripe always sends every field of an object, null when unset, whatever parameters made it.
`SHAPES` lists them per object type (the fields of Stripe's published sample, plus the few the
SDK declares that Tollgate reads, see docs/sandbox.md); `NESTED` lists the fields of the nested
objects, by path. `complete` fills in what a resource left out, so every object the sandbox
stores, answers or sends in an event is whole.
"""

from __future__ import annotations

import copy
from typing import Any


def fields(names: str, **defaults: Any) -> dict[str, Any]:
    """Field names (space separated), null unless given a default."""
    shape: dict[str, Any] = dict.fromkeys(names.split())
    unknown = set(defaults) - set(shape)
    if unknown:
        raise ValueError(f"defaults for fields not listed: {sorted(unknown)}")
    shape.update(defaults)
    return shape


_ADDRESS = fields("city country line1 line2 postal_code state")
_AUTOMATIC_TAX = fields("enabled liability provider status", enabled=False)
_META = {"metadata": {}, "livemode": False}

SHAPES: dict[str, dict[str, Any]] = {
    "customer": fields(
        "address balance created currency default_source delinquent description discount "
        "email id invoice_prefix invoice_settings livemode metadata name next_invoice_sequence "
        "object phone preferred_locales shipping tax_exempt test_clock",
        address=_ADDRESS,
        balance=0,
        delinquent=False,
        invoice_settings=fields("custom_fields default_payment_method footer rendering_options"),
        next_invoice_sequence=1,
        preferred_locales=[],
        tax_exempt="none",
        **_META,
    ),
    "product": fields(
        "active created default_price description id images livemode marketing_features "
        "metadata name object package_dimensions shippable statement_descriptor tax_code type "
        "unit_label updated url",
        active=True,
        images=[],
        marketing_features=[],
        type="service",
        **_META,
    ),
    "price": fields(
        "active billing_scheme created currency custom_unit_amount id livemode lookup_key "
        "metadata nickname object product recurring tax_behavior tiers_mode transform_quantity "
        "type unit_amount unit_amount_decimal",
        active=True,
        billing_scheme="per_unit",
        tax_behavior="unspecified",
        **_META,
    ),
    "plan": fields(
        "active amount amount_decimal billing_scheme created currency id interval "
        "interval_count livemode metadata meter nickname object product tiers_mode "
        "transform_usage trial_period_days usage_type",
        **_META,
    ),
    "checkout.session": fields(
        "adaptive_pricing after_expiration allow_promotion_codes amount_subtotal amount_total "
        "automatic_tax billing_address_collection cancel_url client_reference_id client_secret "
        "collected_information consent consent_collection created currency currency_conversion "
        "custom_fields custom_text customer customer_account customer_creation customer_details "
        "customer_email discounts expires_at id integration_identifier invoice invoice_creation "
        "livemode locale managed_payments metadata mode object origin_context payment_intent "
        "payment_link payment_method_collection payment_method_configuration_details "
        "payment_method_options payment_method_types payment_status permissions "
        "phone_number_collection recovered_from saved_payment_method_options setup_intent "
        "shipping_address_collection shipping_cost shipping_options status submit_type "
        "subscription success_url total_details ui_mode url wallet_options",
        automatic_tax=_AUTOMATIC_TAX,
        custom_fields=[],
        custom_text=fields("after_submit shipping_address submit terms_of_service_acceptance"),
        payment_method_options={},
        payment_method_types=["card"],
        phone_number_collection=fields("enabled", enabled=False),
        shipping_options=[],
        ui_mode="hosted",
        **_META,
    ),
    "item": fields(
        "adjustable_quantity amount_discount amount_subtotal amount_tax amount_total currency "
        "description id metadata object price quantity",
        amount_discount=0,
        amount_tax=0,
        metadata={},
    ),
    "subscription": fields(
        "application application_fee_percent automatic_tax billing_cycle_anchor "
        "billing_cycle_anchor_config billing_mode billing_schedules billing_thresholds "
        "cancel_at cancel_at_period_end canceled_at cancellation_details collection_method "
        "created currency customer customer_account days_until_due default_payment_method "
        "default_source default_tax_rates description discounts ended_at id invoice_settings "
        "items latest_invoice livemode managed_payments metadata "
        "next_pending_invoice_item_invoice object on_behalf_of pause_collection "
        "payment_settings pending_invoice_item_interval pending_setup_intent pending_update "
        "schedule start_date status test_clock transfer_data trial_end trial_settings "
        "trial_start",
        automatic_tax=fields("disabled_reason enabled liability", enabled=False),
        billing_mode=fields("flexible type", type="classic"),
        billing_schedules=[],
        cancel_at_period_end=False,
        cancellation_details=fields("comment feedback reason"),
        collection_method="charge_automatically",
        default_tax_rates=[],
        discounts=[],
        invoice_settings=fields(
            "account_tax_ids custom_fields description footer issuer", issuer={"type": "self"}
        ),
        payment_settings=fields(
            "payment_method_options payment_method_types save_default_payment_method",
            save_default_payment_method="off",
        ),
        **_META,
    ),
    "subscription_item": fields(
        "billing_thresholds created current_period_end current_period_start discounts id "
        "metadata object plan price quantity subscription tax_rates",
        discounts=[],
        metadata={},
        tax_rates=[],
    ),
    "invoice": fields(
        "account_country account_name account_tax_ids amount_due amount_overpaid amount_paid "
        "amount_remaining amount_shipping application attempt_count attempted auto_advance "
        "automatic_tax automatically_finalizes_at billing_reason collection_method created "
        "currency custom_fields customer customer_account customer_address customer_email "
        "customer_name customer_phone customer_shipping customer_tax_exempt customer_tax_ids "
        "default_payment_method default_source default_tax_rates description discounts "
        "due_date effective_at ending_balance footer from_invoice hosted_invoice_url id "
        "invoice_pdf issuer last_finalization_error latest_revision lines livemode metadata "
        "next_payment_attempt number object on_behalf_of parent payment_settings period_end "
        "period_start post_payment_credit_notes_amount pre_payment_credit_notes_amount "
        "receipt_number rendering shipping_cost shipping_details starting_balance "
        "statement_descriptor status status_transitions subscription subtotal "
        "subtotal_excluding_tax test_clock total total_discount_amounts total_excluding_tax "
        "total_pretax_credit_amounts total_taxes webhooks_delivered_at",
        account_country="US",
        amount_overpaid=0,
        amount_paid=0,
        amount_shipping=0,
        attempt_count=0,
        attempted=False,
        automatic_tax=fields("disabled_reason enabled liability provider status", enabled=False),
        collection_method="charge_automatically",
        customer_tax_exempt="none",
        customer_tax_ids=[],
        default_tax_rates=[],
        discounts=[],
        issuer={"type": "self"},
        payment_settings=fields("default_mandate payment_method_options payment_method_types"),
        post_payment_credit_notes_amount=0,
        pre_payment_credit_notes_amount=0,
        starting_balance=0,
        status_transitions=fields("finalized_at marked_uncollectible_at paid_at voided_at"),
        total_discount_amounts=[],
        total_pretax_credit_amounts=[],
        total_taxes=[],
        **_META,
    ),
    "line_item": fields(
        "amount currency description discount_amounts discountable discounts id invoice "
        "livemode metadata object parent period pretax_credit_amounts pricing quantity "
        "quantity_decimal subscription subtotal taxes",
        discount_amounts=[],
        discountable=True,
        discounts=[],
        pretax_credit_amounts=[],
        taxes=[],
        **_META,
    ),
    "billing.meter": fields(
        "created customer_mapping default_aggregation display_name event_name "
        "event_time_window id livemode object status status_transitions updated value_settings",
        customer_mapping={"event_payload_key": "stripe_customer_id", "type": "by_id"},
        livemode=False,
        status="active",
        status_transitions=fields("deactivated_at"),
        value_settings={"event_payload_key": "value"},
    ),
    "billing.meter_event": fields(
        "created event_name identifier livemode object payload timestamp", livemode=False
    ),
    "billing_portal.session": fields(
        "configuration created customer customer_account flow id livemode locale object "
        "on_behalf_of return_url url",
        livemode=False,
    ),
    "webhook_endpoint": fields(
        "api_version application created description enabled_events id livemode metadata "
        "object status url",
        status="enabled",
        **_META,
    ),
    "event": fields(
        "api_version created data id livemode object pending_webhooks request type",
        livemode=False,
        pending_webhooks=0,
    ),
    "test_helpers.test_clock": fields(
        "created deletes_after frozen_time id livemode name object status status_details",
        livemode=False,
        status="ready",
        status_details={},
    ),
    "subscription_schedule": fields(
        "application billing_mode canceled_at completed_at created current_phase customer "
        "customer_account default_settings end_behavior id livemode metadata object phases "
        "released_at released_subscription status subscription test_clock",
        billing_mode=fields("flexible type", type="classic"),
        end_behavior="release",
        phases=[],
        **_META,
    ),
    "payment_method": fields(
        "allow_redisplay billing_details card created customer customer_account id livemode "
        "metadata object type",
        allow_redisplay="unspecified",
        **_META,
    ),
}

# Nested objects that resources fill from parameters or change later: the fields Stripe sends
# in them, by `object type.field` path (`[]` for the items of an array).
NESTED: dict[str, dict[str, Any]] = {
    "customer.address": _ADDRESS,
    "customer.shipping": fields("address carrier name phone tracking_number"),
    "customer.shipping.address": _ADDRESS,
    "checkout.session.customer_details": fields(
        "address business_name email individual_name name phone tax_exempt tax_ids",
        tax_exempt="none",
    ),
    "price.recurring": fields("interval interval_count meter trial_period_days usage_type"),
    "subscription_schedule.default_settings": fields(
        "application_fee_percent automatic_tax billing_cycle_anchor billing_thresholds "
        "collection_method default_payment_method description invoice_settings on_behalf_of "
        "transfer_data",
        automatic_tax=fields("disabled_reason enabled liability", enabled=False),
        billing_cycle_anchor="automatic",
        collection_method="charge_automatically",
        invoice_settings=fields(
            "account_tax_ids custom_fields days_until_due description footer issuer",
            issuer={"type": "self"},
        ),
    ),
}


def skeleton(object_type: str, object_id: str, created: int | None = None) -> dict[str, Any]:
    """A new object with every field Stripe sends for its type, at its default."""
    obj = complete({"id": object_id, "object": object_type})
    if "created" in obj:
        obj["created"] = created
    return obj


def complete(obj: dict[str, Any]) -> dict[str, Any]:
    """Give `obj` (and the objects nested in it) every field it lacks, at its default."""
    object_type = obj.get("object")
    if obj.get("deleted"):
        return obj  # Stripe answers a DELETE with the id, the type and `deleted` alone
    if object_type == "list":
        for item in obj["data"]:
            complete(item)
        return obj
    if object_type in SHAPES:
        _fill(obj, SHAPES[object_type], str(object_type))
    return obj


def _fill(obj: dict[str, Any], shape: dict[str, Any], path: str) -> None:
    for name, default in shape.items():
        if name not in obj:
            obj[name] = copy.deepcopy(default)
    for name, value in obj.items():
        here = f"{path}.{name}"
        if isinstance(value, dict) and isinstance(value.get("object"), str):
            complete(value)
        elif isinstance(value, dict):
            default = shape.get(name)
            _fill(value, NESTED.get(here) or (default if isinstance(default, dict) else {}), here)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict) and isinstance(item.get("object"), str):
                    complete(item)
