"""The back office's forms; Flask-WTF adds and checks the CSRF token.

Every action on a customer says why (the audit log keeps it) and is confirmed with a box. The
forms share a page, so each names its fields' ids after itself (``id=``) to keep them apart.
"""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

REASON_REQUIRED = "Say why: the audit log keeps it."


def reason_field(form: str) -> Any:
    """The reason every action gives, kept in the audit log."""
    return TextAreaField(
        "Reason", id=f"{form}-reason", validators=[DataRequired(REASON_REQUIRED), Length(max=1000)]
    )


def confirm_field(form: str, what: str) -> Any:
    """The box the operator ticks to confirm ``what``."""
    return BooleanField(
        f"I confirm this {what}",
        id=f"{form}-confirm",
        validators=[DataRequired(f"Tick the box to confirm the {what}.")],
    )


def intent_field() -> Any:
    """Names the click, so a double submit is one change in Stripe (billing/changes.py)."""
    return HiddenField()


class GrantCreditsForm(FlaskForm):
    """Credits granted on the operator's word: how many, into which pool, why, until when."""

    pool = SelectField("Pool", validators=[DataRequired("Choose a pool.")])
    amount = IntegerField(
        "Amount",
        validators=[
            InputRequired("Enter how many credits to grant."),
            NumberRange(min=1, max=10**12, message="Grant a whole number of credits above 0."),
        ],
    )
    reason = TextAreaField(
        "Reason",
        validators=[
            DataRequired(REASON_REQUIRED),
            Length(max=1000),
        ],
    )
    expires_on = DateField("Expires on (optional)", validators=[Optional()])
    confirm = BooleanField(
        "I confirm this grant", validators=[DataRequired("Tick the box to confirm the grant.")]
    )


def _not_zero(_form: FlaskForm, field: IntegerField) -> None:
    if field.data == 0:
        raise ValidationError("An adjustment of 0 changes nothing.")


class AdjustCreditsForm(FlaskForm):
    """Credits added or removed (a negative amount) on the operator's word."""

    pool = SelectField("Pool", id="adjust-pool", validators=[DataRequired("Choose a pool.")])
    amount = IntegerField(
        "Amount (negative removes)",
        id="adjust-amount",
        validators=[
            InputRequired("Enter how many credits to add, or remove with a minus sign."),
            NumberRange(min=-(10**12), max=10**12, message="At most a trillion either way."),
            _not_zero,
        ],
    )
    reason = reason_field("adjust")
    confirm = confirm_field("adjust", "adjustment")


class ChangePlanForm(FlaskForm):
    """Another plan for the customer: an upgrade now (prorated), a downgrade at period end."""

    plan = SelectField("New plan", id="change-plan", validators=[DataRequired("Choose a plan.")])
    reason = reason_field("change")
    confirm = confirm_field("change", "plan change")
    intent = intent_field()


class CancelForm(FlaskForm):
    """End the customer's plan, at the end of the period or now."""

    mode = RadioField(
        "When",
        id="cancel-mode",
        choices={
            "period_end": "At the end of the period (access goes on until then)",
            "now": "Now (access ends, plan credits are clawed back)",
        },
        validators=[InputRequired("Choose when the plan ends.")],
    )
    reason = reason_field("cancel")
    confirm = confirm_field("cancel", "cancellation")
    intent = intent_field()


class ResumeForm(FlaskForm):
    """Undo a cancellation at period end."""

    reason = reason_field("resume")
    confirm = confirm_field("resume", "resumption")
    intent = intent_field()


class ResyncForm(FlaskForm):
    """Read the customer whole from Stripe again."""

    reason = reason_field("resync")
    confirm = confirm_field("resync", "re-sync")


class ReplayForm(FlaskForm):
    """Apply a webhook event again through its handler."""

    reason = reason_field("replay")
    confirm = confirm_field("replay", "replay")
