"""Creating accounts and checking credentials; callers commit."""

from __future__ import annotations

import secrets

from sqlalchemy import func, select

from app.accounts.models import Customer, User
from app.accounts.passwords import hash_password, needs_rehash, password_problem, verify_password
from app.extensions import db


class AccountError(Exception):
    """A sign-up that cannot go ahead; the message is shown to the person signing up."""


class EmailTaken(AccountError):
    """An account with this email address exists already."""


class WeakPassword(AccountError):
    """The password breaks one of the rules in ``password_problem``."""


def normalize_email(email: str) -> str:
    """Emails compare case-insensitively and without surrounding spaces."""
    return email.strip().lower()


def new_reference_id() -> str:
    """A customerReferenceId for a customer that signed up by itself."""
    return f"tg_{secrets.token_hex(10)}"


def find_user(email: str) -> User | None:
    """The user with this email address, if any."""
    return db.session.scalar(select(User).where(func.lower(User.email) == normalize_email(email)))


def register(email: str, password: str) -> User:
    """Create a user and its customer record."""
    email = normalize_email(email)
    problem = password_problem(password, email)
    if problem:
        raise WeakPassword(problem)
    if find_user(email) is not None or unclaimed_customer(email, imported_only=True) is not None:
        # A customer imported from Stripe is claimed by invitation (invitations.py), never by
        # whoever signs up first with its email.
        raise EmailTaken("An account with this email exists already.")
    customer = Customer(reference_id=new_reference_id(), email=email)
    user = User(email=email, password_hash=hash_password(password), customer=customer)
    db.session.add_all([customer, user])
    db.session.flush()
    return user


def unclaimed_customer(email: str, *, imported_only: bool = False) -> Customer | None:
    """The customer with this email that no one logs in as: one an import adopted from Stripe
    (``imported_only``), or also one the operator's product made through the API."""
    query = (
        select(Customer)
        .outerjoin(User, User.customer_id == Customer.id)
        .where(func.lower(Customer.email) == normalize_email(email), User.id.is_(None))
    )
    if imported_only:
        query = query.where(Customer.imported_at.is_not(None))
    return db.session.scalar(query.order_by(Customer.id).limit(1))


def authenticate(email: str, password: str) -> User | None:
    """The user whose credentials these are, or None; upgrades an outdated hash on the way."""
    user = find_user(email)
    if not verify_password(user.password_hash if user else None, password) or user is None:
        return None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def user_of_session(session_id: str) -> User | None:
    """The user a session names (``User.get_id``), if its token is still the user's."""
    user_id, _, token = session_id.partition(":")
    if not (user_id.isascii() and user_id.isdigit()) or not token:
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not secrets.compare_digest(user.session_token, token):
        return None
    return user


def find_customer(reference_id: str) -> Customer | None:
    """The customer with this customerReferenceId."""
    return db.session.scalar(select(Customer).where(Customer.reference_id == reference_id))


def upsert_api_customer(
    reference_id: str, email: str, first_name: str | None, last_name: str | None
) -> tuple[Customer, bool]:
    """The operator's customer by its own reference id, created on first use; (customer, created).

    A repeat with the same reference id returns the customer as it is, so a retried call is safe.
    """
    customer = find_customer(reference_id)
    if customer is not None:
        return customer, False
    customer = Customer(
        reference_id=reference_id,
        email=normalize_email(email),
        first_name=first_name,
        last_name=last_name,
    )
    db.session.add(customer)
    db.session.flush()
    return customer, True
