"""A Stripe key without a permission: which one Stripe's refusal names, and what the operator
and the customer are told (docs/stripe-keys.md lists what each feature needs)."""

from __future__ import annotations

import re

# Stripe refuses a restricted key with a 403 that names what would allow the request: "The
# provided key 'rk_live_***' does not have the required permissions for this endpoint on account
# 'acct_...'. Having the 'rak_subscription_write' permission would allow this request to
# continue." Some requests name several ("Having the 'rak_billing_cadence_read',
# 'rak_subscription_read' permissions ..."), and a later wording quotes the name without its
# prefix ("Enabling "Checkout Sessions Write" ('checkout_session_write') permissions on this
# key ..."). Names as in docs.stripe.com/keys/permissions-reference; keys and accounts quoted in
# the same message never end in _read or _write.
_PERMISSION = re.compile(r"'(?:rak_)?([a-z][a-z0-9_]*_(?:read|write))'")

CUSTOMER_MESSAGE = (
    "Billing is not set up correctly on our side, so nothing was changed. "
    "The operator has been told; please try again later."
)


def missing_permissions(stripe_message: str) -> tuple[str, ...]:
    """The permissions Stripe's refusal says the key lacks, as ``rak_...`` names, in its order."""
    return tuple(dict.fromkeys(f"rak_{name}" for name in _PERMISSION.findall(stripe_message)))


def operator_message(call: str, stripe_message: str) -> str:
    """What the operator is told (logs, commands, the back office) when Stripe refused ``call``
    because the key lacks a permission: the permission, how to grant it, Stripe's own words."""
    missing = missing_permissions(stripe_message)
    if missing:
        named = " and ".join(f"'{name}'" for name in missing)
        what = f"the {named} permission{'s' if len(missing) > 1 else ''}"
    else:
        what = "a permission this request needs"
    return (
        f"Stripe refused {call} because the Stripe key lacks {what}, so nothing changed. "
        "Grant it to the restricted key in Stripe's Dashboard (Developers, API keys; "
        f"docs/stripe-keys.md lists what each feature needs). Stripe said: {stripe_message}"
    )
