"""The back office's forms; Flask-WTF adds and checks the CSRF token."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, IntegerField, SelectField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional


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
            DataRequired("Say why: the audit log keeps it."),
            Length(max=1000),
        ],
    )
    expires_on = DateField("Expires on (optional)", validators=[Optional()])
    confirm = BooleanField(
        "I confirm this grant", validators=[DataRequired("Tick the box to confirm the grant.")]
    )
