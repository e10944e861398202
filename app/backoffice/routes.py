"""The back office's pages; every one is for operators only (see ``operators_only``)."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, or_, select
from werkzeug.wrappers import Response as BaseResponse

from app.accounts.mirror import NEWEST_FIRST, Subscription
from app.accounts.models import Customer
from app.extensions import db

bp = Blueprint("backoffice", __name__, url_prefix="/admin")

PAGE_SIZE = 50


@bp.before_request
def operators_only() -> BaseResponse | None:
    """Anonymous visitors log in first; a customer is told there is nothing here (404), so the
    back office does not show that it exists."""
    if not current_user.is_authenticated:
        return redirect(url_for("accounts.login", next=request.full_path.rstrip("?")))
    if not current_user.is_operator:
        abort(404)
    return None


@bp.route("/")
def home() -> BaseResponse:
    """The back office opens on its customers until it has a dashboard."""
    return redirect(url_for("backoffice.customers"))


@bp.route("/customers")
def customers() -> str:
    """Every customer, newest first, found by email or reference id, a page at a time."""
    search = request.args.get("q", "").strip()
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    query = select(Customer)
    if search:
        pattern = f"%{search.lower()}%"
        query = query.where(
            or_(
                func.lower(Customer.email).like(pattern),
                func.lower(Customer.reference_id).like(pattern),
                Customer.stripe_customer_id == search,
            )
        )
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.session.scalars(
        query.order_by(Customer.id.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    ).all()
    plans = _current_subscriptions([row.id for row in rows])
    return render_template(
        "backoffice/customers.html",
        customers=rows,
        plans=plans,
        search=search,
        page=page,
        total=total,
        pages=max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1),
    )


def _current_subscriptions(customer_ids: list[int]) -> dict[int, Subscription]:
    """Each customer's newest subscription, in one query for the page."""
    newest: dict[int, Subscription] = {}
    for subscription in db.session.scalars(
        select(Subscription)
        .where(Subscription.customer_id.in_(customer_ids))
        .order_by(*NEWEST_FIRST)
    ):
        newest.setdefault(subscription.customer_id, subscription)
    return newest
