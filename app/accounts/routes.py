"""Sign-up, log-in and log-out pages."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import TooManyRequests
from werkzeug.wrappers import Response as BaseResponse

from app.accounts import invitations, services
from app.accounts.forms import ClaimForm, LoginForm, SignupForm
from app.accounts.login_limits import login_limits
from app.accounts.models import Customer
from app.catalog import current_catalog
from app.extensions import db

bp = Blueprint("accounts", __name__)

# Remembers the plan a buyer picked on the pricing page across sign-up and log-in.
CHOSEN_PLAN_KEY = "chosen_plan"


def _safe_next(target: str | None) -> str:
    """Where to go after logging in: only a path on this site, never another host."""
    parts = urlsplit(target or "")
    if target and not parts.scheme and not parts.netloc and target.startswith("/"):
        return target
    return url_for("billing.account")


def _remember_plan(plan_key: str | None) -> None:
    if not plan_key:
        return
    if current_catalog().plan(plan_key) is None:
        abort(
            404, description=f"There is no plan called “{plan_key}”. Pick one on the pricing page."
        )
    session[CHOSEN_PLAN_KEY] = plan_key


# Sends a customer on to subscribe to a plan (Checkout, or the account page). It is billing's,
# a layer above accounts: the app factory hands it over with continue_plans_with().
PlanStarter = Callable[[Customer, str], BaseResponse]


def continue_plans_with(app: Flask, start_plan: PlanStarter) -> None:
    """What sign-up and log-in call to go on to the plan picked on the pricing page."""
    app.extensions["tollgate.start_plan"] = start_plan


def _continue_to_chosen_plan() -> BaseResponse | None:
    """After sign-up or log-in, go on to subscribe to the plan picked on the pricing page."""
    plan_key = session.pop(CHOSEN_PLAN_KEY, None)
    if not plan_key:
        return None
    start_plan: PlanStarter = current_app.extensions["tollgate.start_plan"]
    return start_plan(current_user.customer, plan_key)


SIGNUP_REFUSED = (
    "We could not sign you up with that email and password. If you have an account, log in; "
    "if you were invited, use the link in your invitation."
)


@bp.route("/signup", methods=["GET", "POST"])
def signup() -> str | BaseResponse | tuple[str, int]:
    """Create an account; a plan chosen on the pricing page comes along."""
    if current_user.is_authenticated:
        return redirect(url_for("billing.account"))
    form = SignupForm()
    if request.method == "GET":
        form.plan.data = request.args.get("plan", "")
    _remember_plan(form.plan.data)
    if not form.validate_on_submit():
        return _signup_page(form)
    address, ip = services.normalize_email(form.email.data), request.remote_addr or ""
    wait = login_limits().retry_after(address, ip)
    if wait is not None:
        raise TooManyRequests(retry_after=wait)
    try:
        user = services.register(form.email.data, form.password.data)
        db.session.commit()
    except services.WeakPassword as exc:
        form.password.errors.append(str(exc))
        return _signup_page(form)
    except (services.EmailTaken, IntegrityError):
        db.session.rollback()
        # The owner signing up again is logged in. Anyone else is told no more than a failed
        # log-in tells, and at the log-in's pace: the same limits count these tries.
        existing = services.authenticate(form.email.data, form.password.data)
        if existing is None:
            login_limits().count_failure(address, ip)
            form.email.errors.append(SIGNUP_REFUSED)
            return _signup_page(form)
        db.session.commit()
        user = existing
    login_user(user)
    # A buyer who picked a plan goes straight on to it; the welcome is for everyone else.
    continued = _continue_to_chosen_plan()
    if continued is not None:
        return continued
    flash("Welcome to Tollgate! Your account is ready.", "success")
    return redirect(url_for("billing.account"))


def _signup_page(form: SignupForm) -> tuple[str, int]:
    chosen_plan = current_catalog().plan(session.get(CHOSEN_PLAN_KEY, ""))
    page = render_template("accounts/signup.html", form=form, chosen_plan=chosen_plan)
    return page, 400 if form.errors else 200


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | BaseResponse | tuple[str, int]:
    """Log in with email and password."""
    if current_user.is_authenticated:
        return redirect(url_for("billing.account"))
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
        _remember_plan(request.args.get("plan"))
    if not form.validate_on_submit():
        return render_template("accounts/login.html", form=form), 400 if form.errors else 200
    address, ip = services.normalize_email(form.email.data), request.remote_addr or ""
    wait = login_limits().retry_after(address, ip)
    if wait is not None:
        raise TooManyRequests(retry_after=wait)
    user = services.authenticate(form.email.data, form.password.data)
    if user is None:
        login_limits().count_failure(address, ip)
        db.session.rollback()
        form.password.errors.append("That email and password do not match an account.")
        return render_template("accounts/login.html", form=form), 401
    db.session.commit()
    login_user(user)
    return _continue_to_chosen_plan() or redirect(_safe_next(form.next.data))


@bp.route("/claim/<token>", methods=["GET", "POST"])
def claim(token: str) -> str | BaseResponse | tuple[str, int]:
    """An invited customer (one adopted from Stripe) sets a password and is logged in."""
    if current_user.is_authenticated:
        logout_user()
    try:
        customer = invitations.invited_customer(token)
    except invitations.InvalidInvitation as exc:
        db.session.rollback()
        return render_template("accounts/claim.html", problem=str(exc), form=None), 400
    form = ClaimForm()
    if not form.validate_on_submit():
        page = render_template("accounts/claim.html", form=form, email=customer.email)
        return page, 400 if form.errors else 200
    try:
        user = invitations.claim(token, form.password.data)
        db.session.commit()
    except services.WeakPassword as exc:
        db.session.rollback()
        form.password.errors.append(str(exc))
        return render_template("accounts/claim.html", form=form, email=customer.email), 400
    except (invitations.InvalidInvitation, IntegrityError):
        # Spent meanwhile (the link opened twice), or its email has an account already.
        db.session.rollback()
        problem = "This invitation cannot be used any more: log in instead."
        return render_template("accounts/claim.html", problem=problem, form=None), 400
    login_user(user)
    flash("Welcome! Your account is ready, with your plan as it is in Stripe.", "success")
    return redirect(url_for("billing.account"))


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Response | BaseResponse:
    """Log out, ending this user's every session (a copy of the cookie too), and go back to the
    pricing page."""
    current_user.end_sessions()
    db.session.commit()
    logout_user()
    session.pop(CHOSEN_PLAN_KEY, None)
    flash("You are logged out.", "info")
    return redirect(url_for("billing.pricing"))
