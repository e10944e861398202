"""The worker as an operator runs it: `flask worker` in its own process, on the embedded queue."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from flask import Flask
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy import select

from app import create_app
from app.entitlements.models import OverageBatch
from app.extensions import db
from app.queue import queue
from app.tasks import forward_overage_task
from tests.apps import app_config
from tests.conftest import MigratedDatabase
from tests.entitlements.helpers import record
from tests.factories import new_subscriber
from tests.processes import tollgate_environ, worker
from tests.waiting import wait_until


def _due(hour: int, minute: int) -> set[str]:
    return {task.name for task in queue.read_periodic(datetime(2026, 12, 7, hour, minute))}


def test_schedule_sweeps_every_minute_snapshots_after_midnight_and_reconciles_from_two() -> None:
    sweeps = {"forward_overage", "settle_margin_floors", "retry_webhook_events"}
    assert _due(0, 0) == _due(13, 59) == _due(2, 1) == _due(1, 5) == sweeps
    assert _due(0, 5) == _due(0, 50) == {*sweeps, "revenue_snapshot"}
    assert [h for h in range(24) if "nightly_reconcile" in _due(h, 0)] == [2, 3, 4, 5]
    assert _due(2, 15) == _due(5, 45) == {*sweeps, "nightly_reconcile"}


@pytest.fixture
def control(
    migrated_database: MigratedDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Flask:
    """The test's own app on the database, queue and sandbox the worker process uses."""
    instance = tmp_path / "instance"
    monkeypatch.setenv("TOLLGATE_INSTANCE_PATH", str(instance))
    app = create_app(
        app_config(
            migrated_database.fresh_url(tmp_path),
            STRIPE_SANDBOX_PATH=str(tmp_path / "stripe_sandbox.sqlite3"),
        )
    )
    result = app.test_cli_runner().invoke(args=["catalog", "sync"])
    assert result.exit_code == 0, result.output
    yield app
    migrated_database.clean(app)


def _forwarded(app: Flask) -> list[int]:
    with app.app_context():
        return list(
            db.session.scalars(
                select(OverageBatch.units).where(OverageBatch.forwarded_at.is_not(None))
            )
        )


def _task_outcomes(folder: Path) -> dict[tuple[str, str], float]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))
    return {
        (sample.labels["task"], sample.labels["outcome"]): sample.value
        for metric in registry.collect()
        if metric.name == "tollgate_tasks"
        for sample in metric.samples
        if sample.name == "tollgate_tasks_total"
    }


def test_worker_process_runs_queued_sweep_then_stops_cleanly_on_sigterm(
    control: Flask, tmp_path: Path
) -> None:
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    customer_id = new_subscriber(control, "enterprise_monthly").id
    record(control, customer_id, "big", "ai_chat", 10_000_000 + 500_000)
    running = worker(
        tollgate_environ(
            DATABASE_URL=control.config["SQLALCHEMY_DATABASE_URI"],
            TOLLGATE_INSTANCE_PATH=str(tmp_path / "instance"),
            STRIPE_SANDBOX_PATH=control.config["STRIPE_SANDBOX_PATH"],
            SECRET_KEY="worker-test",
            PROMETHEUS_MULTIPROC_DIR=str(metrics),
        ),
        tmp_path / "worker.log",
    )
    try:
        # The queue is the embedded one: a SQLite file under the shared instance folder.
        forward_overage_task()
        # The plan's fee (one unit) went when the subscription was mirrored; the overage now.
        wait_until(lambda: 500_000 in _forwarded(control), 60, running.log_tail())
        assert sorted(_forwarded(control)) == [1, 500_000]
        assert running.stop(timeout=30) == 0
        # The worker counted the task's outcome where /metrics adds up every process's.
        assert _task_outcomes(metrics)[("forward_overage", "complete")] >= 1
    finally:
        running.stop()
