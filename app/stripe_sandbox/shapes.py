"""The fields Stripe sends for each object type the sandbox serves, with their defaults.

Stripe always sends every field of an object, null when unset, whatever parameters made it.
`SHAPES` lists them per object type (the fields of Stripe's published sample, plus the few the
SDK declares that Tollgate reads, see docs/sandbox.md); `NESTED` lists the fields of the nested
objects, by path. `complete` fills in what a resource left out, so every object the sandbox
stores, answers or sends in an event is whole.
"""

from __future__ import annotations

import copy
import functools
import json
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
_BILLING_DETAILS = fields("address email name phone tax_id", address=_ADDRESS)
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
    "billing.meter_event_summary": fields(
        "aggregated_value end_time id livemode meter object start_time", livemode=False
    ),
    "billing_portal.configuration": fields(
        "active application business_profile created default_return_url features id "
        "is_default livemode login_page metadata name object updated",
        active=True,
        business_profile=fields("headline privacy_policy_url terms_of_service_url"),
        is_default=False,
        login_page=fields("enabled url", enabled=False),
        **_META,
    ),
    "tax_id": fields(
        "country created customer customer_account id livemode object owner type value "
        "verification",
        livemode=False,
        owner=fields("customer customer_account type", type="customer"),
        verification=fields("status verified_address verified_name", status="unavailable"),
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
    "payment_intent": fields(
        "amount amount_capturable amount_details amount_received application "
        "application_fee_amount automatic_payment_methods canceled_at cancellation_reason "
        "capture_method client_secret confirmation_method created currency customer "
        "customer_account description excluded_payment_method_types id last_payment_error "
        "latest_charge livemode managed_payments metadata next_action object on_behalf_of "
        "payment_method payment_method_configuration_details payment_method_options "
        "payment_method_types processing receipt_email review setup_future_usage shipping "
        "source statement_descriptor statement_descriptor_suffix status transfer_data "
        "transfer_group",
        amount_capturable=0,
        amount_details={"tip": {}},
        amount_received=0,
        capture_method="automatic",
        confirmation_method="automatic",
        payment_method_options={},
        payment_method_types=["card"],
        status="requires_payment_method",
        **_META,
    ),
    "invoice_payment": fields(
        "amount_paid amount_requested created currency id invoice is_default livemode object "
        "payment status status_transitions",
        is_default=True,
        livemode=False,
        status="open",
        status_transitions=fields("canceled_at paid_at"),
    ),
    "charge": fields(
        "amount amount_captured amount_refunded application application_fee "
        "application_fee_amount balance_transaction billing_details "
        "calculated_statement_descriptor captured created currency customer description "
        "disputed failure_balance_transaction failure_code failure_message fraud_details id "
        "livemode metadata object on_behalf_of outcome paid payment_intent payment_method "
        "payment_method_details receipt_email receipt_number receipt_url refunded refunds "
        "review shipping source source_transfer statement_descriptor "
        "statement_descriptor_suffix status transfer_data transfer_group",
        amount_captured=0,
        amount_refunded=0,
        billing_details=_BILLING_DETAILS,
        captured=False,
        disputed=False,
        fraud_details={},
        paid=False,
        refunded=False,
        **_META,
    ),
    "refund": fields(
        "amount balance_transaction charge created currency customer customer_account "
        "destination_details id metadata object payment_intent payment_method reason "
        "receipt_number source_transfer_reversal status transfer_reversal",
        metadata={},
    ),
    "dispute": fields(
        "amount balance_transactions charge created currency enhanced_eligibility_types "
        "evidence evidence_details id is_charge_refundable livemode metadata object "
        "payment_intent payment_method_details reason status",
        balance_transactions=[],
        enhanced_eligibility_types=[],
        evidence=fields(
            "access_activity_log billing_address cancellation_policy "
            "cancellation_policy_disclosure cancellation_rebuttal customer_communication "
            "customer_email_address customer_name customer_purchase_ip customer_signature "
            "duplicate_charge_documentation duplicate_charge_explanation duplicate_charge_id "
            "enhanced_evidence product_description receipt refund_policy "
            "refund_policy_disclosure refund_refusal_explanation service_date "
            "service_documentation shipping_address shipping_carrier shipping_date "
            "shipping_documentation shipping_tracking_number uncategorized_file "
            "uncategorized_text",
            enhanced_evidence={},
        ),
        evidence_details=fields(
            "due_by enhanced_eligibility has_evidence past_due submission_count",
            enhanced_eligibility={},
            has_evidence=False,
            past_due=False,
            submission_count=0,
        ),
        is_charge_refundable=False,
        **_META,
    ),
    "balance_transaction": fields(
        "amount available_on balance_type created currency description exchange_rate fee "
        "fee_details id net object reporting_category source status type",
        balance_type="payments",
        fee=0,
        fee_details=[],
        status="available",
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
    "charge.outcome": fields(
        "advice_code network_advice_code network_decline_code network_status reason "
        "seller_message type"
    ),
    "charge.payment_method_details": fields("card type", type="card"),
    # What Stripe sends for a card charge with no wallet, 3D Secure or installments.
    "charge.payment_method_details.card": fields(
        "amount_authorized authorization_code brand checks country exp_month exp_year "
        "extended_authorization fingerprint funding incremental_authorization installments "
        "last4 mandate multicapture network network_token network_transaction_id overcapture "
        "regulated_status three_d_secure transaction_link_id wallet",
        extended_authorization={"status": "disabled"},
        incremental_authorization={"status": "unavailable"},
        multicapture={"status": "unavailable"},
        network_token={"used": False},
    ),
    "dispute.payment_method_details": fields("card type", type="card"),
    "dispute.payment_method_details.card": fields(
        "brand case_type network network_reason_code", case_type="chargeback"
    ),
    "invoice_payment.payment": fields("payment_intent type", type="payment_intent"),
    "refund.destination_details": fields("card type", type="card"),
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
    obj: dict[str, Any] = json.loads(_blank(object_type))
    obj["id"] = object_id
    if "created" in obj:
        obj["created"] = created
    return obj


def blank(path: str) -> dict[str, Any]:
    """A new nested object (`NESTED[path]`) with every field at its default, whole: for
    builders that make many objects and so skip completing them."""
    return dict(json.loads(_blank_nested(path)))


@functools.cache
def _blank_nested(path: str) -> str:
    nested: dict[str, Any] = {}
    _fill(nested, NESTED[path], path)
    return json.dumps(nested)


@functools.cache
def _blank(object_type: str) -> str:
    # Completed once per type and copied by decoding: filling in a new object field by field
    # costs several times more, and `flask sandbox fill` makes a million of them.
    return json.dumps(complete({"id": None, "object": object_type}))


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
