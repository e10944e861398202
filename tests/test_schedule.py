"""Periodic jobs: however many workers enqueue a slot, it runs once; a dead run's slot is taken
over after its lease; a failed run is kept with its error."""

from __future__ import annotations

import multiprocessing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from app import create_app
from app.extensions import db
from app.schedule import PeriodicRun, run_once_per_slot, wall_clock
from tests.apps import app_config

LEASE = timedelta(minutes=5)


def _runs(app: Flask) -> list[tuple[str, str, int, bool, str | None]]:
    with app.app_context():
        rows = db.session.scalars(select(PeriodicRun).order_by(PeriodicRun.id)).all()
        return [(r.job, r.slot, r.runs, r.finished_at is not None, r.last_error) for r in rows]


def test_slot_runs_once_then_every_later_run_skips(app: Flask) -> None:
    done: list[str] = []
    with app.app_context():
        assert run_once_per_slot("sweep", "2026-12-07T09:00", LEASE, lambda: done.append("a"))
        assert not run_once_per_slot("sweep", "2026-12-07T09:00", LEASE, lambda: done.append("b"))
        assert run_once_per_slot("sweep", "2026-12-07T09:01", LEASE, lambda: done.append("c"))
    assert done == ["a", "c"]
    assert _runs(app) == [
        ("sweep", "2026-12-07T09:00", 1, True, None),
        ("sweep", "2026-12-07T09:01", 1, True, None),
    ]


def test_failed_run_keeps_its_error_and_its_slot_until_the_lease_ends(app: Flask) -> None:
    def broken() -> None:
        raise RuntimeError("Stripe is down")

    with app.app_context():
        with pytest.raises(RuntimeError):
            run_once_per_slot("nightly", "2026-12-07", LEASE, broken)
        # Within the lease the slot is still the failed run's (a second worker skips it).
        assert not run_once_per_slot("nightly", "2026-12-07", LEASE, lambda: None)
    assert _runs(app) == [("nightly", "2026-12-07", 1, False, "RuntimeError: Stripe is down")]


def test_slot_of_a_run_that_died_is_taken_over_after_its_lease(app: Flask) -> None:
    done: list[str] = []
    with app.app_context():
        # A worker claimed the slot, then was killed: the row says started, never finished.
        db.session.add(
            PeriodicRun(job="nightly", slot="2026-12-07", started_at=wall_clock(), runs=1)
        )
        db.session.commit()
        assert not run_once_per_slot("nightly", "2026-12-07", LEASE, lambda: done.append("x"))
        db.session.execute(
            update(PeriodicRun).values(started_at=wall_clock() - LEASE - timedelta(seconds=1))
        )
        db.session.commit()
        assert run_once_per_slot("nightly", "2026-12-07", LEASE, lambda: done.append("y"))
    assert done == ["y"]
    assert _runs(app) == [("nightly", "2026-12-07", 2, True, None)]


def _claim_in_own_process(database_url: str, instance: str, barrier: Any, marks: str) -> None:
    """One worker process: wait for the others, then try to run the slot."""
    import os

    os.environ["TOLLGATE_INSTANCE_PATH"] = instance
    app = create_app(app_config(database_url))
    with app.app_context():
        barrier.wait()

        def work() -> None:
            with open(marks, "a") as file:
                file.write(f"{os.getpid()}\n")

        run_once_per_slot("forward_overage", "2026-12-07T09:00", LEASE, work)


def test_slot_enqueued_by_several_worker_processes_at_once_runs_once(
    app: Flask, tmp_path: Path
) -> None:
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(4)
    marks = tmp_path / "marks"
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    workers = [
        spawn.Process(
            target=_claim_in_own_process, args=(url, str(tmp_path / "i"), barrier, str(marks))
        )
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert len(marks.read_text().splitlines()) == 1
    assert _runs(app) == [("forward_overage", "2026-12-07T09:00", 1, True, None)]
