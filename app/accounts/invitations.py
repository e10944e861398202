"""Invitations: how the owner of a customer imported from Stripe claims it.

An import adopts Stripe customers that no one has signed up for. Signing up with such a
customer's email would hand its subscription to whoever typed the address first, so sign-up
refuses it (as it refuses an email that has an account), and the owner claims the customer with
a link the operator sends (`flask users invite EMAIL`): signed with SECRET_KEY, valid for a week,
bound to the customer and its email, and spent once a password is set.
"""

from __future__ import annotations

from flask import current_app
from itsdangerous import BadSignature, URLSafeTimedSerializer

from app.accounts.models import Customer, User
from app.accounts.passwords import hash_password, password_problem
from app.accounts.services import AccountError, WeakPassword
from app.extensions import db

VALID_FOR_SECONDS = 7 * 24 * 3600
_SALT = "tollgate.invitation"


class InvalidInvitation(AccountError):
    """The link is forged, expired, spent, or its customer's email has changed since."""


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def invitation_token(customer: Customer) -> str:
    """The token of a link that lets the owner of ``customer`` set a password."""
    return _serializer().dumps({"customer": customer.id, "email": customer.email})


def invited_customer(token: str) -> Customer:
    """The customer a valid, unspent invitation is for."""
    try:
        claim = _serializer().loads(token, max_age=VALID_FOR_SECONDS)
    except BadSignature:  # expired links included (SignatureExpired is one)
        raise InvalidInvitation("This invitation link is not valid or has expired.") from None
    customer = db.session.get(Customer, claim.get("customer") if isinstance(claim, dict) else None)
    if customer is None or customer.email is None or customer.email != claim.get("email"):
        raise InvalidInvitation("This invitation link is not valid or has expired.")
    if customer.user is not None:
        raise InvalidInvitation("This invitation has been used already: log in instead.")
    return customer


def claim(token: str, password: str) -> User:
    """Give the invited customer a user with this password; the caller commits."""
    customer = invited_customer(token)
    email = customer.email or ""
    problem = password_problem(password, email)
    if problem:
        raise WeakPassword(problem)
    user = User(email=email, password_hash=hash_password(password), customer=customer)
    db.session.add(user)
    db.session.flush()
    return user
