"""Sign-up and log-in forms; Flask-WTF adds and checks the CSRF token."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField
from wtforms.validators import DataRequired, Email, Length


def _strip(value: str | None) -> str | None:
    # Browsers trim email inputs; a pasted address with a trailing space is still the address.
    return value.strip() if isinstance(value, str) else value


class SignupForm(FlaskForm):
    """A new account: email and password, and the plan the buyer chose on the pricing page."""

    email = EmailField(
        "Email",
        filters=[_strip],
        validators=[
            DataRequired("Enter your email address."),
            Email("Enter a valid email address, like you@example.com."),
            Length(max=320),
        ],
    )
    password = PasswordField(
        "Password", validators=[DataRequired("Choose a password."), Length(max=1024)]
    )
    plan = HiddenField()


class LoginForm(FlaskForm):
    """Log in with email and password."""

    email = EmailField(
        "Email",
        filters=[_strip],
        validators=[DataRequired("Enter your email address."), Length(max=320)],
    )
    password = PasswordField(
        "Password", validators=[DataRequired("Enter your password."), Length(max=1024)]
    )
    next = HiddenField()


class ClaimForm(FlaskForm):
    """The password of an invited customer's new account."""

    password = PasswordField(
        "Password", validators=[DataRequired("Choose a password."), Length(max=1024)]
    )
