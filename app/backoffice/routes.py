"""The back office's pages; every one is for operators only (see ``operators_only``)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import func, or_, select
from werkzeug.wrappers import Response as BaseResponse

from app.accounts.mirror import NEWEST_FIRST, Subscription
from app.accounts.models import Customer
from app.backoffice.csv_export import AnySelect
from app.backoffice.models import AuditEntry
from app.entitlements.access import pick_current
from app.extensions import db

bp = Blueprint("backoffice", __name__, url_prefix="/admin")

PAGE_SIZE = 50

# The back office's menu, in the order an operator reads it; a page appears once it is built.
MENU = [
    ("backoffice.risk", "At risk"),
    ("backoffice.revenue", "Revenue"),
    ("backoffice.margin", "Margin"),
    ("backoffice.customers", "Customers"),
    ("backoffice.invoices", "Invoices"),
    ("backoffice.disputes", "Disputes & refunds"),
    ("backoffice.geography", "Geography"),
    ("backoffice.top_customers", "Top customers"),
    ("backoffice.webhooks", "Webhooks"),
    ("backoffice.audit", "Audit log"),
]


@bp.before_request
def operators_only() -> BaseResponse | None:
    """Anonymous visitors log in first; a customer is told there is nothing here (404), so the
    back office does not show that it exists."""
    if not current_user.is_authenticated:
        return redirect(url_for("accounts.login", next=request.full_path.rstrip("?")))
    if not current_user.is_operator:
        abort(404)
    return None


def requested_page(name: str = "page") -> int:
    """The page the query argument ``name`` asks for; the first for anything but a number
    above 0."""
    return max(request.args.get(name, 1, type=int) or 1, 1)


def page_of(query: AnySelect, page: int) -> tuple[list[Any], bool]:
    """The rows of one page of ``query``, and whether more follow (one row more is read)."""
    rows = db.session.execute(query.limit(PAGE_SIZE + 1).offset((page - 1) * PAGE_SIZE)).all()
    return list(rows[:PAGE_SIZE]), len(rows) > PAGE_SIZE


def page_count(total: int) -> int:
    """How many pages ``total`` rows fill (one, when there are none)."""
    return max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)


@bp.context_processor
def menu() -> dict[str, Any]:
    built = current_app.view_functions
    return {"backoffice_menu": [(endpoint, label) for endpoint, label in MENU if endpoint in built]}


@bp.route("/")
def home() -> BaseResponse:
    """The back office opens on the first page of its menu: the accounts at risk."""
    first = next(endpoint for endpoint, _ in MENU if endpoint in current_app.view_functions)
    return redirect(url_for(first))


@bp.route("/customers")
def customers() -> str:
    """Every customer, newest first, found by email or reference id, a page at a time."""
    search = request.args.get("q", "").strip()
    page = requested_page()
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
        pages=page_count(total),
    )


def _current_subscriptions(customer_ids: list[int]) -> dict[int, Subscription]:
    """Each customer's current subscription, as the account page picks it (pick_current), in
    one query for the page."""
    by_customer: dict[int, list[Subscription]] = defaultdict(list)
    for subscription in db.session.scalars(
        select(Subscription)
        .where(Subscription.customer_id.in_(customer_ids))
        .order_by(*NEWEST_FIRST)
    ):
        by_customer[subscription.customer_id].append(subscription)
    picked = {customer_id: pick_current(subs) for customer_id, subs in by_customer.items()}
    return {customer_id: sub for customer_id, sub in picked.items() if sub is not None}


@bp.route("/audit")
def audit() -> str:
    """The audit log, newest first, a page at a time."""
    page = requested_page()
    entries, more = page_of(
        select(AuditEntry, Customer.reference_id)
        .outerjoin(Customer, Customer.id == AuditEntry.customer_id)
        .order_by(AuditEntry.id.desc()),
        page,
    )
    return render_template("backoffice/audit.html", entries=entries, page=page, more=more)
