"""Production web settings for ``gunicorn --config gunicorn.conf.py wsgi:app`` (the Procfile's web).

Every value can be overridden on the command line; the environment variables are in the README.
"""

import os
import tempfile
from pathlib import Path

# Prometheus' figures are added up over every process through files in this folder
# (prometheus-client's multiprocess mode). It must be set before the app is imported, as
# prometheus_client chooses in-memory or file-backed values once, at import. `make run` gives
# the worker the same folder, so /metrics shows its tasks too.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    instance = Path(os.environ.get("TOLLGATE_INSTANCE_PATH") or Path(__file__).parent / "instance")
    instance.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="metrics-", dir=instance)

from app.config import missing_production_settings
from app.logs import gunicorn_logconfig

# Where to listen: loopback by default; 0.0.0.0:PORT behind a proxy or in a container.
bind = os.environ.get("TOLLGATE_BIND") or f"127.0.0.1:{os.environ.get('PORT', '5000')}"

# Processes: two per core is gunicorn's own advice for a mostly waiting app; 2 on this size of
# machine. WEB_CONCURRENCY is the name hosting platforms set.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))

# Threads per process. Pages and the API wait on Stripe for hundreds of milliseconds at a time
# (Checkout, plan changes): with few threads a slow Stripe starves the entitlement checks that
# never call it. bench/stripe_latency.py measured 16 threads keeping checks within 20% of their
# speed while Stripe answered in 800 ms, and 4 threads not (bench/README.md).
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "16"))

# A request that takes longer than this is a stuck worker: gunicorn restarts it. Stripe calls
# give up after STRIPE_TIMEOUT_SECONDS (5 s) and retry once, well inside it.
timeout = 30
# Time for requests in flight to finish on SIGTERM (a deploy) before the worker is stopped.
graceful_timeout = 20
# Idle keep-alive connections from the proxy are held this long.
keepalive = 5

# Logs go to stderr as JSON lines through the app's logging (app/logs.py), gunicorn's own
# included; the app writes one line per request, so gunicorn's access log stays off.
logconfig_dict = gunicorn_logconfig()
accesslog = None
# The app writes the access lines; gunicorn's own is not worked out only to be dropped.
logger_class = "app.logs.GunicornLogger"


def on_starting(server):
    """Refuse to start against real Stripe without the secrets a deployment must set; warn when
    served by another worker kind than gthread."""
    missing = missing_production_settings(os.environ)
    if missing:
        raise SystemExit(
            "Tollgate will not start against real Stripe without "
            + " and ".join(missing)
            + " set (see the README's configuration)."
        )
    warn_unless_gthread(server)


def warn_unless_gthread(server):
    """Tollgate needs threads: a request waiting on Stripe (hundreds of ms, up to 2 x 5 s)
    holds a sync worker's one thread, and every check that reaches that worker waits behind it.
    gunicorn says "gthread" for ``-k sync`` with more than one thread, since it runs that."""
    kind = server.cfg.worker_class_str
    if kind != "gthread":
        server.log.warning(
            "Tollgate is served by %s workers: requests waiting on Stripe will hold up "
            "entitlement checks. Serve it with gthread, as gunicorn.conf.py does "
            "(docs/operations.md, gunicorn).",
            kind,
        )


def child_exit(server, worker):
    """A dead worker's live gauges go with it; its counters stay in the sums."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):
    """With METRICS_BIND set, every worker also answers scrapes there (SO_REUSEPORT): any one
    of them answers for all, from the shared files. (gunicorn reads this file from the folder
    it starts in, whatever it serves: the benchmarks' reference apps have no metrics.)"""
    if os.environ.get("METRICS_BIND"):
        from app.health import serve_metrics

        serve_metrics(worker.wsgi)
