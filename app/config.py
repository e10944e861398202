"""Configuration read from the environment, in one place."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

REPO_ROOT = Path(__file__).resolve().parent.parent
# Values that turn a setting off.
OFF = frozenset({"0", "off", "false", "no"})


def database_url(raw: str | None, instance_path: Path) -> str:
    """Return a SQLAlchemy URL: SQLite under instance/ by default, psycopg 3 for PostgreSQL."""
    if not raw:
        return f"sqlite:///{instance_path / 'tollgate.sqlite3'}"
    # Hosting platforms hand out postgres:// and postgresql:// URLs; SQLAlchemy would pick psycopg2.
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix) :]
    return raw


def local_secret_key(instance_path: Path) -> str:
    """Read the secret key generated for this checkout, creating it on first use."""
    key_file = instance_path / "secret_key"
    if not key_file.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


# Settings the environment gives as they are; with those read specially, every variable the
# README's configuration table documents (ENVIRONMENT_VARIABLES).
TAKEN_AS_THEY_ARE = (
    "TOLLGATE_BASE_URL",
    "TOLLGATE_PLANS",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_API_BASE",
    "STRIPE_SANDBOX_PATH",
    "STRIPE_SANDBOX_FAULTS",
    "TOLLGATE_PORTAL_ALLOWS",
    "RATELIMIT_STORAGE_URI",
    "TOLLGATE_QUEUE_URL",
    "TOLLGATE_QUEUE_NAME",
    "LOGIN_LIMIT_PER_ADDRESS",
    "LOGIN_LIMIT_PER_IP",
    "METRICS_TOKEN",
    "METRICS_BIND",
    "LOG_LEVEL",
    "LOG_FORMAT",
)
# Read by gunicorn.conf.py, for the web processes.
SERVER_VARIABLES = ("TOLLGATE_BIND", "WEB_CONCURRENCY", "WEB_THREADS", "PROMETHEUS_MULTIPROC_DIR")
ENVIRONMENT_VARIABLES = (
    "SECRET_KEY",
    "DATABASE_URL",
    "PORT",
    "TOLLGATE_CHECK_CACHE",
    "PAST_DUE_GRACE_DAYS",
    "TOLLGATE_PROXIES",
    "TOLLGATE_INSTANCE_PATH",
    "STRIPE_TIMEOUT_SECONDS",
    "STRIPE_WORKER_TIMEOUT_SECONDS",
    "STRIPE_SANDBOX_LATENCY_MS",
    *TAKEN_AS_THEY_ARE,
    *SERVER_VARIABLES,
)


def missing_production_settings(environ: Mapping[str, str]) -> list[str]:
    """The secrets a server against real Stripe needs and the environment does not give.

    The sandbox and debug mode make their own; against real Stripe a generated secret key would
    differ between hosts and vanish with the machine, and webhooks could not be verified.
    """
    if not environ.get("STRIPE_SECRET_KEY") or environ.get("FLASK_DEBUG", "").lower() in (
        "1",
        "true",
    ):
        return []
    return [name for name in ("SECRET_KEY", "STRIPE_WEBHOOK_SECRET") if not environ.get(name)]


class Config:
    """Defaults; ``from_environ`` reads the deployment's settings over them.

    Secrets (``SECRET_KEY``, Stripe keys) have no default here: a local run generates its own
    secret key, and without Stripe keys Tollgate runs against its sandbox.
    """

    TOLLGATE_PLANS = str(REPO_ROOT / "plans.toml")
    STRIPE_SECRET_KEY: str | None = None
    STRIPE_WEBHOOK_SECRET: str | None = None
    STRIPE_API_BASE: str | None = None
    # How long one call to Stripe may take before it is given up (then retried once): short for
    # pages and API calls, so a slow Stripe answers the customer with a clear message, longer
    # for commands and the worker, which nobody waits on.
    STRIPE_TIMEOUT_SECONDS = 5.0
    STRIPE_WORKER_TIMEOUT_SECONDS = 30.0
    # Refuse a Stripe call made while the database session holds a write transaction
    # (app/billing/transaction_guard.py); the tests turn it on.
    STRIPE_CALL_GUARD = False
    RATELIMIT_STORAGE_URI = "memory://"
    # The worker's queue (app/queue.py): empty is a SQLite file under instance/; redis://...
    # for workers on several hosts. The name prefixes its keys, for several Tollgates on one Redis.
    TOLLGATE_QUEUE_URL: str | None = None
    TOLLGATE_QUEUE_NAME = "tollgate"
    LOGIN_LIMIT_PER_ADDRESS = "5 per minute"
    LOGIN_LIMIT_PER_IP = "20 per minute"
    # Logs (app/logs.py): the least severe level written, and "json" lines for a log search or
    # "console" lines for a developer's terminal.
    LOG_LEVEL = "INFO"
    LOG_FORMAT = "json"
    # No ping before every checkout (a round trip on the entitlement check's hot path);
    # connections are recycled instead, and SQLAlchemy drops one that turns out dead.
    SQLALCHEMY_ENGINE_OPTIONS: ClassVar[dict[str, Any]] = {"pool_recycle": 1800}
    WTF_CSRF_TIME_LIMIT = None
    # Large enough for a batch of 1,000 events or a 5 MB usage file; anything larger is a 413.
    MAX_CONTENT_LENGTH = 6 * 1024 * 1024
    # Where buyers reach Tollgate: Checkout returns here and the sandbox posts webhooks here.
    TOLLGATE_BASE_URL = "http://127.0.0.1:5000"
    # How many proxies (load balancer, nginx) stand in front and set X-Forwarded-*; 0 trusts none.
    TOLLGATE_PROXIES = 0
    # Sandbox mode only: the sandbox's state file (default instance/stripe_sandbox.sqlite3), and
    # whether a background thread delivers its webhooks (tests deliver them on demand instead).
    # Every process starts one; one process at a time (the holder of a lock beside the file)
    # moves the clock and delivers.
    STRIPE_SANDBOX_PATH: str | None = None
    SANDBOX_DELIVER_WEBHOOKS = True
    # Sandbox mode only: how long each of its answers takes, to try Tollgate against a slow
    # Stripe (bench/stripe_latency.py); 0 answers at once.
    STRIPE_SANDBOX_LATENCY_MS = 0
    # Sandbox mode only: a share of Stripe calls fail as Stripe and networks fail (429, 500,
    # timeouts, dropped connections; app/stripe_sandbox/faults.py): "0.2", or "0.2:timeout,lost"
    # for those kinds only. Empty (the default) or "0": none.
    STRIPE_SANDBOX_FAULTS = ""
    # What customers may also do in Stripe's billing portal besides changing their card, billing
    # address and tax IDs: "plan_changes", "cancel", both comma separated, or nothing (the
    # default: Tollgate's account page does those). `flask stripe setup` applies it
    # (app/billing/portal.py).
    TOLLGATE_PORTAL_ALLOWS: str | None = None
    # How long a past_due subscription keeps its features while Stripe retries the payment.
    PAST_DUE_GRACE_DAYS = 7
    # Entitlement checks answered from memory while nothing they read changed
    # (app/entitlements/fastpath/); TOLLGATE_CHECK_CACHE=off makes every check read the
    # database.
    CHECK_CACHE = True
    # /metrics (app/health.py) answers only this bearer token; unset, the site has no /metrics.
    METRICS_TOKEN: str | None = None
    # host:port on which each gunicorn worker serves /metrics without a token, for a scraper on
    # a private network (gunicorn.conf.py); unset, none.
    METRICS_BIND: str | None = None

    @staticmethod
    def from_environ(instance_path: Path, environ: Mapping[str, str]) -> dict[str, Any]:
        """The settings that the environment gives, with the local fallbacks filled in."""
        settings: dict[str, Any] = {
            "SECRET_KEY": environ.get("SECRET_KEY") or local_secret_key(instance_path),
            "SQLALCHEMY_DATABASE_URI": database_url(environ.get("DATABASE_URL"), instance_path),
        }
        if environ.get("PORT") and not environ.get("TOLLGATE_BASE_URL"):
            settings["TOLLGATE_BASE_URL"] = f"http://127.0.0.1:{environ['PORT']}"
        if environ.get("TOLLGATE_CHECK_CACHE"):
            settings["CHECK_CACHE"] = environ["TOLLGATE_CHECK_CACHE"].lower() not in OFF
        if environ.get("TOLLGATE_PROXIES"):
            settings["TOLLGATE_PROXIES"] = int(environ["TOLLGATE_PROXIES"])
        if environ.get("PAST_DUE_GRACE_DAYS"):
            settings["PAST_DUE_GRACE_DAYS"] = int(environ["PAST_DUE_GRACE_DAYS"])
        for name in ("STRIPE_TIMEOUT_SECONDS", "STRIPE_WORKER_TIMEOUT_SECONDS"):
            if environ.get(name):
                settings[name] = float(environ[name])
        if environ.get("STRIPE_SANDBOX_LATENCY_MS"):
            settings["STRIPE_SANDBOX_LATENCY_MS"] = int(environ["STRIPE_SANDBOX_LATENCY_MS"])
        for name in TAKEN_AS_THEY_ARE:
            if environ.get(name):
                settings[name] = environ[name]
        return settings
