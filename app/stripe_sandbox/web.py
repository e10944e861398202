"""The blueprint: the API over HTTP and Stripe-hosted pages (Checkout, portal, invoices)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, redirect, render_template, request
from werkzeug.wrappers.response import Response as BaseResponse

from .amounts import money
from .cli import register_commands
from .context import Ctx
from .errors import StripeError
from .resources import checkout
from .resources.portal import ADDRESS_FORM, portal_action, portal_view
from .resources.tax_ids import TAX_ID_TYPES
from .sandbox import Sandbox


def create_blueprint(sandbox: Sandbox) -> Blueprint:
    """The `stripe_sandbox` blueprint, mounted at /sandbox, with the `flask sandbox` commands."""
    bp = Blueprint(
        "stripe_sandbox",
        __name__,
        url_prefix="/sandbox",
        template_folder="templates",
        static_folder="static",
        cli_group="sandbox",
    )
    register_commands(bp)

    @bp.route("/v1/<path:path>", methods=["GET", "POST", "DELETE"])
    def api(path: str) -> Response:
        status, headers, body = sandbox.handle(
            request.method,
            f"/v1/{path}",
            dict(request.headers),
            request.get_data(),
            request.query_string.decode(),
        )
        return Response(body, status=status, headers=headers)

    def load(action: Any, *args: Any) -> Any:
        try:
            return sandbox.run(action, *args)
        except StripeError as exc:
            abort(404 if exc.status == 404 else 400, exc.message)

    @bp.route("/checkout/<session_id>", methods=["GET", "POST"])
    def checkout_page(session_id: str) -> BaseResponse | tuple[str, int]:
        error = None
        if request.method == "POST":
            form = request.form
            try:
                target = sandbox.run(
                    checkout.pay,
                    session_id,
                    form.get("email", ""),
                    form.get("card_number", ""),
                    form.get("expiry", ""),
                )
                return redirect(target, code=303)
            except StripeError as exc:
                error = exc.message
        session, items, customer_email = load(_checkout_view, session_id)
        return render_template(
            "stripe_sandbox/checkout.html",
            session=session,
            items=items,
            customer_email=customer_email,
            error=error,
            money=money,
        ), 402 if error else 200

    @bp.route("/portal/<portal_id>", methods=["GET", "POST"])
    def portal_page(portal_id: str) -> tuple[str, int]:
        error = notice = None
        if request.method == "POST":
            try:
                notice = sandbox.run(portal_action, portal_id, request.form.to_dict())
            except StripeError as exc:
                error = exc.message
        view = load(portal_view, portal_id)
        return render_template(
            "stripe_sandbox/portal.html",
            **view,
            error=error,
            notice=notice,
            money=money,
            address_form=ADDRESS_FORM,
            tax_id_types=sorted(TAX_ID_TYPES),
        ), 402 if error else 200

    @bp.route("/invoices/<invoice_id>")
    @bp.route("/invoices/<invoice_id>/pdf", endpoint="invoice_pdf")
    def invoice_page(invoice_id: str) -> str:
        invoice = load(lambda ctx, i: ctx.fetch("invoice", i), invoice_id)
        return render_template("stripe_sandbox/invoice.html", invoice=invoice, money=money)

    return bp


def _checkout_view(ctx: Ctx, session_id: str) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    session = ctx.fetch("checkout.session", session_id)
    items = checkout.line_items(ctx, session)["data"]
    # Stripe's page shows the known customer's email, as a field already filled in.
    customer = ctx.store.get(session["customer"]) if session["customer"] else None
    return session, items, (customer or {}).get("email") or ""
