"""Security headers on every answer, with flask-talisman: a Content-Security-Policy that allows
no inline script or style, no framing, no MIME sniffing, and HSTS and Secure cookies only when
Tollgate is served over HTTPS."""

from __future__ import annotations

from flask import Flask
from flask_talisman import Talisman

# Stripe's hosted Checkout and billing portal. form-action also governs where a form's POST is
# redirected (Chromium blocks a 303 to an origin it does not list), and the Subscribe and payment
# method buttons are plain forms answered with a 303 to these pages. In sandbox mode the same app
# serves them, so 'self' covers them. A Checkout on a custom domain must be added here.
STRIPE_HOSTED_PAGES = ("https://checkout.stripe.com", "https://billing.stripe.com")


def content_security_policy(stripe_sandbox: bool) -> dict[str, str]:
    """The policy: everything from this origin, nothing inline, nothing framing the pages."""
    form_targets = ["'self'"] if stripe_sandbox else ["'self'", *STRIPE_HOSTED_PAGES]
    return {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self'",
        # Pico draws its checkbox, select and validation icons as data: SVG images.
        "img-src": "'self' data:",
        "form-action": " ".join(form_targets),
        "frame-ancestors": "'none'",
        "base-uri": "'self'",
        "object-src": "'none'",
    }


def init_security(app: Flask) -> None:
    """Send the security headers with every answer; cookies are Secure when the site is HTTPS."""
    over_https = str(app.config["TOLLGATE_BASE_URL"]).startswith("https://")
    app.config["SESSION_COOKIE_SECURE"] = over_https
    app.config["REMEMBER_COOKIE_SECURE"] = over_https
    Talisman(
        app,
        # A proxy in front terminates TLS and redirects plain HTTP; the app never sees it.
        force_https=False,
        # Sent only on requests that came over HTTPS: request.is_secure, or an X-Forwarded-Proto
        # of https, which talisman takes from anyone; harmless, browsers ignore HSTS over HTTP.
        strict_transport_security=True,
        frame_options="DENY",
        content_security_policy=content_security_policy(app.config["STRIPE_SANDBOX"]),
        referrer_policy="strict-origin-when-cross-origin",
        x_content_type_options=True,
        # Talisman sets SESSION_COOKIE_SECURE on every request when this is true, and writes
        # its SameSite over the app's. Flask's own default for SameSite is None (so a
        # config.setdefault leaves it unset): Lax unless the configuration chose otherwise.
        session_cookie_secure=over_https,
        session_cookie_samesite=app.config["SESSION_COOKIE_SAMESITE"] or "Lax",
    )
